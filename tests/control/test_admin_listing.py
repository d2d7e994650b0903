"""The admin listing at scale, its search, sort, filter and pages, escaping, and usage caching.

50,000 users are remembered in the hub's UserDirectory (as sign-ins would
leave them) next to real running servers; each page must render in well
under a second (the bound here is generous for a busy CI machine).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hub_kit import Browser

from control.admin.quantities import format_cpu, format_memory, parse_quantity
from control.admin.usage import PodUsageCache
from control.admin.view import AdminQuery, Listing, ServerRow
from control.k8s import KubeApi
from control.pages.admin import admin_page, confirm_page
from kubesim.cluster import SimCluster

MakePodgate = Callable[..., Awaitable[Any]]
FaultSetter = Callable[[SimCluster, dict[str, Any]], Awaitable[dict[str, Any]]]
USERS = 50_000
PAGE_BOUND_SECONDS = 2.0  # generous: measured well under 0.2 s locally


def _users(page: str) -> list[str]:
    return re.findall(r'<tr data-user="([^"]+)"', page)


async def _timed(browser: Browser, path: str) -> tuple[str, float]:
    began = time.perf_counter()
    response = await browser.get(path)
    seconds = time.perf_counter() - began
    assert response.status == 200, await response.text()
    return await response.text(), seconds


async def test_fifty_thousand_users_page_search_sort_and_filter(make_podgate: MakePodgate) -> None:
    pg = await make_podgate({"auth": {"admins": ["root"]}})
    hub = pg.control.hub
    for i in range(USERS):
        hub.users.remember(f"user-{i:05d}")
    async with Browser(pg.public_url) as runner:
        events = await runner.start_server("user-49999")
        assert events[-1].get("ready")
    async with Browser(pg.public_url) as root:
        await root.login("root", next_url="/hub/home")
        timings = {}
        page, timings["first"] = await _timed(root, "/hub/admin")
        assert _users(page) == ["root"] + [f"user-{i:05d}" for i in range(49)]
        summary = re.search(r'id="admin-summary"[^>]*>([^<]*)<', page)
        assert summary is not None
        assert summary.group(1) == "50,001 users · 1 running · showing 1 to 50 of 50,001"
        assert "Page 1 of 1,001" in page and 'rel="next" href="/hub/admin?page=2"' in page

        page, timings["last page"] = await _timed(root, "/hub/admin?page=1001")
        assert _users(page) == ["user-49999"]
        assert 'rel="prev" href="/hub/admin?page=1000"' in page

        page, timings["search"] = await _timed(root, "/hub/admin?q=USER-4999")
        assert _users(page) == [f"user-4999{i}" for i in range(10)]
        assert 'value="user-4999"' in page

        page, timings["state"] = await _timed(root, "/hub/admin?sort=state")
        assert _users(page)[0] == "user-49999"  # running before the stopped
        page, timings["activity"] = await _timed(root, "/hub/admin?sort=activity&order=desc")
        assert len(_users(page)) == 50
        page, timings["age"] = await _timed(root, "/hub/admin?sort=age&page=3")
        assert len(_users(page)) == 50

        page, timings["name desc"] = await _timed(root, "/hub/admin?order=desc")
        assert _users(page)[:2] == ["user-49999", "user-49998"]

        page, timings["running"] = await _timed(root, "/hub/admin?running=1")
        assert _users(page) == ["user-49999"]
        assert "showing 1 to 1 of 1" in page

        data, timings["data"] = await _timed(root, "/hub/admin/data?q=user-0000&page=1")
        assert '"matched": 10' in data
        shown = {name: f"{seconds * 1000:.0f} ms" for name, seconds in timings.items()}
        print("admin page timings with 50,000 users:", shown)
        assert max(timings.values()) < PAGE_BOUND_SECONDS, timings


def test_the_page_escapes_everything_a_user_or_a_pod_controls() -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    row = ServerRow(
        user="eve",
        state="failed",
        pod="jupyter-eve",
        node=hostile,
        image="kubesim/" + hostile,
        profile=hostile,
        started=time.time() - 90,
        last_activity=time.time() - 30,
        activity_source=hostile,
        pvc=hostile,
        failure="image " + hostile + " cannot be pulled",
    )
    query = AdminQuery(search=hostile)
    listing = Listing(query, (row,), 1, 1, 0, time.time(), usage_known=False)
    page = admin_page(listing, viewer="root", xsrf='x"y', message=hostile)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 7
    assert "usage unavailable" in page
    confirm = confirm_page(
        viewer="root",
        xsrf="t",
        title="Stop " + hostile,
        question=hostile,
        action="/hub/admin/stop",
        fields={"user": hostile},
        button=hostile,
        back="/hub/admin",
        users=[hostile],
    )
    assert "<script>alert" not in confirm and "<img src=x" not in confirm


def test_quantities_read_as_kubernetes_writes_them() -> None:
    assert parse_quantity("250m") == 0.25
    assert parse_quantity("1.5") == 1.5
    assert parse_quantity("12345678n") == 0.012345678
    assert parse_quantity("512Mi") == 512 * 2**20
    assert parse_quantity("1G") == 1e9
    assert parse_quantity("lots") is None and parse_quantity(None) is None
    assert format_cpu(0.25) == "250m" and format_cpu(2.0) == "2" and format_cpu(None) == "—"
    assert format_memory(128 * 2**20) == "128 MiB" and format_memory(1.5 * 2**30) == "1.5 GiB"


async def test_usage_is_cached_and_an_api_fault_shows_unknown(
    cluster: SimCluster, kube: KubeApi, set_faults: FaultSetter
) -> None:
    cache = PodUsageCache(max_age=60.0)
    assert await cache.current(kube, "podgate") == {}  # no pods: nothing measured
    await set_faults(cluster, {"errors": {"list": {"code": 500}}})
    assert await cache.current(kube, "podgate") == {}  # within max_age: no call made
    fresh = PodUsageCache(max_age=60.0)
    assert await fresh.current(kube, "podgate") is None  # unknown, not an error
    await set_faults(cluster, {"reset": True})
    assert await fresh.current(kube, "podgate") is None  # a failure is cached too
    await fresh.close()
    await cache.close()
