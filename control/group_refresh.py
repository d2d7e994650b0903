"""GroupRefresh: re-read signed-in users' groups at the identity provider, every refresh_seconds.

An identity-provider sign-in that came with a refresh token keeps it,
sealed, in the user's record (control.user_records, control.auth.sealed)
with the groups and when they were read. Each replica runs this task;
a round looks for records whose groups are older than `refresh_seconds`
(of users signed in within the session lifetime) and, for each:

1. claims the refresh by writing the new check time on the record version
   it last saw: a second replica meets 409 Conflict and leaves it alone, so
   a rotating refresh token is used once;
2. asks the provider (refresh grant, id_token and userinfo as at sign-in);
3. writes the groups and the new sealed refresh token; every replica's
   session gate then decides with them on the user's next request. A user
   no longer allowed is also signed out everywhere (the session
   revocation), and so is one whose refresh token the provider refuses
   (the account or the grant is gone). A provider that is down or slow
   changes nothing: the next check is one period later.

Failures are logged at INFO or WARNING; the task never ends on one.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from control.auth.access import UserAccess
from control.auth.oidc import OidcLogin
from control.auth.sign_in_errors import SignInFailed
from control.errors import KubeError
from control.record_store import UserRecordStore
from control.tasks import BackgroundTask, rounds
from control.user_records import GROUPS_CHECKED, UserRecord, groups_data

log = logging.getLogger(__name__)

REFUSED_BY_PROVIDER = ("provider_refused", "groups_overage", "token")


class GroupRefresh:
    """The periodic group check of one replica; `login` and `access` follow reloads."""

    def __init__(
        self,
        records: UserRecordStore,
        login: Callable[[], OidcLogin | None],
        access: Callable[[], UserAccess],
        *,
        session_max_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._records = records
        self._login = login
        self._access = access
        self._session_max_age = session_max_age
        self._clock = clock
        self._task = BackgroundTask("group-refresh", self._run)

    def _interval(self) -> float:
        login = self._login()
        period = login.settings.refresh_seconds if login is not None else 0.0
        # Several looks per period, with jitter so replicas rarely look at once.
        base = min(period / 2, 30.0) if period > 0 else 30.0
        return max(0.2, base) * random.uniform(0.8, 1.2)

    async def _run(self) -> None:
        await rounds(self._interval, self.check_all, log)

    async def start(self) -> None:
        await self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    def due(self, now: float) -> list[UserRecord]:
        """Records whose groups are older than the period, of users still signed in."""
        login = self._login()
        if login is None or login.settings.refresh_seconds <= 0:
            return []
        period = login.settings.refresh_seconds
        return [
            r
            for r in self._records.records()
            if r.refresh is not None
            and not r.removed
            and (r.groups_checked or 0.0) + period <= now
            and (r.last_login or 0.0) + self._session_max_age > now
            and r.not_before <= (r.last_login or 0.0)  # not signed out since
        ]

    async def check_all(self) -> None:
        now = self._clock()
        for record in self.due(now):
            await self.check(record, now)

    async def check(self, record: UserRecord, now: float) -> None:
        login = self._login()
        if login is None or record.refresh is None:
            return
        user = record.user
        try:
            claimed = await self._records.claim(user, {GROUPS_CHECKED: str(int(now))})
        except KubeError as e:
            log.warning("groups of %s: the record could not be claimed: %s", user, e)
            return
        if not claimed:
            return  # another replica is at it, or the record moved on
        refresh = login.sealer.open(record.refresh)
        if refresh is None:  # sealed under a secret no longer configured
            await self._end(user, "its refresh token cannot be opened with the cookie secrets")
            return
        try:
            async with asyncio.timeout(60):
                groups, kept = await login.refreshed(refresh)
        except SignInFailed as e:
            if e.reason.startswith(REFUSED_BY_PROVIDER):
                await self._end(user, f"the provider refused the refresh ({e.reason})")
            else:
                log.warning("groups of %s not re-read (%s); trying next period", user, e.reason)
            return
        try:
            await self._records.groups_read(
                user, groups_data(groups, self._clock(), login.sealer.seal(kept))
            )
        except KubeError as e:
            log.warning("groups of %s read but not recorded: %s", user, e)
            return
        if not self._access().is_allowed(user, groups):
            await self._end(user, "no longer in an allowed group")
        else:
            log.info("groups of %s re-read: %s", user, ", ".join(sorted(groups)) or "none")

    async def _end(self, user: str, why: str) -> None:
        log.info("signing %s out everywhere: %s", user, why)
        try:
            await self._records.sign_out_everywhere(user, forget_refresh=True)
        except KubeError as e:
            log.warning("%s could not be signed out everywhere: %s", user, e)
