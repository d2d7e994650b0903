"""Wire the control plane: Kubernetes client, informers (pods, events, user records),
spawner, session gate, hub app.

Wiring only: which parts exist, what each is handed, in which order they
start and stop. The embedded kubesim of the local default runs a real
Jupyter server for the default image, so `podgate run` gives a working
JupyterLab with nothing else installed.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from control.activity import ActivityTracker
from control.api.callers import ApiError, personal_caller
from control.api.routes import add_api_routes
from control.api.tokens import ApiTokens, read_tokens_file
from control.auth import (
    Authenticator,
    DummyAuthenticator,
    PasswordAuthenticator,
    build_access,
    build_authenticator,
    build_throttle,
)
from control.auth.build import build_redirect_login
from control.auth.known_browsers import KnownBrowsers
from control.auth.oidc import OidcLogin
from control.csrf import CsrfTokens
from control.culler import CullObserver, IdleCuller
from control.errors import BadUserName
from control.group_refresh import GroupRefresh
from control.hub import build_hub
from control.informer import Informer
from control.k8s import KubeApi, connect_kube, ensure_namespace
from control.manifests import POD_SELECTOR, pod_user
from control.oauth_codes import SpentCodes
from control.oauth_grants import OAuthGrants
from control.progress import SpawnProgress
from control.record_store import UserRecordStore
from control.route_sync import PodRoutes
from control.session_gate import SessionGate
from control.settings import AuthSettings
from control.singleuser_hub import SingleuserHub
from control.singleuser_tokens import ServerTokens
from control.spawner import Spawner
from control.user_records import RECORD_SELECTOR
from control.user_tokens import UserTokens
from control.users import UserDirectory
from control.web.body_arrival import BodyLimits
from control.web.context import Hub
from control.web.identity import CookieSettings, SessionCookies
from edge.settings import parse_networks
from kubesim.cluster import DEFAULT_NAMESPACES, SimCluster
from kubesim.kubelet import KubeletConfig, SimKubelet
from kubesim.kubelet.config import user_state_dir
from kubesim.kubelet.users import closed_to_others, runs_as_root
from metrics import ControlMetrics, ControlSources
from podgate.config import Config
from podgate.schema import ConfigError
from routes import RouteTable

log = logging.getLogger("podgate")

# A full relist of a big namespace decodes megabytes in one go (tens of ms of a
# stalled loop at 1,000 pods); the watch itself is resumed every few seconds and
# guarded against going silent, so the relist is only a rare safety net.
RELIST_SECONDS = 300.0
# Events are only read for progress messages of starts under way; a real API
# server keeps an hour of them, so the cache is bounded (oldest out).
MAX_EVENTS_CACHED = 2_000


def jupyter_program() -> list[str]:
    """How the embedded kubesim runs the default image: JupyterLab, else Jupyter Server."""
    # No --allow-root: run as root, kubesim gives each pod an unprivileged user of its own.
    for module in ("jupyterlab", "jupyter_server"):
        if importlib.util.find_spec(module) is not None:
            return [sys.executable, "-m", module]
    log.warning(
        "neither jupyterlab nor jupyter_server is installed: user servers of the default "
        "image cannot start (pip install 'podgate[local]')"
    )
    return [sys.executable, "-m", "jupyterlab"]


def embedded_cluster(config: Config) -> SimCluster:
    program = jupyter_program()
    closed = closed_to_others(Path(program[0]).parent) if runs_as_root() else None
    if closed is not None:
        log.warning(
            "user servers run as users of their own, who cannot run %s: %s is closed to "
            "other users (install podgate where every user may read it)",
            program[0],
            closed,
        )
    kubelet = SimKubelet(
        # state_dir: a podgate killed earlier left its users' servers running; end them.
        KubeletConfig(image_commands={config.spawner.image: program}, state_dir=user_state_dir())
    )
    namespaces = (*DEFAULT_NAMESPACES, config.spawner.namespace)
    return SimCluster(kubelet=kubelet, namespaces=dict.fromkeys(namespaces))


def cookie_settings(config: Config) -> CookieSettings:
    """The hub's cookies; the edge is told their names too, so pods cannot set them."""
    return CookieSettings(
        session_name=config.session.cookie_name,
        session_max_age=config.session.max_age_seconds,
        trusted_proxies=parse_networks(config.edge.trusted_proxies),
    )


@dataclass
class ControlPlane:
    """The running control plane of one podgate process."""

    config: Config
    table: RouteTable
    sessions: SessionCookies
    cookie_secret: str
    kube: KubeApi | None = None
    pods: Informer | None = None
    events: Informer | None = None
    records: Informer | None = None  # the per-user records (sign-outs, who exists)
    record_store: UserRecordStore | None = None
    gate: SessionGate | None = None  # asked by the edge and the hub on every request
    spawner: Spawner | None = None
    progress: SpawnProgress = field(default_factory=SpawnProgress)
    metrics: ControlMetrics | None = None  # observers and scrape-time sources are wired to it
    activity: ActivityTracker | None = None
    culler: IdleCuller | None = None
    on_cull: CullObserver | None = None  # metrics: once per culled server, with the reason
    hub: Hub | None = None
    singleuser: SingleuserHub | None = None  # the hub side of jupyterhub-singleuser pods
    user_tokens: UserTokens | None = None  # personal API tokens, from the user records
    groups: GroupRefresh | None = None  # identity-provider groups re-read (auth.kind oidc)

    def token_user(self, token: str) -> str | None:
        """The edge's question: whom a personal API token lets use servers (None: nobody)."""
        if self.hub is None:
            return None
        try:
            caller = personal_caller(self.hub, token)
        except ApiError:
            return None  # expired, or its user may no longer sign in
        return caller.name if caller is not None and caller.may("access:servers") else None

    def server_users(self) -> list[str]:
        """Users who have a pod now, as the pod watch sees it."""
        pods = self.pods.cache.values() if self.pods is not None else ()
        return [user for user in map(pod_user, pods) if user is not None]

    def is_synced(self) -> bool:
        """Both watches listed: routes, and every sign-out (no revoked cookie let in at start)."""
        return all(w is not None and w.synced.is_set() for w in (self.pods, self.records))

    async def start(self, cluster: SimCluster | None) -> web.Application:
        """Connect, start watching, and return the hub app for the edge to serve."""
        config = self.config
        namespace = config.spawner.namespace
        observer = self.metrics.kube_request_observed if self.metrics is not None else None
        if cluster is not None:
            self.kube = await connect_kube(
                kubeconfig=cluster.kubeconfig(namespace), observer=observer
            )
        else:
            self.kube = await connect_kube(
                observer=observer,
                kubeconfig=config.cluster.kubeconfig,
                context=config.cluster.context,
                in_cluster=config.cluster.kubeconfig is None,
            )
        if cluster is not None:
            await ensure_namespace(self.kube, namespace)
        self.pods = Informer(
            self.kube,
            "pods",
            namespace,
            label_selector=POD_SELECTOR,
            backoff_max=10.0,
            restart_seconds=RELIST_SECONDS,
        )
        self.pods.add_listener(PodRoutes(self.table, config.spawner.port))
        self.events = Informer(
            self.kube,
            "events",
            namespace,
            field_selector="involvedObject.kind=Pod",
            name="events",
            restart_seconds=RELIST_SECONDS,
            max_cached=MAX_EVENTS_CACHED,
        )
        self.record_store = UserRecordStore(self.kube, namespace)
        self.records = Informer(
            self.kube,
            "configmaps",
            namespace,
            label_selector=RECORD_SELECTOR,
            name="user-records",
            backoff_max=10.0,
            restart_seconds=RELIST_SECONDS,
        )
        self.records.add_listener(self.record_store.observe)
        # Always on (cheap): a reload may turn spawner.hub_api on for new pods, and pods
        # started with it keep their tokens after it is turned off.
        server_tokens = ServerTokens()
        self.pods.add_listener(server_tokens.observe)
        spent_codes = SpentCodes(self.kube, namespace)
        self.records.add_listener(spent_codes.observe)
        self.user_tokens = UserTokens(self.kube, namespace)
        self.records.add_listener(self.user_tokens.observe)
        self.spawner = Spawner(
            self.kube,
            config.spawner,
            self.pods,
            self.events,
            self.progress,
            observer=self.metrics.spawn_observed if self.metrics is not None else None,
        )
        # After the route listener: it sees each new route before traffic can reach it.
        self.activity = ActivityTracker(
            self.table,
            self.pods,
            self.kube,
            namespace=namespace,
            pod_name_prefix=config.spawner.pod_name_prefix,
            interval=config.culler.activity_every,
        )
        self.singleuser = SingleuserHub(
            server_tokens,
            OAuthGrants(config.session.cookie_secrets or (self.cookie_secret,)),
            spent_codes,
            self.activity.report,
        )
        await self.pods.start()
        await self.events.start()
        await self.records.start()
        await self.activity.start()
        secrets_ = config.session.cookie_secrets or (self.cookie_secret,)
        authenticator = authenticator_for(config.auth, secrets_)
        if isinstance(authenticator, DummyAuthenticator):
            # The password itself goes to stdout (podgate.welcome), never into a log.
            log.warning(
                "dummy authenticator (not for production): any user name signs in with "
                "the shared password printed on stdout at start"
            )
        access = build_access(config.auth, self.record_store.groups)
        self.gate = SessionGate(access, accounts_of(authenticator), self.record_store)
        gate = self.gate
        self.record_store.on_sign_out = lambda _user: gate.changed()
        hub = Hub(
            sessions=self.sessions,
            cookies=cookie_settings(config),
            authenticator=authenticator,
            access=access,
            throttle=build_throttle(config.auth),
            csrf=CsrfTokens(self.cookie_secret),
            known_browsers=KnownBrowsers([self.cookie_secret]),
            spawner=self.spawner,
            progress=self.progress,
            profiles=config.spawner.profiles,
            trusted_proxies=parse_networks(config.edge.trusted_proxies),
            users=UserDirectory(
                configured_users(config.auth, authenticator),
                server_users=self.server_users,
                recorded_users=self.record_store.users,
            ),
            records=self.record_store,
            gate=self.gate,
        )
        hub.activity = self.activity
        hub.admin_access = config.edge.admin_access
        hub.api_tokens = api_tokens(config)
        hub.singleuser = self.singleuser
        hub.user_tokens = self.user_tokens
        hub.redirect_login = authenticator if isinstance(authenticator, OidcLogin) else None
        self.hub = hub
        # Always there (idle without an identity provider): a reload may switch to one.
        self.groups = GroupRefresh(
            self.record_store,
            lambda: hub.redirect_login,
            lambda: hub.access,
            session_max_age=config.session.max_age_seconds,
        )
        await self.groups.start()
        if config.culler.enabled:
            self.culler = IdleCuller(
                self.spawner,
                self.activity,
                config.culler,
                is_admin=hub.access.is_admin,
                observer=self.on_cull,
            )
            await self.culler.start()
        if self.metrics is not None:
            hub.on_login = self.metrics.login_observed
            self.metrics.track(control_sources(self, hub))
        limits = BodyLimits(
            timeout=config.edge.hub_body_timeout,
            per_address=config.edge.incomplete_per_address,
        )
        return build_hub(hub, limits)

    def reload(self, config: Config) -> None:
        """Apply the reloadable settings of `config` (podgate.reload decides which those are).

        Everything new is built first; a ConfigError leaves the running settings
        untouched, and only then are they swapped, so nothing is half applied.
        Sessions, open connections, the login throttle's counts and spawns under
        way are kept (sessions of users no longer allowed are refused from their
        next request: the session gate); new spawner settings apply to pods
        started from now on.
        """
        hub = self.hub
        if hub is None:  # proxy-only: nothing of the control plane runs
            self.config = config
            return
        secrets_ = config.session.cookie_secrets or (self.cookie_secret,)
        groups_of = self.record_store.groups if self.record_store is not None else None
        try:
            authenticator = reloaded_authenticator(config.auth, hub.authenticator, secrets_)
            access = build_access(config.auth, groups_of)
            users = configured_users(config.auth, authenticator)
            UserDirectory(users)  # every name checked before anything is swapped
        except (ValueError, BadUserName) as e:
            raise ConfigError("auth", str(e)) from e
        tokens = api_tokens(config)
        hub.authenticator, hub.access, hub.api_tokens = authenticator, access, tokens
        hub.redirect_login = authenticator if isinstance(authenticator, OidcLogin) else None
        if self.gate is not None:  # the next request, at the edge too, meets the new users
            self.gate.update(access, accounts_of(authenticator))
        hub.users.replace_configured(users)
        hub.profiles = config.spawner.profiles
        if self.spawner is not None:
            self.spawner.settings = config.spawner
        if self.culler is not None:
            self.culler.settings = config.culler
            self.culler.is_admin = access.is_admin
        self.config = config

    def add_api_routes(self, app: web.Application) -> None:
        """Mount /hub/api on another app (the ops app) once started."""
        if self.hub is not None:
            add_api_routes(app, self.hub)

    async def stop(self) -> None:
        """Stop watching and close the client; every pod stays as it is."""
        for task in (self.groups, self.culler, self.activity):
            if task is not None:
                await task.stop()
        if self.spawner is not None:
            await self.spawner.close()
        for informer in (self.records, self.events, self.pods):
            if informer is not None:
                await informer.stop()
        if self.kube is not None:
            await self.kube.close()
            self.kube = None


def control_sources(plane: ControlPlane, hub: Hub) -> ControlSources:
    """Where the scrape reads the control plane's figures: the pod watch, the users, activity."""
    spawner, table = hub.spawner, plane.table

    def active_users(since: float) -> int:
        if plane.activity is not None:  # traffic here and at other replicas (pod annotation)
            return plane.activity.active_users(since)
        return len({r.user for r in table if r.user is not None and r.last_activity >= since})

    watches = {"pods": plane.pods, "events": plane.events, "user-records": plane.records}
    return ControlSources(
        running_servers=lambda: len(spawner.running_servers()),
        total_users=lambda: len(hub.users),
        active_users=active_users,
        watches={name: w for name, w in watches.items() if w is not None},
    )


def configured_users(auth: AuthSettings, authenticator: object) -> list[str]:
    """Every user the config names: password users, admins and allowed users."""
    names = [*auth.admins, *auth.allowed_users]
    if isinstance(authenticator, PasswordAuthenticator):
        names.extend(authenticator.usernames)
    return names


def accounts_of(authenticator: object) -> frozenset[str] | None:
    """The only users that exist, when the authenticator lists them (password); else None."""
    if isinstance(authenticator, PasswordAuthenticator):
        return authenticator.usernames
    return None


def authenticator_for(auth: AuthSettings, cookie_secrets: tuple[str, ...]) -> Authenticator:
    """The authenticator of `auth`: for kind oidc, the identity-provider login (its client
    secret read now, from the config, its file or the environment)."""
    if auth.kind == "oidc":
        return build_redirect_login(auth, cookie_secrets, os.environ)
    return build_authenticator(auth)


def reloaded_authenticator(
    auth: AuthSettings, running: object, cookie_secrets: tuple[str, ...] = ()
) -> Authenticator:
    """The authenticator for reloaded `auth`; a generated dummy password survives the reload.

    Only a generated one: when auth.password is removed, the password it set
    must stop working, so a new one is generated (and the reload shows it).
    An identity-provider login whose settings did not change is kept (its
    discovery and keys stay cached).
    """
    if auth.kind == "oidc":
        if isinstance(running, OidcLogin) and running.settings == auth.oidc:
            return running
        return authenticator_for(auth, cookie_secrets)
    if auth.kind == "dummy" and isinstance(running, DummyAuthenticator):
        if auth.password is None and running.generated:
            return running  # else every reload would make (and have to show) a new random one
        if auth.password is not None and auth.password == running.shared_password:
            return running  # unchanged: nothing to announce
    return build_authenticator(auth)


def csrf_secret(cookie_secrets: tuple[str, ...]) -> str:
    """The CSRF key: derived from the first cookie secret so replicas agree; random without one."""
    return cookie_secrets[0] if cookie_secrets else secrets.token_urlsafe(32)


def api_tokens(config: Config) -> ApiTokens:
    """The /hub/api tokens: api_tokens from the config, then those of api_tokens_file."""
    specs = list(config.api_tokens)
    if config.api_tokens_file is not None:
        try:
            specs.extend(read_tokens_file(config.api_tokens_file))
        except ValueError as e:
            raise ConfigError("api_tokens_file", str(e)) from e
    try:
        return ApiTokens(specs)
    except ValueError as e:
        raise ConfigError("api_tokens", str(e)) from e
