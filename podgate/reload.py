"""Reload the config of a running podgate: on SIGHUP, or when a watched file's content changes.

Reloadable (applied at once, no connection dropped, sessions kept except
those of users the new `auth` no longer allows, refused by the edge and the
hub from their next request on): `auth`
users, users_file, password, kind, admins, allowed_users and oidc; `api_tokens` and
api_tokens_file; `spawner` settings that shape new pods (profiles, image,
cmd, args, env, resources, storage, start_timeout, concurrent_spawn_limit…);
`culler` timeout, every, max_age, concurrency and cull_admin_users;
`log_level`; `reload_poll_seconds`. Everything else (RESTART_ONLY) keeps its
running value and is logged as needing a restart, while the rest applies.

A reload reads and validates everything first; any error (YAML, unknown key,
bad hash, unknown scope, unreadable file) refuses the whole reload, logs it
once with the dotted key, and the running config stays as it was.

Watching polls the content (a SHA-256) of the config file, users_file and
api_tokens_file: a Kubernetes ConfigMap or Secret update swaps a symlink
under the mount, which an inotify watch on the path would miss, and mtime
and size alone can stay the same. This module never restarts a server,
never drops a connection and never logs a setting's value (secrets). A dummy
password the reload generated (auth.password removed) is printed on stdout,
as at start; the log says only that it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.auth import DummyAuthenticator
from podgate.assembly import Podgate
from podgate.config import Config, load_config
from podgate.schema import ConfigError
from podgate.welcome import sign_in_line

log = logging.getLogger("podgate")

# Dotted keys whose running value stays until a restart: what the servers were
# bound with, the cluster and namespace the watches run on, session keys the
# edge was built with, and the login throttle (kept so its counts survive).
# tls too: the listener was built with it (its certificate files reload themselves).
RESTART_ONLY = (
    "listen",
    "ops_listen",
    "tls",
    "log_format",
    "shutdown_grace_seconds",
    "control",
    "cluster",
    "session",
    "edge",
    "routes",
    "proxy_auth_token",
    "spawner.namespace",
    "spawner.pod_name_prefix",
    "spawner.port",
    "culler.enabled",
    "culler.activity_every",
    "auth.free_failures",
    "auth.failure_window_seconds",
    "auth.max_delay_seconds",
)


@dataclass(frozen=True)
class ReloadPlan:
    """What a new config changes: the config to run with, and the keys by their fate."""

    config: Config  # the new config with every restart-only key at its running value
    applied: tuple[str, ...]
    needs_restart: tuple[str, ...]


def changed_keys(old: Any, new: Any, key: str = "") -> list[str]:
    """The dotted keys whose values differ (sections recursed into; values never shown)."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        keys: list[str] = []
        for f in dataclasses.fields(old):
            sub = f"{key}.{f.name}" if key else f.name
            keys.extend(changed_keys(getattr(old, f.name), getattr(new, f.name), sub))
        return keys
    return [key] if old != new else []


def is_restart_only(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESTART_ONLY)


def plan_reload(running: Config, new: Config) -> ReloadPlan:
    """Split the change from `running` to `new`; ConfigError if the mix is not valid."""
    changed = changed_keys(running, new)
    restart = [k for k in changed if is_restart_only(k)]
    config = new
    for key in restart:
        config = _with_value(config, key.split("."), _value(running, key.split(".")))
    # The edge checks admin_access against the admins it was built with.
    if running.edge.admin_access and running.auth.admins != new.auth.admins:
        restart.append("auth.admins (as used by edge.admin_access)")
    applied = [k for k in changed if not is_restart_only(k)]
    return ReloadPlan(config, tuple(applied), tuple(restart))


def _value(obj: Any, path: list[str]) -> Any:
    for name in path:
        obj = getattr(obj, name)
    return obj


def _with_value(obj: Any, path: list[str], value: Any) -> Any:
    name, rest = path[0], path[1:]
    inner = _with_value(getattr(obj, name), rest, value) if rest else value
    return dataclasses.replace(obj, **{name: inner})


def apply_config(podgate: Podgate, new: Config) -> ReloadPlan:
    """Apply `new` to a running podgate; ConfigError (nothing changed) if it cannot be."""
    plan = plan_reload(podgate.config, new)
    if podgate.control is not None:
        before = podgate.control.hub.authenticator if podgate.control.hub else None
        podgate.control.reload(plan.config)
        hub = podgate.control.hub
        if hub is not None and hub.authenticator is not before:
            _announce_dummy(hub.authenticator)
    logging.getLogger().setLevel(plan.config.log_level.upper())
    podgate.config = plan.config
    return plan


def _announce_dummy(authenticator: object) -> None:
    """Say what the reload did to the dummy password: the log says that, stdout shows a new one."""
    if not isinstance(authenticator, DummyAuthenticator):
        return
    if authenticator.generated:
        log.warning(
            "dummy authenticator (not for production): a new generated password is in "
            "effect, printed on stdout; the previous one no longer signs in"
        )
        print(f"podgate: {sign_in_line(authenticator)}", flush=True)
    else:
        log.warning(
            "dummy authenticator (not for production): the password of auth.password is in "
            "effect; the previous one no longer signs in"
        )


def watched_files(config_path: Path | None, config: Config) -> tuple[Path, ...]:
    """The files whose content change triggers a reload."""
    paths = [config_path, config.auth.users_file, config.api_tokens_file]
    return tuple(Path(p) for p in paths if p is not None)


def fingerprint(paths: tuple[Path, ...]) -> dict[Path, str | None]:
    """Each file's content digest (None: unreadable), read through any symlink."""
    seen: dict[Path, str | None] = {}
    for path in paths:
        try:
            seen[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            seen[path] = None
    return seen


class ConfigReloader:
    """One named task that reloads on `request()` (SIGHUP) and on a watched file's change."""

    def __init__(self, podgate: Podgate, config_path: str | Path | None) -> None:
        self.podgate = podgate
        self.config_path = Path(config_path) if config_path is not None else None
        self._wake = asyncio.Event()
        self._seen: dict[Path, str | None] = {}
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Reload soon, changed or not (the SIGHUP handler)."""
        self._wake.set()

    async def start(self) -> None:
        self._seen = await asyncio.to_thread(fingerprint, self._watched())
        self._task = asyncio.create_task(self._run(), name="podgate-config-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self, why: str) -> bool:
        """Read the config and apply it; False (and one log line) if it was refused."""
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
            plan = apply_config(self.podgate, new)
        except ConfigError as e:
            log.error(
                "config reload (%s) refused, the running config stays: %s",
                why,
                e,
                extra={"key": e.key},
            )
            return False
        if plan.needs_restart:
            log.warning(
                "config reload: %s changed but needs a restart; the running value stays",
                ", ".join(plan.needs_restart),
                extra={"needs_restart": list(plan.needs_restart)},
            )
        log.info(
            "config reloaded (%s): %s",
            why,
            ", ".join(plan.applied) if plan.applied else "no reloadable key changed",
            extra={"applied": list(plan.applied)},
        )
        return True

    def _watched(self) -> tuple[Path, ...]:
        return watched_files(self.config_path, self.podgate.config)

    async def _run(self) -> None:
        while True:
            poll = self.podgate.config.reload_poll_seconds or None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            forced = self._wake.is_set()
            self._wake.clear()
            try:
                # Taken before reading, so a change made during the reload is seen next time.
                seen = await asyncio.to_thread(fingerprint, self._watched())
                changed = [str(p) for p, digest in seen.items() if self._seen.get(p) != digest]
                if not forced and not changed:
                    continue
                self._seen = seen
                await self.reload("SIGHUP" if forced else f"{', '.join(changed)} changed")
                if set(self._watched()) != set(seen):  # users_file or api_tokens_file moved
                    self._seen = await asyncio.to_thread(fingerprint, self._watched())
            except Exception:  # a bug here must not end reloading, nor podgate
                log.exception("config reload failed")
