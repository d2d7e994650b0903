"""The ACME lock and store on both API servers: a Lease one replica holds, a Secret all read.

control.acme.lease.LeaseLock and control.acme.storage.CertificateSecret through
our KubeApi, against kubesim and the real kube-apiserver (which checks the
Lease's MicroTime fields and honours a merge patch's resourceVersion as a
precondition).
"""

from __future__ import annotations

import asyncio

import pytest

from control.acme.lease import LEASES, LeaseLock
from control.acme.storage import CertificateSecret
from control.k8s import KubeApi

NAMESPACE = "podgate"

pytestmark = pytest.mark.both_servers


async def test_one_replica_holds_the_lease_until_it_lets_go(kube: KubeApi) -> None:
    first = LeaseLock(kube, NAMESPACE, "acme-test", "replica-a", duration=60)
    second = LeaseLock(kube, NAMESPACE, "acme-test", "replica-b", duration=60)
    # Both race for a Lease nobody made yet: exactly one wins.
    won = await asyncio.gather(first.acquire(), second.acquire())
    assert sorted(won) == [False, True]
    holder, other = (first, second) if won[0] else (second, first)
    assert await holder.acquire() is True  # its own: taken again
    assert await other.acquire() is False
    lease = await kube.get(LEASES, NAMESPACE, "acme-test")
    assert lease["spec"]["holderIdentity"] == holder.identity
    await other.release()  # not its to release: nothing changes
    assert (await kube.get(LEASES, NAMESPACE, "acme-test"))["spec"]["holderIdentity"] == (
        holder.identity
    )
    await holder.release()
    assert not (await kube.get(LEASES, NAMESPACE, "acme-test"))["spec"].get("holderIdentity")
    assert await other.acquire() is True
    assert (await kube.get(LEASES, NAMESPACE, "acme-test"))["spec"]["leaseTransitions"] >= 1


async def test_a_lease_left_by_a_dead_replica_expires(kube: KubeApi) -> None:
    dead = LeaseLock(kube, NAMESPACE, "acme-expiry", "replica-dead", duration=1)
    assert await dead.acquire() is True
    alive = LeaseLock(kube, NAMESPACE, "acme-expiry", "replica-alive", duration=60)
    await asyncio.sleep(1.5)  # past the dead holder's duration; it never renewed
    assert await alive.acquire() is True


async def test_the_secret_keeps_what_each_write_set(kube: KubeApi) -> None:
    secret = CertificateSecret(kube, NAMESPACE, "acme-store")
    assert (await secret.read()).account_key is None  # none yet
    await secret.write({"account.key": b"KEY"})  # created
    await secret.write({"tls.crt": b"CHAIN", "tls.key": b"PRIVATE"})  # patched beside it
    stored = await secret.read()
    assert (stored.account_key, stored.cert_pem, stored.key_pem) == (b"KEY", b"CHAIN", b"PRIVATE")
    assert stored.certificate() is None  # not a certificate: nothing to serve
