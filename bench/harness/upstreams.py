"""The upstreams every peer proxies to, started once per run.

nginx serves the static files (a 100-byte file, a 256 MiB file, a fixed
100-byte answer to POST); the aiohttp upstream_app serves WebSockets and
the upload sink. Both run on the load generator's core, so the core under
the proxy belongs to the proxy alone.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.harness.procs import Managed, free_port, start, wait_for_port

NGINX = "/usr/sbin/nginx"
SMALL_BODY = "p" * 99 + "\n"  # the 100-byte answer of the small-request workloads
BIG_FILE_BYTES = 256 * 1024 * 1024

# Paths every peer serves, relative to its base URL.
POST_PATH = "/user/bench/post"
SMALL_PATH = "/user/bench/small"
BIG_PATH = "/user/bench/big"
UPLOAD_PATH = "/user/bench/app/upload"
ECHO_PATH = "/user/bench/app/echo"
SOURCE_PATH = "/user/bench/app/source"


def nginx_common(workdir: Path, name: str) -> str:
    """Directives both nginx configs share: foreground, own temp dirs, many descriptors."""
    temp = workdir / f"{name}-temp"
    temp.mkdir(exist_ok=True)
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
pid {workdir}/{name}.pid;
error_log {workdir}/{name}-error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 65536; multi_accept on; }}
"""


def nginx_temp_paths(workdir: Path, name: str) -> str:
    temp = workdir / f"{name}-temp"
    return "\n".join(
        f"  {kind}_temp_path {temp}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


@dataclass
class Upstreams:
    static_port: int
    app_port: int
    processes: list[Managed]

    @property
    def static_base(self) -> str:
        return f"http://127.0.0.1:{self.static_port}"

    @property
    def app_base(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()


def _write_files(root: Path) -> None:
    user_dir = root / "user" / "bench"
    user_dir.mkdir(parents=True, exist_ok=True)
    (user_dir / "small").write_text(SMALL_BODY)
    with open(user_dir / "big", "wb") as big:
        big.truncate(BIG_FILE_BYTES)  # sparse: reads as zeros, costs no disk


def _static_config(workdir: Path, port: int, root: Path) -> str:
    return (
        nginx_common(workdir, "upstream")
        + "worker_processes 1;\n"
        + f"""http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
{nginx_temp_paths(workdir, "upstream")}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    root {root};
    location = {POST_PATH} {{ default_type text/plain; return 200 "{SMALL_BODY[:-1]}\\n"; }}
    location / {{ }}
  }}
}}
"""
    )


def start_upstreams(workdir: Path, *, cpus: str | None) -> Upstreams:
    """Start nginx (static) and the aiohttp upstream app; raise RuntimeError if either fails."""
    root = workdir / "www"
    _write_files(root)
    static_port, app_port = free_port(), free_port()
    conf = workdir / "upstream-nginx.conf"
    conf.write_text(_static_config(workdir, static_port, root))
    static = start(
        "upstream-nginx",
        [NGINX, "-e", str(workdir / "upstream-error.log"), "-c", str(conf)],
        log_dir=workdir,
        cpus=cpus,
    )
    app_script = Path(__file__).with_name("upstream_app.py")
    app = start(
        "upstream-app",
        [sys.executable, str(app_script), "--port", str(app_port)],
        log_dir=workdir,
        cpus=cpus,
    )
    ups = Upstreams(static_port, app_port, [static, app])
    for proc, port in ((static, static_port), (app, app_port)):
        if not wait_for_port(port, timeout=15, proc=proc):
            ups.stop()
            raise RuntimeError(f"{proc.name} did not start: {proc.log_tail()}")
    return ups
