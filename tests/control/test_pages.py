"""The hub's pages as a browser sees them: well-formed HTML, escaped input, CSRF in every form.

Pages are rendered by the real functions and read back with a strict HTML
parser; nothing is compared as raw strings except what a user would read.
"""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

import pytest

from control.pages import (
    INVALID_LOGIN,
    error_page,
    home_page,
    logged_out_page,
    login_page,
    spawn_failed_page,
    spawn_form_page,
    spawn_pending_page,
    throttled_message,
    too_many_spawns_page,
)
from control.pages.markup import STATIC_DIR
from control.settings import Profile

TOKEN = "csrf-token-123"
HOSTILE = "<script>alert(1)</script>\"onmouseover=alert(2) x='y' &amp;"
HOSTILE_NEXTS = [
    "javascript:alert(3)",
    "//evil.example/",
    "/\\evil.example",
    "https://evil.example/",
]
VOID = {"meta", "link", "input", "img", "br", "hr", "source", "wbr"}


class Page(HTMLParser):
    """A parsed page: its elements with attributes, its text, its forms and nesting errors."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text_parts: list[str] = []
        self.forms: list[tuple[dict[str, str], list[dict[str, str]]]] = []
        self.feed(source)
        self.close()
        if self.stack:
            self.errors.append(f"unclosed: {self.stack}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.elements.append((tag, values))
        if tag == "form":
            self.forms.append((values, []))
        elif tag in ("input", "button") and "form" in self.stack:
            self.forms[-1][1].append({"tag": tag, **values})
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if "script" not in self.stack:
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self.text_parts).split())

    def all(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [
            a
            for t, a in self.elements
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in wanted.items())
        ]

    def one(self, tag: str, **wanted: str) -> dict[str, str]:
        found = self.all(tag, **wanted)
        assert len(found) == 1, f"{len(found)} <{tag} {wanted}> in page"
        return found[0]

    def form(self, action: str) -> list[dict[str, str]]:
        matches = [fields for attrs, fields in self.forms if attrs.get("action") == action]
        assert len(matches) == 1, f"{len(matches)} forms posting to {action}"
        return matches[0]


def field(fields: list[dict[str, str]], name: str) -> dict[str, str] | None:
    return next((f for f in fields if f.get("name") == name), None)


def check_document(source: str) -> Page:
    """What every page must be: well formed, titled, styled from /hub/static, CSP-clean, safe."""
    page = Page(source)
    assert source.startswith("<!doctype html>")
    assert page.errors == []
    assert len(page.all("title")) == 1 and page.all("html", lang="en")
    stylesheet = page.one("link", rel="stylesheet")
    assert stylesheet["href"].startswith("/hub/static/podgate.css")
    # The CSP forbids inline script and style: no <style>, no style=, only external scripts.
    assert not page.all("style")
    for tag, attrs in page.elements:
        assert "style" not in attrs, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("href", "src", "action"):
            value = attrs.get(name, "")
            assert not value.lower().lstrip().startswith(("javascript:", "//", "http")), value
        if tag == "script":
            assert attrs.get("src", "").startswith("/hub/static/")
        if tag == "meta" and attrs.get("http-equiv") == "refresh":
            url = attrs["content"].partition("url=")[2]
            assert url == "" or (url.startswith("/") and not url.startswith("//")), url
    # Every POST form carries the CSRF token.
    for attrs, fields in page.forms:
        if attrs.get("method", "get").lower() == "post":
            token = field(fields, "_xsrf")
            assert token is not None and token["type"] == "hidden", attrs
            assert token["value"] == TOKEN
    assert "<script>alert" not in source
    return page


def every_page() -> dict[str, str]:
    profiles = [
        Profile(slug="small", display_name=HOSTILE, description=HOSTILE),
        Profile(slug="gpu", display_name="GPU", description="One GPU", default=True),
    ]
    events = [{"progress": 10, "message": HOSTILE}, {"progress": 50, "message": "Pulling"}]
    pages = {
        "login": login_page(
            xsrf=TOKEN, next_url=HOSTILE_NEXTS[0], username=HOSTILE, error=HOSTILE, hint=HOSTILE
        ),
        "logged out": logged_out_page(),
        "spawn form": spawn_form_page(
            HOSTILE, profiles=profiles, xsrf=TOKEN, next_url=HOSTILE_NEXTS[1], error=HOSTILE
        ),
        "pending": spawn_pending_page(
            HOSTILE, xsrf=TOKEN, events=events, next_url=HOSTILE_NEXTS[0]
        ),
        "pending failed": spawn_pending_page(
            HOSTILE, xsrf=TOKEN, events=[*events, {"failed": True, "message": HOSTILE}]
        ),
        "pending ready": spawn_pending_page(
            HOSTILE,
            xsrf=TOKEN,
            events=[*events, {"ready": True, "progress": 100}],
            next_url=HOSTILE_NEXTS[2],
        ),
        "failed": spawn_failed_page(
            HOSTILE, xsrf=TOKEN, message=HOSTILE, next_url=HOSTILE_NEXTS[3]
        ),
        "429": too_many_spawns_page(7, retry_url=HOSTILE_NEXTS[0], user=HOSTILE, xsrf=TOKEN),
    }
    for state in ("stopped", "starting", "running", "stopping", "failed"):
        pages[f"home {state}"] = home_page(
            HOSTILE, xsrf=TOKEN, state=state, reason=HOSTILE, choose_profile=True
        )
    for status in (400, 403, 404, 429, 500, 503, 418):
        pages[f"error {status}"] = error_page(
            status, HOSTILE, title=HOSTILE, user=HOSTILE, xsrf=TOKEN
        )
    return pages


@pytest.mark.parametrize(("name", "source"), every_page().items(), ids=every_page().keys())
def test_every_page_is_well_formed_escaped_and_csrf_protected(name: str, source: str) -> None:
    page = check_document(source)
    if name != "logged out":
        # The hostile input reaches the reader as the very text typed, never as markup.
        assert HOSTILE in page.text


def test_signed_in_pages_log_out_with_a_post_form_not_a_link() -> None:
    page = check_document(home_page("ada", xsrf=TOKEN, state="running"))
    assert "Signed in as ada" in page.text
    assert not page.all("a", href="/hub/logout")
    logout = page.form("/hub/logout")
    assert [f["tag"] for f in logout if f["tag"] == "button"] == ["button"]
    assert "Signed in as" not in check_document(login_page(xsrf=TOKEN)).text


def test_login_form_posts_username_password_and_hidden_fields() -> None:
    page = check_document(login_page(xsrf=TOKEN, next_url="/user/ada/lab?x=1"))
    assert "Sign in" in page.text
    fields = page.form("/hub/login")
    assert field(fields, "username") is not None and field(fields, "password") is not None
    assert field(fields, "password")["type"] == "password"
    assert field(fields, "next") == {"tag": "input", "type": "hidden", "name": "next",
                                     "value": "/user/ada/lab?x=1"}  # fmt: skip
    assert not page.all("div", role="alert")


def test_failed_login_keeps_the_name_never_the_password_and_says_why() -> None:
    page = check_document(
        login_page(xsrf=TOKEN, username="ada", error=INVALID_LOGIN, hint="Not for production.")
    )
    assert "Invalid user name or password." in page.text
    fields = page.form("/hub/login")
    assert field(fields, "username")["value"] == "ada"
    assert "value" not in field(fields, "password")
    assert "autofocus" in field(fields, "password")  # the next thing to type
    assert "Not for production." in page.text


@pytest.mark.parametrize("target", HOSTILE_NEXTS)
def test_login_drops_a_next_that_leaves_the_site(target: str) -> None:
    page = check_document(login_page(xsrf=TOKEN, next_url=target))
    assert field(page.form("/hub/login"), "next")["value"] == ""
    assert "evil" not in page.source and "javascript" not in page.source


def test_throttle_message_counts_the_seconds() -> None:
    assert throttled_message(3) == "Too many failed attempts: wait 3 seconds."
    assert throttled_message(0.2) == "Too many failed attempts: wait 1 second."
    page = check_document(login_page(xsrf=TOKEN, username="ada", error=throttled_message(12.4)))
    assert "Too many failed attempts: wait 12 seconds." in page.text


def test_home_offers_what_each_state_allows() -> None:
    stopped = check_document(home_page("ada@x.org", xsrf=TOKEN, state="stopped"))
    assert "Stopped" in stopped.text and "not running" in stopped.text
    assert field(stopped.form("/hub/spawn"), "_xsrf")
    assert not stopped.all("a", href="/user/ada%40x.org/")
    assert not [a for a, _ in stopped.forms if a["action"] == "/hub/stop"]

    running = check_document(home_page("ada@x.org", xsrf=TOKEN, state="running"))
    assert running.one("a", href="/user/ada%40x.org/")
    assert field(running.form("/hub/stop"), "_xsrf")
    assert not [a for a, _ in running.forms if a["action"] == "/hub/spawn"]

    starting = check_document(home_page("ada", xsrf=TOKEN, state="starting"))
    assert starting.one("a", href="/hub/spawn-pending/ada")
    assert starting.one("meta", **{"http-equiv": "refresh"})

    failed = check_document(
        home_page("ada", xsrf=TOKEN, state="failed", reason="The image could not be pulled.")
    )
    assert "The image could not be pulled." in failed.text
    assert failed.form("/hub/spawn")


def test_spawn_form_offers_profiles_with_the_default_checked() -> None:
    profiles = [
        Profile(slug="small", display_name="Small", description="1 CPU, 2 GiB"),
        Profile(slug="large", display_name="Large", description="4 CPU, 16 GiB", default=True),
    ]
    page = check_document(
        spawn_form_page("ada", profiles=profiles, xsrf=TOKEN, next_url="/user/ada/")
    )
    radios = page.all("input", type="radio", name="profile")
    assert [r["value"] for r in radios] == ["small", "large"]
    assert [r["value"] for r in radios if "checked" in r] == ["large"]
    assert "4 CPU, 16 GiB" in page.text and "Small" in page.text
    fields = page.form("/hub/spawn")
    assert field(fields, "next")["value"] == "/user/ada/"
    # Without a default, the first profile is the one checked.
    first = check_document(spawn_form_page("ada", profiles=profiles[:1], xsrf=TOKEN))
    assert [r["value"] for r in first.all("input", type="radio") if "checked" in r] == ["small"]


def test_spawn_pending_shows_progress_so_far_and_refreshes_without_js() -> None:
    events = [
        {"progress": 0, "message": "Server requested"},
        {"progress": 40, "message": "Pulling image"},
        {"progress": 30, "message": "Started container"},
    ]
    page = check_document(
        spawn_pending_page("ada", xsrf=TOKEN, events=events, next_url="/user/ada/tree")
    )
    bar = page.one("progress")
    assert bar["value"] == "40" and bar["max"] == "100"
    items = page.source.split('<ol id="log"', 1)[1].split("</ol>", 1)[0]
    assert items.count("<li>") == 3
    assert items.index("Server requested") < items.index("Pulling image") < items.index("Started")
    body = page.one("body")
    stream, _, token = body["data-progress-url"].partition("?_xsrf=")
    assert stream == "/hub/api/users/ada/server/progress" and token
    assert body["data-next-url"] == "/user/ada/tree"
    assert page.one("script")["src"].startswith("/hub/static/spawn.js")
    assert page.one("meta", **{"http-equiv": "refresh"})["content"] == "2"
    assert "<noscript><meta" in page.source  # only browsers without JS refresh
    assert "hidden" in page.one("div", id="failure")


def test_spawn_pending_after_failure_shows_reason_and_retry_and_stops_refreshing() -> None:
    events = [
        {"progress": 20, "message": "Pulling image"},
        {"progress": 100, "failed": True, "message": "The image cannot be pulled."},
    ]
    page = check_document(spawn_pending_page("ada", xsrf=TOKEN, events=events))
    assert "hidden" not in page.one("div", id="failure")
    assert "The image cannot be pulled." in page.text
    assert field(page.form("/hub/spawn/ada"), "next")["value"] == "/user/ada/"
    assert not page.all("meta", **{"http-equiv": "refresh"})


def test_spawn_pending_when_ready_sends_a_browser_without_js_on() -> None:
    events = [{"progress": 100, "ready": True, "url": "/user/ada/", "message": "Ready"}]
    page = check_document(
        spawn_pending_page("ada", xsrf=TOKEN, events=events, next_url="/user/ada/lab")
    )
    assert page.one("meta", **{"http-equiv": "refresh"})["content"] == "0; url=/user/ada/lab"
    assert page.one("progress")["value"] == "100"
    assert page.one("a", href="/user/ada/lab")


def test_spawn_failed_page_says_why_and_retries_with_a_post() -> None:
    page = check_document(
        spawn_failed_page(
            "ada", xsrf=TOKEN, message="The pod cannot be scheduled: no node has 64 CPUs."
        )
    )
    assert "no node has 64 CPUs" in page.text
    assert field(page.form("/hub/spawn/ada"), "_xsrf")["value"] == TOKEN
    assert page.one("a", href="/hub/home", class_="button")


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (400, "Bad request"),
        (403, "Forbidden"),
        (404, "Not found"),
        (500, "Something went wrong"),
        (503, "Unavailable"),
    ],
)
def test_error_pages_name_the_status_in_words(status: int, title: str) -> None:
    page = check_document(error_page(status))
    assert str(status) in page.text and title in page.text
    assert not page.all("meta", **{"http-equiv": "refresh"})


def test_too_many_spawns_page_says_so_and_retries_by_itself() -> None:
    page = check_document(
        too_many_spawns_page(7.2, retry_url="/hub/spawn/ada?next=%2Fuser%2Fada%2F")
    )
    assert "Too many servers are starting; retrying in 7 seconds" in page.text
    refresh = page.one("meta", **{"http-equiv": "refresh"})
    assert refresh["content"] == "7; url=/hub/spawn/ada?next=%2Fuser%2Fada%2F"
    same_page = check_document(too_many_spawns_page(3))
    assert same_page.one("meta", **{"http-equiv": "refresh"})["content"] == "3"


@pytest.mark.parametrize("render", [logged_out_page, lambda: error_page(404)])
def test_signed_out_pages_have_no_account_bar(render: Callable[[], str]) -> None:
    page = check_document(render())
    assert "Signed in as" not in page.text
    assert not page.forms


def test_every_static_file_a_page_names_exists() -> None:
    source = "".join(every_page().values())
    names = {part.split("?", 1)[0] for part in source.split("/hub/static/")[1:]}
    assert names == {"podgate.css", "podgate.svg", "spawn.js"}
    for name in names:
        assert (STATIC_DIR / name).is_file()
