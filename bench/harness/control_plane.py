"""Workload 6: the control plane's spawn storm (bench.md item 6, issue 4).

N users log in and spawn at once; the figures are the time until every one
of them is routed, podgate's CPU seconds per spawn, and the p99 of small
requests to users who were already running, during the storm against idle.

Four processes, so that each figure belongs to one of them:

- the cluster: kubesim, alone (`podgate sim --plain-http`), serving every
  pod from its shared-process echo mode (each pod on its own loopback
  address); or, with server="realkube", a real kube-apiserver with the real
  controller-manager and scheduler and kubesim's kubelet as the node agent
  (bench/harness/real_cluster.py) serving the same echo pods;
- podgate (`podgate run`, cluster kind kube): its /proc CPU is the control
  plane and the edge and nothing else;
- the storm client (`python -m bench.harness.control_plane storm`): N
  browsers, each with its own cookie jar, doing what a person's browser does;
- the probe (`... probe`): signs in the running users first, then sends
  them sequential small GETs and records each latency with a system-wide
  monotonic timestamp, so the orchestrator cuts idle and storm windows.

This module never touches podgate's code or config beyond what a user
would write in the YAML file, never mocks anything, and bounds every wait
in time: a storm that does not end within its deadline is reported with
what it got.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from bench.harness import procs
from bench.harness.peers import default_podgate_cmd
from bench.harness.real_cluster import RealCluster, start_real_cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "bench-storm-password"
COOKIE_SECRET = "bench-storm-cookie-secret-0123456789"
REQUEST_TIMEOUT = 30.0  # one HTTP request; a storm's deadline bounds the whole
_XSRF = re.compile(r'name="_xsrf" value="([^"]+)"')
# A running user's notebook server, as far as the probe cares: its own process on
# the pod's address, answering what the storm's echo pods answer, at the priority
# the probe has (a pod on a node of its own is not waiting for the storm's CPU).
RUNNING_POD = """
import json, os
from aiohttp import web
try:
    os.setpriority(os.PRIO_PROCESS, 0, -10)
except OSError:
    pass
async def answer(request):
    body = {"path": request.path_qs, "pod": os.environ.get("HOSTNAME", "")}
    return web.json_response(body)
app = web.Application()
app.router.add_route("*", "/{tail:.*}", answer)
web.run_app(app, host=os.environ["POD_IP"], port=8888, print=None, access_log=None)
"""
_ENV = {
    "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p
    ),
    "NO_PROXY": "127.0.0.1,localhost",
}


@dataclass(frozen=True)
class SpawnStormResult:
    """One storm's figures; None where a figure could not be measured (see note)."""

    users: int
    seconds_until_all_routed: float | None
    cpu_seconds_per_spawn: float | None
    note: str
    routed: int = 0
    failed: int = 0
    refused_429: int = 0  # answers "too many servers are starting" (each retried)
    routed_p50_seconds: float | None = None  # per user, from its first request
    routed_p99_seconds: float | None = None
    running_users: int = 0
    idle_p99_ms: float | None = None
    storm_p99_ms: float | None = None
    idle_samples: int = 0
    storm_samples: int = 0
    # The cluster's processes: kubesim, or realkube and the node agent.
    cluster_cpu_seconds: float | None = None
    failures: tuple[str, ...] = ()
    server: str = "kubesim"

    @property
    def p99_ratio(self) -> float | None:
        if self.idle_p99_ms and self.storm_p99_ms is not None:
            return self.storm_p99_ms / self.idle_p99_ms
        return None


# -- the browser ----------------------------------------------------------------------------


@dataclass
class UserRun:
    """What happened to one user's log-in-and-spawn."""

    name: str
    started: float = 0.0  # monotonic, first request
    routed_at: float | None = None  # monotonic, the pod answered through the edge
    refused_429: int = 0
    error: str | None = None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def new_browser() -> aiohttp.ClientSession:
    # One cookie jar per user, as one browser per person; unsafe=True keeps
    # cookies for an IP-address host.
    return aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


async def _hop(browser: aiohttp.ClientSession, url: str, run: UserRun) -> str:
    """GET `url` without following redirects, waiting out 429s; the next location or ''.

    A spawn page with a Start button (the sign-in could not start the server,
    e.g. at the spawn limit) is answered as a person would: press Start.
    """
    for _ in range(200):  # 200 refusals of Retry-After >= 1 s outlast any deadline
        async with browser.get(url, allow_redirects=False) as response:
            page = await response.text()
            if response.status == 429:
                run.refused_429 += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status in (301, 302, 303, 307):
                return response.headers["Location"]
            if response.status == 200 and "/hub/spawn/" in url and _START_FORM in page:
                return await _press_start(browser, url, page, run)
            if response.status == 200:
                return ""
            raise RuntimeError(f"GET {url}: {response.status}")
    raise RuntimeError(f"GET {url}: refused 200 times")


_START_FORM = '<form method="post" action="/hub/spawn/'
_NEXT = re.compile(r'name="next" value="([^"]*)"')


async def _press_start(browser: aiohttp.ClientSession, url: str, page: str, run: UserRun) -> str:
    """POST the spawn page's Start form (its token and next); the progress page's location."""
    token, next_url = _XSRF.search(page), _NEXT.search(page)
    if token is None:
        raise RuntimeError(f"{url}: a Start form without its token")
    form = {"_xsrf": token.group(1), "next": html.unescape(next_url.group(1)) if next_url else ""}
    target = url.split("?", 1)[0]
    for _ in range(200):
        async with browser.post(target, data=form, allow_redirects=False) as response:
            await response.read()
            if response.status == 429:
                run.refused_429 += 1
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status == 303:
                return response.headers["Location"]
            raise RuntimeError(f"POST {target}: {response.status}")
    raise RuntimeError(f"POST {target}: refused 200 times")


async def _follow_progress(browser: aiohttp.ClientSession, base: str, name: str) -> None:
    """Read the SSE progress stream to its end; raises unless it ends ready."""
    # The stream wants the form token from a cookie caller, as the spawn page sends it.
    async with browser.get(f"{base}/hub/home") as home:
        token = _XSRF.search(await home.text())
    if token is None:
        raise RuntimeError("progress: no form token on /hub/home")
    url = f"{base}/hub/api/users/{quote(name)}/server/progress?_xsrf={quote(token.group(1))}"
    last: dict[str, Any] = {}
    # As an EventSource asks: the query token counts only for that.
    async with browser.get(url, headers={"Accept": "text/event-stream"}) as response:
        if response.status != 200:
            raise RuntimeError(f"progress: {response.status}")
        async for line in response.content:
            if line.startswith(b"data: "):
                last = json.loads(line[6:])
                if last.get("ready") or last.get("failed"):
                    break
    if not last.get("ready"):
        raise RuntimeError(f"progress ended without ready: {last.get('message')!r}")


async def _reach_pod(browser: aiohttp.ClientSession, base: str, name: str) -> None:
    """GET /user/<name>/ until the echo pod answers (the route may trail ready by a moment)."""
    url = f"{base}/user/{quote(name)}/"
    status = 0
    for _ in range(100):  # 100 x 50 ms: a route that lags ready by 5 s is a failure
        async with browser.get(url, allow_redirects=False) as response:
            body = await response.read()
            status = response.status
            if status == 200:
                answer = json.loads(body)
                if answer.get("path", "").startswith(f"/user/{name}/") and answer.get("pod"):
                    return
                raise RuntimeError(f"routed to something else: {body[:100]!r}")
        await asyncio.sleep(0.05)
    raise RuntimeError(f"not routed after ready: last status {status}")


async def sign_in_running(browser: aiohttp.ClientSession, base: str, run: UserRun) -> None:
    """Sign in a user whose server runs already; the edge then routes them to it."""
    run.started = time.monotonic()
    try:
        name = run.name
        async with browser.get(f"{base}/hub/login") as response:
            match = _XSRF.search(await response.text())
        if match is None:
            raise RuntimeError(f"login page without _xsrf ({response.status})")
        form = {"username": name, "password": PASSWORD, "_xsrf": match.group(1)}
        async with browser.post(f"{base}/hub/login", data=form, allow_redirects=False) as r:
            await r.read()
            if r.status not in (302, 303):
                raise RuntimeError(f"login: {r.status}")
        await _reach_pod(browser, base, name)
        run.routed_at = time.monotonic()
    except (TimeoutError, aiohttp.ClientError, RuntimeError, ValueError, KeyError) as e:
        run.error = f"{type(e).__name__}: {e}"[:200]


async def log_in_and_spawn(browser: aiohttp.ClientSession, base: str, run: UserRun) -> None:
    """Sign in through the form with next=/user/<name>/, follow the browser's way to the pod."""
    run.started = time.monotonic()
    step = "start"
    try:
        name = run.name
        step = "login page"
        async with browser.get(f"{base}/hub/login") as response:
            match = _XSRF.search(await response.text())
        if match is None:
            raise RuntimeError(f"login page without _xsrf ({response.status})")
        form = {
            "username": name,
            "password": PASSWORD,
            "_xsrf": match.group(1),
            "next": f"/user/{name}/",
        }
        step = "sign-in"
        async with browser.post(f"{base}/hub/login", data=form, allow_redirects=False) as r:
            await r.read()
            if r.status not in (302, 303):
                raise RuntimeError(f"login: {r.status}")
            location = r.headers["Location"]
        # /user/<name>/ -> /hub/spawn/<name>?next=... -> /hub/spawn-pending/<name>?next=...
        for _ in range(10):
            if location.startswith("/hub/spawn-pending/") or not location:
                break
            step = f"GET {location.split('?')[0]}"
            location = await _hop(browser, base + location, run)
        step = "progress"
        await _follow_progress(browser, base, name)
        step = "reaching the pod"
        await _reach_pod(browser, base, name)
        run.routed_at = time.monotonic()
    except (TimeoutError, aiohttp.ClientError, RuntimeError, ValueError, KeyError) as e:
        seen = await _server_as_seen(browser, base, run.name) if step == "progress" else ""
        run.error = f"{type(e).__name__} at {step}: {e}{seen}"[:400]


async def _server_as_seen(browser: aiohttp.ClientSession, base: str, name: str) -> str:
    """What the hub says of a user's server after a wait went wrong (for the report)."""
    try:
        async with asyncio.timeout(5):
            async with browser.get(f"{base}/hub/api/users/{quote(name)}") as response:
                body = await response.text()
        return f"; hub says {response.status} {body[:200]}"
    except (TimeoutError, aiohttp.ClientError) as e:
        return f"; asking the hub failed too: {e!r}"


async def run_storm(base: str, names: Sequence[str], deadline_seconds: float) -> list[UserRun]:
    """Every user at once, each with its own browser; stops at the deadline."""
    runs = [UserRun(name) for name in names]
    browsers = [new_browser() for _ in names]
    tasks = [
        asyncio.create_task(log_in_and_spawn(b, base, r), name=f"user {r.name}")
        for b, r in zip(browsers, runs, strict=True)
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=deadline_seconds)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        await asyncio.gather(*(b.close() for b in browsers), return_exceptions=True)
    for run in runs:
        if run.routed_at is None and run.error is None:
            run.error = f"not routed within the {deadline_seconds:.0f} s deadline"
    return runs


# -- worker processes -----------------------------------------------------------------------


async def _storm_main(base: str, users: int, prefix: str, deadline: float) -> None:
    runs = await run_storm(base, [f"{prefix}{i:05d}" for i in range(users)], deadline)
    report = [[r.name, r.started, r.routed_at, r.refused_429, r.error] for r in runs]
    print(json.dumps({"runs": report}), flush=True)


async def _probe_main(base: str, users: int, interval: float, deadline: float) -> None:
    """Start `users` running users, say so, then GET them in turn until SIGTERM or deadline."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    names = [f"running{i:03d}" for i in range(users)]
    runs = [UserRun(name) for name in names]
    browsers = [new_browser() for _ in names]
    samples: list[tuple[float, float, bool]] = []
    try:
        # Their servers run already (start_running_users): they only sign in here.
        starts = (sign_in_running(b, base, r) for b, r in zip(browsers, runs, strict=True))
        await asyncio.wait_for(asyncio.gather(*starts), timeout=120)
        errors = [f"{r.name}: {r.error}" for r in runs if r.error]
        print(json.dumps({"running": users - len(errors), "errors": errors}), flush=True)
        end = time.monotonic() + deadline
        i = 0
        while not stop.is_set() and time.monotonic() < end:
            browser, name = browsers[i % users], names[i % users]
            i += 1
            t0 = time.monotonic()
            ok = False
            try:
                async with browser.get(f"{base}/user/{name}/", allow_redirects=False) as r:
                    await r.read()
                    ok = r.status == 200
            except (TimeoutError, aiohttp.ClientError):
                pass
            t1 = time.monotonic()
            samples.append((t0, (t1 - t0) * 1000, ok))
            # Paced, so the probe's own load on podgate stays small and steady.
            await asyncio.sleep(max(0.0, interval - (t1 - t0)))
    finally:
        await asyncio.gather(*(b.close() for b in browsers), return_exceptions=True)
    print(json.dumps({"samples": samples}), flush=True)


async def _prepare_main(base: str, users: int) -> None:
    """Sign in and start the running users' servers, say how it went, and leave."""
    names = [f"running{i:03d}" for i in range(users)]
    runs = [UserRun(name) for name in names]
    browsers = [new_browser() for _ in names]
    try:
        starts = (log_in_and_spawn(b, base, r) for b, r in zip(browsers, runs, strict=True))
        await asyncio.wait_for(asyncio.gather(*starts), timeout=120)
    finally:
        await asyncio.gather(*(b.close() for b in browsers), return_exceptions=True)
    errors = [f"{r.name}: {r.error}" for r in runs if r.error]
    print(json.dumps({"running": users - len(errors), "errors": errors}), flush=True)


def _worker_main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="spawn storm worker processes")
    p.add_argument("role", choices=("storm", "probe", "prepare"))
    p.add_argument("--url", required=True)
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--prefix", default="storm")
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--deadline", type=float, default=180.0)
    args = p.parse_args(argv)
    procs.raise_open_files_limit()
    if args.role == "storm":
        asyncio.run(_storm_main(args.url, args.users, args.prefix, args.deadline))
    elif args.role == "prepare":
        asyncio.run(_prepare_main(args.url, args.users))
    else:
        asyncio.run(_probe_main(args.url, args.users, args.interval, args.deadline))


# -- the orchestration ----------------------------------------------------------------------


@dataclass
class _Cluster:
    kubesim: procs.Managed
    podgate: procs.Managed
    public_url: str
    started: list[procs.Managed] = field(default_factory=list)


def _start_kubesim(workdir: Path, podgate_cmd: list[str], cpus: str | None) -> procs.Managed:
    port = procs.free_port()
    kubeconfig = workdir / "kubesim.kubeconfig"
    cmd = [*podgate_cmd, "sim", "--listen", f"127.0.0.1:{port}", "--plain-http"]
    proc = procs.start(
        "kubesim",
        [*cmd, "--kubeconfig", str(kubeconfig)],
        log_dir=workdir,
        cpus=cpus,
        env=_ENV,
        cwd=REPO_ROOT,
    )
    # The kubeconfig is written just before kubesim prints that it listens.
    deadline = time.monotonic() + 20
    while "kubesim listening" not in proc.log_tail() and time.monotonic() < deadline:
        if not proc.alive():
            break
        time.sleep(0.05)
    if "kubesim listening" not in proc.log_tail() or not kubeconfig.exists():
        proc.stop()
        raise RuntimeError(f"kubesim did not start: {proc.log_tail()}")
    proc.extra["kubeconfig"] = kubeconfig
    return proc


def podgate_storm_config(
    port: int,
    ops_port: int,
    kubeconfig: Path,
    start_rate: float | None = None,
    running_pods: bool = False,
) -> dict[str, Any]:
    """podgate as an operator would run it for the storm: kube cluster, echo pods, defaults
    (`start_rate`: the spawner's pacing of pod creates, off by default). With
    `running_pods` every pod is a RUNNING_POD process instead (the running users')."""
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "ops_listen": f"127.0.0.1:{ops_port}",
        "log_level": "warning",
        "cluster": {"kind": "kube", "kubeconfig": str(kubeconfig)},
        "auth": {"kind": "dummy", "password": PASSWORD},
        "session": {"cookie_secrets": [COOKIE_SECRET]},
        "spawner": {
            "namespace": "default",  # exists on every cluster from the start
            "image": "kubesim/echo",
            "jupyter_args": False,
            "readiness_path": None,
            "start_rate": start_rate,
        },
    }
    if running_pods:
        config["spawner"]["cmd"] = [sys.executable, "-c", RUNNING_POD]
    return config


def _start_podgate(
    workdir: Path,
    podgate_cmd: list[str],
    cpus: str | None,
    kubeconfig: Path,
    start_rate: float | None = None,
    running_pods: bool = False,
) -> tuple[procs.Managed, str]:
    port, ops_port = procs.free_port(), procs.free_port()
    conf = workdir / "podgate-storm.yaml"
    # JSON is YAML: no YAML writer needed.
    config = podgate_storm_config(port, ops_port, kubeconfig, start_rate, running_pods)
    conf.write_text(json.dumps(config, indent=2))
    proc = procs.start(
        "podgate-storm",
        [*podgate_cmd, "run", "--config", str(conf)],
        log_dir=workdir,
        cpus=cpus,
        env=_ENV,
        cwd=REPO_ROOT,
    )
    if not procs.wait_for_port(port, timeout=30, proc=proc):
        proc.stop()
        raise RuntimeError(f"podgate did not start: {proc.log_tail()}")
    return proc, f"http://127.0.0.1:{port}"


async def _wait_ready(ops_url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            try:
                async with client.get(f"{ops_url}/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("podgate's /readyz did not turn ready")


def other_cpus(proxy_cpus: str | None) -> str | None:
    """The CPUs not given to podgate ("0" when podgate has "1"); None when unpinned."""
    if not proxy_cpus:
        return None
    taken: set[int] = set()
    for part in proxy_cpus.split(","):
        low, _, high = part.partition("-")
        taken.update(range(int(low), int(high or low) + 1))
    rest = [str(cpu) for cpu in range(os.cpu_count() or 1) if cpu not in taken]
    return ",".join(rest) or None


async def _worker(
    role: str, base: str, *args: str, cpus: str | None = None, priority: bool = False
) -> asyncio.subprocess.Process:
    # The probe is the measuring instrument: on the load generator's cores it is
    # given priority, so what it reports is podgate's delay, not its own wait for a CPU.
    boost = ["nice", "-n", "-10"] if priority and os.geteuid() == 0 else []
    return await asyncio.create_subprocess_exec(
        *procs.pinned([*boost, sys.executable], cpus),
        "-m",
        "bench.harness.control_plane",
        role,
        "--url",
        base,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        limit=1 << 24,  # one JSON line holds every sample
        env={**os.environ, **_ENV},
        cwd=REPO_ROOT,
    )


async def _json_line(proc: asyncio.subprocess.Process, seconds: float) -> dict[str, Any]:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=seconds)
    if not line:
        raise RuntimeError(f"worker exited ({await proc.wait()}) without a report")
    return dict(json.loads(line))


async def _end(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def _measure(
    base: str,
    podgate: procs.Managed,
    cluster_pids: Sequence[int],
    users: int,
    running: int,
    idle_seconds: float,
    deadline: float,
    workdir: Path,
    load_cpus: str | None = None,
) -> SpawnStormResult:
    notes: list[str] = []
    probe = await _worker(
        "probe",
        base,
        "--users",
        str(running),
        "--deadline",
        str(deadline + 300),
        cpus=load_cpus,
        priority=True,
    )
    storm: asyncio.subprocess.Process | None = None
    try:
        started = await _json_line(probe, 150)
        if started["errors"]:
            notes.append(f"running users not started: {started['errors'][:3]}")
        idle_from = time.monotonic()
        await asyncio.sleep(idle_seconds)
        idle_to = time.monotonic()
        cpu0, sim_cpu0 = procs.cpu_seconds(podgate.pid), _cpu_of(cluster_pids)
        storm = await _worker(
            "storm", base, "--users", str(users), "--deadline", str(deadline), cpus=load_cpus
        )
        report = await _json_line(storm, deadline + 60)
        cpu1, sim_cpu1 = procs.cpu_seconds(podgate.pid), _cpu_of(cluster_pids)
        probe.send_signal(signal.SIGTERM)
        samples = (await _json_line(probe, 30))["samples"]
    finally:
        await _end(probe)
        if storm is not None:
            await _end(storm)
    runs = report["runs"]
    # The raw timeline, for looking at where the slow requests fall.
    timeline = {"idle": [idle_from, idle_to], "runs": runs, "samples": samples}
    (workdir / "storm-timeline.json").write_text(json.dumps(timeline))
    starts = [r[1] for r in runs]
    routed = [r for r in runs if r[2] is not None]
    errors = [f"{r[0]}: {r[4]}" for r in runs if r[4]]
    first = min(starts)
    last = max((r[2] for r in routed), default=None)
    storm_to = last if last is not None and len(routed) == len(runs) else time.monotonic()
    idle = [ms for t, ms, ok in samples if idle_from <= t <= idle_to and ok]
    during = [ms for t, ms, ok in samples if first <= t <= storm_to and ok]
    probe_failures = sum(1 for t, _, ok in samples if first <= t <= storm_to and not ok)
    if probe_failures:
        notes.append(f"{probe_failures} requests to running users failed during the storm")
    if errors:
        notes.append(f"{len(errors)} users not routed, e.g. {errors[0]}")
    per_user = [r[2] - r[1] for r in routed]
    result = SpawnStormResult(
        users=users,
        seconds_until_all_routed=(last - first) if len(routed) == len(runs) and last else None,
        cpu_seconds_per_spawn=(cpu1 - cpu0) / len(routed) if routed else None,
        note="; ".join(notes),
        routed=len(routed),
        failed=len(runs) - len(routed),
        refused_429=sum(r[3] for r in runs),
        routed_p50_seconds=percentile(per_user, 50),
        routed_p99_seconds=percentile(per_user, 99),
        running_users=int(started["running"]),
        idle_p99_ms=percentile(idle, 99),
        storm_p99_ms=percentile(during, 99),
        idle_samples=len(idle),
        storm_samples=len(during),
        cluster_cpu_seconds=sim_cpu1 - sim_cpu0,
        failures=tuple(errors[:20]),
    )
    return replace(result, note="; ".join([summary(result), *notes]))


def summary(r: SpawnStormResult) -> str:
    """One line of figures (bench/run prints the note as the storm's whole report)."""
    if r.seconds_until_all_routed is not None:
        head = f"{r.users:,} users: all routed in {r.seconds_until_all_routed:.1f} s"
    else:
        head = f"{r.users:,} users: {r.routed:,} routed, {r.failed:,} not"
    parts = [head]
    if r.cpu_seconds_per_spawn is not None:
        parts.append(f"podgate {r.cpu_seconds_per_spawn * 1000:.1f} ms CPU per spawn")
    parts.append(f"{r.refused_429:,} answers 429 (retried)")
    if r.idle_p99_ms is not None and r.storm_p99_ms is not None and r.p99_ratio is not None:
        parts.append(
            f"running users' p99 {r.idle_p99_ms:.1f} ms idle, "
            f"{r.storm_p99_ms:.1f} ms during the storm ({r.p99_ratio:.1f}x)"
        )
    return ", ".join(parts)


def spawn_storm(
    users: int,
    *,
    workdir: Path,
    proxy_cpus: str | None,
    running: int = 20,
    idle_seconds: float = 10.0,
    deadline: float = 180.0,
    podgate_cmd: list[str] | None = None,
    podgate_wrapper: Sequence[str] = (),
    start_rate: float | None = None,
    server: str = "kubesim",
) -> SpawnStormResult:
    """Start the cluster and podgate, run one storm of `users`, stop both; never raises
    for a storm that went wrong (the result's note says what happened).

    server is "kubesim" (kubesim alone) or "realkube" (a real kube-apiserver,
    controller-manager and scheduler, and kubesim's kubelet as its node agent).

    proxy_cpus pins podgate (taskset), as bench/run pins the proxies;
    podgate_wrapper is put before podgate's command (e.g. a profiler).
    """
    procs.raise_open_files_limit()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = podgate_cmd or default_podgate_cmd()
    started: list[procs.Managed | RealCluster] = []
    try:
        if server == "realkube":
            real = start_real_cluster(workdir, cmd, other_cpus(proxy_cpus), _ENV)
            started.append(real)
            kubeconfig, cluster_pids = real.kubeconfig, real.pids
        else:
            kubesim = _start_kubesim(workdir, cmd, other_cpus(proxy_cpus))
            started.append(kubesim)
            kubeconfig, cluster_pids = kubesim.extra["kubeconfig"], (kubesim.pid,)
        start_running_users(workdir / "running-users", cmd, kubeconfig, running, proxy_cpus)
        podgate, base = _start_podgate(
            workdir, [*podgate_wrapper, *cmd], proxy_cpus, kubeconfig, start_rate
        )
        started.append(podgate)
        target = _wrapped_child(podgate) if podgate_wrapper else podgate
        ops_url = _ops_url(workdir)
        result = asyncio.run(
            _ready_then_measure(
                ops_url,
                base,
                target,
                cluster_pids,
                users,
                running,
                idle_seconds,
                deadline,
                workdir,
                other_cpus(proxy_cpus),
            )
        )
        if target is not podgate:
            # Stop podgate first: the profiler writes its report when its child ends.
            target.stop(grace=15)
            with contextlib.suppress(subprocess.TimeoutExpired):
                podgate.popen.wait(timeout=60)  # a signal now would cut the report short
            podgate.stop(grace=5)
        return replace(result, server=server)
    except (TimeoutError, RuntimeError, OSError, KeyError, ValueError) as e:
        note = f"storm not run: {e}"[:500]
        return SpawnStormResult(users, None, None, note=note, server=server)
    finally:
        for started_one in reversed(started):
            if isinstance(started_one, RealCluster):
                started_one.stop()
            else:
                started_one.stop(grace=15)


def start_running_users(
    workdir: Path, cmd: list[str], kubeconfig: Path, running: int, proxy_cpus: str | None
) -> None:
    """The running users' servers, started by a podgate of their own before the storm's.

    Their pods are RUNNING_POD processes (as a notebook server on a node of its
    own) rather than the storm's echo pods, which kubesim serves inside its own
    process: the probe then times podgate's edge, not kubesim's busy loop. The
    pods outlive that podgate; the storm's podgate routes them from its pod watch.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    first, base = _start_podgate(workdir, cmd, proxy_cpus, kubeconfig, running_pods=True)
    try:
        asyncio.run(_prepare(_ops_url(workdir), base, running, other_cpus(proxy_cpus)))
    finally:
        first.stop(grace=15)


async def _prepare(ops_url: str, base: str, running: int, cpus: str | None) -> None:
    await _wait_ready(ops_url, 30)
    worker = await _worker("prepare", base, "--users", str(running), cpus=cpus)
    try:
        report = await _json_line(worker, 150)
    finally:
        await _end(worker)
    if report["errors"]:
        raise RuntimeError(f"running users not started: {report['errors'][:3]}")


def _wrapped_child(wrapper: procs.Managed) -> procs.Managed:
    """podgate itself under a wrapper (py-spy runs it as its child): CPU is read from it."""
    for _ in range(100):
        children = procs.child_pids(wrapper.pid)
        if children:
            return procs.Managed("podgate-storm", _Pid(children[0]), wrapper.log_path)  # type: ignore[arg-type]
        time.sleep(0.05)
    raise RuntimeError("the wrapped podgate did not start")


class _Pid:
    """Enough of a Popen for Managed, for a process that is not our child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if Path(f"/proc/{self.pid}").exists() else 0

    def send_signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        end = time.monotonic() + (timeout or 0)
        while self.poll() is None:
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired("podgate", timeout or 0)
            time.sleep(0.05)
        return 0

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)


def _ops_url(workdir: Path) -> str:
    config = json.loads((workdir / "podgate-storm.yaml").read_text())
    return f"http://{config['ops_listen']}"


async def _ready_then_measure(
    ops_url: str,
    base: str,
    podgate: procs.Managed,
    cluster_pids: Sequence[int],
    users: int,
    running: int,
    idle_seconds: float,
    deadline: float,
    workdir: Path,
    load_cpus: str | None,
) -> SpawnStormResult:
    await _wait_ready(ops_url, 30)
    return await _measure(
        base, podgate, cluster_pids, users, running, idle_seconds, deadline, workdir, load_cpus
    )


def _cpu_of(pids: Sequence[int]) -> float:
    return sum(procs.cpu_seconds(pid) for pid in pids)


if __name__ == "__main__":
    _worker_main()
