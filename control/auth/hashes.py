"""Password hashes: make one, check one, and tell a malformed one apart early.

Three schemes, each recognised by its self-describing prefix:

- scrypt (stdlib hashlib): our own format
  `$scrypt$ln=15,r=8,p=1$<salt>$<hash>`, salt and hash in standard base64
  without padding; ln is log2 of the cost N. The default, needs nothing extra.
- bcrypt (`$2a$`, `$2b$`, `$2y$`; package bcrypt), as htpasswd -B and most
  tools write it. bcrypt reads only the first 72 bytes of a password:
  hash_password refuses longer ones, and verify_password truncates as the
  tools that made such hashes did.
- argon2 (`$argon2id$`, also argon2i/argon2d; package argon2-cffi).

These functions are CPU-bound (50-250 ms by design): callers on the event
loop run them in a thread. Comparisons are constant-time. Nothing here logs
or keeps a password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import Literal

import argon2
import argon2.exceptions
import bcrypt

Scheme = Literal["scrypt", "bcrypt", "argon2"]
SCHEMES: tuple[Scheme, ...] = ("scrypt", "bcrypt", "argon2")

# scrypt with N=2**15, r=8: 32 MiB and about 60 ms per check on a small node.
_SCRYPT_LN = 15
_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_SALT_BYTES = 16
_SCRYPT_KEY_BYTES = 32
# A hash from the config must not be able to make one login eat the pod's memory.
_MAX_MEMORY = 256 * 1024 * 1024
_SCRYPT = re.compile(
    r"^\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,3}),p=(?P<p>\d{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<key>[A-Za-z0-9+/]+)$"
)
_BCRYPT = re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$")
_BCRYPT_MAX_BYTES = 72
_BCRYPT_MAX_COST = 16
_ARGON2_MAX_TIME = 64
_ARGON2_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")
_ARGON2 = argon2.PasswordHasher()


def hash_password(password: str, scheme: Scheme = "scrypt") -> str:
    """A new salted hash of `password` in `scheme`; ValueError for an unusable password."""
    if not password:
        raise ValueError("the password is empty")
    secret = password.encode("utf-8")
    if scheme == "scrypt":
        salt = secrets.token_bytes(_SCRYPT_SALT_BYTES)
        key = _scrypt(secret, salt, _SCRYPT_LN, _SCRYPT_R, _SCRYPT_P, _SCRYPT_KEY_BYTES)
        return (
            f"$scrypt$ln={_SCRYPT_LN},r={_SCRYPT_R},p={_SCRYPT_P}"
            f"${_b64encode(salt)}${_b64encode(key)}"
        )
    if scheme == "bcrypt":
        if len(secret) > _BCRYPT_MAX_BYTES:
            raise ValueError(
                f"bcrypt reads only the first {_BCRYPT_MAX_BYTES} bytes of a password; "
                "use scrypt or argon2 for a longer one"
            )
        return bcrypt.hashpw(secret, bcrypt.gensalt()).decode("ascii")
    if scheme == "argon2":
        return _ARGON2.hash(secret)
    raise ValueError(f"unknown hash scheme {scheme!r} (one of {', '.join(SCHEMES)})")


def hash_scheme(hashed: str) -> Scheme:
    """The scheme of a well-formed hash; ValueError saying what is wrong otherwise.

    Checks everything that can be checked without a password, so a bad hash
    in the config stops the start instead of failing someone's login.
    """
    if not isinstance(hashed, str):
        raise ValueError(
            "is not a password hash (a string such as $scrypt$..., $2b$..., $argon2id$...)"
        )
    if hashed.startswith("$scrypt$"):
        _parse_scrypt(hashed)
        return "scrypt"
    if hashed.startswith(("$2a$", "$2b$", "$2y$")):
        match = _BCRYPT.match(hashed)
        if not match:
            raise ValueError("is not a well-formed bcrypt hash ($2b$<cost>$<53 characters>)")
        # Each step doubles the work; 16 is already seconds per login.
        if not 4 <= int(match["cost"]) <= _BCRYPT_MAX_COST:
            raise ValueError(f"has a bcrypt cost outside 4..{_BCRYPT_MAX_COST}")
        return "bcrypt"
    if hashed.startswith(_ARGON2_PREFIXES):
        try:
            params = argon2.extract_parameters(hashed)
        except argon2.exceptions.InvalidHashError as e:
            raise ValueError("is not a well-formed argon2 hash") from e
        if params.memory_cost * 1024 > _MAX_MEMORY or params.time_cost > _ARGON2_MAX_TIME:
            raise ValueError(
                f"has argon2 parameters needing more than {_MAX_MEMORY >> 20} MiB "
                f"or {_ARGON2_MAX_TIME} passes per check"
            )
        return "argon2"
    raise ValueError(
        "is not a password hash podgate knows (scrypt $scrypt$, bcrypt $2b$, argon2 $argon2id$); "
        "make one with `podgate hash-password`"
    )


def verify_password(hashed: str, password: str) -> bool:
    """Whether `password` matches `hashed`, in constant time.

    False for a wrong password; ValueError only for a malformed hash
    (hash_scheme finds those before anyone logs in).
    """
    scheme = hash_scheme(hashed)
    secret = password.encode("utf-8", "surrogatepass")  # never raise on odd input
    if scheme == "scrypt":
        ln, r, p, salt, key = _parse_scrypt(hashed)
        return hmac.compare_digest(_scrypt(secret, salt, ln, r, p, len(key)), key)
    if scheme == "bcrypt":
        return bcrypt.checkpw(secret[:_BCRYPT_MAX_BYTES], hashed.encode("ascii"))
    try:
        return _ARGON2.verify(hashed, secret)
    except argon2.exceptions.VerificationError:  # mismatch, or a corrupt digest
        return False
    except argon2.exceptions.InvalidHashError as e:
        raise ValueError("is not a well-formed argon2 hash") from e


def _parse_scrypt(hashed: str) -> tuple[int, int, int, bytes, bytes]:
    match = _SCRYPT.match(hashed)
    if not match:
        raise ValueError("is not a well-formed scrypt hash ($scrypt$ln=15,r=8,p=1$<salt>$<hash>)")
    ln, r, p = int(match["ln"]), int(match["r"]), int(match["p"])
    if not (1 <= ln <= 31 and 1 <= r <= 64 and 1 <= p <= 16):
        raise ValueError("has scrypt parameters out of range (ln 1..31, r 1..64, p 1..16)")
    if _scrypt_memory(ln, r, p) > _MAX_MEMORY:
        raise ValueError(
            f"has scrypt parameters needing more than {_MAX_MEMORY >> 20} MiB per check"
        )
    salt, key = _b64decode(match["salt"]), _b64decode(match["key"])
    if salt is None or key is None or len(salt) < 8 or not 16 <= len(key) <= 64:
        raise ValueError("has a scrypt salt or hash that is not base64 of a sensible length")
    return ln, r, p, salt, key


def _scrypt_memory(ln: int, r: int, p: int) -> int:
    # What OpenSSL asks for: the B array (p blocks) plus V (N+2 blocks), 128*r bytes each.
    return 128 * r * (p + (1 << ln) + 2)


def _scrypt(secret: bytes, salt: bytes, ln: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=1 << ln,
        r=r,
        p=p,
        maxmem=_scrypt_memory(ln, r, p) + 1024 * 1024,
        dklen=length,
    )


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
