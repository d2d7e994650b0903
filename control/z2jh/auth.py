"""hub.config's authenticator -> podgate's auth (dummy, password, or oidc with a preset).

The oidc shape is podgate's auth.oidc: {preset, issuer, client_id,
client_secret, scopes, username_claim, groups_claim, allowed_groups,
admin_groups, allowed_domains, tenant, hosted_domain, allowed_organizations}.
"""

from __future__ import annotations

import re
from typing import Any

from control.z2jh.report import Report

# authenticator_class spellings (entry-point names and import paths) -> (kind, preset, section).
_CLASSES: dict[str, tuple[str, str | None, str]] = {}
for _names, _kind, _preset, _section in (
    ("dummy jupyterhub.auth.DummyAuthenticator", "dummy", None, "DummyAuthenticator"),
    ("native nativeauthenticator.NativeAuthenticator", "password", None, "NativeAuthenticator"),
    (
        "github oauthenticator.github.GitHubOAuthenticator oauthenticator.GitHubOAuthenticator",
        "oidc",
        "github",
        "GitHubOAuthenticator",
    ),
    (
        "generic generic-oauth oauthenticator.generic.GenericOAuthenticator "
        "oauthenticator.GenericOAuthenticator",
        "oidc",
        "generic",
        "GenericOAuthenticator",
    ),
    (
        "azuread oauthenticator.azuread.AzureAdOAuthenticator oauthenticator.AzureAdOAuthenticator",
        "oidc",
        "azuread",
        "AzureAdOAuthenticator",
    ),
    (
        "google oauthenticator.google.GoogleOAuthenticator oauthenticator.GoogleOAuthenticator",
        "oidc",
        "google",
        "GoogleOAuthenticator",
    ),
    (
        "gitlab oauthenticator.gitlab.GitLabOAuthenticator oauthenticator.GitLabOAuthenticator",
        "oidc",
        "gitlab",
        "GitLabOAuthenticator",
    ),
):
    for _name in _names.split():
        _CLASSES[_name] = (_kind, _preset, _section)

# OAuthenticator settings with the same meaning in podgate's auth.oidc.
_SAME = {
    "client_id": "client_id",
    "client_secret": "client_secret",
    "scope": "scopes",
    "username_claim": "username_claim",
    "allowed_groups": "allowed_groups",
    "admin_groups": "admin_groups",
    "allowed_organizations": "allowed_organizations",
    "tenant_id": "tenant",
}
_NO_COUNTERPART = {
    "login_service": "the sign-in button's label; podgate names the provider itself",
    "manage_groups": "podgate keeps no JupyterHub groups; it reads the groups claim at sign-in",
    "enable_auth_state": "podgate stores no auth state",
    "refresh_pre_spawn": "podgate stores no auth state to refresh",
    "allow_existing_users": "podgate has no user database: allowed_users and the groups decide",
    "populate_teams_in_auth_state": "podgate stores no auth state",
    "allowed_project_ids": "podgate's gitlab preset checks groups, not projects",
    "allowed_google_groups": "Google groups need Google's admin API; podgate's google preset "
    "checks the hosted domain",
    "admin_google_groups": "Google groups need Google's admin API",
}
# Keycloak's documented endpoint layout: the issuer is the realm URL before it.
_KEYCLOAK = re.compile(
    r"^(https?://.+/realms/[^/]+)/protocol/openid-connect/(auth|token|userinfo)$"
)
OIDC_NOTE = "needs a podgate with the oidc authenticator (auth.kind: oidc)"


def translate_auth(config: dict[str, Any], report: Report) -> tuple[dict[str, Any], dict[str, Any]]:
    """(podgate's auth, podgate's edge additions) from hub.config; every key reported."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    hub = config.pop("JupyterHub", {}) or {}
    common = config.pop("Authenticator", {}) or {}
    name = hub.pop("authenticator_class", None)
    key = "hub.config.JupyterHub.authenticator_class"
    edge: dict[str, Any] = {}
    if "admin_access" in hub:
        edge["admin_access"] = bool(hub.pop("admin_access"))
        report.carried(
            "hub.config.JupyterHub.admin_access",
            f"edge.admin_access: {str(edge['admin_access']).lower()}",
        )
    for rest in sorted(hub):
        report.none(f"hub.config.JupyterHub.{rest}", "a JupyterHub setting podgate does not have")
    if name is None:
        kind, preset, section = "dummy", None, "DummyAuthenticator"
        report.changed(key, "unset: z2jh's default, the dummy authenticator -> auth.kind: dummy")
    elif name in _CLASSES:
        kind, preset, section = _CLASSES[name]
        report.carried(
            key, f"{name} -> auth.kind: {kind}" + (f", oidc.preset: {preset}" if preset else "")
        )
    else:
        kind, preset, section = "password", None, ""
        report.none(
            key,
            f"{name}: podgate has no such authenticator (it has dummy, password and "
            "oidc); written as auth.kind: password with a users file to fill",
        )
    auth: dict[str, Any] = {"kind": kind}
    _users(common, "hub.config.Authenticator", auth, report)
    specific = config.pop(section, {}) or {} if section else {}
    shared = config.pop("OAuthenticator", {}) or {} if preset else {}
    if kind == "dummy":
        _dummy(specific, auth, report)
    elif kind == "password":
        auth["users_file"] = "/etc/podgate/secrets/users.yaml"
        if name is not None and name in _CLASSES:
            report.changed(
                key,
                "NativeAuthenticator keeps users and password hashes in the hub "
                "database, which podgate cannot read: give each user a line "
                "'name: hash' (podgate hash-password) in auth.users_file",
            )
        for rest in sorted(specific):
            report.none(
                f"hub.config.{section}.{rest}",
                "sign-up and its options: podgate's password users come from the users file only",
            )
    else:
        assert preset is not None
        oidc: dict[str, Any] = {"preset": preset}
        for where, settings in (("OAuthenticator", shared), (section, specific)):
            _users(settings, f"hub.config.{where}", auth, report)
            for setting, value in sorted(settings.items()):
                _oauth_setting(f"hub.config.{where}.{setting}", setting, value, oidc, report)
        auth["oidc"] = oidc
        report.changed(key, OIDC_NOTE)
    for section_name, settings in sorted(config.items()):
        for setting in sorted(settings or {"": None}):
            where = f"hub.config.{section_name}" + (f".{setting}" if setting else "")
            report.none(where, "traitlets config of a class podgate does not run")
    return auth, edge


def _users(settings: dict[str, Any], at: str, auth: dict[str, Any], report: Report) -> None:
    """admin_users, allowed_users and allow_all (Authenticator's, or a class's own)."""
    for setting, target in (("admin_users", "admins"), ("allowed_users", "allowed_users")):
        if setting in settings:
            names = sorted(
                {str(n) for n in settings.pop(setting) or []} | set(auth.get(target, []))
            )
            auth[target] = names
            report.carried(f"{at}.{setting}", f"auth.{target}: {', '.join(names) or '(none)'}")
    if "allow_all" in settings:
        if settings.pop("allow_all"):
            report.carried(
                f"{at}.allow_all",
                "anyone the provider signs in: podgate's rule when auth.allowed_users is empty",
            )
        else:
            report.changed(
                f"{at}.allow_all",
                "false: with no allowed_users and no groups "
                "JupyterHub lets nobody in, podgate lets everyone the provider "
                "accepts: set auth.allowed_users or oidc.allowed_groups",
            )
    for rest in (
        "blocked_users",
        "delete_invalid_users",
        "enable_auth_state",
        "auto_login",
        "manage_roles",
        "reset_managed_roles_on_startup",
    ):
        if rest in settings and at.endswith(".Authenticator"):
            settings.pop(rest)
            report.none(f"{at}.{rest}", "an Authenticator setting podgate does not have")
    if at.endswith(".Authenticator"):
        for rest in sorted(settings):
            report.none(f"{at}.{rest}", "an Authenticator setting podgate does not have")


def _dummy(settings: dict[str, Any], auth: dict[str, Any], report: Report) -> None:
    if "password" in settings:
        auth["password"] = str(settings.pop("password"))
        report.carried("hub.config.DummyAuthenticator.password", "auth.password")
    else:
        report.changed(
            "hub.config.DummyAuthenticator.password",
            "unset: JupyterHub's dummy "
            "takes any password, podgate's makes one shared password and prints it "
            "at start (set auth.password to choose it)",
        )
    for rest in sorted(settings):
        report.none(f"hub.config.DummyAuthenticator.{rest}", "a dummy setting podgate lacks")


def _oauth_setting(
    key: str, setting: str, value: Any, oidc: dict[str, Any], report: Report
) -> None:
    if setting in _SAME:
        target = _SAME[setting]
        oidc[target] = [str(v) for v in value] if isinstance(value, list) else value
        shown = "(hidden)" if "secret" in setting else _show(value)
        report.carried(key, f"auth.oidc.{target}: {shown}")
    elif setting == "username_key":
        oidc["username_claim"] = value
        report.changed(key, f"auth.oidc.username_claim: {value} (OAuthenticator's older name)")
    elif setting in ("claim_groups_key", "auth_state_groups_key"):
        claim = str(value).removeprefix("oauth_user.")
        oidc["groups_claim"] = claim
        report.changed(
            key,
            f"auth.oidc.groups_claim: {claim} (a claim of the ID token or "
            "userinfo, not a path into JupyterHub's auth state)",
        )
    elif setting == "hosted_domain":
        domains = [value] if isinstance(value, str) else [str(v) for v in value]
        oidc["allowed_domains"] = domains
        if len(domains) == 1:
            oidc["hosted_domain"] = domains[0]
        report.carried(
            key,
            f"auth.oidc.allowed_domains: {', '.join(domains)}"
            + (f", hosted_domain: {domains[0]}" if len(domains) == 1 else ""),
        )
    elif setting == "gitlab_url":
        oidc["issuer"] = str(value).rstrip("/")
        report.changed(
            key, f"auth.oidc.issuer: {oidc['issuer']} (the GitLab instance is the OpenID issuer)"
        )
    elif setting == "allowed_gitlab_groups":
        oidc["allowed_groups"] = [str(v) for v in value]
        report.changed(key, "auth.oidc.allowed_groups: the groups claim of GitLab's ID token")
    elif setting in ("authorize_url", "token_url", "userdata_url"):
        found = _KEYCLOAK.match(str(value))
        if found:
            oidc["issuer"] = found[1]
            report.changed(
                key,
                f"auth.oidc.issuer: {found[1]} (podgate discovers the "
                "endpoints from the issuer; Keycloak's realm URL)",
            )
        else:
            report.none(
                key,
                f"{value}: podgate discovers the endpoints from the issuer "
                "(/.well-known/openid-configuration); set auth.oidc.issuer by hand",
            )
    elif setting == "oauth_callback_url":
        report.changed(
            key,
            "podgate's oidc authenticator makes its own callback URL from the "
            "public address; register that one at the provider",
        )
    else:
        why = _NO_COUNTERPART.get(setting, "an OAuthenticator setting podgate's oidc lacks")
        report.none(key, why)


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "(none)"
    return str(value)
