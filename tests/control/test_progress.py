"""SpawnProgress: followers see a start's events in order, then live, and stop at the end."""

from __future__ import annotations

import asyncio

from control.progress import ProgressEvent, SpawnProgress


async def collect(progress: SpawnProgress, user: str) -> list[ProgressEvent]:
    async with asyncio.timeout(2.0):
        return [event async for event in progress.follow(user)]


def test_as_json_is_jupyterhubs_format() -> None:
    assert ProgressEvent(40, "Pulling").as_json() == {"progress": 40, "message": "Pulling"}
    ready = ProgressEvent(100, "Server ready", ready=True, url="/user/ada/")
    assert ready.as_json() == {
        "progress": 100,
        "message": "Server ready",
        "ready": True,
        "url": "/user/ada/",
    }
    failed = ProgressEvent(100, "the image x cannot be pulled", failed=True)
    assert failed.as_json() == {
        "progress": 100,
        "message": "the image x cannot be pulled",
        "failed": True,
    }


async def test_follow_replays_then_streams_live_until_ready() -> None:
    progress = SpawnProgress()
    progress.reset("ada")
    progress.publish("ada", ProgressEvent(0, "Requesting a server"))
    progress.publish("ada", ProgressEvent(20, "Found a node"))
    follower = asyncio.create_task(collect(progress, "ada"))
    await asyncio.sleep(0.01)
    progress.publish("ada", ProgressEvent(80, "Started"))
    progress.publish("ada", ProgressEvent(100, "Ready", ready=True, url="/user/ada/"))
    progress.publish("ada", ProgressEvent(90, "late Event after ready"))
    seen = await follower
    assert [e.message for e in seen] == ["Requesting a server", "Found a node", "Started", "Ready"]
    assert seen[-1].ready and seen[-1].url == "/user/ada/"
    # A follower arriving after the end gets the whole story and returns at once.
    assert [e.progress for e in await collect(progress, "ada")] == [0, 20, 80, 100]


async def test_failed_start_ends_the_stream_and_users_are_separate() -> None:
    progress = SpawnProgress()
    progress.reset("ada")
    progress.reset("bob")
    progress.publish("bob", ProgressEvent(10, "bob's"))
    progress.publish("ada", ProgressEvent(100, "the server keeps crashing", failed=True))
    seen = await collect(progress, "ada")
    assert [(e.message, e.failed) for e in seen] == [("the server keeps crashing", True)]
    assert [e.message for e in progress.events("bob")] == ["bob's"]


async def test_progress_never_goes_backwards() -> None:
    progress = SpawnProgress()
    progress.publish("ada", ProgressEvent(60, "Pulled"))
    progress.publish("ada", ProgressEvent(10, "[Warning] Waiting for a node"))
    assert [e.progress for e in progress.events("ada")] == [60, 60]


async def test_a_new_start_replaces_the_old_and_followers_move_on() -> None:
    progress = SpawnProgress()
    progress.reset("ada")
    progress.publish("ada", ProgressEvent(30, "first try"))
    follower = asyncio.create_task(collect(progress, "ada"))
    await asyncio.sleep(0.01)
    progress.reset("ada")
    progress.publish("ada", ProgressEvent(5, "second try"))
    progress.publish("ada", ProgressEvent(100, "Ready", ready=True))
    seen = await follower
    assert [e.message for e in seen] == ["first try", "second try", "Ready"]
    assert [e.message for e in progress.events("ada")] == ["second try", "Ready"]


async def test_follow_waits_for_a_start_that_has_not_begun() -> None:
    progress = SpawnProgress()
    follower = asyncio.create_task(collect(progress, "ada"))
    await asyncio.sleep(0.01)
    assert not follower.done()
    progress.reset("ada")
    progress.publish("ada", ProgressEvent(100, "Ready", ready=True))
    assert [e.message for e in await follower] == ["Ready"]


async def test_a_follower_that_gives_up_leaves_nothing_behind() -> None:
    progress = SpawnProgress()
    follower = asyncio.create_task(collect(progress, "ghost"))
    await asyncio.sleep(0.01)
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)
    assert "ghost" not in progress and len(progress) == 0


async def test_memory_is_bounded_per_start_and_finished_starts_are_forgotten() -> None:
    now = [1000.0]
    progress = SpawnProgress(max_events=5, keep_finished=60.0, clock=lambda: now[0])
    progress.reset("ada")
    for step in range(50):
        progress.publish("ada", ProgressEvent(step, f"step {step}"))
    assert [e.message for e in progress.events("ada")] == [f"step {n}" for n in range(45, 50)]
    # A follower joining late starts at the oldest event still held.
    follower = asyncio.create_task(collect(progress, "ada"))
    await asyncio.sleep(0.01)
    progress.publish("ada", ProgressEvent(100, "Ready", ready=True))
    seen = await follower
    assert [e.message for e in seen] == [*(f"step {n}" for n in range(45, 50)), "Ready"]

    now[0] += 30
    progress.publish("bob", ProgressEvent(0, "bob starts"))
    assert "ada" in progress  # finished 30 s ago: still shown
    now[0] += 31
    progress.publish("bob", ProgressEvent(10, "bob goes on"))
    assert "ada" not in progress and progress.last("ada") is None
    assert "bob" in progress  # not finished: kept however old


async def test_close_ends_every_follower_at_once() -> None:
    progress = SpawnProgress()
    progress.publish("ada", ProgressEvent(10, "Pod created"))
    seen: list[str] = []

    async def follow() -> None:
        async for event in progress.follow("ada"):
            seen.append(event.message)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    assert seen == ["Pod created"] and not follower.done()
    progress.close()
    await asyncio.wait_for(follower, 1)
    assert seen == ["Pod created"]
