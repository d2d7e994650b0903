"""Volumes over HTTP: PVCs Bound at once, a real directory per claim that outlives pods.

The container finds each mounted volume's directory in KUBESIM_VOLUME_<NAME>
(kubesim shares one filesystem between pods, so mountPath is not created).
What a user notices: a file written by one pod is there for the next pod on
the same claim, and for a restarted container; secret volumes hold the
secret's keys as files; scratch volumes go with the pod.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiException

PY = sys.executable
HOME = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ada"}}]
MOUNT = [{"name": "home", "mountPath": "/home/jovyan"}]


def claim(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    }


def program(script: str) -> dict[str, Any]:
    return {"name": "main", "image": "x", "command": [PY, "-c", script], "volumeMounts": MOUNT}


def phase(pod: Any) -> str | None:
    return pod.status.phase if pod.status else None


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def run_to_completion(sim: Any, name: str, script: str) -> str:
    """Run a one-shot pod on claim-ada, return its log, delete it."""
    await sim.create(name, program(script), volumes=HOME, restartPolicy="Never")
    pod = await sim.until(name, lambda p: phase(p) in ("Succeeded", "Failed"))
    log = await sim.log(name)
    assert phase(pod) == "Succeeded", log
    await sim.remove(name, grace=0)
    return str(log)


async def test_claim_is_bound_at_once(sim: Any) -> None:
    await sim.core.create_namespaced_persistent_volume_claim("default", claim("claim-ada"))
    bound = await sim.core.read_namespaced_persistent_volume_claim("claim-ada", "default")
    assert bound.status.phase == "Bound"
    assert bound.status.capacity == {"storage": "2Gi"}
    assert bound.status.access_modes == ["ReadWriteOnce"]


async def test_files_in_a_claim_survive_the_pod_being_deleted_and_recreated(sim: Any) -> None:
    await sim.core.create_namespaced_persistent_volume_claim("default", claim("claim-ada"))
    write = (
        "import os; path = os.environ['KUBESIM_VOLUME_HOME']\n"
        "open(path + '/notebook.ipynb', 'w').write('kept')\n"
        "print(path, flush=True)\n"
    )
    read = "import os; print(open(os.environ['KUBESIM_VOLUME_HOME'] + '/notebook.ipynb').read())"
    first_path = (await run_to_completion(sim, "jupyter-ada", write)).strip()
    assert await run_to_completion(sim, "jupyter-ada", read) == "kept\n"
    # The same claim is the same directory for every pod that mounts it.
    again = "import os; print(os.environ['KUBESIM_VOLUME_HOME'])"
    assert (await run_to_completion(sim, "jupyter-ada", again)).strip() == first_path


async def test_sub_path_and_volume_names_with_dashes(sim: Any) -> None:
    await sim.core.create_namespaced_persistent_volume_claim("default", claim("claim-ada"))
    script = "import os; print(os.environ['KUBESIM_VOLUME_USER_HOME'], flush=True)"
    container = program(script) | {
        "volumeMounts": [{"name": "user-home", "mountPath": "/home/jovyan", "subPath": "work"}]
    }
    volumes = [{"name": "user-home", "persistentVolumeClaim": {"claimName": "claim-ada"}}]
    await sim.create("sub", container, volumes=volumes, restartPolicy="Never")
    await sim.until("sub", lambda p: phase(p) == "Succeeded")
    path = Path((await sim.log("sub")).strip())
    assert path.name == "work" and path.parent.name == "claim-ada"
    assert await asyncio.to_thread(path.is_dir)


async def test_files_in_a_claim_survive_a_container_restart(sim: Any) -> None:
    await sim.core.create_namespaced_persistent_volume_claim("default", claim("claim-ada"))
    # Each run appends a line and crashes until it finds three lines.
    script = (
        "import os,time; path = os.environ['KUBESIM_VOLUME_HOME'] + '/runs'\n"
        "open(path, 'a').write('run\\n')\n"
        "runs = open(path).read().count('run')\n"
        "print('runs', runs, flush=True)\n"
        "if runs < 3: raise SystemExit(1)\n"
        "time.sleep(60)\n"
    )
    await sim.create("restarts", program(script), volumes=HOME)
    # Ready alone may be a crashing run's moment: wait for the third, lasting run.
    pod = await sim.until(
        "restarts", lambda p: is_ready(p) and p.status.container_statuses[0].restart_count == 2
    )
    assert pod.status.phase == "Running"
    await sim.until_log("restarts", lambda t: t == "runs 1\nruns 2\nruns 3\n")


def unschedulable(pod: Any) -> Any:
    return next((c for c in pod.status.conditions or [] if c.reason == "Unschedulable"), None)


async def test_pod_on_a_missing_claim_stays_pending(sim: Any) -> None:
    await sim.create("early", program("import time; time.sleep(60)"), volumes=HOME)
    pod = await sim.until("early", unschedulable)
    assert pod.status.phase == "Pending" and pod.status.pod_ip is None
    assert unschedulable(pod).message == (
        '0/1 nodes are available: persistentvolumeclaim "claim-ada" not found.'
    )
    failed = await sim.until_event("early", lambda e: e.reason == "FailedScheduling")
    assert failed.type == "Warning" and failed.message == unschedulable(pod).message


async def test_pod_on_a_missing_claim_starts_once_the_claim_exists(sim: Any) -> None:
    await sim.create("early", program("import time; time.sleep(60)"), volumes=HOME)
    await sim.until("early", unschedulable)
    await sim.core.create_namespaced_persistent_volume_claim("default", claim("claim-ada"))
    await sim.until("early", is_ready, within=1.5)


async def test_secret_and_scratch_volumes_belong_to_the_pod(sim: Any) -> None:
    token = base64.b64encode(b"t0k").decode()
    await sim.core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "data": {"token": token}}
    )
    script = (
        "import os,time\n"
        "scratch = os.environ['KUBESIM_VOLUME_SCRATCH']\n"
        "open(scratch + '/tmp', 'w').write('x')\n"
        "print(open(os.environ['KUBESIM_VOLUME_CREDS'] + '/token').read(), flush=True)\n"
        "print(scratch, flush=True)\n"
        "time.sleep(60)\n"
    )
    container = program(script) | {
        "volumeMounts": [
            {"name": "creds", "mountPath": "/etc/creds"},
            {"name": "scratch", "mountPath": "/tmp/work"},
        ]
    }
    volumes = [
        {"name": "creds", "secret": {"secretName": "creds"}},
        {"name": "scratch", "emptyDir": {}},
    ]
    await sim.create("projected", container, volumes=volumes, terminationGracePeriodSeconds=0)
    log = await sim.until_log("projected", lambda t: t.count("\n") >= 2)
    token_line, scratch = log.splitlines()
    assert token_line == "t0k"
    await sim.remove("projected")
    # Grace 0: the object goes at once and the kubelet cleans up right after.
    for _ in range(100):
        if not await asyncio.to_thread(Path(scratch).exists):
            break
        await asyncio.sleep(0.03)
    else:
        raise AssertionError("the emptyDir outlived its pod")


async def test_missing_secret_volume_keeps_the_pod_pending(sim: Any) -> None:
    volumes = [{"name": "creds", "secret": {"secretName": "gone"}}]
    mounts = [{"name": "creds", "mountPath": "/etc/creds"}]
    container = program("import time; time.sleep(60)") | {"volumeMounts": mounts}
    await sim.create("nocreds", container, volumes=volumes)
    failed = await sim.until_event("nocreds", lambda e: e.reason == "FailedMount")
    assert failed.type == "Warning"
    assert 'secret "gone" not found' in failed.message
    await asyncio.sleep(0.3)
    pod = await sim.core.read_namespaced_pod("nocreds", "default")
    assert pod.status.phase == "Pending"
    assert "Started" not in await sim.reasons("nocreds")


def waiting_reason(pod: Any) -> str | None:
    statuses = pod.status.container_statuses or []
    waiting = statuses[0].state.waiting if statuses else None
    return waiting.reason if waiting else None


@pytest.mark.parametrize("kind", ["secret", "configMap"])
async def test_missing_volume_source_waits_in_container_creating_until_it_exists(
    sim: Any, kind: str
) -> None:
    source = {"secretName": "creds"} if kind == "secret" else {"name": "creds"}
    volumes = [{"name": "creds", kind: source}]
    mounts = [{"name": "creds", "mountPath": "/etc/creds"}]
    script = (
        "import os,time\n"
        "print(open(os.environ['KUBESIM_VOLUME_CREDS'] + '/token').read(), flush=True)\n"
        "time.sleep(60)\n"
    )
    await sim.create("later", program(script) | {"volumeMounts": mounts}, volumes=volumes)
    # Retried with back-off: the same Warning again, aggregated by count.
    failed = await sim.until_event("later", lambda e: e.reason == "FailedMount" and e.count >= 2)
    noun = "secret" if kind == "secret" else "configmap"
    assert failed.type == "Warning"
    assert (
        failed.message == f'MountVolume.SetUp failed for volume "creds" : {noun} "creds" not found'
    )
    pod = await sim.core.read_namespaced_pod("later", "default")
    assert pod.status.phase == "Pending" and waiting_reason(pod) == "ContainerCreating"
    assert pod.spec.node_name and pod.status.pod_ip  # scheduled: only the mount waits
    assert "Started" not in await sim.reasons("later")
    body: dict[str, Any] = {"metadata": {"name": "creds"}}
    if kind == "secret":
        body["data"] = {"token": base64.b64encode(b"t0k").decode()}
        await sim.core.create_namespaced_secret("default", body)
    else:
        await sim.core.create_namespaced_config_map("default", body | {"data": {"token": "t0k"}})
    await sim.until("later", is_ready, within=5)
    assert await sim.until_log("later", lambda t: t != "") == "t0k\n"


async def test_sub_path_of_a_config_map_key_is_that_file(sim: Any) -> None:
    """podgate's own Deployment mounts config.yaml this way: a file, not a directory."""
    await sim.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"config.yaml": "a: 1\n"}}
    )
    volumes = [{"name": "config", "configMap": {"name": "settings"}}]
    mounts = [{"name": "config", "mountPath": "/etc/app/config.yaml", "subPath": "config.yaml"}]
    script = (
        "import os,time\n"
        "print(open(os.environ['KUBESIM_VOLUME_CONFIG']).read(), end='', flush=True)\n"
        "time.sleep(60)\n"
    )
    await sim.create("reader", program(script) | {"volumeMounts": mounts}, volumes=volumes)
    await sim.until("reader", is_ready, within=10)
    assert await sim.until_log("reader", lambda t: t != "") == "a: 1\n"


async def test_claim_names_must_be_valid(sim: Any) -> None:
    with pytest.raises(ApiException) as refused:
        await sim.core.create_namespaced_persistent_volume_claim("default", claim("Not_Valid"))
    assert refused.value.status == 422
