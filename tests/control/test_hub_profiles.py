"""Choosing a server profile on the spawn page, and the choice reaching the user's pod."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Any

from hub_kit import Browser, xsrf_of

MakePodgate = Callable[..., Awaitable[Any]]

PROFILES = {
    "spawner": {
        "profiles": [
            {
                "slug": "small",
                "display_name": "Small server",
                "description": "1 CPU, 1 GiB",
                "image": "kubesim/echo:small",
                "resources": {"cpu_limit": "1", "memory_limit": "1Gi"},
            },
            {
                "slug": "large",
                "display_name": "Large server",
                "description": "4 CPU, 8 GiB",
                "default": True,
                "image": "kubesim/echo:large",
                "resources": {"cpu_request": "2", "cpu_limit": "4", "memory_limit": "8Gi"},
                "extra_labels": {"podgate.io/profile": "large"},
            },
        ]
    }
}


async def _signed_in(pg: Any, user: str) -> Browser:
    browser = Browser(pg.public_url)
    response = await browser.login(user, next_url="/hub/home")
    assert response.status == 200, await response.text()
    return browser


def _checked(page: str) -> list[str]:
    """The values of the radio buttons that are checked."""
    found = []
    for tag in page.split("<input")[1:]:
        tag = tag.split(">", 1)[0]
        if 'name="profile"' in tag and " checked" in tag:
            found.append(tag.split('value="', 1)[1].split('"', 1)[0])
    return found


async def test_spawn_page_offers_both_profiles_with_the_default_checked(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate(PROFILES)
    async with await _signed_in(pg, "ada") as browser:
        response = await browser.get("/hub/spawn")
        page = await response.text()
    assert response.status == 200
    assert "Small server" in page and "Large server" in page
    assert "1 CPU, 1 GiB" in page
    assert _checked(page) == ["large"]
    # Nothing starts before the person chose.
    assert pg.control.spawner.status("ada").state == "stopped"


async def test_an_unknown_profile_is_a_400_with_the_form_again(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(PROFILES)
    async with await _signed_in(pg, "ada") as browser:
        form = xsrf_of(await (await browser.get("/hub/spawn")).text())
        response = await browser.post("/hub/spawn", {"_xsrf": form, "profile": "huge"})
        page = html.unescape(await response.text())
    assert response.status == 400
    assert "there is no profile 'huge'" in page
    assert "Small server" in page and _checked(page) == ["large"]
    assert pg.control.spawner.status("ada").state == "stopped"


async def test_an_admins_refused_choice_posts_again_for_the_same_user(
    make_podgate: MakePodgate,
) -> None:
    pg = await make_podgate({**PROFILES, "auth": {"admins": ["root"]}})
    async with await _signed_in(pg, "root") as admin:
        form = xsrf_of(await (await admin.get("/hub/spawn/bob")).text())
        response = await admin.post("/hub/spawn/bob", {"_xsrf": form, "profile": "huge"})
        page = await response.text()
    assert response.status == 400
    assert 'action="/hub/spawn/bob"' in page


async def _pod(pg: Any, user: str) -> dict[str, Any]:
    return await pg.control.kube.get("pods", "podgate", f"jupyter-{user}")


async def test_the_chosen_profile_lands_on_the_pod(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(PROFILES)
    async with await _signed_in(pg, "ada") as browser:
        form = xsrf_of(await (await browser.get("/hub/spawn")).text())
        started = await browser.post(
            "/hub/spawn", {"_xsrf": form, "profile": "small"}, allow_redirects=False
        )
        assert started.status == 303
        assert started.headers["Location"].startswith("/hub/spawn-pending/ada")
        events = await browser.progress("ada", seconds=15)
        assert events[-1].get("ready") is True
    container = (await _pod(pg, "ada"))["spec"]["containers"][0]
    assert container["image"] == "kubesim/echo:small"
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}


async def test_the_default_profile_is_used_when_none_is_sent(make_podgate: MakePodgate) -> None:
    pg = await make_podgate(PROFILES)
    async with await _signed_in(pg, "bob") as browser:
        form = xsrf_of(await (await browser.get("/hub/spawn")).text())
        started = await browser.post("/hub/spawn", {"_xsrf": form}, allow_redirects=False)
        assert started.status == 303
        await browser.progress("bob", seconds=15)
    pod = await _pod(pg, "bob")
    container = pod["spec"]["containers"][0]
    assert container["image"] == "kubesim/echo:large"
    assert container["resources"]["requests"]["cpu"] == "2"
    assert container["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}
    assert pod["metadata"]["labels"]["podgate.io/profile"] == "large"
