"""The admin panel's plain data: the query a page was asked for and the rows it shows.

Shared by the handlers (which fill it) and control.pages.admin (which
renders it); JSON-ready through `as_json`. No I/O, no aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Literal
from urllib.parse import urlencode

SortKey = Literal["name", "state", "activity", "age"]
SORT_KEYS: tuple[SortKey, ...] = ("name", "state", "activity", "age")
SORT_LABELS: dict[SortKey, str] = {
    "name": "Name",
    "state": "State",
    "activity": "Last activity",
    "age": "Age",
}
PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_SEARCH = 64  # a user name has at most 64 characters


@dataclass(frozen=True)
class AdminQuery:
    """What the admin asked to see: `search` is a substring of the (case-folded) name."""

    search: str = ""
    sort: SortKey = "name"
    descending: bool = False
    running_only: bool = False
    page: int = 1
    per_page: int = PER_PAGE

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AdminQuery:
        """From a query string; anything out of range falls back to the default quietly."""
        sort = params.get("sort", "name")
        return cls(
            search=params.get("q", "").strip().casefold()[:MAX_SEARCH],
            sort=sort if sort in SORT_KEYS else "name",  # type: ignore[arg-type]
            descending=params.get("order") == "desc",
            running_only=params.get("running") in ("1", "on", "true"),
            page=_bounded_int(params.get("page"), 1, 1, 10**9),
            per_page=_bounded_int(params.get("per_page"), PER_PAGE, 1, MAX_PER_PAGE),
        )

    def params(self, **changes: object) -> dict[str, str]:
        """The query string fields of this query (with `changes`), defaults left out."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        out: dict[str, str] = {}
        if query.search:
            out["q"] = query.search
        if query.sort != "name":
            out["sort"] = query.sort
        if query.descending:
            out["order"] = "desc"
        if query.running_only:
            out["running"] = "1"
        if query.page != 1:
            out["page"] = str(query.page)
        if query.per_page != PER_PAGE:
            out["per_page"] = str(query.per_page)
        return out

    def query_string(self, **changes: object) -> str:
        encoded = urlencode(self.params(**changes))
        return f"?{encoded}" if encoded else ""


def _bounded_int(raw: str | None, default: int, low: int, high: int) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return min(max(value, low), high)


@dataclass(frozen=True)
class ServerRow:
    """One user and their server, as the panel shows it. Times are epoch seconds."""

    user: str
    state: str  # stopped | starting | running | stopping | failed
    pod: str | None = None
    node: str | None = None
    image: str | None = None
    profile: str | None = None
    started: float | None = None
    last_activity: float | None = None
    activity_source: str | None = None  # "edge traffic" or "pod annotation"
    cpu_request: float | None = None  # cores
    memory_request: float | None = None  # bytes
    cpu_used: float | None = None
    memory_used: float | None = None
    pvc: str | None = None
    failure: str | None = None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Listing:
    """One page of rows and what it is a page of."""

    query: AdminQuery
    rows: tuple[ServerRow, ...]
    matched: int  # users matching search and filter
    total_users: int
    running: int
    now: float
    usage_known: bool  # metrics.k8s.io answered
    open_servers: bool = False  # edge.admin_access: the admin may open users' servers

    @property
    def pages(self) -> int:
        return max(1, -(-self.matched // self.query.per_page))

    def as_json(self) -> dict[str, object]:
        return {
            "query": self.query.params(),
            "page": self.query.page,
            "pages": self.pages,
            "per_page": self.query.per_page,
            "matched": self.matched,
            "total_users": self.total_users,
            "running": self.running,
            "usage_known": self.usage_known,
            "now": self.now,
            "rows": [row.as_json() for row in self.rows],
        }
