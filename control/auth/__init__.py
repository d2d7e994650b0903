"""Login: who someone is, what they may do, and how fast they may guess.

The web layer uses three objects built once from AuthSettings (build.py):
an Authenticator (interface.py), UserAccess (allowed and admin users) and a
LoginThrottle. Nothing here imports aiohttp, edge/ or podgate/, reads the
environment, or logs a password.
"""

from __future__ import annotations

from control.auth.access import UserAccess
from control.auth.build import build_access, build_authenticator, build_throttle
from control.auth.dummy import DUMMY_HINT, DummyAuthenticator
from control.auth.hashes import SCHEMES, Scheme, hash_password, hash_scheme, verify_password
from control.auth.interface import Authenticator
from control.auth.password import PasswordAuthenticator, read_users_file
from control.auth.throttle import LoginThrottle

__all__ = [
    "DUMMY_HINT",
    "SCHEMES",
    "Authenticator",
    "DummyAuthenticator",
    "LoginThrottle",
    "PasswordAuthenticator",
    "Scheme",
    "UserAccess",
    "build_access",
    "build_authenticator",
    "build_throttle",
    "hash_password",
    "hash_scheme",
    "read_users_file",
    "verify_password",
]
