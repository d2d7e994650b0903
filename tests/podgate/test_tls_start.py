"""podgate run with tls: bad certificates stop the start in one line; redirects; Secure cookies.

podgate is assembled from a config as `podgate run` does (podgate.assembly),
with certificates from a throwaway CA (tests/tls_kit.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from hub_kit import Browser, start_podgate
from tls_kit import DAY, CertAuthority, issue, make_ca
from yarl import URL

from podgate.assembly import Podgate
from podgate.config import load_config
from podgate.schema import ConfigError


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return make_ca(tmp_path / "ca")


def proxy_only(tls: dict[str, Any]) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:0",
        "ops_listen": "127.0.0.1:0",
        "control": {"enabled": False},
        "log_level": "warning",
        "tls": tls,
    }


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "podgate.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def bad_pair(ca: CertAuthority, tmp_path: Path, problem: str) -> tuple[Path, Path, str]:
    """Files with `problem`; the file the error must name, and words of its reason."""
    leaf = issue(ca, tmp_path / "leaf")
    if problem == "expired":
        leaf = issue(ca, tmp_path / "old", valid_from=-3 * DAY, valid_until=-DAY)
        return leaf.cert_file, leaf.key_file, f"{leaf.cert_file}: the certificate expired"
    if problem == "not yet valid":
        leaf = issue(ca, tmp_path / "new", valid_from=DAY, valid_until=3 * DAY)
        return leaf.cert_file, leaf.key_file, f"{leaf.cert_file}: the certificate is not valid"
    if problem == "mismatched key":
        other = issue(ca, tmp_path / "other")
        return leaf.cert_file, other.key_file, f"{other.key_file}: the private key does not match"
    if problem == "unreadable certificate":
        missing = tmp_path / "missing.crt"
        return missing, leaf.key_file, f"{missing}: cannot read it"
    if problem == "unreadable key":
        missing = tmp_path / "missing.key"
        return leaf.cert_file, missing, f"{missing}: cannot read it"
    assert problem == "key is not a key"
    leaf.key_file.write_text("hello\n")
    return leaf.cert_file, leaf.key_file, f"{leaf.key_file}: not a usable PEM private key"


PROBLEMS = [
    "expired",
    "not yet valid",
    "mismatched key",
    "unreadable certificate",
    "unreadable key",
    "key is not a key",
]


@pytest.mark.parametrize("problem", PROBLEMS)
async def test_a_bad_certificate_stops_the_start_naming_file_and_reason(
    ca: CertAuthority, tmp_path: Path, problem: str
) -> None:
    cert, key, expected = bad_pair(ca, tmp_path, problem)
    config = load_config(
        write_config(tmp_path, proxy_only({"cert_file": str(cert), "key_file": str(key)})), {}
    )
    gate = Podgate(config)
    with pytest.raises(ConfigError) as raised:
        await gate.start()
    assert str(raised.value).startswith(f"tls: {expected}")
    assert gate.public_url == ""  # nothing was left listening


def test_podgate_run_prints_one_line_and_exits_2(ca: CertAuthority, tmp_path: Path) -> None:
    cert, key, expected = bad_pair(ca, tmp_path, "expired")
    path = write_config(tmp_path, proxy_only({"cert_file": str(cert), "key_file": str(key)}))
    done = subprocess.run(
        [sys.executable, "-m", "podgate.cli", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PODGATE_COOKIE_SECRET": ""},
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"podgate: config error: tls: {expected}")


async def test_redirect_listener_sends_browsers_to_https_and_answers_acme(
    ca: CertAuthority, tmp_path: Path
) -> None:
    leaf = issue(ca, tmp_path / "leaf")
    tls = {
        "cert_file": str(leaf.cert_file),
        "key_file": str(leaf.key_file),
        "redirect_http": "127.0.0.1:0",
        "redirect_port": 8443,
    }
    gate = Podgate(load_config(write_config(tmp_path, proxy_only(tls)), {}))
    await gate.start()
    try:
        assert gate.public_url.startswith("https://")
        assert gate.redirect_url.startswith("http://")
        gate.challenges.thumbprint = "thumbprint"
        async with aiohttp.ClientSession() as client:
            base = gate.redirect_url

            async def fetch(method: str, path: str, host: str) -> aiohttp.ClientResponse:
                async with client.request(
                    method,
                    URL(base + path, encoded=True),  # sent exactly as written
                    headers={"Host": host},
                    allow_redirects=False,
                ) as response:
                    await response.read()
                    return response

            got = await fetch("GET", "/hub/login?next=%2Fx", "podgate.example")
            assert got.status == 301
            assert got.headers["Location"] == "https://podgate.example:8443/hub/login?next=%2Fx"
            posted = await fetch("POST", "/user/a/api", "podgate.example:80")
            assert posted.status == 308  # the method survives
            assert posted.headers["Location"] == "https://podgate.example:8443/user/a/api"
            async with client.get(base + "/.well-known/acme-challenge/tok-EN_1") as answer:
                assert (answer.status, await answer.text()) == (200, "tok-EN_1.thumbprint")
            async with client.get(base + "/.well-known/acme-challenge/a.b") as answer:
                assert answer.status == 404  # not a base64url token
            gate.challenges.thumbprint = None  # no ACME account known (and none to look up)
            async with client.get(base + "/.well-known/acme-challenge/tok-EN_1") as answer:
                assert answer.status == 404
            bad = await fetch("GET", "/", "evil.example/\r\nX: y".replace("\r\n", ""))
            assert bad.status == 400
    finally:
        await gate.stop()


async def test_session_cookies_are_secure_over_tls_and_hsts_is_sent(
    ca: CertAuthority, tmp_path: Path
) -> None:
    leaf = issue(ca, tmp_path / "leaf")
    gate = await start_podgate(
        {
            "tls": {
                "cert_file": str(leaf.cert_file),
                "key_file": str(leaf.key_file),
                "hsts_seconds": 31536000,
            }
        }
    )
    try:
        port = gate.public_url.rsplit(":", 1)[1]
        browser = Browser(f"https://localhost:{port}")
        await browser.session.close()
        browser.session = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(ssl=ca.client_context()),
        )
        async with browser:
            response = await browser.login("alice", allow_redirects=False)
            assert response.status == 303  # signed in: on to the spawn page
            cookies = response.headers.getall("Set-Cookie")
            session = [c for c in cookies if c.startswith("podgate-session=")]
            assert session and "Secure" in session[0], cookies
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
        async with aiohttp.ClientSession() as client, client.get(gate.ops_url + "/metrics") as m:
            text = await m.text()
        expiry = leaf.cert.not_valid_after_utc.timestamp()
        line = next(x for x in text.splitlines() if x.startswith("podgate_tls_certificate_expiry_"))
        assert line.startswith('podgate_tls_certificate_expiry_timestamp_seconds{source="files"} ')
        assert float(line.split()[-1]) == expiry
    finally:
        await gate.stop()


@pytest.mark.parametrize(
    ("tls", "control", "message"),
    [
        ({"cert_file": "a.crt"}, True, "tls.key_file: cert_file and key_file go together"),
        ({"key_file": "a.key"}, True, "tls.cert_file: cert_file and key_file go together"),
        ({}, True, "tls.cert_file: tls needs cert_file and key_file, or acme"),
        (
            {"acme": {"domains": ["a.example"]}},
            True,
            "tls.redirect_http: acme answers HTTP-01 challenges on the plain-HTTP listener",
        ),
        (
            {"cert_file": "a", "key_file": "b", "acme": {"domains": ["a.example"]}},
            True,
            "tls.acme: use either cert_file/key_file or acme, not both",
        ),
        (
            {"acme": {"domains": ["*.a.example"]}, "redirect_http": "127.0.0.1:0"},
            True,
            "tls.acme: domains[0]: '*.a.example' is not a DNS name HTTP-01 can validate",
        ),
        (
            {"acme": {"domains": []}, "redirect_http": "127.0.0.1:0"},
            True,
            "tls.acme: domains: name at least one DNS name",
        ),
        (
            {"acme": {"domains": ["a.example"]}, "redirect_http": "127.0.0.1:0"},
            False,
            "tls.acme: needs the control plane (control.enabled: true)",
        ),
        (
            {"cert_file": "a", "key_file": "b", "redirect_http": "nowhere"},
            True,
            "tls.redirect_http: expected HOST:PORT",
        ),
        ({"cert_file": "a", "key_file": "b", "hsts_seconds": -1}, True, "tls.hsts_seconds:"),
    ],
)
def test_bad_tls_settings_name_their_key(
    tmp_path: Path, tls: dict[str, Any], control: bool, message: str
) -> None:
    data = {**proxy_only(tls), "control": {"enabled": control}}
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, data), {})
    assert str(raised.value).startswith(message), str(raised.value)
