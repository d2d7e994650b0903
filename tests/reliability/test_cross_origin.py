"""A page of another origin cannot use a user's server with the user's cookie.

The edge adds the pod's token upstream, so the server's own XSRF and Origin
checks are skipped: before the edge checked origins itself, a POST to
/user/bob/api/terminals and a terminal WebSocket with bob's cookie and
`Origin: http://evil.example` reached bob's server (201 and 101). Here the
same requests go through podgate as `podgate run` assembles it, in both
modes, and must be refused before bob's pod sees them, while bob's own pages
and scripts keep working.
"""

from __future__ import annotations

import aiohttp
import pytest
from reliability_kit import Gate

EVIL = "http://evil.example"
SIBLING = "http://notebooks.evil.127.0.0.1.nip.io"  # same site, another origin


@pytest.mark.parametrize("origin", [EVIL, SIBLING])
async def test_another_origin_can_neither_post_nor_open_a_websocket(
    gate: Gate, origin: str
) -> None:
    headers = {"Cookie": gate.cookie("bob"), "Origin": origin}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        async with client.post(
            f"{gate.url}/user/bob/api/terminals", headers=headers, json={}
        ) as response:
            assert response.status == 403
            assert "Cross-origin request refused" in await response.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(f"{gate.url}/user/bob/terminals/websocket/1", headers=headers)
        assert refused.value.status == 403
    assert gate.bob.log.requests == []
    assert gate.bob.log.websockets == 0


async def test_own_pages_and_scripts_keep_working(gate: Gate) -> None:
    cookie = {"Cookie": gate.cookie("bob")}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
        own = {**cookie, "Origin": gate.url}
        async with client.post(f"{gate.url}/user/bob/api/terminals", headers=own) as response:
            assert response.status == 200
        async with client.ws_connect(f"{gate.url}/user/bob/ws", headers=own) as ws:
            await ws.send_str("hi")
            assert (await ws.receive(timeout=5)).data == "bob:hi"
        # A script: no Origin at all, or its own token whatever Origin it claims.
        async with client.post(f"{gate.url}/user/bob/api/contents", headers=cookie) as response:
            assert response.status == 200
        script = {**cookie, "Origin": EVIL, "Authorization": "token from-a-script"}
        async with client.delete(f"{gate.url}/user/bob/api/x", headers=script) as response:
            assert response.status == 200
    assert [r["method"] for r in gate.bob.log.requests] == ["POST", "POST", "DELETE"]
    assert gate.bob.log.websockets == 1
