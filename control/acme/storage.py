"""The Secret every replica reads its ACME certificate from, and the account key in it.

Keys of the Secret (type Opaque, so the account key may exist before any
certificate): `tls.crt` (the full chain, PEM), `tls.key`, `account.key` (the
ACME account's private key, PEM) and `account.uri`. Writes are merge patches
(or a create the first time); only the Lease holder writes. Kubernetes calls
through control.kube only.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

import josepy as jose
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from control.errors import AlreadyExists, NotFound
from control.kube import Kube, Object

SECRETS = "secrets"


@dataclass(frozen=True)
class Stored:
    """What the Secret holds (any of it may be missing)."""

    account_key: bytes | None = None
    account_uri: str = ""
    cert_pem: bytes | None = None
    key_pem: bytes | None = None

    def certificate(self) -> x509.Certificate | None:
        if not self.cert_pem or not self.key_pem:
            return None
        try:
            return x509.load_pem_x509_certificates(self.cert_pem)[0]
        except ValueError:
            return None


def names_of(cert: x509.Certificate) -> set[str]:
    """The DNS names a certificate is for."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(name) for name in san.get_values_for_type(x509.DNSName)}


def renewal_due(cert: x509.Certificate, share: float) -> datetime.datetime:
    """When `share` of the certificate's lifetime has passed."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * share


def new_account_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def account_jwk(account_key: bytes) -> jose.JWKRSA:
    key = serialization.load_pem_private_key(account_key, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the stored ACME account key is not an RSA key")
    return jose.JWKRSA(key=key)


def account_thumbprint(account_key: bytes) -> str:
    """The base64url JWK thumbprint that HTTP-01 answers end with (RFC 8555 8.1)."""
    return jose.b64encode(account_jwk(account_key).public_key().thumbprint()).decode()


class CertificateSecret:
    """The Secret `name` in `namespace`."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name

    async def read(self) -> Stored:
        try:
            secret = await self.kube.get(SECRETS, self.namespace, self.name)
        except NotFound:
            return Stored()
        data = secret.get("data") or {}

        def field(key: str) -> bytes | None:
            value = data.get(key)
            return base64.b64decode(value) if value else None

        uri = field("account.uri")
        return Stored(
            account_key=field("account.key"),
            account_uri=uri.decode() if uri else "",
            cert_pem=field("tls.crt"),
            key_pem=field("tls.key"),
        )

    async def write(self, values: dict[str, bytes]) -> None:
        """Set these keys (others stay)."""
        data = {k: base64.b64encode(v).decode() for k, v in values.items()}
        try:
            await self.kube.patch(SECRETS, self.namespace, self.name, {"data": data})
            return
        except NotFound:
            pass
        body: Object = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/name": "podgate",
                    "app.kubernetes.io/component": "acme",
                },
            },
            "data": data,
        }
        try:
            await self.kube.create(SECRETS, self.namespace, body)
        except AlreadyExists:
            await self.kube.patch(SECRETS, self.namespace, self.name, {"data": data})
