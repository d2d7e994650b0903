"""The peers a run compares: no proxy, nginx, configurable-http-proxy, podgate (two ways).

Each starter brings one proxy up in front of the shared upstreams, pinned
to the proxy core, adds the two bench routes the way that proxy is
configured in real life (nginx config, CHP's REST API, podgate's
CHP-compatible API or its config file with a signed cookie), checks that
a request really goes through, and returns a Peer. A starter that cannot
run its proxy raises PeerUnavailable with the reason; the run goes on
without that peer.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.procs import Managed, child_pids, free_port, start, wait_for_port
from bench.harness.upstreams import (
    NGINX,
    SMALL_BODY,
    SMALL_PATH,
    Upstreams,
    nginx_common,
    nginx_temp_paths,
)

CHP = "configurable-http-proxy"
COOKIE_NAME = "podgate-session"
REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


class PeerUnavailable(Exception):
    pass


@dataclass
class Peer:
    name: str
    static_base: str  # where small/big/post requests go
    app_base: str  # where WebSockets and uploads go (differs only for "direct")
    measured_pid: int | None  # the proxy process whose CPU and RSS are reported
    cookie: str = ""  # full Cookie header value, "" for none
    processes: list[Managed] = field(default_factory=list)

    def url(self, path: str, *, ws: bool = False) -> str:
        base = self.app_base if "/app/" in path else self.static_base
        if ws:
            base = base.replace("http://", "ws://", 1)
        return base + path

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


@dataclass(frozen=True)
class PeerOptions:
    workdir: Path
    proxy_cpus: str | None
    podgate_cmd: list[str]


def _http(
    method: str, url: str, *, body: object = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    # Never through an environment proxy: everything here is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise PeerUnavailable(f"{method} {url} failed: {e}") from e


def routing_problem(peer: Peer) -> str | None:
    """None if a small GET through the peer returns the upstream's file, else what it got.

    wrk counts a 302 as a success, so a cookie the peer stopped accepting
    would otherwise be measured as fast redirects.
    """
    headers = {"Cookie": peer.cookie} if peer.cookie else {}
    try:
        status, body = _http("GET", peer.url(SMALL_PATH), headers=headers)
    except PeerUnavailable as e:
        return str(e)
    if status != 200 or body != SMALL_BODY.encode():
        return f"{peer.name}: GET {SMALL_PATH} gave {status} {body[:200]!r}"
    return None


def _check_routed(peer: Peer) -> Peer:
    """The peer, once it routes; stopped and PeerUnavailable if it does not."""
    problem = routing_problem(peer)
    if problem is not None:
        peer.stop()
        raise PeerUnavailable(problem)
    return peer


def _started(proc: Managed, *ports: int) -> None:
    for port in ports:
        if not wait_for_port(port, timeout=START_TIMEOUT, proc=proc):
            code = proc.popen.poll()
            how = f"exited with code {code}" if code is not None else "timed out"
            proc.stop()
            raise PeerUnavailable(
                f"{proc.name} did not listen on {port} ({how}): {proc.log_tail() or 'no output'}"
            )


def start_direct(ups: Upstreams, opts: PeerOptions) -> Peer:
    return _check_routed(Peer("direct", ups.static_base, ups.app_base, None))


def _nginx_proxy_config(opts: PeerOptions, port: int, ups: Upstreams) -> str:
    return (
        nginx_common(opts.workdir, "proxy")
        + "worker_processes 1;\n"
        + f"""http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
{nginx_temp_paths(opts.workdir, "proxy")}
  upstream static_pool {{ server 127.0.0.1:{ups.static_port}; keepalive 1024; }}
  upstream app_pool {{ server 127.0.0.1:{ups.app_port}; keepalive 1024; }}
  map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    client_max_body_size 0;
    proxy_http_version 1.1;
    # Stream both ways, as podgate and CHP do, instead of spooling to temp files.
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    location /user/bench/app/ {{
      proxy_pass http://app_pool;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 600s;
    }}
    # nginx's defaults (4-8 KiB per read when not buffering) would make it the slow
    # one on bulk transfers; 64 KiB buffers where bodies are large, defaults elsewhere.
    location = /user/bench/app/upload {{
      proxy_pass http://app_pool;
      client_body_buffer_size 64k;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
    location / {{
      proxy_pass http://static_pool;
      proxy_buffer_size 64k;
      proxy_buffers 8 64k;
      proxy_busy_buffers_size 128k;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }}
  }}
}}
"""
    )


def start_nginx(ups: Upstreams, opts: PeerOptions) -> Peer:
    if not os.path.exists(NGINX):
        raise PeerUnavailable(f"{NGINX} is not installed")
    port = free_port()
    conf = opts.workdir / "proxy-nginx.conf"
    conf.write_text(_nginx_proxy_config(opts, port, ups))
    log = str(opts.workdir / "proxy-error.log")
    proc = start(
        "nginx", [NGINX, "-e", log, "-c", str(conf)], log_dir=opts.workdir, cpus=opts.proxy_cpus
    )
    _started(proc, port)
    workers = child_pids(proc.pid)
    if len(workers) != 1:
        proc.stop()
        raise PeerUnavailable(f"nginx: expected one worker, found {workers}")
    base = f"http://127.0.0.1:{port}"
    return _check_routed(Peer("nginx", base, base, workers[0], processes=[proc]))


def _add_api_routes(api_base: str, token: str, ups: Upstreams, who: str) -> None:
    auth = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    for path, target in (("/user/bench", ups.static_base), ("/user/bench/app", ups.app_base)):
        status, body = _http(
            "POST", f"{api_base}/api/routes{path}", body={"target": target}, headers=auth
        )
        if status not in (200, 201):
            raise PeerUnavailable(f"{who}: adding route {path} gave {status} {body[:200]!r}")


def launch_chp(
    ups: Upstreams, opts: PeerOptions, name: str = "chp", extra: tuple[str, ...] = ()
) -> tuple[Managed, int]:
    """configurable-http-proxy on a free port (with `extra` flags), the routes added."""
    exe = shutil.which(CHP)
    if exe is None:
        raise PeerUnavailable(f"{CHP} is not installed")
    port, api_port, token = free_port(), free_port(), secrets.token_hex(16)
    cmd = [exe, "--ip", "127.0.0.1", "--port", str(port), "--api-ip", "127.0.0.1"]
    cmd += ["--api-port", str(api_port), "--log-level", "warn", *extra]
    proc = start(
        name,
        cmd,
        log_dir=opts.workdir,
        cpus=opts.proxy_cpus,
        env={"CONFIGPROXY_AUTH_TOKEN": token},
    )
    _started(proc, port, api_port)
    try:
        _add_api_routes(f"http://127.0.0.1:{api_port}", token, ups, "chp")
    except PeerUnavailable:
        proc.stop()
        raise
    return proc, port


def start_chp(ups: Upstreams, opts: PeerOptions) -> Peer:
    proc, port = launch_chp(ups, opts)
    base = f"http://127.0.0.1:{port}"
    return _check_routed(Peer("chp", base, base, proc.pid, processes=[proc]))


def default_podgate_cmd() -> list[str]:
    exe = shutil.which("podgate")
    return [exe] if exe else [sys.executable, "-m", "podgate.cli"]


def _start_podgate(
    name: str, config: dict[str, object], env: dict[str, str], opts: PeerOptions
) -> tuple[Managed, int, int]:
    port, ops_port = free_port(), free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "ops_listen": f"127.0.0.1:{ops_port}",
        "log_level": "warning",  # as CHP runs with --log-level warn: no per-request lines
        **config,
    }
    conf = opts.workdir / f"{name}.yaml"
    conf.write_text(json.dumps(config, indent=2))  # JSON is YAML: no YAML writer needed
    env = {"PYTHONPATH": str(REPO_ROOT), "NO_PROXY": "127.0.0.1,localhost", **env}
    proc = start(
        name,
        [*opts.podgate_cmd, "run", "--config", str(conf)],
        log_dir=opts.workdir,
        cpus=opts.proxy_cpus,
        env=env,
        cwd=REPO_ROOT,
    )
    _started(proc, port, ops_port)
    return proc, port, ops_port


def start_podgate_proxy(ups: Upstreams, opts: PeerOptions) -> Peer:
    """podgate in proxy-only mode, routes added through its CHP-compatible API."""
    token = secrets.token_hex(16)
    proc, port, ops_port = _start_podgate(
        "podgate", {"control": {"enabled": False}}, {"CONFIGPROXY_AUTH_TOKEN": token}, opts
    )
    try:
        _add_api_routes(f"http://127.0.0.1:{ops_port}", token, ups, "podgate")
    except PeerUnavailable:
        proc.stop()
        raise
    base = f"http://127.0.0.1:{port}"
    return _check_routed(Peer("podgate", base, base, proc.pid, processes=[proc]))


def make_cookie(secret: str) -> str:
    """A session cookie for user "bench", made by podgate's own codec."""
    code = (
        "import sys\nfrom edge.session import SessionCodec\n"
        "print(SessionCodec([sys.argv[1]], max_age_seconds=86400).issue('bench'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, secret],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise PeerUnavailable(f"cannot make a session cookie: {done.stderr[-500:]}")
    return done.stdout.strip()


def start_podgate_cookie(ups: Upstreams, opts: PeerOptions) -> Peer:
    """podgate serving a user route declared in config, behind a signed session cookie."""
    secret = secrets.token_hex(32)
    cookie = f"{COOKIE_NAME}={make_cookie(secret)}"
    routes = [
        {"path": "/user/bench/", "target": ups.static_base, "user": "bench"},
        {"path": "/user/bench/app/", "target": ups.app_base, "user": "bench"},
    ]
    config = {"control": {"enabled": False}, "routes": routes}
    # The secret through the environment, as a deployment would pass it.
    env = {"PODGATE_COOKIE_SECRET": secret, "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16)}
    proc, port, _ = _start_podgate("podgate-cookie", config, env, opts)
    base = f"http://127.0.0.1:{port}"
    peer = Peer("podgate-cookie", base, base, proc.pid, cookie=cookie, processes=[proc])
    return _check_routed(peer)


Starter = Callable[[Upstreams, PeerOptions], Peer]

# In table order; names are what --peers accepts.
STARTERS: dict[str, Starter] = {
    "direct": start_direct,
    "nginx": start_nginx,
    "chp": start_chp,
    "podgate": start_podgate_proxy,
    "podgate-cookie": start_podgate_cookie,
}
