"""Start and stop the real control plane (`realkube all`) for tests.

The binary comes from tests/realkube/build (a no-op once built for these
sources). Start-up is bounded: the process must answer /readyz within
STARTUP_SECONDS or the fixture fails with the tail of its log. Everything
binds 127.0.0.1; the state (certificates, tokens, etcd) lives in a temporary
directory the caller owns.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_SECONDS = 3600  # the first build compiles much of Kubernetes
STARTUP_SECONDS = 120.0
STOP_SECONDS = 30.0


def build_realkube() -> Path:
    """The binary's path, building it first when these sources have none yet."""
    given = os.environ.get("REALKUBE")
    if given:
        return Path(given)
    result = subprocess.run(
        ["bash", str(HERE / "build")],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"tests/realkube/build failed:\n{result.stderr[-4000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], seconds: float) -> int:
    """SIGTERM, a bounded wait, SIGKILL past it: the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return int(process.returncode)


@dataclass
class RealKube:
    """A running `realkube all`: its admin kubeconfig, URL, token and CA."""

    process: subprocess.Popen[bytes]
    state: Path
    port: int

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def token(self) -> str:
        return (self.state / "admin.token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.state / "ca.crt"

    @property
    def log(self) -> Path:
        return self.state / "realkube.log"

    def get(self, path: str, accept: str = "*/*") -> tuple[int, bytes]:
        """One GET as the admin (urllib: no proxy, no event loop)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        request = urllib.request.Request(self.url + path, headers=headers)
        context = ssl.create_default_context(cafile=str(self.ca_file))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        try:
            with opener.open(request, timeout=10) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def compact(self) -> int:
        """Compact etcd to its current revision (through its JSON gateway); the revision.

        What the apiserver's own compactor does every five minutes, now: any
        resourceVersion older than this is gone from etcd.
        """
        etcd = (self.state / "etcd.url").read_text().strip()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def post(path: str, body: dict[str, object]) -> dict[str, object]:
            request = urllib.request.Request(
                etcd + path, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            with opener.open(request, timeout=10) as answer:
                result: dict[str, object] = json.loads(answer.read())
                return result

        header = post("/v3/kv/range", {"key": "AA==", "limit": 1})["header"]
        revision = int(header["revision"])  # type: ignore[index]
        post("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def peak_rss_bytes(self) -> int:
        """VmHWM: the most memory the whole control plane has held at once."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmHWM in /proc status")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.process, STOP_SECONDS)


def start_realkube(binary: Path, state: Path) -> RealKube:
    """`realkube all` on a free loopback port, returned once it is ready for pods."""
    state.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(state / "realkube.log", "wb") as log:
        process = subprocess.Popen(
            [str(binary), "all", "--state-dir", str(state), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    kube = RealKube(process, state, port)
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"realkube exited with {process.returncode}:\n{kube.log_tail()}")
        if kube.kubeconfig.exists() and _ready(kube):
            return kube
        time.sleep(0.5)
    kube.stop()
    raise RuntimeError(f"realkube not ready in {STARTUP_SECONDS:.0f}s:\n{kube.log_tail()}")


def _ready(kube: RealKube) -> bool:
    """/readyz says ok and `default` has its ServiceAccount.

    The controller-manager makes that account; until then the ServiceAccount
    admission plugin refuses every pod in the namespace.
    """
    try:
        status, body = kube.get("/readyz")
        if status != 200 or body.strip() != b"ok":
            return False
        status, _ = kube.get("/api/v1/namespaces/default/serviceaccounts/default")
    except OSError:
        return False
    return status == 200


def run_kubectl(kubeconfig: Path, *args: str, stdin: str = "", ok: bool = True) -> tuple[int, str]:
    """kubectl with this kubeconfig (its cache beside it): exit code and stdout+stderr."""
    home = kubeconfig.parent
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "HOME": str(home)}
    command = ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(home / "kube-cache")]
    result = subprocess.run(
        [*command, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    if ok:
        assert result.returncode == 0, result.stderr
    return result.returncode, result.stdout + result.stderr


def version_of(kube: RealKube) -> str:
    status, body = kube.get("/version")
    assert status == 200, body
    return str(json.loads(body)["gitVersion"])
