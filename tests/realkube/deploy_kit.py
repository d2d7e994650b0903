"""deploy/ on the real API server: apply it, act as podgate's own ServiceAccount, run podgate.

Helpers of test_deploy_realkube.py. Everything goes through kubectl (the
admin kubeconfig for applying and for `auth can-i --as`, a kubeconfig with a
TokenRequest token for podgate) or through a real `podgate run` process.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from realkube_kit import RealKube, run_kubectl, stop_process

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0
STOP_SECONDS = 40.0

Obj = dict[str, Any]


def render(kustomization: str) -> list[Obj]:
    """`kubectl kustomize` of a directory of deploy/, as objects."""
    done = subprocess.run(
        ["kubectl", "kustomize", str(ROOT / kustomization)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def one(objects: list[Obj], kind: str, prefix: str = "") -> Obj:
    """The one object of `kind` whose name starts with `prefix` (generated names carry a hash)."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} {prefix!r}, got {len(found)}"
    return found[0]


def warnings_in(output: str) -> list[str]:
    """kubectl's "Warning:" lines: what the server or kubectl objected to without refusing."""
    return [line for line in output.splitlines() if line.lstrip().startswith("Warning:")]


def account_token(kube: RealKube, namespace: str, account: str) -> str:
    """A token of the ServiceAccount through TokenRequest (`kubectl create token`)."""
    _, out = run_kubectl(
        kube.kubeconfig, "create", "token", account, "-n", namespace, "--duration", "1h"
    )
    token = out.strip().splitlines()[-1]
    assert token.count(".") == 2, f"not a JWT: {out!r}"
    return token


def write_kubeconfig(kube: RealKube, token: str, path: Path, namespace: str) -> Path:
    """A kubeconfig that authenticates with `token` only (no client certificate, no admin)."""
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "podgate",
        "clusters": [{"name": "realkube", "cluster": {
            "server": kube.url, "certificate-authority": str(kube.ca_file)}}],
        "users": [{"name": "podgate", "user": {"token": token}}],
        "contexts": [{"name": "podgate", "context": {
            "cluster": "realkube", "user": "podgate", "namespace": namespace}}],
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def can_i(kube: RealKube, subject: str, verb: str, resource: str, namespace: str) -> bool:
    """The real authorizer's answer for `subject` (SubjectAccessReview via `auth can-i --as`).

    `resource` may name a subresource, "pods/exec" (can-i itself would read that
    as the pod named "exec").
    """
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, "-n", namespace, "--as", subject]
    if sub:
        args.append(f"--subresource={sub}")
    code, out = run_kubectl(kube.kubeconfig, *args, ok=False)
    answer = out.strip().splitlines()[0] if out.strip() else ""
    assert (code, answer) in ((0, "yes"), (1, "no")), f"can-i {verb} {resource}: {code} {out}"
    return answer == "yes"


@dataclass
class RunningPodgate:
    """A `podgate run` process: its URLs and the file its stderr goes to."""

    process: subprocess.Popen[str]
    public_url: str
    ops_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        return stop_process(self.process, STOP_SECONDS)


def podgate_config(
    deployed: str, kubeconfig: Path, directory: Path, users: str, tokens: str
) -> Path:
    """deploy/'s config.yaml as podgate on a laptop would run it against that cluster.

    Only what ties it to a pod changes: loopback ports instead of 0.0.0.0, the
    kubeconfig instead of the in-cluster account, the secret files from
    `directory`, text logs. Spawner, profiles, storage and auth stay as deployed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(deployed)
    config.update(listen="127.0.0.1:0", ops_listen="127.0.0.1:0", log_format="text")
    config["cluster"] = {"kind": "kube", "kubeconfig": str(kubeconfig)}
    (directory / "users.yaml").write_text(users)
    (directory / "api-tokens.yaml").write_text(tokens)
    config["auth"]["users_file"] = str(directory / "users.yaml")
    config["api_tokens_file"] = str(directory / "api-tokens.yaml")
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_podgate(config: Path, environ: dict[str, str], log: Path) -> RunningPodgate:
    """`podgate run --config` until its banner (bounded); its stderr goes to `log`."""
    with open(log, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "podgate.cli", "run", "--config", str(config)],
            stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, **environ, "NO_PROXY": "127.0.0.1,localhost"}, cwd=ROOT,
        )  # fmt: skip
    assert process.stdout is not None
    # The banner is podgate's first stdout line, flushed once both ports listen.
    ready, _, _ = select.select([process.stdout], [], [], START_SECONDS)
    banner = process.stdout.readline() if ready else ""
    found = re.match(r"podgate: public (\S+)\s+ops (\S+)", banner)
    if found is None:
        process.kill()
        process.wait(10)
        raise AssertionError(
            f"no banner {banner!r} in {START_SECONDS:.0f}s: {log.read_text()[-3000:]}"
        )
    return RunningPodgate(process, found[1], found[2], log)


def kube_calls(metrics_text: str) -> dict[tuple[str, str, str], float]:
    """(verb, resource, status code) -> count, from podgate_kube_api_requests_total."""
    calls: dict[tuple[str, str, str], float] = {}
    pattern = r"^podgate_kube_api_requests_total\{(.*)\} (\S+)$"
    for labels, value in re.findall(pattern, metrics_text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if float(value) > 0:
            calls[found["verb"], found["resource"], found["code"]] = float(value)
    return calls


def overlay_in(kustomization: str, namespace: str, directory: Path) -> Path:
    """A kustomization that only moves `kustomization` of deploy/ into `namespace`.

    The control plane is shared by the session: a namespace of its own keeps
    the Pod Security labels of deploy/ away from other tests' namespaces.
    kustomize takes no absolute path to a base, hence the relative one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    base = os.path.relpath(ROOT / kustomization, directory)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump({"namespace": namespace, "resources": [base]})
    )
    return directory


def granted_list(kube: RealKube, subject: str, namespace: str) -> set[tuple[str, str]]:
    """(resource, verb) the authorizer lists for `subject` in `namespace` (`can-i --list`).

    Resource rules only, unnamed: the table's rows "RESOURCE  []  []  [VERBS]".
    """
    _, out = run_kubectl(kube.kubeconfig, "auth", "can-i", "--list", "-n", namespace,
                         "--as", subject)  # fmt: skip
    grants = set()
    for resource, verbs in re.findall(r"^(\S+)\s+\[\]\s+\[\]\s+\[([^\]]*)\]\s*$", out, re.M):
        grants.update((resource, verb) for verb in verbs.split())
    assert grants, f"no resource rules parsed from:\n{out}"
    return grants
