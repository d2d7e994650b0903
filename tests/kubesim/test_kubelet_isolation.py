"""Pods of different users cannot reach each other, or the kubelet's host, when run as root.

Two real pods: bob's writes a secret into his HOME and carries a secret in
his environment; ada's program then tries, from inside her own process, to
read bob's file, bob's /proc/<pid>/environ and a file only the host's owner
may read (standing in for podgate's config file), and reports what it got.
Her own HOME, working directory and environment work. A pod with a claim has
that claim as HOME, owned by its own user. Needs root: only root can give
pods users of their own.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="pods get users of their own only when the kubelet runs as root"
)

PY = sys.executable

# Bob: a secret in HOME and in the environment; says where they are, then waits.
BOB = (
    "import json,os,time\n"
    "open('secret.txt','w').write('bob-file-secret')\n"
    "print(json.dumps({'pid': os.getpid(), 'home': os.environ['HOME'], 'cwd': os.getcwd(),"
    " 'uid': os.getuid()}), flush=True)\n"
    "time.sleep(600)\n"
)

# Ada: tries each target and prints what happened, one JSON object per line.
ADA = (
    "import json,os,time\n"
    "def attempt(what, path):\n"
    "    try:\n"
    "        got = open(path,'rb').read().decode(errors='replace')\n"
    "        print(json.dumps({what: 'read', 'text': got}), flush=True)\n"
    "    except OSError as e:\n"
    "        print(json.dumps({what: type(e).__name__}), flush=True)\n"
    "attempt('bob_home', os.environ['BOB_HOME'] + '/secret.txt')\n"
    "attempt('bob_environ', '/proc/' + os.environ['BOB_PID'] + '/environ')\n"
    "attempt('host_config', os.environ['HOST_CONFIG'])\n"
    "open('mine.txt','w').write('ada-own')\n"
    "attempt('own_home', os.environ['HOME'] + '/mine.txt')\n"
    "attempt('own_environ', '/proc/self/environ')\n"
    "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(),"
    " 'cwd': os.getcwd(), 'home': os.environ['HOME']}), flush=True)\n"
    "time.sleep(600)\n"
)


def container(script: str, **env: str) -> dict[str, Any]:
    return {
        "name": "main",
        "image": "x",
        "command": [PY, "-c", script],
        "env": [{"name": key, "value": value} for key, value in env.items()],
    }


def records(log: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in log.splitlines():
        if line.startswith("{"):
            found.update(json.loads(line))
    return found


async def test_one_pod_cannot_read_another_pods_home_environment_or_the_hosts_config(
    sim: Any, reachable_dir: Path
) -> None:
    config = reachable_dir / "podgate.yaml"  # as podgate's own: its owner may read it, no one else
    config.write_text("session: {cookie_secrets: [host-cookie-secret-0123456789]}\n")
    config.chmod(0o600)

    await sim.create("bob", container(BOB, BOB_TOKEN="bob-env-secret"))
    bob = records(await sim.until_log("bob", lambda t: '"pid"' in t))
    await sim.create(
        "ada",
        container(ADA, BOB_HOME=bob["home"], BOB_PID=str(bob["pid"]), HOST_CONFIG=str(config)),
    )
    ada = records(await sim.until_log("ada", lambda t: '"uid"' in t))

    # What ada sees from inside her pod: refused, every time.
    assert ada["bob_home"] == "PermissionError", ada
    assert ada["bob_environ"] == "PermissionError", ada
    assert ada["host_config"] == "PermissionError", ada
    # ... while her own files and environment are hers.
    assert ada["own_home"] == "read" and ada["text"] != "bob-file-secret"
    assert ada["own_environ"] == "read"
    log = await sim.log("ada")
    assert "bob-file-secret" not in log and "bob-env-secret" not in log
    assert "host-cookie-secret" not in log

    # Each pod: an unprivileged uid of its own, no groups, its own HOME as working directory.
    assert ada["uid"] != bob["uid"] and 0 not in (ada["uid"], bob["uid"])
    assert ada["gid"] == ada["uid"] and ada["groups"] == []
    assert ada["home"] != bob["home"]
    assert ada["cwd"] == ada["home"] and bob["cwd"] == bob["home"]
    for home, uid in ((ada["home"], ada["uid"]), (bob["home"], bob["uid"])):
        info = os.stat(home)
        assert info.st_uid == uid and stat.S_IMODE(info.st_mode) == 0o700
        assert not Path(home).is_relative_to(Path.cwd())


async def test_a_claim_is_the_home_of_its_pod_and_belongs_to_that_pods_user(sim: Any) -> None:
    claim = {
        "metadata": {"name": "claim-ada"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await sim.core.create_namespaced_persistent_volume_claim("default", claim)
    script = (
        "import json,os,time\n"
        "open('notebook.ipynb','w').write('{}')\n"
        "print(json.dumps({'uid': os.getuid(), 'home': os.environ['HOME'], 'cwd': os.getcwd(),"
        " 'volume': os.environ['KUBESIM_VOLUME_HOME']}), flush=True)\n"
        "time.sleep(600)\n"
    )
    spec = container(script)
    spec["volumeMounts"] = [{"name": "home", "mountPath": "/home/jovyan"}]
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-ada"}}]
    await sim.create("ada", spec, volumes=volumes)
    seen = records(await sim.until_log("ada", lambda t: '"uid"' in t))
    assert seen["home"] == seen["cwd"] == seen["volume"]
    info = os.stat(seen["home"])
    assert info.st_uid == seen["uid"] != 0 and stat.S_IMODE(info.st_mode) == 0o700
    assert os.stat(Path(seen["home"]) / "notebook.ipynb").st_uid == seen["uid"]
