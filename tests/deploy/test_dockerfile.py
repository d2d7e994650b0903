"""The Dockerfile: its promises, a linter's verdict, and its install steps run for real.

No Docker engine runs here, so the image's steps are replayed: build a wheel
of the project, install it (not editable) into a fresh venv, and start
`podgate run` from that venv with the image's config, switched to the
embedded kubesim. A user then finds /healthz answering on the ops port and a
login page that signs them in.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from integration.jupyter_kit import BANNER, Child, start_child

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
PASSWORD = "a long enough password"


def image_env() -> dict[str, str]:
    """The environment without PYTHONPATH: the venv must use its own install, not the checkout."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def build_stage_copies() -> list[tuple[str, str]]:
    """(source, path in the build context) of each file or folder the build stage copies."""
    steps = instructions()
    froms = [i for i, (k, _) in enumerate(steps) if k == "FROM"]
    copies = []
    for step, arguments in steps[froms[0] : froms[1]]:
        if step == "COPY":
            *sources, target = arguments.split()
            for source in sources:
                inside = f"{target}{Path(source).name}" if target.endswith("/") else target
                copies.append((source, str(Path(inside))))
    return copies


def test_dockerfile_promises() -> None:
    steps = instructions()
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    stages = [a for k, a in steps if k == "FROM"]
    assert re.fullmatch(r"python:3\.1[12]-slim", args["PYTHON_IMAGE"])
    assert stages == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    final_text = " ".join(a for _, a in final)
    assert "venv" in final_text and "--no-index" in final_text
    assert "apt-get" not in final_text and "gcc" not in final_text  # no compilers in the image
    (user,) = [a for k, a in final if k == "USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric, non-root user"
    assert [a for k, a in final if k == "EXPOSE"] == ["8000 8081"]
    (healthcheck,) = [a for k, a in final if k == "HEALTHCHECK"]
    assert "http://127.0.0.1:8081/healthz" in healthcheck and "python" in healthcheck
    assert [json.loads(a) for k, a in final if k == "ENTRYPOINT"] == [["podgate"]]
    assert [json.loads(a) for k, a in final if k == "CMD"] == [
        ["run", "--config", "/etc/podgate/config.yaml"]
    ]


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in lines  # everything out, then only what the build reads back in
    copied = {a.split()[0] for k, a in instructions() if k == "COPY" and "--from" not in a}
    for source in copied:
        assert f"!{source.rstrip('/')}/" in lines or f"!{source}" in lines, source


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="needs hadolint (tests/run)")
def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        ["hadolint", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="needs hadolint (tests/run)")
def test_hadolint_would_catch_a_root_image(tmp_path: Path) -> None:
    """The linter check can fail: an unpinned latest base image running as root is caught."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install podgate\nUSER root\n")
    done = subprocess.run(
        ["hadolint", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0 and "DL3007" in done.stdout


# -- the image's install steps, replayed into a fresh venv --------------------------


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the project installed from its wheel, as the image's final stage."""
    work = tmp_path_factory.mktemp("image")
    wheels = work / "wheels"

    def run(*argv: str | Path) -> None:
        done = subprocess.run(
            [str(a) for a in argv],
            capture_output=True,
            text=True,
            timeout=240,
            cwd=work,
            env=image_env(),
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    # The build stage: its COPY steps into a clean context, then its `pip wheel`
    # (dependencies come from this machine's site packages, which the venv sees).
    context = work / "src"
    for source, target in build_stage_copies():
        destination = context / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, destination)
        else:
            shutil.copy(ROOT / source, destination)
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, context
    )
    (wheel,) = wheels.glob("podgate-*.whl")
    run(sys.executable, "-m", "venv", "--system-site-packages", work / "venv")
    python = work / "venv/bin/python"
    run(python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel)
    return work / "venv"


def test_venv_runs_the_installed_wheel_not_the_checkout(venv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [venv / "bin/python", "-c", "import podgate, control.pages; print(podgate.__file__)"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=image_env(),
        check=True,
    )
    assert done.stdout.startswith(str(venv)), done.stdout
    assert (venv / "bin/podgate").exists()


def image_config(tmp_path: Path, password_hash: str) -> Path:
    """The image's config.yaml with the Secret's files stubbed and the embedded cluster."""
    config = yaml.safe_load((ROOT / "deploy/base/config.yaml").read_text())
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "users.yaml").write_text(f"ada: {password_hash}\n")
    (secrets / "api-tokens.yaml").write_text("[]\n")
    config.update(listen="127.0.0.1:0", ops_listen="127.0.0.1:0", cluster={"kind": "sim"})
    config["auth"]["users_file"] = str(secrets / "users.yaml")
    config["api_tokens_file"] = str(secrets / "api-tokens.yaml")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def password_hash(venv: Path) -> str:
    """A hash from the installed console script's `podgate hash-password` (stdin)."""
    done = subprocess.run(
        [venv / "bin/podgate", "hash-password"],
        input=PASSWORD,
        capture_output=True,
        text=True,
        timeout=30,
        env=image_env(),
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
async def podgate_from_venv(
    venv: Path, password_hash: str, tmp_path: Path
) -> AsyncIterator[tuple[str, str]]:
    config = image_config(tmp_path, password_hash)
    # An empty PYTHONPATH is ignored: the venv's own install serves.
    env = {"PODGATE_COOKIE_SECRET": "cookie-secret-of-the-image-test-0123", "PYTHONPATH": ""}
    argv = [str(venv / "bin/podgate"), "run", "--config", str(config)]
    child: Child = await start_child(argv, tmp_path, "podgate", env)
    try:
        match = await child.wait_for_line(BANNER, 30)
        yield match.group(1), match.group(2)
    finally:
        await child.end()


async def test_podgate_from_the_venv_serves_health_and_login(
    podgate_from_venv: tuple[str, str],
) -> None:
    public, ops = podgate_from_venv
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as session:
        async with session.get(ops + "/healthz") as r:
            assert r.status == 200
        ready = False
        for _ in range(100):  # the pod watch lists the embedded cluster first
            async with session.get(ops + "/readyz") as r:
                if r.status == 200:
                    ready = True
                    break
            await asyncio.sleep(0.1)
        assert ready, "never ready"
        async with session.get(public + "/hub/login") as r:
            page = await r.text()
            assert r.status == 200 and 'name="username"' in page
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page)
        assert xsrf
        form = {"username": "ada", "password": "wrong password", "_xsrf": xsrf.group(1)}
        async with session.post(public + "/hub/login", data=form, allow_redirects=False) as r:
            assert r.status in (200, 403) and "podgate-session" not in r.cookies
        form["password"] = PASSWORD
        async with session.post(public + "/hub/login", data=form, allow_redirects=False) as r:
            assert r.status in (302, 303), await r.text()
            assert "podgate-session" in r.cookies
