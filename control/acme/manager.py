"""The ACME loop of one replica: serve what the Secret holds, order when none or due.

Each turn reads the Secret. A valid certificate in it is handed to the sink
(the edge's listener) if it is not the one in force. When there is none, or
`renew_at` of its lifetime has passed, the replica tries the Lease; the holder
reads the Secret again (another replica may just have renewed), makes the
account key if there is none yet (stored at once, so every replica can answer
the CA's challenges), orders, stores the certificate and hands it over. A
failed order is one warning line and a metric, the certificate in force stays,
and the next try comes after `retry_seconds`.

Never blocks the loop: the acme library runs in a daemon thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from control.acme.lease import LeaseLock
from control.acme.order import OrderFailed, order_certificate
from control.acme.storage import (
    CertificateSecret,
    Stored,
    account_jwk,
    account_thumbprint,
    names_of,
    new_account_key,
    renewal_due,
)
from control.kube import Kube
from control.settings import AcmeSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds between looks at the Secret while no certificate is stored (another
# replica's order may land any moment).
WAITING_LOOK = 5.0


class CertificateSink(Protocol):
    """Where certificates go (the wiring's: edge.tls.ServerCertificate.install)."""

    def __call__(self, cert_pem: bytes, key_pem: bytes) -> bool: ...


class AcmeManager:
    """Keeps the listener's certificate ordered and renewed; start() and stop()."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        settings: AcmeSettings,
        install: CertificateSink,
        on_thumbprint: Callable[[str], None],
        on_order: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.install = install
        self.on_thumbprint = on_thumbprint
        self.on_order = on_order
        self.secret = CertificateSecret(kube, namespace, settings.storage)
        identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.lease = LeaseLock(kube, namespace, settings.storage, identity)
        self.serving: bytes | None = None  # the chain in force, as stored
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="acme")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def thumbprint(self) -> str | None:
        """The stored account's thumbprint (for a challenge this replica has not seen)."""
        stored = await self.secret.read()
        return account_thumbprint(stored.account_key) if stored.account_key else None

    async def _run(self) -> None:
        while True:
            try:
                delay = await self.turn()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API down, say: the certificate in force stays
                log.warning("ACME: looking at the certificate failed, trying again later: %s", e)
                delay = min(self.settings.retry_seconds, 60.0)
            await asyncio.sleep(delay)

    async def turn(self) -> float:
        """One look, and an order if due; the seconds until the next look."""
        stored = await self.secret.read()
        self._take(stored)
        due = self._due(stored)
        if due is not None and due > _now():
            return self._until(due)
        if not await self.lease.acquire():
            return WAITING_LOOK if stored.certificate() is None else self.settings.retry_seconds
        try:
            stored = await self.secret.read()  # under the lock: maybe renewed meanwhile
            self._take(stored)
            due = self._due(stored)
            if due is not None and due > _now():
                return self._until(due)
            return await self._order(stored)
        finally:
            await self.lease.release()

    async def _order(self, stored: Stored) -> float:
        settings = self.settings
        account_key = stored.account_key
        if account_key is None:
            account_key = new_account_key()
            await self.secret.write({"account.key": account_key})
        self.on_thumbprint(account_thumbprint(account_key))
        domains = ", ".join(settings.domains)
        log.info("ACME: ordering a certificate for %s from %s", domains, settings.directory_url)
        try:
            issued = await in_daemon_thread(
                order_certificate,
                settings.directory_url,
                account_jwk(account_key),
                stored.account_uri,
                settings.email,
                settings.domains,
                settings.ca_file,
            )
        except OrderFailed as e:
            self.on_order("failed")
            kept = "the certificate in force stays" if self.serving else "still no certificate"
            log.warning(
                "ACME: the order for %s failed (%s); %s, next try in %g s",
                domains,
                e,
                kept,
                settings.retry_seconds,
            )
            return settings.retry_seconds
        await self.secret.write(
            {
                "tls.crt": issued.cert_pem,
                "tls.key": issued.key_pem,
                "account.uri": issued.account_uri.encode(),
            }
        )
        self.on_order("issued")
        stored = Stored(account_key, issued.account_uri, issued.cert_pem, issued.key_pem)
        self._take(stored, issued=True)
        due = self._due(stored)
        return self._until(due) if due is not None else settings.retry_seconds

    def _take(self, stored: Stored, issued: bool = False) -> None:
        """Serve the stored certificate if it is new to us and still valid."""
        if stored.account_key is not None:
            self.on_thumbprint(account_thumbprint(stored.account_key))
        cert = stored.certificate()
        if cert is None or stored.cert_pem == self.serving or stored.key_pem is None:
            return
        if cert.not_valid_after_utc <= _now():
            return
        assert stored.cert_pem is not None
        if self.install(stored.cert_pem, stored.key_pem):
            self.serving = stored.cert_pem
            if not issued:
                self.on_order("current")
            log.info(
                "ACME: serving the certificate for %s %s, expires %s UTC, renewal from %s UTC",
                ", ".join(self.settings.domains),
                "just issued" if issued else "from the Secret",
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}",
                f"{renewal_due(cert, self.settings.renew_at):%Y-%m-%d %H:%M}",
            )

    def _due(self, stored: Stored) -> datetime.datetime | None:
        cert = stored.certificate()
        if cert is None or stored.cert_pem != self.serving:
            return None  # nothing (usable) stored: due now
        if not set(self.settings.domains) <= names_of(cert):
            return None  # the config names a domain the stored certificate lacks
        return renewal_due(cert, self.settings.renew_at)

    def _until(self, due: datetime.datetime) -> float:
        seconds = (due - _now()).total_seconds()
        return max(1.0, min(seconds, self.settings.check_seconds))


async def in_daemon_thread(function: Callable[..., T], *args: object) -> T:
    """`function(*args)` in a daemon thread: an order under way never holds up the exit.

    asyncio.to_thread's executor is joined when the loop closes, so a stop during
    an order (up to DEADLINE_SECONDS) would wait for it; a daemon thread is left.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # cancelled meanwhile: nobody waits for it
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as e:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, None, e)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="acme-order", daemon=True).start()
    return await future


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
