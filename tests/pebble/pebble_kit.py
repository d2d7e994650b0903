"""Start and stop pebble, Let's Encrypt's ACME test server, for tests.

The binary comes from tests/pebble/build (tests/run exports its path as
PEBBLE). Everything binds 127.0.0.1: the ACME API and the management API on
free ports, with a serving certificate from a throwaway CA (tests/tls_kit.py);
HTTP-01 validation connects to `http_port` on the address the domain resolves
to (localhost: 127.0.0.1), where podgate's plain listener answers. pebble's
sleeps before validation are off (PEBBLE_VA_NOSLEEP) and so are its deliberate
bad-nonce answers, so a test waits for nothing but the work. Start-up is
bounded; the log is kept for a failing test.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from tls_kit import issue, make_ca

STARTUP_SECONDS = 30.0


def pebble_binary() -> str:
    """PEBBLE's path; skipped without it (tests/run builds it; PODGATE_NO_SKIPS fails a skip)."""
    path = os.environ.get("PEBBLE")
    if not path:
        pytest.skip("PEBBLE is not set: tests/run builds pebble (bash tests/pebble/build)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pebble:
    process: subprocess.Popen[bytes]
    directory_url: str
    ca_file: str  # trusts pebble's own API certificate
    management: str
    log: Path

    def root_pem(self) -> bytes:
        """The root pebble issues certificates under (it makes a new one at every start)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(f"{self.management}/roots/0", context=context, timeout=10) as r:
            return bytes(r.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_pebble(directory: Path, http_port: int, validity_seconds: int = 7776000) -> Pebble:
    """pebble validating HTTP-01 on `http_port`, issuing certificates valid that long."""
    binary = pebble_binary()
    ca = make_ca(directory / "ca", "pebble API test CA")
    leaf = issue(ca, directory / "api", ("localhost",))
    listen, management = free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{listen}",
            "managementListenAddress": f"127.0.0.1:{management}",
            "certificate": str(leaf.cert_file),
            "privateKey": str(leaf.key_file),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "keyAlgorithm": "ecdsa",
            "profiles": {"default": {"description": "test", "validityPeriod": validity_seconds}},
        }
    }
    path = directory / "pebble.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    log = directory / "pebble.log"
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",  # every order validates afresh
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [binary, "-config", str(path)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    pebble = Pebble(
        process,
        f"https://127.0.0.1:{listen}/dir",
        str(ca.cert_file),
        f"https://127.0.0.1:{management}",
        log,
    )
    context = ssl.create_default_context(cafile=str(ca.cert_file))
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(pebble.directory_url, context=context, timeout=2):
                return pebble
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pebble.stop()
                raise RuntimeError(f"pebble did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)
