"""Certificates for TLS tests: a throwaway CA, leaves it signs (valid, expired, future), clients.

Made with the cryptography package, as a real deployment's CA would make them:
a CA with critical basicConstraints and keyUsage (Python 3.13's verifier wants
both), leaves with SANs for the names and 127.0.0.1. Nothing here starts a server.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)


@dataclass
class CertAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_file: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (and checking host names)."""
        context = ssl.create_default_context(cafile=str(self.cert_file))
        context.set_alpn_protocols(["http/1.1"])
        return context


@dataclass
class Leaf:
    cert_file: Path
    key_file: Path
    cert: x509.Certificate


def make_ca(directory: Path, name: str = "podgate test CA") -> CertAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - DAY)
        .not_valid_after(now + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "ca.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertAuthority(key, cert, cert_file)


def issue(
    ca: CertAuthority,
    directory: Path,
    names: tuple[str, ...] = ("localhost",),
    *,
    prefix: str = "server",
    valid_from: datetime.timedelta = -DAY,
    valid_until: datetime.timedelta = 10 * DAY,
) -> Leaf:
    """A leaf for `names` and 127.0.0.1, valid from now+valid_from to now+valid_until.

    The certificate file holds the leaf, then the CA (a chain, as real ones do).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_until)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{prefix}.crt"
    key_file = directory / f"{prefix}.key"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + ca.cert.public_bytes(serialization.Encoding.PEM)
    )
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Leaf(cert_file, key_file, cert)


def served_certificate(der: bytes | None) -> x509.Certificate:
    """The leaf a TLS connection got (ssl.SSLObject.getpeercert(binary_form=True))."""
    assert der is not None
    return x509.load_der_x509_certificate(der)
