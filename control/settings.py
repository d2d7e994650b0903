"""The control plane's typed settings: auth and the spawner, one frozen dataclass per concern.

The wiring's config (podgate.config) embeds these as they are, so the YAML
keys are the field names below. A bad value raises ValueError naming the
field; the config loader adds the section ("spawner: start_timeout: ...").
Plain data: nothing here does I/O or reads the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

# A Kubernetes quantity: "500m", "2", "1.5", "1Gi", "512M", "1e3".
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munkMGTPE]|m)?$")
_SLUG = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _check_run_as_user(uid: int) -> None:
    """User pods never run as root: the namespace enforces Pod Security "restricted"."""
    if uid == 0:
        raise ValueError(
            "run_as_user: 0 is root; user pods run as a non-root user"
            " (Pod Security 'restricted' refuses root), e.g. 1000"
        )
    if uid < 0:
        raise ValueError(f"run_as_user: {uid} is not a user id (a positive number, e.g. 1000)")


@dataclass(frozen=True)
class Resources:
    """CPU and memory requests and limits of the user container (Kubernetes quantities)."""

    cpu_request: str | None = None
    cpu_limit: str | None = None
    memory_request: str | None = None
    memory_limit: str | None = None

    def __post_init__(self) -> None:
        for name in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            value = getattr(self, name)
            if value is not None and not _QUANTITY.match(value):
                raise ValueError(f"{name}: {value!r} is not a Kubernetes quantity (500m, 2, 1Gi)")


@dataclass(frozen=True)
class Storage:
    """A PersistentVolumeClaim per user: created at the first start, kept on stop."""

    size: str = "10Gi"
    storage_class: str | None = None  # None: the cluster's default class
    mount_path: str = "/home/jovyan"
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)

    def __post_init__(self) -> None:
        if not _QUANTITY.match(self.size):
            raise ValueError(f"size: {self.size!r} is not a Kubernetes quantity (10Gi)")
        if not self.mount_path.startswith("/"):
            raise ValueError(f"mount_path: must be an absolute path, got {self.mount_path!r}")


@dataclass(frozen=True)
class Profile:
    """One choice on the spawn form, like KubeSpawner's profile_list entries.

    Unset fields keep the spawner's own values; `env`, `node_selector` and
    `extra_labels` are merged over them.
    """

    slug: str
    display_name: str
    description: str = ""
    default: bool = False
    image: str | None = None
    cmd: tuple[str, ...] | None = None
    resources: Resources | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    extra_labels: dict[str, str] = field(default_factory=dict)
    run_as_user: int | None = None  # None: the spawner's run_as_user
    # None: the spawner's hub_api; true/false: this profile's servers are (not)
    # jupyterhub-singleuser servers talking to podgate's hub API.
    hub_api: bool | None = None

    def __post_init__(self) -> None:
        if not _SLUG.match(self.slug):
            raise ValueError(f"slug: {self.slug!r} must be a DNS label (a-z, 0-9, -)")
        if self.run_as_user is not None:
            _check_run_as_user(self.run_as_user)


@dataclass(frozen=True)
class SpawnerSettings:
    """How a user's pod (and claim) is built, started and stopped."""

    namespace: str = "podgate"
    image: str = "quay.io/jupyter/base-notebook:latest"
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    cmd: tuple[str, ...] = ()  # empty: the image's own entrypoint
    args: tuple[str, ...] = ()  # put after cmd, before the Jupyter arguments
    # Append --ServerApp.ip=$(POD_IP), port and base_url (Jupyter servers);
    # off for other servers, which read PODGATE_* from their env instead.
    jupyter_args: bool = True
    port: int = 8888
    # Path under the user's base URL that answers without a token once the
    # server serves (Jupyter: "api"); None = ready as soon as it runs.
    readiness_path: str | None = "api"
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    service_account: str | None = None  # None: no service account token mounted
    run_as_user: int = 1000
    run_as_group: int = 100
    fs_group: int = 100
    storage: Storage | None = None
    profiles: tuple[Profile, ...] = ()
    extra_labels: dict[str, str] = field(default_factory=dict)
    extra_annotations: dict[str, str] = field(default_factory=dict)
    pod_name_prefix: str = "jupyter-"
    start_timeout: float = 300.0  # seconds from create to Ready before giving up
    # A pod no node has room for: "fail" says so at once; "wait" leaves it to the
    # start timeout, for clusters whose autoscaler adds nodes on demand.
    unschedulable: Literal["fail", "wait"] = "fail"
    stop_grace_seconds: int = 30  # SIGTERM to SIGKILL when stopping
    concurrent_spawn_limit: int = 100  # JupyterHub's default; beyond it: 429
    # Pod creates a second at most (None: no pacing): a storm of sign-ins becomes a
    # steady stream instead of a burst on the event loop the proxy shares.
    start_rate: float | None = None
    # Pods get the JUPYTERHUB_* environment and API token KubeSpawner gives, so an
    # image whose command is jupyterhub-singleuser works unchanged (control.singleuser).
    hub_api: bool = False
    # How pods reach podgate's PUBLIC listener ("http://podgate.podgate.svc:8000"),
    # never the ops port; required when hub_api is on here or in a profile.
    hub_url: str | None = None
    # Named servers ("/user/<name>/<server>/"), at most this many per user; 0: none,
    # only the default server (JupyterHub's allow_named_servers off).
    named_server_limit_per_user: int = 0

    def __post_init__(self) -> None:
        if self.named_server_limit_per_user < 0:
            raise ValueError(
                "named_server_limit_per_user: must be 0 (no named servers) or a positive limit"
            )
        if not 0 < self.port < 65536:
            raise ValueError(f"port: {self.port} is not a TCP port")
        _check_run_as_user(self.run_as_user)
        for name in ("run_as_group", "fs_group"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: {getattr(self, name)} is not a group id")
        if self.start_timeout <= 0:
            raise ValueError("start_timeout: must be positive")
        if self.stop_grace_seconds < 0:
            raise ValueError("stop_grace_seconds: must not be negative")
        if self.concurrent_spawn_limit < 1:
            raise ValueError("concurrent_spawn_limit: must be at least 1")
        if self.start_rate is not None and self.start_rate <= 0:
            raise ValueError("start_rate: must be positive (or null for no pacing)")
        slugs = [p.slug for p in self.profiles]
        if len(set(slugs)) != len(slugs):
            raise ValueError("profiles: two profiles share a slug")
        if sum(p.default for p in self.profiles) > 1:
            raise ValueError("profiles: at most one profile is the default")
        if self.hub_url is not None:
            _check_hub_url(self.hub_url)
        elif self.hub_api or any(p.hub_api for p in self.profiles):
            raise ValueError(
                "hub_url: required when hub_api is on (the address pods reach podgate's "
                "public port at, e.g. http://podgate.podgate.svc:8000)"
            )

    @property
    def named_servers(self) -> bool:
        """Whether users may have named servers besides their default one."""
        return self.named_server_limit_per_user > 0

    def uses_hub_api(self, profile: Profile | None) -> bool:
        """Whether a pod started with `profile` runs against podgate's hub API."""
        if profile is not None and profile.hub_api is not None:
            return profile.hub_api
        return self.hub_api

    def profile(self, slug: str | None) -> Profile | None:
        """The profile `slug` names, the default one for None; None when there are none.

        Raises KeyError for a slug that is not offered.
        """
        if not self.profiles:
            if slug:
                raise KeyError(slug)
            return None
        if not slug:
            return next((p for p in self.profiles if p.default), self.profiles[0])
        for profile in self.profiles:
            if profile.slug == slug:
                return profile
        raise KeyError(slug)


def _check_hub_url(url: str) -> None:
    """An http(s) origin with nothing after it: the pod appends /hub/api itself."""
    match = re.fullmatch(r"(https?)://([^/?#@\s]+)/?", url)
    if match is None:
        raise ValueError(
            f"hub_url: {url!r} must be http(s)://HOST[:PORT] with no path, query or user "
            "(podgate's public service as pods reach it)"
        )


class SettingError(ValueError):
    """A bad value that names its own field (`key`, relative to the settings object)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


Preset = Literal["generic", "github", "google", "azuread", "gitlab"]
PRESETS: tuple[Preset, ...] = ("generic", "github", "google", "azuread", "gitlab")
# Hosts an http:// issuer may name (a provider on this machine, as in tests); else https.
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _check_url(key: str, url: str) -> None:
    """An absolute http(s) URL; plain http only to this machine's loopback."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise SettingError(key, f"{url!r} is not an http(s) URL (https://host/path)")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise SettingError(key, f"{url!r} must use https (http only on this machine's loopback)")


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in with an OpenID Connect provider (or GitHub's OAuth2): auth.kind oidc.

    Checked for form here; `check_complete` (run when kind is oidc) asks for
    what the preset needs. The client secret is one of client_secret (in the
    file), client_secret_file (a mounted Secret, read at start) or
    client_secret_env (an environment variable, read at start).
    """

    preset: Preset = "generic"
    issuer: str | None = None  # generic: required; presets: derived (azuread: from tenant)
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_file: str | None = None
    client_secret_env: str | None = None
    scopes: tuple[str, ...] | None = None  # None: the preset's (openid profile email ...)
    username_claim: str | None = None  # None: the preset's (generic: preferred_username)
    groups_claim: str | None = None  # None: the preset's (generic: groups)
    allowed_groups: tuple[str, ...] = ()  # members may sign in (beside allowed_users)
    admin_groups: tuple[str, ...] = ()  # members are admins (and may sign in)
    allowed_domains: tuple[str, ...] = ()  # the e-mail's domain must be one of these
    redirect_url: str | None = None  # None: https://<this host>/hub/oidc/callback
    logout_redirect: str | None = None  # where the provider sends the browser after logout
    end_session: bool = False  # logout also ends the provider's session (RP-initiated)
    refresh_seconds: float = 600.0  # groups re-read with the refresh token; 0: never
    tenant: str | None = None  # azuread: the directory (tenant) id or domain
    # google: the Workspace domain(s) (the hd claim); one name or a list
    hosted_domain: tuple[str, ...] | str = ()
    allowed_organizations: tuple[str, ...] = ()  # github: orgs (org or org:team); gitlab: groups
    api_url: str | None = None  # github: https://api.github.com or GitHub Enterprise's

    def __post_init__(self) -> None:
        if isinstance(self.hosted_domain, str):  # as OAuthenticator also takes it
            object.__setattr__(self, "hosted_domain", (self.hosted_domain,))
        if self.issuer is not None:
            _check_url("issuer", self.issuer)
        for key in ("redirect_url", "logout_redirect", "api_url"):
            value = getattr(self, key)
            if value is not None:
                _check_url(key, value)
        given = [
            k
            for k in ("client_secret", "client_secret_file", "client_secret_env")
            if getattr(self, k)
        ]
        if len(given) > 1:
            raise SettingError(given[1], f"give one of {' and '.join(given)}, not both")
        if not 0 <= self.refresh_seconds <= 30 * 24 * 3600:
            raise SettingError("refresh_seconds", "must be between 0 (never) and 30 days")
        for key, presets in (
            ("tenant", ("azuread",)),
            ("hosted_domain", ("google",)),
            ("allowed_organizations", ("github", "gitlab")),
            ("api_url", ("github", "gitlab")),
        ):
            if getattr(self, key) and self.preset not in presets:
                raise SettingError(key, f"only meaningful with preset {' or '.join(presets)}")
        if self.preset == "github" and self.issuer is not None:
            raise SettingError(
                "issuer", "GitHub has no OpenID issuer (GitHub Enterprise: set api_url)"
            )
        if self.scopes is not None and not all(s.strip() for s in self.scopes):
            raise SettingError("scopes", "a scope is empty")

    def check_complete(self) -> None:
        """What kind oidc needs: a client id, and an issuer for the generic preset."""
        if not self.client_id:
            raise SettingError("client_id", "required key is missing (the client's id)")
        if self.preset == "generic" and not self.issuer:
            raise SettingError(
                "issuer",
                "required key is missing (the provider's issuer URL, "
                "e.g. https://keycloak.example.org/realms/lab)",
            )
        if self.preset == "azuread" and not (self.tenant or self.issuer):
            raise SettingError("tenant", "required key is missing (the Azure AD tenant id)")
        if self.preset == "github" and not (
            self.client_secret or self.client_secret_file or self.client_secret_env
        ):
            raise SettingError("client_secret", "GitHub needs the OAuth app's client secret")


@dataclass(frozen=True)
class AuthSettings:
    """Who may log in, and how."""

    kind: Literal["dummy", "password", "oidc"] = "dummy"
    # dummy: the one shared password (a random one is made and printed when unset).
    password: str | None = None
    # password: user name -> hash (scrypt, bcrypt or argon2; `podgate hash-password`).
    users: dict[str, str] = field(default_factory=dict)
    # password: a file of more "name: hash" lines (a mounted Secret), read at start.
    users_file: str | None = None
    admins: tuple[str, ...] = ()
    allowed_users: tuple[str, ...] = ()  # empty = anyone the authenticator accepts
    # Failed logins allowed per user name and per client address within the
    # window before each further try is delayed (doubling, capped).
    free_failures: int = 5
    failure_window_seconds: float = 600.0
    max_delay_seconds: float = 30.0
    # oidc: the identity provider (control.auth.oidc).
    oidc: OidcSettings | None = None

    def __post_init__(self) -> None:
        if self.kind == "password" and not (self.users or self.users_file):
            raise ValueError("kind password needs users or users_file")
        if self.free_failures < 0 or self.failure_window_seconds <= 0:
            raise ValueError("free_failures and failure_window_seconds must be positive")
        if self.kind == "oidc":
            if self.oidc is None:
                raise SettingError("oidc", "required with kind oidc (issuer, client_id, ...)")
            try:
                self.oidc.check_complete()
            except SettingError as e:
                raise SettingError(f"oidc.{e.key}", e.problem) from None
        elif self.oidc is not None:
            raise SettingError("oidc", "only meaningful with kind: oidc")


@dataclass(frozen=True)
class CullerSettings:
    """The built-in idle culler, and how often traffic is written to pod annotations."""

    enabled: bool = False
    timeout: float = 3600.0  # seconds without traffic before a server is stopped
    every: float = 60.0  # seconds between culling rounds
    max_age: float | None = None  # seconds since start after which any server stops
    concurrency: int = 10  # stops under way at once in one round
    cull_admin_users: bool = True  # false: admins' servers are never culled
    # Seconds between writes of the edge's activity to the pod annotation that
    # replicas share; done whether or not culling is enabled.
    activity_every: float = 60.0

    def __post_init__(self) -> None:
        for name in ("timeout", "every", "activity_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        if self.max_age is not None and self.max_age <= 0:
            raise ValueError("max_age: must be positive (or null for no limit)")
        if self.concurrency < 1:
            raise ValueError("concurrency: must be at least 1")


@dataclass(frozen=True)
class AcmeSettings:
    """Certificates ordered from an ACME server (Let's Encrypt) with HTTP-01 (control.acme).

    The certificate and the account key live in the Secret `storage` of the
    spawner's namespace, so every replica serves the same one; a Lease of the
    same name lets one replica at a time order or renew.
    """

    email: str | None = None  # the account's contact: expiry warnings from the CA
    domains: tuple[str, ...] = ()
    directory_url: str = "https://acme-v02.api.letsencrypt.org/directory"
    storage: str = "podgate-acme"  # Secret (and Lease) name
    # Renew once this share of the certificate's lifetime has passed (Let's Encrypt: 2/3).
    renew_at: float = 2 / 3
    # Seconds between looks at the Secret (another replica renewed?) and at the clock.
    check_seconds: float = 3600.0
    # Seconds after a failed order before the next try.
    retry_seconds: float = 600.0
    # A PEM CA bundle to trust for directory_url (a private CA, or pebble in tests).
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("domains: name at least one DNS name to order a certificate for")
        for i, domain in enumerate(self.domains):
            if not _DNS_NAME.match(domain) or "*" in domain:
                raise ValueError(
                    f"domains[{i}]: {domain!r} is not a DNS name HTTP-01 can validate "
                    "(no wildcards, no IP addresses)"
                )
        if not self.directory_url.startswith(("https://", "http://")):
            raise ValueError(f"directory_url: {self.directory_url!r} is not an http(s) URL")
        if self.email is not None and "@" not in self.email:
            raise ValueError(f"email: {self.email!r} is not an email address")
        if not _SLUG.match(self.storage):
            raise ValueError(f"storage: {self.storage!r} is not a Secret name (a-z, 0-9, -)")
        if not 0.1 <= self.renew_at <= 0.95:
            raise ValueError("renew_at: a share of the lifetime between 0.1 and 0.95")
        for name in ("check_seconds", "retry_seconds"):
            if not 1 <= getattr(self, name) <= 86400:
                raise ValueError(f"{name}: between 1 and 86400 seconds")


_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
