"""podgate's typed configuration: one YAML file, validated at start.

Every key is a field of a frozen dataclass below; podgate.schema builds them
and names the key of any error. Secrets may come from the environment
(PODGATE_COOKIE_SECRET, CONFIGPROXY_AUTH_TOKEN), which wins over the file so
a Kubernetes Secret can override a ConfigMap. Only the wiring reads this:
the packages below it get their own small settings objects.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml

from control.api.scopes import unknown_scopes
from control.settings import AcmeSettings, AuthSettings, CullerSettings, SpawnerSettings
from edge.origin import parse_origins
from podgate.schema import ConfigError, build
from routes import split_target


def parse_listen(value: str, key: str) -> tuple[str, int]:
    """("0.0.0.0", 8000) from "0.0.0.0:8000"; IPv6 hosts in brackets."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(key, f"expected HOST:PORT with a port 0-65535, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass(frozen=True)
class ControlConfig:
    enabled: bool = True  # false = proxy-only, exactly like configurable-http-proxy


@dataclass(frozen=True)
class ClusterConfig:
    kind: Literal["sim", "kube"] = "sim"
    kubeconfig: str | None = None  # kube without one = in-cluster service account
    context: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "sim" and (self.kubeconfig or self.context):
            raise ConfigError("kubeconfig", "only meaningful with kind: kube")


@dataclass(frozen=True)
class ApiToken:
    name: str
    token: str
    scopes: tuple[str, ...] = ()  # JupyterHub's scope names (control.api.scopes)

    def __post_init__(self) -> None:
        unknown = unknown_scopes(self.scopes)
        if unknown:
            raise ConfigError("scopes", f"unknown scope {unknown[0]!r}")


@dataclass(frozen=True)
class SessionConfig:
    cookie_name: str = "podgate-session"
    max_age_seconds: float = 14 * 24 * 3600.0
    # Several accepted, the first signs (key rotation); env PODGATE_COOKIE_SECRET
    # holds a comma-separated list.
    cookie_secrets: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_age_seconds <= 0:
            raise ConfigError("max_age_seconds", "must be positive")
        if any(len(s) < 16 for s in self.cookie_secrets):
            raise ConfigError("cookie_secrets", "each secret needs at least 16 characters")


@dataclass(frozen=True)
class EdgeConfig:
    admin_access: bool = False  # may admins open other users' servers?
    host_routing: bool = False  # CHP's --host-routing: the host is the first path segment
    trusted_proxies: tuple[str, ...] = ()  # networks whose X-Forwarded-For is appended to
    # Origins (https://host[:port]) besides podgate's own whose pages may POST to users'
    # servers and open WebSockets to them; every other origin is refused (403).
    allowed_origins: tuple[str, ...] = ()
    upstream_connect_timeout: float = 5.0
    upstream_timeout: float = 300.0  # no byte from the pod for this long -> 504
    # Slow clients (edge.fastlane.slow_heads, control.web.body_arrival): a request
    # head must arrive whole this long after its first byte -> 408;
    head_timeout: float = 20.0
    # a /hub/ request body this long after its head -> 408 (uploads to pods are never timed);
    hub_body_timeout: float = 20.0
    # requests one client address may have half-sent at once -> 429.
    incomplete_per_address: int = 64

    def __post_init__(self) -> None:
        for name in ("upstream_connect_timeout", "upstream_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(name, "must be positive")
        for name in ("head_timeout", "hub_body_timeout"):
            if not 0 < getattr(self, name) <= 3600:
                raise ConfigError(name, "must be above 0 and at most 3600 seconds")
        if self.incomplete_per_address < 1:
            raise ConfigError("incomplete_per_address", "must be at least 1")
        for i, network in enumerate(self.trusted_proxies):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as e:
                raise ConfigError(f"trusted_proxies[{i}]", str(e)) from e
        for i, origin in enumerate(self.allowed_origins):
            try:
                parse_origins([origin])
            except ValueError as e:
                raise ConfigError(f"allowed_origins[{i}]", str(e)) from e


@dataclass(frozen=True)
class TlsConfig:
    """HTTPS on the public listener: certificate files, or ACME; see README "HTTPS at the edge"."""

    cert_file: str | None = None  # PEM: the certificate, then its chain
    key_file: str | None = None  # PEM private key
    acme: AcmeSettings | None = None  # ordered and renewed instead of files
    # HOST:PORT of a plain-HTTP listener that redirects to https (and answers ACME's
    # HTTP-01 challenges); none by default.
    redirect_http: str | None = None
    # The port the redirect's https URL names (the Service's, when it differs from
    # listen's); None: listen's own port. 443 is left out of the URL.
    redirect_port: int | None = None
    hsts_seconds: int = 0  # Strict-Transport-Security max-age on answers over TLS; 0: none
    # Seconds between looks at cert_file and key_file for a rotation; 0: never reloaded.
    reload_seconds: float = 5.0
    # Connections one client address may have silent or in their TLS handshake at
    # once (more are closed); room for a classroom behind one NAT address.
    handshakes_per_address: int = 256

    def __post_init__(self) -> None:
        files = (self.cert_file is not None, self.key_file is not None)
        if files[0] != files[1]:
            missing = "key_file" if files[0] else "cert_file"
            raise ConfigError(missing, "cert_file and key_file go together")
        if self.acme is not None and files[0]:
            raise ConfigError("acme", "use either cert_file/key_file or acme, not both")
        if self.acme is None and not files[0]:
            raise ConfigError("cert_file", "tls needs cert_file and key_file, or acme")
        if self.acme is not None and self.redirect_http is None:
            raise ConfigError(
                "redirect_http",
                "acme answers HTTP-01 challenges on the plain-HTTP listener: set "
                "redirect_http (e.g. 0.0.0.0:8080, the Service's port 80)",
            )
        if self.redirect_http is not None:
            parse_listen(self.redirect_http, "redirect_http")
        if self.redirect_port is not None and not 1 <= self.redirect_port <= 65535:
            raise ConfigError("redirect_port", "a port 1-65535")
        if not 0 <= self.hsts_seconds <= 2 * 365 * 86400:
            raise ConfigError("hsts_seconds", "between 0 and two years (63072000)")
        if not 0 <= self.reload_seconds <= 3600:
            raise ConfigError("reload_seconds", "must be between 0 and 3600")
        if self.handshakes_per_address < 1:
            raise ConfigError("handshakes_per_address", "must be at least 1")


@dataclass(frozen=True)
class StaticRoute:
    """A route declared in config; with `user` set, only that user's session reaches it."""

    path: str
    target: str
    user: str | None = None

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ConfigError("path", f"must start with '/', got {self.path!r}")
        try:
            split_target(self.target)
        except ValueError as e:
            raise ConfigError("target", str(e)) from e


@dataclass(frozen=True)
class Config:
    # Loopback unless configured: the image and deploy/ set 0.0.0.0 themselves.
    listen: str = "127.0.0.1:8000"
    ops_listen: str = "127.0.0.1:8081"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # text for a terminal; json or logfmt (one record per line) for a log collector
    log_format: Literal["text", "json", "logfmt"] = "text"
    # Seconds SIGTERM leaves requests and WebSockets to finish: below Kubernetes' 30 s.
    shutdown_grace_seconds: float = 25.0
    control: ControlConfig = field(default_factory=ControlConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api_tokens: tuple[ApiToken, ...] = ()
    # A YAML list of {name, token, scopes} (a mounted Secret), read at start beside api_tokens.
    api_tokens_file: str | None = None
    spawner: SpawnerSettings = field(default_factory=SpawnerSettings)
    session: SessionConfig = field(default_factory=SessionConfig)
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    routes: tuple[StaticRoute, ...] = ()
    proxy_auth_token: str | None = None  # CHP's CONFIGPROXY_AUTH_TOKEN for /api/routes
    culler: CullerSettings = field(default_factory=CullerSettings)
    # Seconds between looks at the config file, users_file and api_tokens_file for a
    # change to reload (podgate.reload); 0: only SIGHUP reloads.
    reload_poll_seconds: float = 5.0
    tls: TlsConfig | None = None  # HTTPS on the public listener (none: plain HTTP)

    def __post_init__(self) -> None:
        parse_listen(self.listen, "listen")
        parse_listen(self.ops_listen, "ops_listen")
        if self.tls is not None and self.tls.acme is not None and not self.control.enabled:
            raise ConfigError("tls.acme", "needs the control plane (control.enabled: true)")
        if not 0 <= self.reload_poll_seconds <= 3600:
            raise ConfigError("reload_poll_seconds", "must be between 0 and 3600")
        if not 0 <= self.shutdown_grace_seconds <= 3600:
            raise ConfigError("shutdown_grace_seconds", "must be between 0 and 3600")
        self._check_hub_url()

    def _check_hub_url(self) -> None:
        """Pods must reach the hub API on the public port: the ops port is never theirs."""
        hub_url = self.spawner.hub_url
        if hub_url is None:
            return
        port = urlsplit(hub_url).port
        ops, public = self.ops_address[1], self.listen_address[1]
        if port is not None and port == ops and port != public:
            raise ConfigError(
                "spawner.hub_url",
                f"{hub_url!r} points at the ops port ({ops}); pods must use the public "
                f"listener (port {public}, or the Service in front of it)",
            )

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen, "listen")

    @property
    def ops_address(self) -> tuple[str, int]:
        return parse_listen(self.ops_listen, "ops_listen")


def load_config(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """The validated config from `path` (None: all defaults) plus environment secrets."""
    env = os.environ if environ is None else environ
    data: object = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError("", f"cannot read config file {path}: {e.strerror}") from e
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError("", f"{path} is not valid YAML{where}") from e
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must hold a mapping of settings at the top level")
    config = build(Config, data)
    return _with_environment(config, env)


def _with_environment(config: Config, env: Mapping[str, str]) -> Config:
    secrets = env.get("PODGATE_COOKIE_SECRET", "").strip()
    if secrets:
        values = tuple(s.strip() for s in secrets.split(",") if s.strip())
        try:
            session = replace(config.session, cookie_secrets=values)
        except ConfigError as e:
            raise ConfigError("PODGATE_COOKIE_SECRET", e.problem) from e
        config = replace(config, session=session)
    token = env.get("CONFIGPROXY_AUTH_TOKEN", "").strip()
    if token:
        config = replace(config, proxy_auth_token=token)
    return config
