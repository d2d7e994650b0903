"""A certificate chain and its key (PEM files) checked and turned into a server SSLContext.

The checks run before the context is used, so a bad pair stops the start (or
is refused on reload) with one reason naming the file: unreadable, not PEM,
expired or not yet valid, or a key that does not match the certificate.

The context has modern defaults: TLS 1.2 or later, forward-secret AEAD suites
only for TLS 1.2 (TLS 1.3's are all strong), no renegotiation, no compression,
and ALPN offering http/1.1 only (the edge speaks HTTP/1.1). Pure: reads the two
files, never the network.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

# TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AES-GCM or ChaCha20 only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"
ALPN = ("http/1.1",)


class CertificateProblem(Exception):
    """A certificate or key that cannot be served: which file, and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class LoadedCertificate:
    """A checked certificate: its context and what the logs and metrics say about it."""

    context: ssl.SSLContext
    not_after: datetime.datetime  # the leaf certificate's expiry (UTC)
    subject: str  # the leaf's names, for log lines
    fingerprint: str  # SHA-256 of the leaf, hex: tells a reload that changed nothing


def load_certificate(
    cert_file: str, key_file: str, now: datetime.datetime | None = None
) -> LoadedCertificate:
    """The context for cert_file (leaf first, then its chain) and key_file; or the problem."""
    cert_pem = _read(cert_file)
    _read(key_file)  # unreadable key: named before the ssl module's vaguer error
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        raise CertificateProblem(cert_file, f"not a PEM certificate chain ({e})") from e
    leaf = chain[0]
    moment = now or datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc <= moment:
        raise CertificateProblem(
            cert_file, f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if leaf.not_valid_before_utc > moment:
        raise CertificateProblem(
            cert_file,
            f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
        )
    context = server_context()
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e):
            raise CertificateProblem(
                key_file, f"the private key does not match the certificate in {cert_file}"
            ) from e
        raise CertificateProblem(key_file, f"not a usable PEM private key ({e.reason})") from e
    except OSError as e:  # the file changed under us between the two reads
        raise CertificateProblem(key_file, e.strerror or str(e)) from e
    return LoadedCertificate(
        context=context,
        not_after=leaf.not_valid_after_utc,
        subject=_names(leaf),
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
    )


def server_context() -> ssl.SSLContext:
    """A server context with modern defaults and no certificate yet."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    context.set_alpn_protocols(list(ALPN))
    return context


def _read(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CertificateProblem(path, f"cannot read it ({e.strerror or e})") from e
    if not data.strip():
        raise CertificateProblem(path, "the file is empty")
    return data


def _names(leaf: x509.Certificate) -> str:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(n) for n in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return ", ".join(names) or leaf.subject.rfc4514_string()
