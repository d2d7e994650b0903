"""Signing in and out of a real podgate: the login page, authenticators, throttle, logout.

Every test starts a whole podgate (edge, hub, embedded kubesim) on port 0
and drives it with a cookie-keeping Browser, the way a person would.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from hub_kit import PASSWORD, Browser, xsrf_of

from control.auth.hashes import hash_password
from control.pages import INVALID_LOGIN

MakePodgate = Callable[..., Awaitable[Any]]

NOT_ALLOWED = "This account may not use this service."


def _error_text(page: str) -> str:
    return html.unescape(page)


def _kept_name(page: str) -> str | None:
    match = re.search(r'name="username"[^>]*value="([^"]*)"', page) or re.search(
        r'value="([^"]*)"[^>]*name="username"', page
    )
    return html.unescape(match.group(1)) if match else None


async def test_login_page_has_the_form_and_a_csrf_field(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.get("/hub/login")
        page = await response.text()
    assert response.status == 200
    assert 'name="username"' in page and 'name="password"' in page
    assert len(xsrf_of(page)) > 20
    assert response.headers["Content-Type"].startswith("text/html")


async def test_right_password_lands_on_next(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.login("ada", next_url="/hub/home", allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/hub/home"
        home = await browser.get("/hub/home")
        assert home.status == 200
        assert "ada" in await home.text()


async def test_login_with_no_next_starts_the_users_server_and_follows_its_progress(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.login("ada", allow_redirects=False)
        assert response.status == 303
        # Signing in (a POST with the form token) starts the server it leads into.
        assert response.headers["Location"] == "/hub/spawn-pending/ada?next=%2Fuser%2Fada%2F"
        events = await browser.progress("ada", seconds=15)
        assert events[-1].get("ready") is True, events


async def test_login_to_a_stopped_server_with_profiles_leads_to_the_choice(
    make_podgate: MakePodgate,
) -> None:
    profiles = [{"slug": "small", "display_name": "Small"}, {"slug": "big", "display_name": "Big"}]
    pg = await make_podgate({"spawner": {"profiles": profiles}})
    async with Browser(pg.public_url) as browser:
        response = await browser.login("ada", allow_redirects=False)
        assert response.headers["Location"] == "/user/ada/"
        # Nothing runs yet: the edge hands the signed-in user to the spawn page to choose.
        edge = await browser.get("/user/ada/", allow_redirects=False)
        assert edge.status == 302
        assert edge.headers["Location"].startswith("/hub/spawn/ada")
        assert pg.control.spawner.status("ada").state == "stopped"


async def test_a_next_to_another_site_is_not_followed(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.login(
            "ada", next_url="//evil.example/steal", allow_redirects=False
        )
    assert response.status == 303
    assert response.headers["Location"].endswith("next=%2Fuser%2Fada%2F")
    assert "evil" not in response.headers["Location"]


async def test_wrong_password_is_403_with_the_message_and_the_name_kept(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.login("ada", "not the password", allow_redirects=False)
        page = await response.text()
        assert response.status == 403
        assert INVALID_LOGIN in _error_text(page)
        assert _kept_name(page) == "ada"
        assert "not the password" not in page
        # Still signed out: the user's server sends back to login.
        edge = await browser.get("/user/ada/", allow_redirects=False)
        assert edge.headers["Location"].startswith("/hub/login")


async def test_a_bad_user_name_says_what_is_wrong(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.login("ada/../bob", allow_redirects=False)
        page = _error_text(await response.text())
    assert response.status in (400, 403)
    assert "A user name may hold letters, digits and . _ @ + - only, not '/'" in page
    assert "podgate-session" not in response.headers.get("Set-Cookie", "")


async def test_names_differing_in_case_are_one_user(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with Browser(pg.public_url) as browser:
        response = await browser.login("Ada", next_url="/hub/home")
        assert response.status == 200
        assert str(response.url).endswith("/hub/home")
        # "Ada" signed in is "ada": ada's server is theirs, not someone else's.
        edge = await browser.get("/user/ada/", allow_redirects=False)
        assert edge.headers["Location"].startswith("/hub/spawn/ada")


async def test_password_authenticator_with_real_hashes(make_podgate: MakePodgate) -> None:
    users = {"ada": hash_password("ada's secret"), "Bob": hash_password("bob's secret", "bcrypt")}
    pg = await make_podgate({"auth": {"kind": "password", "users": users, "password": None}})
    async with Browser(pg.public_url) as browser:
        good = await browser.login("ADA", "ada's secret", allow_redirects=False)
        assert good.status == 303
        assert good.headers["Location"].startswith("/hub/spawn-pending/ada")
    async with Browser(pg.public_url) as browser:
        good = await browser.login("bob", "bob's secret", allow_redirects=False)
        assert good.status == 303
    async with Browser(pg.public_url) as browser:
        wrong = await browser.login("ada", "bob's secret", allow_redirects=False)
        unknown = await browser.login("carol", "ada's secret", allow_redirects=False)
        # An unknown user fails exactly like a wrong password: nothing tells who exists.
        assert wrong.status == unknown.status == 403
        assert INVALID_LOGIN in _error_text(await wrong.text())
        assert INVALID_LOGIN in _error_text(await unknown.text())


async def test_allowed_users_refuses_everyone_else(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"auth": {"allowed_users": ["ada"]}})
    async with Browser(pg.public_url) as browser:
        refused = await browser.login("mallory", allow_redirects=False)
        assert refused.status == 403
        assert NOT_ALLOWED in _error_text(await refused.text())
        edge = await browser.get("/user/mallory/", allow_redirects=False)
        assert edge.headers["Location"].startswith("/hub/login")
    async with Browser(pg.public_url) as browser:
        allowed = await browser.login("Ada", allow_redirects=False)
        assert allowed.status == 303


class BrowserFrom(Browser):
    """A browser whose connections come from another loopback address (another client)."""

    def __init__(self, base_url: str, address: str) -> None:
        # Browser's own session would connect from 127.0.0.1: make this one instead.
        self.base_url = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        jar = aiohttp.CookieJar(unsafe=True)
        self.session = aiohttp.ClientSession(connector=connector, cookie_jar=jar)


THROTTLED = {"auth": {"free_failures": 2, "max_delay_seconds": 30}}


async def _fail(browser: Browser, name: str, times: int) -> list[int]:
    statuses = []
    for _ in range(times):
        response = await browser.login(name, "wrong", allow_redirects=False)
        statuses.append(response.status)
    return statuses


async def test_failed_logins_for_one_name_are_slowed_from_any_address(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(THROTTLED)
    async with BrowserFrom(pg.public_url, "127.0.0.1") as guesser:
        assert await _fail(guesser, "ada", 2) == [403, 403]
        slowed = await guesser.login("ada", PASSWORD, allow_redirects=False)
        page = _error_text(await slowed.text())
    assert slowed.status == 429
    assert int(slowed.headers["Retry-After"]) >= 1
    assert "Too many failed attempts: wait" in page
    assert _kept_name(page) == "ada"
    # The same name from another client is slowed too (the name is what is guessed).
    async with BrowserFrom(pg.public_url, "127.0.0.2") as other:
        again = await other.login("Ada", PASSWORD, allow_redirects=False)
        assert again.status == 429
        assert "Retry-After" in again.headers


async def test_failed_logins_from_one_address_are_slowed_for_every_name(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(THROTTLED)
    async with BrowserFrom(pg.public_url, "127.0.0.3") as guesser:
        assert await _fail(guesser, "ada", 1) + await _fail(guesser, "bob", 1) == [403, 403]
        slowed = await guesser.login("carol", PASSWORD, allow_redirects=False)
        assert slowed.status == 429
        assert "Too many failed attempts" in _error_text(await slowed.text())
    # Another client signing in as a name nobody guessed is not held up.
    async with BrowserFrom(pg.public_url, "127.0.0.4") as other:
        fine = await other.login("carol", PASSWORD, allow_redirects=False)
        assert fine.status == 303


async def _signed_in(pg: Any, user: str = "ada") -> Browser:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser


async def test_logout_is_a_post_with_the_token_and_ends_the_session(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg) as browser:
        token = await browser.xsrf("/hub/home")
        response = await browser.post("/hub/logout", {"_xsrf": token}, allow_redirects=False)
        assert response.status == 303
        cleared = response.cookies["podgate-session"]
        assert cleared.value == "" and cleared["max-age"] == "0"
        assert cleared["path"] == "/"
        page = await browser.get(response.headers["Location"])
        assert page.status == 200
        edge = await browser.get("/user/ada/", allow_redirects=False)
        assert edge.status == 302
        assert edge.headers["Location"].startswith("/hub/login?next=")
        home = await browser.get("/hub/home", allow_redirects=False)
        assert home.headers["Location"].startswith("/hub/login")


async def test_logout_without_the_token_is_refused(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg) as browser:
        response = await browser.post("/hub/logout", {}, allow_redirects=False)
        assert response.status == 403
        home = await browser.get("/hub/home", allow_redirects=False)
        assert home.status == 200


async def test_get_logout_never_logs_out(make_podgate: MakePodgate) -> None:
    pg = await make_podgate()
    async with await _signed_in(pg) as browser:
        response = await browser.get("/hub/logout", allow_redirects=False)
        # A page whose one button signs out (a POST with the form token).
        assert response.status == 200
        assert "podgate-session" not in response.cookies
        page = await response.text()
        assert '<form method="post" action="/hub/logout"' in page and "Sign out" in page
        home = await browser.get("/hub/home", allow_redirects=False)
        assert home.status == 200
        assert "ada" in await home.text()


def _set_cookie(response: aiohttp.ClientResponse, name: str) -> str:
    found = [v for v in response.headers.getall("Set-Cookie", []) if v.startswith(name + "=")]
    assert len(found) == 1, response.headers.getall("Set-Cookie", [])
    return found[0]


def _attributes(set_cookie: str) -> set[str]:
    return {part.strip().lower() for part in set_cookie.split(";")[1:]}


@pytest.mark.parametrize(
    ("proto", "trusted", "secure"),
    [("https", True, True), ("https", False, False), (None, True, False)],
    ids=["https from a trusted proxy", "https claimed by the client", "plain http"],
)
async def test_cookie_attributes(
    make_podgate: MakePodgate, proto: str | None, trusted: bool, secure: bool
) -> None:
    # Only a trusted proxy's X-Forwarded-Proto marks the cookies Secure.
    pg = await make_podgate({"edge": {"trusted_proxies": ["127.0.0.0/8"]}} if trusted else None)
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    async with Browser(pg.public_url) as browser:
        page = await browser.get("/hub/login", headers=headers)
        xsrf = _attributes(_set_cookie(page, "podgate-xsrf"))
        token = xsrf_of(await page.text())
        # The jar would not send a Secure cookie back over http: hand it over as is.
        binding = page.cookies["podgate-xsrf"].value
        form = {"username": "ada", "password": PASSWORD, "_xsrf": token}
        login = await browser.post(
            "/hub/login",
            form,
            headers={**headers, "Cookie": f"podgate-xsrf={binding}"},
            allow_redirects=False,
        )
        assert login.status == 303, await login.text()
        session = _attributes(_set_cookie(login, "podgate-session"))
    assert {"httponly", "samesite=strict", "path=/hub/"} <= xsrf
    assert {"httponly", "samesite=lax", "path=/"} <= session
    assert ("secure" in xsrf) == ("secure" in session) == secure


async def _fail_from(browser: Browser, name: str, client: str) -> int:
    token = await browser.xsrf("/hub/login")
    form = {"username": name, "password": "wrong", "_xsrf": token}
    headers = {"X-Forwarded-For": client}
    response = await browser.post("/hub/login", form, headers=headers, allow_redirects=False)
    return response.status


async def _login_from(browser: Browser, name: str, client: str) -> int:
    token = await browser.xsrf("/hub/login")
    form = {"username": name, "password": PASSWORD, "_xsrf": token}
    headers = {"X-Forwarded-For": client}
    response = await browser.post("/hub/login", form, headers=headers, allow_redirects=False)
    return response.status


async def test_a_forged_forwarded_for_does_not_escape_the_throttle(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(THROTTLED)
    async with Browser(pg.public_url) as guesser:
        assert await _fail_from(guesser, "ada", "192.0.2.1") == 403
        assert await _fail_from(guesser, "bob", "192.0.2.2") == 403
        # No proxy is trusted: the header is the client's own claim and changes nothing.
        assert await _login_from(guesser, "carol", "192.0.2.3") == 429


async def test_behind_a_trusted_proxy_each_browser_is_throttled_on_its_own(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate({**THROTTLED, "edge": {"trusted_proxies": ["127.0.0.0/8"]}})
    async with Browser(pg.public_url) as ingress:
        assert await _fail_from(ingress, "ada", "192.0.2.1") == 403
        assert await _fail_from(ingress, "bob", "192.0.2.1") == 403
        assert await _login_from(ingress, "carol", "192.0.2.1") == 429
        # Another browser behind the same ingress signs in unhindered.
        assert await _login_from(ingress, "dave", "198.51.100.7") == 303


async def test_guessing_a_users_password_elsewhere_does_not_lock_them_out_of_their_browser(
    make_podgate: MakePodgate,
) -> None:
    # Issue 11, finding 7: five wrong passwords for carol from five addresses made
    # carol's right password wait, from her own browser at a fresh address.
    pg = await make_podgate({**THROTTLED, "edge": {"trusted_proxies": ["127.0.0.0/8"]}})
    async with Browser(pg.public_url) as carol, Browser(pg.public_url) as guesser:
        assert await _login_from(carol, "carol", "198.51.100.1") == 303
        assert await _fail_from(guesser, "carol", "192.0.2.1") == 403
        assert await _fail_from(guesser, "carol", "192.0.2.2") == 403
        # The guesser is slowed, from a new address too (the name is counted) ...
        assert await _login_from(guesser, "carol", "192.0.2.3") == 429
        # ... but carol, signed out, at the browser she signed in from before, is not.
        carol.session.cookie_jar.clear(lambda cookie: cookie.key == "podgate-session")
        assert await _login_from(carol, "carol", "203.0.113.9") == 303
    # A browser that never signed in as carol still waits (guessing from many places).
    async with Browser(pg.public_url) as fresh:
        assert await _login_from(fresh, "carol", "203.0.113.10") == 429
