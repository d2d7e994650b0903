"""A pod may never plant or read podgate's cookies, whatever shape its cookies take.

A pod is user code. If it could make a browser send ``podgate-session=...``
(cookie tossing), an admin opening that user's server, or any visitor, could
be switched to the pod owner's session; if it could read the session sent to
it, it could steal an admin's. Browsers store a Set-Cookie without a name
(``=podgate-session=x``) as a nameless cookie and send back just its value,
``podgate-session=x`` (RFC 6265bis 5.6; Werkzeug's CVE-2023-23934 is this
shape), so the edge must judge a Set-Cookie by what the browser will send.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest
from reliability_kit import COOKIE_NAME, Gate


def sent_back_as(set_cookie: str) -> str:
    """What a browser sends in Cookie for this Set-Cookie (RFC 6265bis name-value parsing)."""
    pair = set_cookie.split(";", 1)[0]
    name, sep, value = pair.partition("=")
    if not sep:
        return pair.strip()  # no "=": a nameless cookie whose value is the whole pair
    name, value = name.strip(), value.strip()
    return f"{name}={value}" if name else value


# The hub's CSRF cookie: a planted binding, with a token the pod's owner got for it, would
# make the visitor's forms act as the planter chose (control.csrf's residual risk).
XSRF_COOKIE = "podgate-xsrf"
PLANTS: dict[str, str] = {
    "plain": f"{COOKIE_NAME}=planted; Path=/",
    "leading space": f"  {COOKIE_NAME}=planted; Path=/",
    "space before =": f"{COOKIE_NAME} =planted; Path=/",
    "nameless cookie": f"={COOKIE_NAME}=planted; Path=/",
    "nameless cookie with spaces": f" = {COOKIE_NAME}=planted; Path=/",
    "CSRF cookie": f"{XSRF_COOKIE}=planted-binding-0123456789; Path=/hub/",
    "nameless CSRF cookie": f"={XSRF_COOKIE}=planted-binding-0123456789; Path=/hub/",
}
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[n]))
        if n in KNOWN_BUGS
        else n
        for n in PLANTS
    ],
)
async def test_pod_cannot_plant_a_session_cookie(name: str, gate: Gate) -> None:
    plant = PLANTS[name]
    url = f"{gate.url}/user/alice/x?set_cookie={quote(plant)}&set_cookie=theme%3Ddark"
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client,
        client.get(url, headers={"Cookie": gate.cookie("alice")}) as response,
    ):
        assert response.status == 200
        set_cookies = response.headers.getall("Set-Cookie", [])
    assert gate.alice.log.requests, "the pod was not reached"
    assert "theme=dark" in set_cookies  # the pod's own cookies still pass
    planted = [
        c for c in set_cookies if sent_back_as(c).startswith((f"{COOKIE_NAME}=", f"{XSRF_COOKIE}="))
    ]
    assert not planted, planted


async def test_session_sent_in_any_shape_never_reaches_the_pod(gate: Gate) -> None:
    session = gate.cookie("alice").split("=", 1)[1]
    shapes = [
        f"{COOKIE_NAME}={session}",
        f"a=1; {COOKIE_NAME}={session}; b=2",
        f'{COOKIE_NAME}="{session}"',
        f"{COOKIE_NAME} = {session}",
        f"{COOKIE_NAME}={session};{COOKIE_NAME}={session}",
    ]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        for shape in shapes:
            async with client.get(f"{gate.url}/user/alice/y", headers={"Cookie": shape}) as r:
                assert r.status == 200, shape
    for record in gate.alice.log.requests:
        forwarded = " ".join(v for k, v in record["headers"] if k.lower() == "cookie")
        assert session not in forwarded, forwarded
    assert len(gate.alice.log.requests) == len(shapes)
