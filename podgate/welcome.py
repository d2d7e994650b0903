"""The few lines `podgate run` prints once it serves: where to go, how to sign in, where ops is.

A newcomer's first question is "now what?"; the answer must not hide in a
log line. Pure text from the config and the bound URLs: this module never
logs and does no I/O (the caller prints). The password appears here, on
stdout, and never in a log record.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from control.auth import DummyAuthenticator
from control.auth.oidc import OidcLogin
from podgate.config import Config

# Hosts that mean "every address" or "this machine": a browser here opens localhost.
_LOCAL_HOSTS = frozenset(("", "0.0.0.0", "::", "127.0.0.1", "::1", "localhost"))
_MORE = " " * 12  # a continued line, under the text of the one before


def browser_url(bound_url: str) -> str:
    """The URL to open in a browser on this machine: a wildcard or loopback host is localhost."""
    parts = urlsplit(bound_url)
    host = parts.hostname or ""
    if host not in _LOCAL_HOSTS:
        return bound_url
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit((parts.scheme, f"localhost{port}", parts.path, "", ""))


def sign_in_words(authenticator: object) -> str:
    """How to sign in, in words; a generated dummy password is shown (nobody else knows it)."""
    if isinstance(authenticator, OidcLogin):
        return f"at your identity provider: Sign in with {authenticator.display_name}"
    if not isinstance(authenticator, DummyAuthenticator):
        return "a user of auth.users or auth.users_file"
    if authenticator.generated:
        return f"any user name, password {authenticator.shared_password}"
    return "any user name, with the password of auth.password"


def welcome_text(config: Config, public_url: str, ops_url: str, authenticator: object) -> str:
    """The start block: open, sign in, become admin, ops port. `authenticator`: None, proxy-only."""
    lines = ["", f"podgate is ready: open {browser_url(public_url)}"]
    if not config.control.enabled:
        lines.append("  proxy only (control.enabled: false): the config's routes and the route API")
    else:
        lines.append(f"  sign in   {sign_in_words(authenticator)}")
        if isinstance(authenticator, DummyAuthenticator):
            lines.append(f"{_MORE}(dummy authenticator: for trying podgate, not for production)")
        if config.auth.oidc is not None and config.auth.oidc.admin_groups:
            groups = ", ".join(config.auth.oidc.admin_groups)
            lines.append(f"  admin     members of {groups} (auth.oidc.admin_groups), /hub/admin")
        elif config.auth.admins:
            names = ", ".join(config.auth.admins)
            lines.append(f"  admin     sign in as {names} (auth.admins), then open /hub/admin")
        else:
            lines.append("  admin     nobody yet: add `auth: {admins: [your-name]}` to a config")
            lines.append(f"{_MORE}file, then `podgate run --config FILE`")
    lines.append(f"  ops port  {browser_url(ops_url)} (/metrics /healthz /readyz /api/routes),")
    lines.append(f"{_MORE}keep it off the public network")
    lines.append("")
    return "\n".join(lines)


def sign_in_line(authenticator: DummyAuthenticator) -> str:
    """One line for stdout after a reload changed the dummy password."""
    return f"sign in now with any user name and the password {authenticator.shared_password}"
