"""The HTTPS peers: nginx with ssl, configurable-http-proxy with --ssl-key/--ssl-cert, podgate
with tls; each terminating TLS with the same certificate in front of the same upstreams.

One P-256 certificate (self-signed, for 127.0.0.1 and localhost) is made per run;
every peer gets TLS 1.2 and 1.3 with their own defaults otherwise (nginx is told
the same forward-secret AEAD suites podgate serves). Routes are added the way
each proxy is configured in real life, as bench/harness/peers.py does for HTTP.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.harness.peers import (
    Peer,
    PeerOptions,
    PeerUnavailable,
    _add_api_routes,
    _nginx_proxy_config,
    _start_podgate,
    _started,
    launch_chp,
)
from bench.harness.procs import child_pids, free_port, start
from bench.harness.upstreams import NGINX, SMALL_BODY, SMALL_PATH, Upstreams

CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"  # what edge.tls serves for TLS 1.2


def make_certificate(workdir: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files for 127.0.0.1 and localhost, valid a day."""
    cert_file, key_file = workdir / "bench-tls.crt", workdir / "bench-tls.key"
    if cert_file.exists():
        return cert_file, key_file
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podgate bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def https_problem(peer: Peer, cert_file: Path) -> str | None:
    """None if a small GET over HTTPS (verified against the bench certificate) is routed."""
    context = ssl.create_default_context(cafile=str(cert_file))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(peer.url(SMALL_PATH), timeout=10) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return f"{peer.name}: GET {SMALL_PATH} over HTTPS failed: {e}"
    if status != 200 or body != SMALL_BODY.encode():
        return f"{peer.name}: GET {SMALL_PATH} gave {status} {body[:200]!r}"
    return None


def _routed(peer: Peer, cert_file: Path) -> Peer:
    problem = https_problem(peer, cert_file)
    if problem is not None:
        peer.stop()
        raise PeerUnavailable(problem)
    return peer


def start_nginx_tls(ups: Upstreams, opts: PeerOptions) -> Peer:
    if not Path(NGINX).exists():
        raise PeerUnavailable(f"{NGINX} is not installed")
    cert_file, key_file = make_certificate(opts.workdir)
    port = free_port()
    config = _nginx_proxy_config(opts, port, ups).replace(
        f"listen 127.0.0.1:{port} backlog=4096;",
        f"listen 127.0.0.1:{port} ssl backlog=4096;\n"
        f"    ssl_certificate {cert_file};\n"
        f"    ssl_certificate_key {key_file};\n"
        "    ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"    ssl_ciphers {CIPHERS};",
    )
    conf = opts.workdir / "proxy-nginx-tls.conf"
    conf.write_text(config.replace("proxy.pid", "proxy-tls.pid"))
    log = str(opts.workdir / "proxy-tls-error.log")
    proc = start(
        "nginx-tls",
        [NGINX, "-e", log, "-c", str(conf)],
        log_dir=opts.workdir,
        cpus=opts.proxy_cpus,
    )
    _started(proc, port)
    workers = child_pids(proc.pid)
    if len(workers) != 1:
        proc.stop()
        raise PeerUnavailable(f"nginx: expected one worker, found {workers}")
    base = f"https://127.0.0.1:{port}"
    return _routed(Peer("nginx", base, base, workers[0], processes=[proc]), cert_file)


def start_chp_tls(ups: Upstreams, opts: PeerOptions) -> Peer:
    cert_file, key_file = make_certificate(opts.workdir)
    tls = ("--ssl-key", str(key_file), "--ssl-cert", str(cert_file))
    proc, port = launch_chp(ups, opts, "chp-tls", tls)
    base = f"https://127.0.0.1:{port}"
    return _routed(Peer("chp", base, base, proc.pid, processes=[proc]), cert_file)


def start_podgate_tls(ups: Upstreams, opts: PeerOptions) -> Peer:
    cert_file, key_file = make_certificate(opts.workdir)
    token = secrets.token_hex(16)
    config = {
        "control": {"enabled": False},
        "tls": {"cert_file": str(cert_file), "key_file": str(key_file)},
    }
    proc, port, ops_port = _start_podgate(
        "podgate-tls", config, {"CONFIGPROXY_AUTH_TOKEN": token}, opts
    )
    try:
        _add_api_routes(f"http://127.0.0.1:{ops_port}", token, ups, "podgate")
    except PeerUnavailable:
        proc.stop()
        raise
    base = f"https://127.0.0.1:{port}"
    return _routed(Peer("podgate", base, base, proc.pid, processes=[proc]), cert_file)


Starter = Callable[[Upstreams, PeerOptions], Peer]

# In table order; names are what --peers accepts (the HTTP table's names, over TLS).
TLS_STARTERS: dict[str, Starter] = {
    "nginx": start_nginx_tls,
    "chp": start_chp_tls,
    "podgate": start_podgate_tls,
}
