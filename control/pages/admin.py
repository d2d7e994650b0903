"""The admin panel's pages: the server listing (/hub/admin) and the confirmation page.

The listing works without JavaScript (links for sort and pages, a GET form
for search and filter, a refresh every 15 s under <noscript>); with it,
static/admin.js swaps in the fragments of /hub/admin/data every few
seconds. Every action goes through a confirmation page holding the POST
form with the CSRF token, so nothing is started or stopped by a link.
Renders only, escaping every value a user or a pod spec controls.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from urllib.parse import urlencode

from control.admin.quantities import format_cpu, format_memory
from control.admin.view import SORT_LABELS, AdminQuery, Listing, ServerRow, SortKey
from control.pages.markup import (
    XSRF_FIELD,
    attr,
    hidden,
    key_path,
    layout,
    notice,
    server_url,
    static_url,
    text,
)

ADMIN_PATH = "/hub/admin"
DATA_PATH = "/hub/admin/data"
CONFIRM_PATH = "/hub/admin/confirm"
NOSCRIPT_REFRESH_SECONDS = 15
IDLE_CHOICES_MINUTES = (15, 30, 60, 120, 240, 480, 1440)
_STATE_WORDS = {
    "stopped": "Stopped",
    "starting": "Starting",
    "running": "Running",
    "stopping": "Stopping",
    "failed": "Failed",
}
_NONE = '<span class="quiet">—</span>'
_COLUMNS: tuple[tuple[str, SortKey | None], ...] = (
    ("User", "name"),
    ("State", "state"),
    ("Pod · node", None),
    ("Image · profile", None),
    ("Age", "age"),
    ("Last activity", "activity"),
    ("CPU used / requested", None),
    ("Memory used / requested", None),
    ("Storage", None),
    ("", None),
)


def duration(seconds: float) -> str:
    """ "42 s", "5 min", "3 h 20 min", "2 d 4 h": short enough for a table cell."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _iso(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat(timespec="seconds")


def _moment(moment: float | None, now: float, *, suffix: str = "") -> str:
    if moment is None:
        return '<span class="quiet">—</span>'
    return (
        f'<time datetime="{attr(_iso(moment))}" title="{attr(_iso(moment))}">'
        f"{text(duration(now - moment))}{text(suffix)}</time>"
    )


def _pair(used: str, requested: str) -> str:
    return f'{text(used)} <span class="quiet">/ {text(requested)}</span>'


def _action_link(action: str, user: str, back: AdminQuery, label: str, kind: str) -> str:
    query = urlencode({"action": action, "user": user, "back": back.query_string()})
    return (
        f'<a class="button button-quiet {attr(kind)}" href="{attr(CONFIRM_PATH)}?{attr(query)}"'
        f' data-confirm="{attr(action)}" data-user="{attr(user)}">{text(label)}</a>'
    )


def _row(row: ServerRow, listing: Listing) -> str:
    now = listing.now
    state = row.state if row.state in _STATE_WORDS else "stopped"
    # The name leads only where the admin may go: the server itself needs the
    # edge's admin_access; a start's progress page is open to every admin.
    user_cell = _breakable(row.user)
    if state == "running" and listing.open_servers:
        user_cell = f'<a href="{attr(server_url(row.user))}">{user_cell}</a>'
    elif state == "starting":
        user_cell = f'<a href="/hub/spawn-pending/{key_path(row.user)}">{user_cell}</a>'
    failure = f'<div class="admin-failure">{text(row.failure)}</div>' if row.failure else ""
    pod = (
        _breakable(row.pod) + (f'<div class="quiet">{text(row.node)}</div>' if row.node else "")
        if row.pod
        else '<span class="quiet">—</span>'
    )
    image = _breakable(row.image) if row.image else '<span class="quiet">—</span>'
    if row.profile:
        image += f'<div class="quiet">{text(row.profile)}</div>'
    activity = _moment(row.last_activity, now, suffix=" ago")
    if row.activity_source:
        activity += f'<div class="quiet">{text(row.activity_source)}</div>'
    if state in ("running", "starting"):
        action = _action_link("stop", row.user, listing.query, "Stop…", "button-danger")
    elif state == "stopping":
        action = ""
    else:
        action = _action_link("start", row.user, listing.query, "Start…", "")
    # Ends every session of the user at every replica; the server keeps running.
    # A named server's row ("<user>/<server>") has no sign-out of its own.
    if "/" not in row.user:
        action += _action_link("sign-out", row.user, listing.query, "Sign out…", "")
    cells = (
        _cell(0, f'<span class="badge state-{state}">{_STATE_WORDS[state]}</span>{failure}'),
        _cell(1, pod),
        _cell(2, image),
        _cell(3, _moment(row.started, now)),
        _cell(4, activity),
        _cell(5, _pair(format_cpu(row.cpu_used), format_cpu(row.cpu_request))),
        _cell(6, _pair(format_memory(row.memory_used), format_memory(row.memory_request))),
        _cell(7, text(row.pvc) if row.pvc else _NONE),
    )
    return (
        f'<tr data-user="{attr(row.user)}" data-state="{state}">'
        f'<th scope="row" class="admin-user">{user_cell}</th>{"".join(cells)}'
        f'<td class="admin-actions">{action}</td></tr>'
    )


def _cell(column: int, content: str) -> str:
    """A data cell; on a narrow screen its column's name shows beside it (data-label, CSS)."""
    label = _COLUMNS[column + 1][0]
    return f'<td data-label="{attr(label)}"><div>{content}</div></td>'


def _breakable(value: str) -> str:
    """`value` as text that may wrap after / @ - : (names, images), never inside a word."""
    escaped = text(value)
    for mark in ("/", "@", "-", ":"):
        escaped = escaped.replace(mark, mark + "<wbr>")
    return escaped


def rows_fragment(listing: Listing) -> str:
    """The table body: one row per user of the page (swapped in whole by admin.js)."""
    if not listing.rows:
        empty = "No user matches." if listing.query.search else "No users."
        return f'<tr><td colspan="{len(_COLUMNS)}" class="quiet">{text(empty)}</td></tr>'
    return "".join(_row(row, listing) for row in listing.rows)


def summary_fragment(listing: Listing) -> str:
    query = listing.query
    first = (query.page - 1) * query.per_page + 1 if listing.rows else 0
    last = first + len(listing.rows) - 1 if listing.rows else 0
    usage = "" if listing.usage_known else " · usage unavailable (no metrics.k8s.io)"
    return text(
        f"{listing.total_users:,} users · {listing.running:,} running · "
        f"showing {first:,} to {last:,} of {listing.matched:,}{usage}"
    )


def pager_fragment(listing: Listing) -> str:
    query = listing.query
    parts = []
    if query.page > 1:
        href = ADMIN_PATH + query.query_string(page=query.page - 1)
        parts.append(
            f'<a class="button button-quiet" rel="prev" href="{attr(href)}">← Previous</a>'
        )
    parts.append(f'<span class="quiet">Page {query.page:,} of {listing.pages:,}</span>')
    if query.page < listing.pages:
        href = ADMIN_PATH + query.query_string(page=query.page + 1)
        parts.append(f'<a class="button button-quiet" rel="next" href="{attr(href)}">Next →</a>')
    return "".join(parts)


def fragments(listing: Listing) -> dict[str, str]:
    """The parts of the page admin.js replaces, by element id."""
    return {
        "admin-rows": rows_fragment(listing),
        "admin-summary": summary_fragment(listing),
        "admin-pager": pager_fragment(listing),
    }


def _header(label: str, key: SortKey | None, query: AdminQuery) -> str:
    if key is None:
        return f'<th scope="col">{text(label)}</th>'
    descending = query.sort == key and not query.descending
    href = ADMIN_PATH + query.query_string(sort=key, descending=descending, page=1)
    sorted_by = ""
    arrow = ""
    if query.sort == key:
        sorted_by = f' aria-sort="{"descending" if query.descending else "ascending"}"'
        arrow = " ↓" if query.descending else " ↑"
    return f'<th scope="col"{sorted_by}><a href="{attr(href)}">{text(label)}{arrow}</a></th>'


def _toolbar(query: AdminQuery) -> str:
    sort_options = "".join(
        f'<option value="{key}"{" selected" if key == query.sort else ""}>{text(label)}</option>'
        for key, label in SORT_LABELS.items()
    )
    order = (
        '<select name="order" aria-label="Order">'
        f'<option value="asc"{"" if query.descending else " selected"}>ascending</option>'
        f'<option value="desc"{" selected" if query.descending else ""}>descending</option>'
        "</select>"
    )
    return (
        f'<form method="get" action="{ADMIN_PATH}" class="admin-toolbar" role="search">'
        '<label>Search <input type="search" name="q" maxlength="64" placeholder="user name"'
        f' value="{attr(query.search)}"></label>'
        f'<label>Sort <select name="sort">{sort_options}</select></label>{order}'
        '<label class="admin-check"><input type="checkbox" name="running" value="1"'
        f"{' checked' if query.running_only else ''}> Running only</label>"
        '<button type="submit" class="button button-quiet">Apply</button></form>'
    )


def _idle_form() -> str:
    options = "".join(
        f'<option value="{m}"{" selected" if m == 60 else ""}>{text(duration(m * 60))}</option>'
        for m in IDLE_CHOICES_MINUTES
    )
    return (
        f'<form method="get" action="{CONFIRM_PATH}" class="admin-idle">'
        '<input type="hidden" name="action" value="stop-idle">'
        f'<label>Stop every server idle for at least <select name="idle_minutes">{options}'
        '</select></label><button type="submit" class="button button-quiet button-danger">'
        "Stop idle servers…</button></form>"
    )


def admin_page(listing: Listing, *, viewer: str, xsrf: str, message: str | None = None) -> str:
    """The whole listing page; `message` reports the action just done."""
    parts = fragments(listing)
    head = (
        f'<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH_SECONDS}"></noscript>'
        f'<script src="{static_url("admin.js")}" defer></script>'
    )
    headers = "".join(_header(label, key, listing.query) for label, key in _COLUMNS)
    main = (
        '<div class="admin-panel">'
        '<div class="admin-heading"><h1>Admin</h1>'
        f'<p id="admin-summary" class="quiet" aria-live="polite">{parts["admin-summary"]}</p></div>'
        + (notice(message, "info") if message else "")
        + _toolbar(listing.query)
        + '<div class="admin-table-wrap"><table class="admin-table">'
        f"<thead><tr>{headers}</tr></thead>"
        f'<tbody id="admin-rows">{parts["admin-rows"]}</tbody></table></div>'
        f'<nav id="admin-pager" class="admin-pager" aria-label="Pages">{parts["admin-pager"]}</nav>'
        + _idle_form()
        + "</div>"
    )
    data_url = DATA_PATH + listing.query.query_string()
    return layout(
        "Admin",
        main,
        user=viewer,
        xsrf=xsrf,
        head=head,
        # admin.js sends the page's token back (X-XSRFToken): the hub serves pages to
        # scripts only when they hold it, so a pod page's script cannot read this one.
        body_data={"admin-data": data_url, "xsrf": xsrf},
    )


def confirm_page(
    *,
    viewer: str,
    xsrf: str,
    title: str,
    question: str,
    action: str,
    fields: dict[str, str],
    button: str,
    back: str,
    users: Sequence[str] = (),
    danger: bool = True,
) -> str:
    """ "Are you sure?" with the POST form (CSRF token, `fields`) and a way back."""
    inputs = hidden(XSRF_FIELD, xsrf) + "".join(hidden(k, v) for k, v in fields.items())
    listed = ""
    if users:
        shown = "".join(f"<li>{text(u)}</li>" for u in users[:50])
        more = f'<li class="quiet">and {len(users) - 50:,} more</li>' if len(users) > 50 else ""
        listed = f'<ul class="admin-confirm-list">{shown}{more}</ul>'
    kind = "button-danger" if danger else "button-primary"
    main = (
        f"<h1>{text(title)}</h1><p>{text(question)}</p>{listed}"
        f'<form method="post" action="{attr(action)}" class="actions">{inputs}'
        f'<button type="submit" class="button {kind}">{text(button)}</button>'
        f'<a class="button" href="{attr(back)}">Cancel</a></form>'
    )
    return layout(title, main, user=viewer, xsrf=xsrf)
