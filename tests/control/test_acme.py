"""tls.acme against pebble, Let's Encrypt's ACME test server: issue, fail, renew, two replicas.

podgate runs as `podgate run` assembles it (hub_kit), with its embedded
kubesim holding the Secret and the Lease. pebble validates HTTP-01 by
fetching http://localhost:<port>/.well-known/acme-challenge/<token> from
podgate's plain listener (tls.redirect_http). A served certificate is checked
the way a browser would: a handshake that trusts only pebble's root.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hub_kit import start_podgate
from pebble.pebble_kit import Pebble, free_port, start_pebble
from tls_kit import issue, make_ca, served_certificate

from control.acme.lease import LEASES
from podgate.assembly import Podgate

NAMESPACE = "podgate-users"


@pytest.fixture
def http_port() -> int:
    return free_port()


@pytest.fixture
def pebble(tmp_path: Path, http_port: int) -> Iterator[Pebble]:
    server = start_pebble(tmp_path / "pebble", http_port)
    try:
        yield server
    finally:
        server.stop()


def acme_settings(pebble: Pebble, http_port: int, **acme: Any) -> dict[str, Any]:
    return {
        "spawner": {"namespace": NAMESPACE},
        "tls": {
            "redirect_http": f"127.0.0.1:{http_port}",
            "acme": {
                "email": "ops@example.org",
                "domains": ["localhost"],
                "directory_url": pebble.directory_url,
                "ca_file": pebble.ca_file,
                "retry_seconds": 2,
                **acme,
            },
        },
    }


def public_port(gate: Podgate) -> int:
    return int(gate.public_url.rsplit(":", 1)[1])


async def served(gate: Podgate, trust: bytes | None) -> x509.Certificate:
    """The leaf the public port serves to a client trusting only `trust` (None: no checks)."""
    if trust is None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cadata=trust.decode())
    _, writer = await asyncio.open_connection(
        "127.0.0.1", public_port(gate), ssl=context, server_hostname="localhost"
    )
    try:
        return served_certificate(writer.get_extra_info("ssl_object").getpeercert(True))
    finally:
        writer.close()


async def until(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.1)


def counted(gate: Podgate, outcome: str) -> float:
    return gate.metrics.tls.orders.counts.get((outcome,), 0)


async def stored_secret(gate: Podgate) -> dict[str, bytes]:
    assert gate.control is not None and gate.control.kube is not None
    secret = await gate.control.kube.get("secrets", NAMESPACE, "podgate-acme")
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


async def test_issued_certificate_is_served_and_stored(
    pebble: Pebble, http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="control.acme")
    gate = await start_podgate(acme_settings(pebble, http_port))
    try:
        placeholder = await served(gate, None)
        assert "placeholder" in placeholder.subject.rfc4514_string()
        await until(lambda: counted(gate, "issued") == 1, 60, "a certificate issued")
        root = pebble.root_pem()
        leaf = await served(gate, root)  # verifies against pebble's root and the name
        assert leaf.serial_number != placeholder.serial_number
        stored = await stored_secret(gate)
        assert x509.load_pem_x509_certificates(stored["tls.crt"])[0] == leaf
        assert {"tls.key", "account.key", "account.uri"} <= set(stored)
        assert "ACME: serving the certificate for localhost just issued" in caplog.text
        exposition = gate.metrics.exposition().decode()
        expected = leaf.not_valid_after_utc.timestamp()
        line = next(
            x for x in exposition.splitlines()
            if x.startswith("podgate_tls_certificate_expiry_timestamp_seconds")
        )  # fmt: skip
        assert line.startswith('podgate_tls_certificate_expiry_timestamp_seconds{source="acme"}')
        assert float(line.split()[-1]) == expected
        # The Lease was let go once the order was done.
        assert gate.control is not None and gate.control.kube is not None
        lease = await gate.control.kube.get(LEASES, NAMESPACE, "podgate-acme")
        assert not lease["spec"].get("holderIdentity")
    finally:
        await gate.stop()


async def test_failed_challenge_keeps_the_placeholder_logs_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # pebble validates on a port where nobody listens: every challenge fails.
    podgate_http = free_port()
    pebble = start_pebble(tmp_path / "pebble", http_port=free_port())
    try:
        caplog.set_level(logging.INFO, logger="control.acme")
        gate = await start_podgate(acme_settings(pebble, podgate_http))
        try:
            await until(lambda: counted(gate, "failed") >= 1, 60, "a failed order")
            failures = [r for r in caplog.records if "order for localhost failed" in r.message]
            assert failures and failures[0].levelno == logging.WARNING
            assert "could not validate the challenge" in failures[0].message
            assert "still no certificate" in failures[0].message
            leaf = await served(gate, None)  # the listener is still up, on the placeholder
            assert "placeholder" in leaf.subject.rfc4514_string()
            assert counted(gate, "issued") == 0
            exposition = gate.metrics.exposition().decode()
            expiry = 'podgate_tls_certificate_expiry_timestamp_seconds{source="placeholder"} '
            assert expiry in exposition
        finally:
            await gate.stop()
    finally:
        pebble.stop()


async def test_certificate_is_renewed_before_it_expires(tmp_path: Path) -> None:
    http_port = free_port()
    pebble = start_pebble(tmp_path / "pebble", http_port, validity_seconds=30)
    try:
        gate = await start_podgate(acme_settings(pebble, http_port, renew_at=0.2, check_seconds=1))
        try:
            await until(lambda: counted(gate, "issued") == 1, 60, "the first certificate")
            root = pebble.root_pem()
            first = await served(gate, root)
            await until(lambda: counted(gate, "issued") == 2, 60, "the renewal")
            renewed = await served(gate, root)
            assert renewed.serial_number != first.serial_number
            assert renewed.not_valid_after_utc > first.not_valid_after_utc
        finally:
            await gate.stop()
    finally:
        pebble.stop()


async def test_two_replicas_share_one_certificate_through_the_secret_and_lease(
    pebble: Pebble, http_port: int, tmp_path: Path
) -> None:
    first = await start_podgate(acme_settings(pebble, http_port))
    try:
        assert first.cluster is not None
        kubeconfig = first.cluster.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
        # The second replica: same cluster, its own plain port, which pebble never asks.
        settings = acme_settings(pebble, free_port())
        settings["cluster"] = {"kind": "kube", "kubeconfig": str(kubeconfig)}
        second = await start_podgate(settings)
        try:
            both = (first, second)
            await until(
                lambda: all(g.acme is not None and g.acme.serving for g in both),
                60,
                "both replicas serving the ACME certificate",
            )
            # Exactly one order: the Lease holder issued, the other took it from the Secret.
            assert sum(counted(g, "issued") for g in both) == 1
            assert sum(counted(g, "current") for g in both) == 1
            root = pebble.root_pem()
            assert await served(first, root) == await served(second, root)
        finally:
            await second.stop()
    finally:
        await first.stop()


async def test_a_stored_certificate_missing_a_configured_domain_is_replaced(
    pebble: Pebble, http_port: int, tmp_path: Path
) -> None:
    gate = await start_podgate(acme_settings(pebble, http_port, check_seconds=1))
    try:
        await until(lambda: counted(gate, "issued") == 1, 60, "the first certificate")
        # Someone stores a valid certificate for another name (the config changed, say).
        ca = make_ca(tmp_path / "other-ca")
        other = issue(ca, tmp_path / "other", ("other.example",))
        assert gate.control is not None and gate.control.kube is not None
        data = {
            "tls.crt": base64.b64encode(other.cert_file.read_bytes()).decode(),
            "tls.key": base64.b64encode(other.key_file.read_bytes()).decode(),
        }
        await gate.control.kube.patch("secrets", NAMESPACE, "podgate-acme", {"data": data})
        await until(lambda: counted(gate, "issued") == 2, 60, "an order for localhost again")
        leaf = await served(gate, pebble.root_pem())  # verified for localhost again
        assert "localhost" in str(leaf.extensions)
    finally:
        await gate.stop()
