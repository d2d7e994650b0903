"""Warn when the config file holds secrets that other Unix users can read.

A cookie secret lets its reader forge any session (an admin's included), an
API token acts with its scopes: a config file holding them must be readable
by podgate's user alone. Only looks at the file's mode and at what the file
itself holds (secrets from the environment are not in it); never changes
the file.
"""

from __future__ import annotations

import logging
import os
import stat

from podgate.config import Config, load_config
from podgate.schema import ConfigError

log = logging.getLogger("podgate")


def secret_keys(config: Config) -> list[str]:
    """The keys of `config` that hold secrets and are set."""
    held = {
        "session.cookie_secrets": bool(config.session.cookie_secrets),
        "api_tokens": bool(config.api_tokens),
        "proxy_auth_token": config.proxy_auth_token is not None,
        "auth.password": config.auth.password is not None,
        "auth.users": bool(config.auth.users),
        "auth.oidc.client_secret": bool(config.auth.oidc and config.auth.oidc.client_secret),
    }
    return [key for key, present in held.items() if present]


def exposure(path: str) -> str | None:
    """The warning for `path`, or None when it holds no secret or only its owner may read it."""
    try:
        mode = os.stat(path).st_mode
        keys = secret_keys(load_config(path, environ={}))
    except (OSError, ConfigError):
        return None  # loading it already failed loudly, or it went away since
    if not keys or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (
        f"config file {path} holds secrets ({', '.join(keys)}) and other users can read it "
        f"(mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
    )


def warn_if_exposed(path: str | None) -> None:
    if path is None:
        return
    warning = exposure(path)
    if warning is not None:
        log.warning("%s", warning)
