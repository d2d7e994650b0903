"""Who asked for a server to stop, and why: one log line per stop says so.

An operator reading the log after "my server vanished" needs the one line
that names the server, who stopped it (the user, an admin, the culler, an
API caller) and why. Pure data and words; never logs or does I/O itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

StoppedBy = Literal["user", "admin", "culler", "api", "podgate"]


@dataclass(frozen=True)
class StopCause:
    """`by`: which door the stop came through; `who`: the name behind it; `why`: in words."""

    by: StoppedBy = "podgate"
    who: str = ""
    why: str = ""

    def words(self) -> str:
        """ "by admin root (stop all idle)", "by the idle culler (idle)"..."""
        actor = {
            "user": f"by {self.who}, its user",
            "admin": f"by admin {self.who}",
            "culler": "by the idle culler",
            "api": f"through the API by {self.who}",
            "podgate": "by podgate",
        }[self.by]
        return f"{actor} ({self.why})" if self.why else actor

    def fields(self) -> dict[str, str]:
        """The log record's extra fields (stopped_by, actor, reason)."""
        return {"stopped_by": self.by, "actor": self.who, "reason": self.why}
