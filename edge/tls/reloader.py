"""The certificate in force on the public listener, reloaded when its files change.

cert-manager and mounted Kubernetes Secrets replace the files in place (a
symlink swap, so the inode changes); ACME (control.acme) writes new ones. A
poll of each file's inode, mtime and size notices either; the new pair is
checked like at start, and only a good one replaces the context. Connections
take the context in force when they are accepted, so open ones go on with the
certificate they started with and nothing is dropped.

A bad new pair is refused with one log line and the old certificate stays.
Never blocks the loop for more than reading two small files.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import ssl
from collections.abc import Callable

from edge.tls.certificate import CertificateProblem, LoadedCertificate, load_certificate

log = logging.getLogger(__name__)

# (inode, mtime in ns, size) of the certificate file and of the key file.
Signature = tuple[tuple[int, int, int], tuple[int, int, int]]


class ServerCertificate:
    """A certificate and key from two PEM files; `context` is the one to serve new connections.

    `observe(loaded, outcome)` hears each load ("loaded", "reloaded") and each
    refused reload ("refused", with the certificate still in force): the wiring
    turns it into metrics.
    """

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        observe: Callable[[LoadedCertificate, str], None] | None = None,
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.observe = observe
        self.source = "files"  # or what install() was told: "acme", "placeholder"
        self.current: LoadedCertificate | None = None
        self._signature: Signature | None = None
        self._last_problem = ""  # said once, not once per poll
        self._task: asyncio.Task[None] | None = None

    @property
    def context(self) -> ssl.SSLContext:
        assert self.current is not None, "load() first"
        return self.current.context

    def load(self) -> LoadedCertificate:
        """The first load; raises CertificateProblem (the start stops with it)."""
        signature = self._stat()
        loaded = load_certificate(self.cert_file, self.key_file)
        self._take(loaded, signature, "loaded")
        return loaded

    def check(self) -> bool:
        """Reload if either file changed since the last look; whether a new one is in force."""
        try:
            signature = self._stat()
        except CertificateProblem as e:
            return self._refuse(e)  # a file gone mid-rotation: keep serving, say so once
        if signature == self._signature:
            return False
        try:
            loaded = load_certificate(self.cert_file, self.key_file)
        except CertificateProblem as e:
            self._signature = signature  # one line per bad version, not one per poll
            return self._refuse(e)
        self._take(loaded, signature, "reloaded")
        return True

    def install(self, cert_pem: bytes, key_pem: bytes, source: str) -> bool:
        """Write a new pair over the files (ACME's) and load it; whether it is in force.

        Each file is written beside itself and renamed over it, so a poll never
        reads half a file. A pair that does not load is refused as a rotation is.
        """
        for path, data in ((self.key_file, key_pem), (self.cert_file, cert_pem)):
            staged = f"{path}.new"
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(staged, path)
        previous, self.source = self.source, source
        if self.current is None:
            self.load()
            return True
        if not self.check():
            self.source = previous
            return False
        return True

    def start(self, interval: float) -> None:
        """Look at the files every `interval` seconds until stop()."""
        if self._task is None and interval > 0:
            self._task = asyncio.get_running_loop().create_task(
                self._watch(interval), name="tls-certificate-reload"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:  # never let the watcher die silently
                log.exception("looking at the TLS certificate files failed")

    def _take(self, loaded: LoadedCertificate, signature: Signature, outcome: str) -> None:
        self._signature = signature
        self._last_problem = ""
        same = self.current is not None and self.current.fingerprint == loaded.fingerprint
        self.current = loaded
        left = loaded.not_after - datetime.datetime.now(datetime.UTC)
        if not same:
            log.info(
                "TLS certificate %s from %s for %s, expires %s UTC (in %d days)",
                outcome,
                self.cert_file,
                loaded.subject,
                f"{loaded.not_after:%Y-%m-%d %H:%M}",
                left.days,
                extra={"expires": loaded.not_after.isoformat()},
            )
        if self.observe is not None:
            self.observe(loaded, outcome)

    def _refuse(self, problem: CertificateProblem) -> bool:
        current = self.current
        if str(problem) == self._last_problem:
            return False
        self._last_problem = str(problem)
        kept = f"{current.not_after:%Y-%m-%d %H:%M} UTC" if current else "none"
        log.warning(
            "TLS certificate reload refused, keeping the one in force (expires %s): %s",
            kept,
            problem,
        )
        if self.observe is not None and current is not None:
            self.observe(current, "refused")
        return False

    def _stat(self) -> Signature:
        return (_stat(self.cert_file), _stat(self.key_file))


def _stat(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise CertificateProblem(path, f"cannot read it ({e.strerror or e})") from e
    return (st.st_ino, st.st_mtime_ns, st.st_size)
