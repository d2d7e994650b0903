"""Read a kubeconfig into what an HTTP client needs: URL, TLS context, auth headers.

Supports what kubectl writes for clusters reached directly: the server's CA
(file or data, or insecure-skip-tls-verify), a bearer token (inline or
tokenFile), a client certificate and key (file or data), basic auth.
Credential plugins (`exec`, `auth-provider`) are refused with a clear
message: the agent runs no programs named in a file. Never writes the file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]


class KubeconfigError(Exception):
    """The kubeconfig cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class ClusterAccess:
    """How to reach one cluster as one user."""

    server: str  # https://host:port, no trailing slash
    context: str
    ssl: ssl.SSLContext | bool  # False: plain http or no verification
    headers: dict[str, str] = field(default_factory=dict)


def load_kubeconfig(path: Path, context: str | None = None) -> ClusterAccess:
    """The server and credentials of `context` (else the current context) in the file."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as e:
        raise KubeconfigError(f"cannot read the kubeconfig {path}: {e.strerror or e}") from e
    except yaml.YAMLError as e:
        raise KubeconfigError(f"the kubeconfig {path} is not YAML: {e}") from e
    if not isinstance(document, dict):
        raise KubeconfigError(f"the kubeconfig {path} is not a kubeconfig (no mapping)")
    name = context or document.get("current-context")
    if not name:
        raise KubeconfigError(f"the kubeconfig {path} has no current-context; pass --context")
    entry = _named(document, "contexts", name, path).get("context") or {}
    cluster = _named(document, "clusters", entry.get("cluster", ""), path).get("cluster") or {}
    user = _named(document, "users", entry.get("user", ""), path).get("user") or {}
    server = str(cluster.get("server") or "").rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"context {name!r} in {path}: the cluster has no http(s) server URL")
    base = path.parent
    return ClusterAccess(
        server=server,
        context=name,
        ssl=_tls(cluster, user, base, name, path) if server.startswith("https://") else False,
        headers=_auth_headers(user, base, name, path),
    )


def _named(document: Obj, section: str, name: str, path: Path) -> Obj:
    for entry in document.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    what = section.rstrip("s")
    raise KubeconfigError(f"the kubeconfig {path} has no {what} named {name!r}")


def _pem(entry: Obj, key: str, base: Path, where: str) -> bytes | None:
    """A PEM given as `<key>-data` (base64) or as a file `<key>` (relative to the kubeconfig)."""
    data = entry.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise KubeconfigError(f"{where}: {key}-data is not base64") from e
    file = entry.get(key)
    if not file:
        return None
    try:
        return (base / os.path.expanduser(str(file))).read_bytes()
    except OSError as e:
        raise KubeconfigError(f"{where}: cannot read {key} {file}: {e.strerror or e}") from e


def _tls(cluster: Obj, user: Obj, base: Path, name: str, path: Path) -> ssl.SSLContext | bool:
    where = f"context {name!r} in {path}"
    if cluster.get("insecure-skip-tls-verify"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        ca = _pem(cluster, "certificate-authority", base, where)
        try:
            context = ssl.create_default_context(cadata=ca.decode() if ca else None)
        except (ssl.SSLError, ValueError) as e:
            raise KubeconfigError(f"{where}: the cluster's CA is not a certificate: {e}") from e
    cert = _pem(user, "client-certificate", base, where)
    key = _pem(user, "client-key", base, where)
    if cert and key:
        with _files(cert, key) as (cert_file, key_file):
            try:
                context.load_cert_chain(cert_file, key_file)
            except ssl.SSLError as e:
                raise KubeconfigError(f"{where}: the client certificate or key is bad: {e}") from e
    return context


@contextlib.contextmanager
def _files(*contents: bytes) -> Iterator[list[str]]:
    """ssl loads certificates from files only: private temporary files, removed at once."""
    with tempfile.TemporaryDirectory(prefix="kubesim-tls-") as directory:
        names = []
        for index, content in enumerate(contents):
            name = os.path.join(directory, str(index))
            with open(os.open(name, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as out:
                out.write(content)
            names.append(name)
        yield names


def _auth_headers(user: Obj, base: Path, name: str, path: Path) -> dict[str, str]:
    where = f"context {name!r} in {path}"
    if "exec" in user or "auth-provider" in user:
        plugin = "exec" if "exec" in user else "auth-provider"
        raise KubeconfigError(
            f"{where}: the user authenticates with an {plugin} plugin, which the node agent "
            "does not run; give it a kubeconfig with a token or a client certificate"
        )
    token = user.get("token")
    if not token and user.get("tokenFile"):
        try:
            token = (base / str(user["tokenFile"])).read_text().strip()
        except OSError as e:
            raise KubeconfigError(f"{where}: cannot read tokenFile: {e.strerror or e}") from e
    if token:
        return {"Authorization": f"Bearer {token}"}
    if user.get("username"):
        pair = f"{user['username']}:{user.get('password', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}
