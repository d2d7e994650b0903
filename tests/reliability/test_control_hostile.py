"""Hostile input against the control plane, through a real podgate and browser-like clients.

CSRF on every form the hub app routes (enumerated from its router, so a new
form cannot slip by untested), open redirects through `next`, markup in
every value a page shows, password guessing, oversized and slow form
bodies, and the security headers and cookie flags of every hub page.
"""

from __future__ import annotations

import asyncio
import re
import time
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
import pytest
from hub_kit import PASSWORD, Browser, xsrf_of

EVIL_MARKUP = "<img src=x onerror=alert(1)>\"'><script>alert(2)</script>"
EVIL_IMAGE = "evil<script>alert(3)</script>"
STALE_WORDS = "This form has expired or was not sent from this site"
# What a refused state-changing call says: the pages' stale form, not signed in,
# not an admin, or the API's JSON for a missing/wrong XSRF token or credentials.
REFUSALS = (
    STALE_WORDS,
    "Sign in first",
    "for admins only",
    "XSRF token missing or wrong",
    "Missing or invalid credentials",
)
EVIL_ORIGIN = "https://evil.example"

PROFILES = [
    {
        "slug": "evil",
        "display_name": EVIL_MARKUP,
        "description": EVIL_MARKUP,
        "image": EVIL_IMAGE,
    },
    {"slug": "plain", "display_name": "Plain", "default": True},
]


def hub_app_of(pg: Any) -> Any:
    # Served on the control plane's loop; the edge relays to it (podgate.hub_link).
    return pg.hub_app


STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
# Authenticated by a server's client secret in the form, never by cookies: a browser's
# session grants nothing there, so there is no cross-site request to forge
# (tests/control/test_hub_api_singleuser.py refuses every exchange without the secret).
NO_COOKIE_AUTH = {("POST", "/hub/api/oauth2/token")}


def state_changing_routes(pg: Any) -> list[tuple[str, str]]:
    """Every (method, path template) of the hub app that may change something."""
    found = set()
    for route in hub_app_of(pg).router.routes():
        if route.method in STATE_CHANGING:
            info = route.resource.get_info()
            found.add((route.method, info.get("path") or info.get("formatter")))
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


async def pods_now(pg: Any) -> set[tuple[str, str, bool]]:
    """(name, uid, being deleted) of every pod in the spawner's namespace."""
    listed = await pg.control.kube.list("pods", pg.config.spawner.namespace)
    return {
        (
            p["metadata"]["name"],
            p["metadata"]["uid"],
            bool(p["metadata"].get("deletionTimestamp")),
        )
        for p in listed.items
    }


async def wait_running(pg: Any, user: str, seconds: float = 10.0) -> None:
    status = await pg.control.spawner.wait(user, seconds)
    assert status.state == "running", status


async def signed_in_as(browser: Browser) -> int:
    response = await browser.get("/hub/home", allow_redirects=False)
    return response.status


# --- CSRF ---------------------------------------------------------------------------


def tampered(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


async def test_the_hub_routes_the_forms_this_suite_knows(make_podgate: Any) -> None:
    pg = await make_podgate()
    assert state_changing_routes(pg) == [
        ("POST", "/hub/admin/sign-out"),
        ("POST", "/hub/admin/start"),
        ("POST", "/hub/admin/stop"),
        ("POST", "/hub/admin/stop-idle"),
        ("POST", "/hub/api/oauth2/token"),
        ("POST", "/hub/api/users"),
        ("DELETE", "/hub/api/users/{name}"),
        ("POST", "/hub/api/users/{name}"),
        ("POST", "/hub/api/users/{name}/activity"),
        ("DELETE", "/hub/api/users/{name}/server"),
        ("POST", "/hub/api/users/{name}/server"),
        ("DELETE", "/hub/api/users/{name}/servers/{server}"),
        ("POST", "/hub/api/users/{name}/servers/{server}"),
        ("DELETE", "/hub/api/users/{name}/sessions"),
        ("POST", "/hub/api/users/{name}/tokens"),
        ("DELETE", "/hub/api/users/{name}/tokens/{token_id}"),
        ("POST", "/hub/delete/{name}/{server}"),
        ("POST", "/hub/login"),
        ("POST", "/hub/logout"),
        ("POST", "/hub/spawn"),
        ("POST", "/hub/spawn/{name}"),
        ("POST", "/hub/spawn/{name}/{server}"),
        ("POST", "/hub/stop"),
        ("POST", "/hub/stop/{name}"),
        ("POST", "/hub/stop/{name}/{server}"),
        ("POST", "/hub/token"),
        ("POST", "/hub/token/{token_id}/revoke"),
    ], "a new state-changing route: the CSRF test below covers it; update this list knowingly"


@pytest.mark.parametrize("attack", ["no token", "swapped", "tampered", "cross-site"])
async def test_every_form_refuses_a_post_without_this_browsers_token(
    make_podgate: Any, attack: str
) -> None:
    # ada is an admin: the admin forms reach their CSRF check for her.
    pg = await make_podgate({"auth": {"admins": ["ada"]}})
    tried = 0
    async with (
        Browser(pg.public_url) as ada,
        Browser(pg.public_url) as bob,
        Browser(pg.public_url) as other_ada,
        Browser(pg.public_url) as stranger,
    ):
        await ada.start_server("ada")  # a running server: stop must not touch it
        await wait_running(pg, "ada")
        # Signed in without heading into a server (signing in starts the server it leads to).
        home = "/hub/home"
        assert (await bob.login("bob", next_url=home, allow_redirects=False)).status == 303
        assert (await other_ada.login("ada", next_url=home, allow_redirects=False)).status == 303
        # bob has no server: spawn must not make one
        for method, path in state_changing_routes(pg):
            if (method, path) in NO_COOKIE_AUTH:
                continue
            for victim, name, attacker in ((ada, "ada", other_ada), (bob, "bob", stranger)):
                before = await pods_now(pg)
                url = path.replace("{name}", name).replace("{server}", "gpu")
                url = url.replace("{token_id}", "a0123456789abcdef")
                own = await victim.xsrf("/hub/home")
                form = {
                    "username": name,
                    "password": PASSWORD,
                    "next": "/hub/home",
                    "user": name,
                    "idle_minutes": "0",
                }
                if attack == "swapped":
                    form["_xsrf"] = await attacker.xsrf(
                        "/hub/home" if attacker is other_ada else "/hub/login"
                    )
                elif attack == "tampered":
                    form["_xsrf"] = tampered(own)
                if attack == "cross-site":
                    # SameSite=Lax kept the victim's cookies home; the attacker's page
                    # carries a token the attacker fetched for themselves.
                    form["_xsrf"] = await stranger.xsrf("/hub/login")
                    async with (
                        aiohttp.ClientSession() as cookieless,
                        cookieless.request(
                            method,
                            pg.public_url + url,
                            data=form,
                            headers={"Origin": EVIL_ORIGIN, "Referer": EVIL_ORIGIN + "/"},
                            allow_redirects=False,
                        ) as response,
                    ):
                        status, body = response.status, await response.text()
                        assert "podgate-session" not in response.cookies
                else:
                    response = await victim.session.request(
                        method,
                        victim.url(url),
                        data=form,
                        headers={"X-XSRFToken": form["_xsrf"]} if "_xsrf" in form else {},
                        allow_redirects=False,
                    )
                    status, body = response.status, await response.text()
                    assert "podgate-session" not in response.cookies
                tried += 1
                assert status == 403, (attack, url, name, status)
                assert any(words in body for words in REFUSALS), (attack, method, url, body)
                await asyncio.sleep(0.05)  # a start or stop would have begun by now
                assert await pods_now(pg) == before, (attack, url, name)
                assert await signed_in_as(victim) == 200, (attack, url, "session lost")
        assert pg.control.spawner.status("bob").state == "stopped"
        assert pg.control.spawner.status("ada").state == "running"
    assert tried == 52


async def test_the_same_forms_act_with_the_right_token(make_podgate: Any) -> None:
    """The control for the refusals above: the own token does start, stop and sign out."""
    pg = await make_podgate()
    async with Browser(pg.public_url) as bob:
        await bob.login("bob")
        token = await bob.xsrf("/hub/home")
        response = await bob.post("/hub/spawn/bob", {"_xsrf": token}, allow_redirects=False)
        assert response.status == 303
        await wait_running(pg, "bob")
        response = await bob.post("/hub/stop/bob", {"_xsrf": token}, allow_redirects=False)
        assert response.status == 303
        for _ in range(50):  # the delete reaches the pod watch within moments
            if all(deleting for _, _, deleting in await pods_now(pg)):
                break
            await asyncio.sleep(0.1)
        assert all(deleting for _, _, deleting in await pods_now(pg))
        response = await bob.post("/hub/logout", {"_xsrf": token}, allow_redirects=False)
        assert response.status == 303
        assert await signed_in_as(bob) == 302


# --- open redirects -----------------------------------------------------------------

HOSTILE_NEXT = [
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http:evil.example",
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "/%5Cevil.example",
    "/%5C%5Cevil.example",
    "\t//evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "////evil.example",
    "/.//evil.example",
    "/./\\evil.example",
    "https:/\\evil.example",
    "/hub/../\\evil.example",
    "\u3002/evil.example",
    "//evil.example%2F@127.0.0.1",
    "//127.0.0.1@evil.example",
]


def browser_target(public_url: str, location: str) -> tuple[str, str]:
    """Where a browser goes with this Location: (scheme, host:port), as a WHATWG parser reads it."""
    cleaned = location.strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08 \x0b\x0c\x0e\x0f")
    for c in "\t\n\r":
        cleaned = cleaned.replace(c, "")
    cleaned = cleaned.replace("\\", "/")  # special schemes read a backslash as a slash
    resolved = urlsplit(urljoin(public_url + "/hub/login", cleaned))
    return resolved.scheme.lower(), resolved.netloc.lower()


def assert_stays_home(public_url: str, location: str | None, where: str) -> None:
    assert location is not None, where
    home = urlsplit(public_url)
    assert browser_target(public_url, location) == (home.scheme, home.netloc), (where, location)


async def test_next_never_sends_a_browser_off_site(make_podgate: Any) -> None:
    pg = await make_podgate()
    url = pg.public_url
    async with Browser(url) as ada, Browser(url) as signing_in:
        await ada.start_server("ada")
        await wait_running(pg, "ada")
        for value in HOSTILE_NEXT:
            q = quote(value, safe="")
            signing_in.session.cookie_jar.clear()  # a new visitor signs in each time
            response = await signing_in.login(
                f"eve{HOSTILE_NEXT.index(value)}", next_url=value, allow_redirects=False
            )
            assert response.status == 303, value
            assert_stays_home(url, response.headers.get("Location"), f"login POST {value!r}")
            response = await ada.get(f"/hub/login?next={q}", allow_redirects=False)
            assert_stays_home(url, response.headers.get("Location"), f"login GET {value!r}")
            response = await ada.get(f"/hub/spawn/ada?next={q}", allow_redirects=False)
            assert_stays_home(url, response.headers.get("Location"), f"spawn GET {value!r}")
            response = await ada.get(f"/hub/spawn-pending/ada?next={q}", allow_redirects=False)
            assert_stays_home(url, response.headers.get("Location"), f"pending GET {value!r}")
            token = await ada.xsrf("/hub/home")
            response = await ada.post(
                "/hub/spawn/ada", {"_xsrf": token, "next": value}, allow_redirects=False
            )
            assert_stays_home(url, response.headers.get("Location"), f"spawn POST {value!r}")


async def test_a_local_next_is_still_honoured(make_podgate: Any) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as ada:
        response = await ada.login("ada", next_url="/hub/home?tab=1", allow_redirects=False)
        assert response.headers["Location"] == "/hub/home?tab=1"


# --- XSS ----------------------------------------------------------------------------


class Markup(HTMLParser):
    """The elements and attributes a browser would build from a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_inert(page: str, hostile: str | None, where: str) -> None:
    """`hostile` shows as text (or an attribute value), never as an element or attribute."""
    markup = Markup()
    markup.feed(page)
    for tag, attrs in markup.tags:
        if tag in ("img", "script"):  # only the hub's own files
            assert (dict(attrs).get("src") or "").startswith("/hub/static/"), (where, tag, attrs)
        for name, value in attrs:
            assert re.fullmatch(r"[a-z][a-z-]*", name), (where, tag, name)
            assert not name.startswith("on"), (where, tag, name)
            if value and name in ("href", "src", "action"):
                assert not value.lower().lstrip().startswith(("javascript:", "data:")), where
    if hostile is None:
        return
    shown = "".join(markup.text) + " ".join(str(v) for _, a in markup.tags for _, v in a)
    assert hostile in shown, (where, "the hostile value should be shown, escaped")


async def test_hostile_values_show_only_as_text(make_podgate: Any) -> None:
    pg = await make_podgate({"spawner": {"profiles": PROFILES}})
    async with Browser(pg.public_url) as ada, Browser(pg.public_url) as eve:
        # A user name that is markup: refused in words, shown escaped.
        response = await eve.login(EVIL_MARKUP)
        assert response.status == 403
        page = await response.text()
        assert_inert(page, EVIL_MARKUP[:20], "login with a markup name")
        # `next` on the login form.
        response = await eve.get("/hub/login?next=" + quote("/hub/" + EVIL_MARKUP, safe=""))
        assert_inert(await response.text(), "Sign in", "login form with markup next")
        await ada.login("ada")
        # Profile names and descriptions from config on the spawn form.
        response = await ada.get("/hub/spawn/ada")
        assert_inert(await response.text(), EVIL_MARKUP, "spawn form")
        # A failure message that quotes the image name.
        token = xsrf_of(await response.text())
        await ada.post("/hub/spawn/ada", {"_xsrf": token, "profile": "evil"})
        events = await ada.progress("ada", 15)
        assert events[-1].get("failed") and EVIL_IMAGE in events[-1]["message"], events[-1]
        for path in ("/hub/spawn/ada", "/hub/home", "/hub/spawn-pending/ada"):
            response = await ada.get(path, allow_redirects=False)
            assert_inert(await response.text(), EVIL_IMAGE, path)
        # A markup user name in a path.
        response = await ada.get("/hub/spawn/" + quote(EVIL_MARKUP, safe=""))
        assert response.status in (400, 403, 404)
        assert_inert(await response.text(), None, "markup user name in the path")


# --- password guessing --------------------------------------------------------------


def browser_from(base_url: str, address: str) -> Browser:
    """A browser whose connections come from another loopback address."""
    browser = Browser(base_url)
    jar = browser.session.cookie_jar
    old = browser.session
    browser.session = aiohttp.ClientSession(
        cookie_jar=jar, connector=aiohttp.TCPConnector(local_addr=(address, 0))
    )
    browser._replaced = old  # type: ignore[attr-defined]
    return browser


async def close_from(browser: Browser) -> None:
    await browser.close()
    await browser._replaced.close()  # type: ignore[attr-defined]


async def test_twenty_guesses_are_slowed_per_name_and_the_right_password_waits(
    make_podgate: Any,
) -> None:
    pg = await make_podgate({"auth": {"free_failures": 5, "max_delay_seconds": 30}})
    guesser = Browser(pg.public_url)
    elsewhere = browser_from(pg.public_url, "127.0.0.2")
    try:
        statuses, waits = [], []
        for i in range(20):
            response = await guesser.login("ada", f"guess {i}", allow_redirects=False)
            statuses.append(response.status)
            if response.status == 429:
                waits.append(int(response.headers["Retry-After"]))
                assert "Too many failed attempts" in await response.text()
        assert statuses[:5] == [403] * 5 and statuses[5:] == [429] * 15, statuses
        assert all(w >= 1 for w in waits)
        # The right password during the wait is refused without being checked.
        response = await guesser.login("ada", PASSWORD, allow_redirects=False)
        assert response.status == 429 and "podgate-session" not in response.cookies
        # Another address for the same name waits too (counted per name) ...
        response = await elsewhere.login("ada", PASSWORD, allow_redirects=False)
        assert response.status == 429 and "Retry-After" in response.headers
        # ... and that address is not held back for someone else's name.
        response = await elsewhere.login("bob", PASSWORD, allow_redirects=False)
        assert response.status == 303
    finally:
        await guesser.close()
        await close_from(elsewhere)


async def test_the_wait_doubles_and_the_right_password_works_once_it_is_over(
    make_podgate: Any,
) -> None:
    pg = await make_podgate({"auth": {"free_failures": 2, "max_delay_seconds": 2}})
    async with Browser(pg.public_url) as guesser:
        for i in range(2):
            assert (await guesser.login("ada", f"x{i}", allow_redirects=False)).status == 403
        seen = []
        for round_ in range(3):  # 1 s, then 2 s, then still 2 s (the cap)
            response = await guesser.login("ada", PASSWORD, allow_redirects=False)
            assert response.status == 429, round_
            wait = int(response.headers["Retry-After"])
            seen.append(wait)
            await asyncio.sleep(wait + 0.1)
            if round_ < 2:
                assert (await guesser.login("ada", "no", allow_redirects=False)).status == 403
        assert seen == [1, 2, 2], seen
        response = await guesser.login("ada", PASSWORD, allow_redirects=False)
        assert response.status == 303 and "podgate-session" in response.cookies


# --- oversized and slow bodies ------------------------------------------------------


# Refused without being read to the end: well inside the 20 s a slow body is given,
# however busy the machine.
NO_HANG = 10.0


async def test_a_one_mebibyte_form_is_refused_quickly(make_podgate: Any) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as eve:
        assert (await eve.login("eve", allow_redirects=False)).status == 303
        token = await eve.xsrf("/hub/home")
        for path in ("/hub/login", "/hub/spawn", "/hub/logout"):
            began = time.monotonic()
            response = await eve.post(
                path, {"_xsrf": token, "username": "eve", "password": "x" * (1 << 20)}
            )
            assert response.status == 413, (path, response.status)
            assert time.monotonic() - began < NO_HANG
        # Many small fields: up to aiohttp's 1,000 an ordinary refusal, beyond it 413; no hang.
        for count, status in ((900, 403), (5000, 413)):
            began = time.monotonic()
            response = await eve.post("/hub/login", {f"f{i}": "v" for i in range(count)})
            assert response.status == status, count
            assert time.monotonic() - began < NO_HANG
        assert (await eve.get("/hub/home", allow_redirects=False)).status == 200


async def test_a_slow_form_body_does_not_hold_up_others(make_podgate: Any) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as slow, Browser(pg.public_url) as other:
        token = await slow.xsrf()
        body = f"username=ada&password={quote(PASSWORD)}&_xsrf={token}".encode()

        async def trickle() -> Any:
            for i in range(0, len(body), 8):  # about 2 s in all
                yield body[i : i + 8]
                await asyncio.sleep(0.1)

        sending = asyncio.ensure_future(
            slow.session.post(
                slow.url("/hub/login"),
                data=trickle(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Content-Length": str(len(body)),
                },
                allow_redirects=False,
            )
        )
        try:
            for _ in range(5):
                began = time.monotonic()
                assert (await other.get("/hub/login")).status == 200
                assert time.monotonic() - began < 0.5
                await asyncio.sleep(0.1)
            response = await asyncio.wait_for(sending, 10)
            assert response.status == 303
            response.release()
        finally:
            sending.cancel()


# --- headers and cookies ------------------------------------------------------------

PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def assert_hardened(response: aiohttp.ClientResponse, where: str) -> None:
    csp = response.headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in csp, (where, csp)
    for name, value in PAGE_HEADERS.items():
        assert response.headers.get(name) == value, (where, name)
    assert response.headers.get("Referrer-Policy") in ("same-origin", "no-referrer"), where


async def test_every_hub_page_carries_the_security_headers(make_podgate: Any) -> None:
    pg = await make_podgate({"spawner": {"profiles": PROFILES}})
    async with Browser(pg.public_url) as ada, Browser(pg.public_url) as anon:
        pages = {}
        pages["login"] = await anon.get("/hub/login")
        pages["logged out"] = await anon.get("/hub/logout")
        pages["stale form (403)"] = await anon.post("/hub/login", {"username": "a"})
        pages["404 under /hub/"] = await anon.get("/hub/no-such-page")
        pages["bad login"] = await anon.login("ada", "wrong")
        await ada.login("ada")
        pages["home"] = await ada.get("/hub/home")
        pages["spawn form"] = await ada.get("/hub/spawn/ada")
        pages["another user's server (403)"] = await ada.get("/hub/spawn/bob")
        token = xsrf_of(await pages["spawn form"].text())
        pages["pending"] = await ada.post("/hub/spawn/ada", {"_xsrf": token, "profile": "evil"})
        await ada.progress("ada", 15)
        pages["failure"] = await ada.get("/hub/spawn/ada")
        assert pages["failure"].status == 503
        for where, response in pages.items():
            assert response.content_type == "text/html", where
            assert_hardened(response, where)
        assert pages["404 under /hub/"].status == 404


async def test_cookies_are_httponly_lax_and_secure_over_tls(make_podgate: Any) -> None:
    # TLS ends at a proxy on loopback, which podgate trusts to say so (X-Forwarded-Proto).
    pg = await make_podgate({"edge": {"trusted_proxies": ["127.0.0.0/8"]}})
    for proto, secure in (("http", False), ("https", True)):
        async with aiohttp.ClientSession() as raw:
            headers = {"X-Forwarded-Proto": proto}
            async with raw.get(pg.public_url + "/hub/login", headers=headers) as page:
                token = xsrf_of(await page.text())
                xsrf_cookie = page.cookies["podgate-xsrf"]
            async with raw.post(
                pg.public_url + "/hub/login",
                data={"username": "ada", "password": PASSWORD, "_xsrf": token},
                headers={**headers, "Cookie": f"podgate-xsrf={xsrf_cookie.value}"},
                allow_redirects=False,
            ) as response:
                assert response.status == 303
                session = response.cookies["podgate-session"]
        for name, cookie in (("session", session), ("xsrf", xsrf_cookie)):
            assert cookie["httponly"], (proto, name)
            assert cookie["samesite"].lower() in ("lax", "strict"), (proto, name)
            assert bool(cookie["secure"]) is secure, (proto, name)
        assert session["samesite"] == "Lax"
