"""Assemble podgate from a Config: the parts, how they connect, their start and stop.

Wiring only. Each package gets its own small settings object built here;
the edge and the control plane meet only through what is passed in.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from control.manifests import USER_PREFIX
from control.web.identity import CookieSettings
from edge.app import Edge, build_public_app, edge_of
from edge.errors import PLAIN_LOOK
from edge.hub_upstream import HubUpstream
from edge.ops import build_ops_app
from edge.origin import parse_origins
from edge.server import PublicServer, serve_public
from edge.session import SessionCodec
from edge.settings import EdgeSettings, UpstreamSettings, parse_networks
from edge.tls import CertificateProblem, LoadedCertificate, ServerCertificate
from edge.tls.placeholder import placeholder_pair
from edge.tls.redirect import HttpChallenges, build_redirect_app
from kubesim.cluster import SimCluster
from metrics import EdgeStats, PodgateMetrics
from podgate.config import Config, parse_listen
from podgate.control_plane import ControlPlane, cookie_settings, csrf_secret, embedded_cluster
from podgate.edge_thread import EdgeLoop
from podgate.error_look import HUB_LOOK
from podgate.hub_link import HubLink
from podgate.logs import quiet_expected_client_errors
from podgate.ports import ListenFailed
from podgate.schema import ConfigError
from routes import RouteSource, RouteTable

if TYPE_CHECKING:
    from control.acme import AcmeManager

log = logging.getLogger("podgate")


def hub_cookie_names(cookies: CookieSettings) -> frozenset[str]:
    """The hub's cookies besides the session: a pod may set none of them."""
    return frozenset({cookies.xsrf_name, cookies.known_browser_name, cookies.sign_in_attempt_name})


def edge_settings(config: Config) -> EdgeSettings:
    return EdgeSettings(
        cookie_name=config.session.cookie_name,
        hub_cookies=hub_cookie_names(cookie_settings(config)),
        admin_access=config.edge.admin_access,
        admins=frozenset(config.auth.admins),
        control_enabled=config.control.enabled,
        upstream=UpstreamSettings(
            connect_timeout=config.edge.upstream_connect_timeout,
            read_timeout=config.edge.upstream_timeout,
        ),
        trusted_proxies=parse_networks(config.edge.trusted_proxies),
        head_timeout=config.edge.head_timeout,
        incomplete_per_address=config.edge.incomplete_per_address,
        allowed_origins=parse_origins(config.edge.allowed_origins),
        hsts_seconds=config.tls.hsts_seconds if config.tls is not None else 0,
    )


def session_codec(config: Config) -> SessionCodec:
    keys = config.session.cookie_secrets
    if not keys:
        log.warning(
            "no cookie secret configured (session.cookie_secrets or PODGATE_COOKIE_SECRET): "
            "using a random one, so sessions end at restart and replicas do not share them"
        )
        keys = (secrets.token_urlsafe(32),)
    return SessionCodec(keys, max_age_seconds=config.session.max_age_seconds)


def route_table(config: Config) -> RouteTable:
    table = RouteTable(host_routing=config.edge.host_routing)
    for route in config.routes:
        table.add(route.path, route.target, source=RouteSource.CONFIG, user=route.user)
    return table


@dataclass
class Podgate:
    """One running podgate: public and ops servers, and the embedded cluster if any."""

    config: Config
    table: RouteTable = field(init=False)
    sessions: SessionCodec = field(init=False)
    stats: EdgeStats = field(init=False)
    metrics: PodgateMetrics = field(init=False)
    cluster: SimCluster | None = field(init=False, default=None)
    control: ControlPlane | None = field(init=False, default=None)
    edge: Edge | None = field(init=False, default=None)
    public_url: str = field(init=False, default="")
    ops_url: str = field(init=False, default="")
    redirect_url: str = field(init=False, default="")  # the plain listener of tls.redirect_http
    certificate: ServerCertificate | None = field(init=False, default=None)
    challenges: HttpChallenges = field(init=False, default_factory=HttpChallenges)
    acme: AcmeManager | None = field(init=False, default=None)
    _tls_dir: str | None = field(init=False, default=None)  # ACME's certificate files
    _public: PublicServer | None = field(init=False, default=None)
    # The edge serves on a loop of its own; the hub reaches it over hub_link.
    _edge_loop: EdgeLoop = field(init=False, default_factory=EdgeLoop)
    _hub_link: HubLink | None = field(init=False, default=None)
    hub_app: web.Application | None = field(init=False, default=None)  # the control plane's
    _runners: list[web.AppRunner] = field(init=False, default_factory=list)
    _serving: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.table = route_table(self.config)
        self.sessions = session_codec(self.config)
        self.stats = EdgeStats()
        self.metrics = PodgateMetrics(self.stats, table_size=lambda: len(self.table))

    def is_ready(self) -> bool:
        """Serving, and (with the control plane) the first pod list has been routed."""
        return self._serving and (self.control is None or self.control.is_synced())

    async def start(self) -> None:
        config = self.config
        quiet_expected_client_errors()
        try:
            # First: a certificate that cannot be served stops the start before anything runs.
            tls = self._load_certificate()
            hub = None
            if config.control.enabled:
                if config.cluster.kind == "sim":
                    self.cluster = embedded_cluster(config)
                    await self.cluster.start()
                    log.info(
                        "embedded kubesim (a test double, not Kubernetes) at %s", self.cluster.url
                    )
                self.control = ControlPlane(
                    config,
                    self.table,
                    self.sessions,
                    csrf_secret(config.session.cookie_secrets),
                    metrics=self.metrics.control,
                    on_cull=self.metrics.control.server_culled,
                )
                hub = await self.control.start(self.cluster)
            settings = edge_settings(config)
            self._edge_loop.start()
            hub_upstream = None
            if hub is not None:
                self.hub_app = hub
                self._hub_link = HubLink(hub, HUB_LOOK, settings.hub_prefix)
                await self._hub_link.start()
                hub_upstream = HubUpstream(self._hub_link.connect)
            public = build_public_app(
                table=self.table,
                settings=settings,
                stats=self.stats,
                sessions=self.sessions,
                hub=hub_upstream,
                # Sign-outs and removed users, applied by the edge on every request.
                policy=self.control.gate if self.control is not None else None,
                # The hub's look needs the hub's stylesheet: only with the control plane.
                error_look=HUB_LOOK if hub is not None else PLAIN_LOOK,
                # Personal API tokens open their user's servers, as in JupyterHub.
                token_user=self.control.token_user if self.control is not None else None,
            )
            self.edge = edge = edge_of(public)
            if self.control is not None and self.control.gate is not None:
                # A sign-out or a reload also ends the WebSockets those sessions opened
                # (on the edge's loop, which owns them).
                edge_loop = self._edge_loop
                self.control.gate.on_change = lambda: edge_loop.call_soon(edge.sessions_changed)
            ops = build_ops_app(
                table=self.table,
                metrics=self.metrics,
                api_token=config.proxy_auth_token,
                is_ready=self.is_ready,
                reserved_prefix=USER_PREFIX if config.control.enabled else None,
                extra_routes=self.control.add_api_routes if self.control else None,
            )
            try:
                self._public = await self._edge_loop.run(
                    serve_public(
                        public,
                        *config.listen_address,
                        grace=config.shutdown_grace_seconds,
                        tls=(lambda: tls.context) if tls is not None else None,
                        tls_per_address=config.tls.handshakes_per_address if config.tls else 256,
                    )
                )
            except OSError as e:
                raise ListenFailed("listen", *config.listen_address, e) from e
            self.public_url = self._public.url
            if config.tls is not None and config.tls.redirect_http is not None:
                address = parse_listen(config.tls.redirect_http, "tls.redirect_http")
                redirect = build_redirect_app(
                    config.tls.redirect_port or self._public.port, self.challenges
                )
                try:
                    self.redirect_url = await self._serve(redirect, *address)
                except OSError as e:
                    raise ListenFailed("tls.redirect_http", *address, e) from e
            try:
                self.ops_url = await self._serve(ops, *config.ops_address)
            except OSError as e:
                raise ListenFailed("ops_listen", *config.ops_address, e) from e
            await self.metrics.loop_lag.start()
            await self._edge_loop.run(self.metrics.edge_loop_lag.start())
            self._start_acme()  # once the redirect listener can answer the CA's challenges
        except BaseException:
            await self.stop()
            raise
        self._serving = True

    def _load_certificate(self) -> ServerCertificate | None:
        """The certificate files checked and loaded; ConfigError names the bad one."""
        tls = self.config.tls
        if tls is not None and tls.acme is not None:
            return self._placeholder_certificate(tls.acme.domains)
        if tls is None or tls.cert_file is None or tls.key_file is None:
            return None
        certificate = ServerCertificate(tls.cert_file, tls.key_file, self._observe_certificate)
        try:
            certificate.load()
        except CertificateProblem as e:
            raise ConfigError("tls", str(e)) from e
        certificate.start(tls.reload_seconds)
        self.certificate = certificate
        return certificate

    def _placeholder_certificate(self, domains: tuple[str, ...]) -> ServerCertificate:
        """ACME's files in a private directory, a self-signed placeholder until the first order."""
        self._tls_dir = tempfile.mkdtemp(prefix="podgate-tls-")
        certificate = ServerCertificate(
            os.path.join(self._tls_dir, "tls.crt"),
            os.path.join(self._tls_dir, "tls.key"),
            self._observe_certificate,
        )
        self.certificate = certificate  # before the first load: its metric names the source
        certificate.install(*placeholder_pair(domains), source="placeholder")
        log.warning(
            "tls.acme: serving a self-signed placeholder certificate for %s until the ACME "
            "certificate is in the Secret (browsers warn until then)",
            ", ".join(domains),
        )
        return certificate

    def _start_acme(self) -> None:
        tls = self.config.tls
        if tls is None or tls.acme is None or self.control is None or self.control.kube is None:
            return
        # Imported only when used: the acme library and its dependencies cost ~15 MB.
        from control.acme import AcmeManager

        certificate = self.certificate
        assert certificate is not None
        challenges = self.challenges

        def remember(thumbprint: str) -> None:
            challenges.thumbprint = thumbprint

        self.acme = AcmeManager(
            self.control.kube,
            self.config.spawner.namespace,
            tls.acme,
            install=lambda cert, key: certificate.install(cert, key, source="acme"),
            on_thumbprint=remember,
            on_order=self.metrics.tls.order,
        )
        challenges.lookup = self.acme.thumbprint
        self.acme.start()

    def _observe_certificate(self, loaded: LoadedCertificate, outcome: str) -> None:
        source = self.certificate.source if self.certificate is not None else "files"
        self.metrics.tls.certificate(loaded.not_after.timestamp(), outcome, source)

    async def stop(self) -> None:
        self._serving = False
        await self.metrics.loop_lag.stop()
        if self.acme is not None:
            await self.acme.stop()
            self.acme = None
        if self.certificate is not None:
            await self.certificate.stop()
            self.certificate = None
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None
        if self._edge_loop.loop is not None:
            await self._edge_loop.run(self.metrics.edge_loop_lag.stop())
        if self._public is not None:
            await self._edge_loop.run(self._public.close())
            self._public = None
        await self._edge_loop.stop()
        if self._hub_link is not None:
            await self._hub_link.stop()
            self._hub_link = None
        while self._runners:
            await self._runners.pop().cleanup()
        if self.control is not None:
            await self.control.stop()
            self.control = None
        if self.cluster is not None:
            await self.cluster.stop()
            self.cluster = None

    async def _serve(self, app: web.Application, host: str, port: int) -> str:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, backlog=2048, reuse_address=True)
        await site.start()
        bound_host, bound_port = runner.addresses[-1][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return f"http://{shown}:{bound_port}"
