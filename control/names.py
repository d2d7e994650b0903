"""User names: how a typed name becomes a user, and how a user becomes Kubernetes names.

Pure functions, no I/O. The escaping is collision-free: [a-z0-9] stay as
they are and every other byte of the UTF-8 name becomes "-xx" (hex), the
escape character "-" included, so two different names never escape alike.
Names too long for a DNS label keep a prefix and add a hash of the whole
escaped name; the raw name always travels in an annotation as well.
"""

from __future__ import annotations

import hashlib
import string
import unicodedata

from control.errors import BadServerName, BadUserName

MAX_USERNAME_LENGTH = 64
# Besides letters and digits (any script): characters seen in e-mail-like and
# directory user names. Nothing that means something in a URL path or a shell.
_EXTRA_CHARACTERS = frozenset("._@+-")
_SAFE = frozenset(string.ascii_lowercase + string.digits)
_DNS_LABEL = 63
_HASH_HEX = 10

USER_ANNOTATION = "podgate.io/username"
USER_LABEL = "podgate.io/user"
# A named server's name, on its pod (annotation and label) and claim; absent on the
# default server's, which stay exactly as they were before named servers.
SERVER_ANNOTATION = "podgate.io/server-name"
SERVER_LABEL = "podgate.io/server-name"
MAX_SERVER_NAME_LENGTH = 30  # JupyterHub's safe slug
# Between user and server in a named server's object names (KubeSpawner's "{user}--{server}").
# escape() never yields "--" nor ends in "-", so a default server's name never holds it.
_SERVER_SEPARATOR = "--"


def owned_labels(component: str) -> dict[str, str]:
    """The labels of every object podgate makes for its users; `component` tells them apart."""
    return {
        "app.kubernetes.io/name": "podgate",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "podgate",
    }


def label_selector(labels: dict[str, str]) -> str:
    """A label selector matching exactly these labels (`a=b,c=d`)."""
    return ",".join(f"{key}={value}" for key, value in labels.items())


def normalise_username(raw: str) -> str:
    """The canonical form of a typed user name, or BadUserName saying what is wrong.

    Surrounding spaces go, the name is NFKC-normalised and case-folded (so
    "Ada" and "ada" are one user), then checked: 1-64 characters, letters and
    digits of any script plus . _ @ + -, starting with a letter or digit.
    """
    name = unicodedata.normalize("NFKC", raw.strip()).casefold()
    if not name:
        raise BadUserName("Enter a user name.")
    if len(name) > MAX_USERNAME_LENGTH:
        raise BadUserName(f"A user name has at most {MAX_USERNAME_LENGTH} characters.")
    if not name[0].isalnum():
        raise BadUserName("A user name starts with a letter or a digit.")
    bad = sorted({c for c in name if not (c.isalnum() or c in _EXTRA_CHARACTERS)})
    if bad:
        shown = ", ".join(dict.fromkeys(_shown(c) for c in bad[:5]))
        raise BadUserName(f"A user name may hold letters, digits and . _ @ + - only, not {shown}.")
    return name


# Characters people type by accident, named as they would say them.
_SAID = {" ": "a space", "\t": "a tab", "\n": "a line break", "\r": "a line break"}


def _shown(char: str) -> str:
    """A character as a person reads it: 'x', "a space", or its Unicode name for the invisible."""
    if char in _SAID:
        return _SAID[char]
    if char.isprintable() and not char.isspace():
        return repr(char)
    name = unicodedata.name(char, "").lower()
    return f"{name} (U+{ord(char):04X})" if name else f"U+{ord(char):04X}"


def escape(name: str) -> str:
    """A DNS-safe, collision-free spelling of `name`: [a-z0-9] kept, other bytes as -xx."""
    out = []
    for byte in name.encode("utf-8"):
        char = chr(byte)
        out.append(char if char in _SAFE else f"-{byte:02x}")
    return "".join(out)


def _fit(prefix: str, escaped: str, limit: int = _DNS_LABEL) -> str:
    """prefix + escaped within `limit` characters; longer ones end in a hash of the whole."""
    if len(prefix) + len(escaped) <= limit:
        return prefix + escaped
    digest = hashlib.sha256(escaped.encode("ascii")).hexdigest()[:_HASH_HEX]
    keep = limit - len(prefix) - len(digest) - 1
    return f"{prefix}{escaped[:keep].rstrip('-')}-{digest}"


def check_server_name(name: str) -> str:
    """`name` if JupyterHub would create a named server so called, else BadServerName saying why.

    JupyterHub 6's safe slug: 1-30 characters of a-z, 0-9 and "-", starting
    with a letter, ending with a letter or digit, no "--".
    """
    if not name:
        raise BadServerName("A named server needs a name.")
    if len(name) > MAX_SERVER_NAME_LENGTH:
        raise BadServerName(
            f"Invalid server_name: a server name has at most {MAX_SERVER_NAME_LENGTH} characters."
        )
    if name[0] not in string.ascii_lowercase:
        raise BadServerName("Invalid server_name: it must start with a lower-case letter (a-z).")
    if name[-1] not in _SAFE:
        raise BadServerName("Invalid server_name: it must end with a letter or a digit.")
    bad = sorted({c for c in name if c not in _SAFE and c != "-"})
    if bad:
        shown = ", ".join(dict.fromkeys(_shown(c) for c in bad[:5]))
        raise BadServerName(f"Invalid server_name: only a-z, 0-9 and - are allowed, not {shown}.")
    if "--" in name:
        raise BadServerName("Invalid server_name: it may not hold two hyphens in a row.")
    return name


def server_key(user: str, server: str = "") -> str:
    """One string per server: the user for their default server, "user/server" for a named one.

    User names never hold "/" (normalise_username), so the key splits back unambiguously.
    """
    return f"{user}/{server}" if server else user


def split_key(key: str) -> tuple[str, str]:
    """(user, server name) of a server key; server "" for the default server."""
    user, _, server = key.partition("/")
    return user, server


def _server_part(key: str) -> str:
    user, server = split_key(key)
    return escape(user) + (_SERVER_SEPARATOR + escape(server) if server else "")


def pod_name(key: str, prefix: str = "jupyter-") -> str:
    """A server's pod name: deterministic, so two replicas spawning meet at a 409.

    The default server's is prefix + escaped user, as always; a named one's is
    prefix + escaped user + "--" + escaped server, which no default server's
    name can equal (an escaped name never holds "--").
    """
    return _fit(prefix, _server_part(key))


def pvc_name(key: str, prefix: str = "claim-") -> str:
    """A server's PersistentVolumeClaim name (kept across stops); one per server, as KubeSpawner."""
    return _fit(prefix, _server_part(key))


def record_name(user: str, prefix: str = "podgate-user-") -> str:
    """The name of the user's record (a ConfigMap every replica watches: control.user_records)."""
    return _fit(prefix, escape(user))


def user_label(user: str) -> str:
    """The user label value: at most 63 characters, starting and ending alphanumeric.

    An escaped name starting with "-" (a non-ASCII first letter) gets an
    upper-case "U" in front: escaping never yields upper case, so this
    stays collision-free.
    """
    escaped = escape(user)
    return _fit("U" if escaped.startswith("-") else "", escaped)
