"""A container's environment and argv as its process sees them, proven over HTTP.

Secrets and ConfigMaps are created through the API; the pod's process
prints what it got, read back with read_namespaced_pod_log. Missing
references are CreateContainerConfigError, as on a real node, and the pod
starts once the missing object is created. The `$(VAR)` table at the end is
the only unit test: a parsing helper, covered over HTTP as well.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import pytest

from kubesim.kubelet.environment import expand

PY = sys.executable

# Prints its argv and selected environment as one JSON line, then idles.
REPORTER = (
    "import json,os,sys,time\n"
    "keys = sys.argv[1].split(',')\n"
    "print(json.dumps({'argv': sys.argv[2:], 'env': {k: os.environ.get(k) for k in keys}}),"
    " flush=True)\n"
    "time.sleep(60)\n"
)

REPORTED = [
    "POD_IP", "NAME", "NS", "APP", "MEM", "CPU", "TOKEN", "MODE", "URL", "EARLY",
    "CFG_theme", "HOSTNAME",
]  # fmt: skip


def field(path: str) -> dict[str, Any]:
    return {"fieldRef": {"fieldPath": path}}


def reporter(keys: list[str], args: list[str], env: list[dict[str, Any]], **extra: Any) -> Any:
    return {
        "name": "main",
        "image": "x",
        "command": [PY, "-c", REPORTER, ",".join(keys)],
        "args": args,
        "env": env,
        **extra,
    }


async def report(sim: Any, name: str) -> dict[str, Any]:
    text = await sim.until_log(name, lambda t: t.endswith("}\n"))
    return dict(json.loads(text.splitlines()[0]))


def waiting_reason(pod: Any) -> str | None:
    statuses = pod.status.container_statuses if pod.status else None
    waiting = statuses[0].state.waiting if statuses else None
    return waiting.reason if waiting else None


def is_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


async def test_downward_api_secret_configmap_and_expansion(sim: Any) -> None:
    token = base64.b64encode(b"s3cr3t").decode()
    await sim.core.create_namespaced_secret(
        "default", {"metadata": {"name": "creds"}, "data": {"token": token}}
    )
    await sim.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "settings"}, "data": {"mode": "lab", "theme": "dark"}}
    )
    env = [
        {"name": "POD_IP", "valueFrom": field("status.podIP")},
        {"name": "NAME", "valueFrom": field("metadata.name")},
        {"name": "NS", "valueFrom": field("metadata.namespace")},
        {"name": "APP", "valueFrom": field("metadata.labels['app']")},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "URL", "value": "http://$(POD_IP):8888/user/$(NAME)"},
        {"name": "EARLY", "value": "$(LATER)"},  # only earlier variables expand
        {"name": "LATER", "value": "x"},
    ]
    # Every variable set below plus one from envFrom and the pod's HOSTNAME.
    container = reporter(
        REPORTED,
        ["--ip=$(POD_IP)", "$(NAME)", "$$(NAME)", "$$$(NS)", "$(UNSET)", "$(TOKEN)", "$(MODE)"],
        env,
        envFrom=[{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        resources={"limits": {"memory": "256Mi", "cpu": "1500m"}},
    )
    await sim.create("jupyter-ada", container)
    pod = await sim.until("jupyter-ada", is_ready)
    ip = pod.status.pod_ip
    seen = await report(sim, "jupyter-ada")
    assert seen["argv"] == [
        f"--ip={ip}",
        "jupyter-ada",
        "$(NAME)",  # $$ escapes
        "$default",
        "$(UNSET)",  # an unknown variable stays as written
        "s3cr3t",
        "lab",
    ]
    assert seen["env"] == {
        "POD_IP": ip,
        "NAME": "jupyter-ada",
        "NS": "default",
        "APP": "kubelet-test",
        "MEM": str(256 * 2**20),
        "CPU": "2",  # limits.cpu rounds up to whole cores
        "TOKEN": "s3cr3t",
        "MODE": "lab",
        "URL": f"http://{ip}:8888/user/jupyter-ada",
        "EARLY": "$(LATER)",
        "CFG_theme": "dark",
        "HOSTNAME": "jupyter-ada",
    }


async def test_command_itself_is_expanded(sim: Any) -> None:
    script = "import sys,time; print(sys.argv[1:], flush=True); time.sleep(60)"
    container = {
        "name": "main",
        "image": "x",
        "command": [PY, "-c", script, "$(GREETING)", "$$(GREETING)"],
        "env": [{"name": "GREETING", "value": "hi"}],
    }
    await sim.create("expanded", container)
    assert await sim.until_log("expanded", lambda t: t != "") == "['hi', '$(GREETING)']\n"


async def test_program_named_by_a_variable_is_expanded_before_lookup(sim: Any) -> None:
    container = {
        "name": "main",
        "image": "x",
        "command": ["$(PYTHON)", "-c", "print('ran', flush=True)"],
        "env": [{"name": "PYTHON", "value": PY}],
    }
    await sim.create("by-variable", container, restartPolicy="Never")
    assert await sim.until_log("by-variable", lambda t: t != "", within=1.5) == "ran\n"


async def test_a_variable_naming_a_missing_program_is_an_image_pull_error(sim: Any) -> None:
    container = {
        "name": "main",
        "image": "x",
        "command": ["$(TOOL)", "--version"],
        "env": [{"name": "TOOL", "value": "no-such-tool"}],
    }
    await sim.create("no-tool", container)
    pod = await sim.until("no-tool", lambda p: waiting_reason(p) == "ErrImagePull")
    message = pod.status.container_statuses[0].state.waiting.message
    assert 'executable "no-such-tool" not found in $PATH' in message  # the expanded name
    assert pod.status.phase == "Pending"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"secretKeyRef": {"name": "absent", "key": "k"}}, 'secret "absent" not found'),
        ({"configMapKeyRef": {"name": "absent", "key": "k"}}, 'configmap "absent" not found'),
    ],
    ids=["secret", "configmap"],
)
async def test_missing_reference_is_a_config_error_until_created(
    sim: Any, ref: dict[str, Any], message: str
) -> None:
    container = reporter(["K"], [], [{"name": "K", "valueFrom": ref}])
    await sim.create("nosecret", container)
    pod = await sim.until("nosecret", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    assert pod.status.phase == "Pending" and not is_ready(pod)
    assert pod.status.container_statuses[0].state.waiting.message == message
    failed = await sim.until_event("nosecret", lambda e: e.reason == "Failed")
    assert failed.type == "Warning" and failed.message == f"Error: {message}"
    assert "Started" not in await sim.reasons("nosecret")
    # Creating the missing object lets the kubelet's next retry start the container.
    body = {"metadata": {"name": "absent"}, "data": {"k": base64.b64encode(b"v").decode()}}
    if "secretKeyRef" in ref:
        await sim.core.create_namespaced_secret("default", body)
    else:
        await sim.core.create_namespaced_config_map("default", body | {"data": {"k": "v"}})
    await sim.until("nosecret", is_ready)
    assert (await report(sim, "nosecret"))["env"] == {"K": "v"}


async def test_missing_key_and_optional_references(sim: Any) -> None:
    await sim.core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "data": {}})
    optional = {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}
    await sim.create("optional", reporter(["OPT"], [], [{"name": "OPT", "valueFrom": optional}]))
    assert (await report(sim, "optional"))["env"] == {"OPT": None}
    missing_key = {"secretKeyRef": {"name": "s", "key": "nope"}}
    await sim.create("nokey", reporter(["X"], [], [{"name": "X", "valueFrom": missing_key}]))
    pod = await sim.until("nokey", lambda p: waiting_reason(p) == "CreateContainerConfigError")
    waiting = pod.status.container_statuses[0].state.waiting
    assert waiting.message == "couldn't find key nope in Secret default/s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("x$(A)y$(B)z", "xaybz"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("cost: 5$", "cost: 5$"),
        ("", ""),
    ],
)
def test_expansion(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}) == expected
