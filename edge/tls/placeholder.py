"""A self-signed certificate to serve until ACME has issued the real one.

With `tls.acme` and no certificate in the Secret yet (the first start, or
every order failed so far), the TLS port still has to complete handshakes:
the redirect listener answers the CA's challenges meanwhile, and a browser
gets a certificate warning rather than a refused connection. Traefik does
the same with its default certificate. Pure: makes bytes, never writes them.
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

COMMON_NAME = "podgate placeholder (ACME certificate not issued yet)"


def placeholder_pair(names: tuple[str, ...], days: int = 90) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) of a self-signed certificate for `names`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
