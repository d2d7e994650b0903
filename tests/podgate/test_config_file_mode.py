"""A config file holding secrets that other users can read gets one WARNING naming it.

Real files with real modes: `podgate run` as a process (proxy-only, so it
starts in a moment) and podgate.secret_files.exposure on the same files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from banner_kit import stderr_until_banner

from podgate.secret_files import exposure

PODGATE = [sys.executable, "-m", "podgate.cli"]
PROXY_ONLY = "listen: 127.0.0.1:0\nops_listen: 127.0.0.1:0\ncontrol: {enabled: false}\n"


def podgate_stderr(config: Path) -> str:
    """Start `podgate run --config`, wait for its banner, stop it; what it logged."""
    return stderr_until_banner(
        [*PODGATE, "run", "--config", str(config)], env=os.environ, timeout=30
    )


SECRETS = {
    "proxy_auth_token": "proxy_auth_token: route-api-token-0123456789\n",
    "session.cookie_secrets": "session: {cookie_secrets: [cookie-secret-0123456789]}\n",
    "api_tokens": "api_tokens: [{name: culler, token: api-token-0123456789}]\n",
    "auth.password": "auth: {kind: dummy, password: shared-password}\n",
    "auth.users": "auth: {kind: password, users: {ada: 'scrypt$x'}}\n",
}


def test_podgate_warns_once_naming_the_file_and_chmod_600(tmp_path: Path) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(PROXY_ONLY + SECRETS["session.cookie_secrets"])
    config.chmod(0o644)
    warnings = [
        line
        for line in podgate_stderr(config).splitlines()
        if " WARNING " in line and str(config) in line
    ]
    assert len(warnings) == 1, warnings
    assert f"chmod 600 {config}" in warnings[0]
    assert "0644" in warnings[0]


@pytest.mark.parametrize("key", sorted(SECRETS))
def test_each_kind_of_secret_counts(tmp_path: Path, key: str) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(PROXY_ONLY + SECRETS[key])
    config.chmod(0o604)
    warning = exposure(str(config))
    assert warning is not None and f"({key})" in warning, warning


def test_a_file_only_its_owner_reads_gets_no_warning(tmp_path: Path) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(PROXY_ONLY + "proxy_auth_token: route-api-token-0123456789\n")
    config.chmod(0o600)
    assert exposure(str(config)) is None
    assert "chmod 600" not in podgate_stderr(config)


def test_group_readable_counts_and_a_file_without_secrets_is_fine(tmp_path: Path) -> None:
    config = tmp_path / "podgate.yaml"
    config.write_text(PROXY_ONLY + "session: {cookie_secrets: [cookie-secret-0123456789]}\n")
    config.chmod(0o640)
    warning = exposure(str(config))
    assert warning is not None and "session.cookie_secrets" in warning
    plain = tmp_path / "plain.yaml"
    plain.write_text(PROXY_ONLY)
    plain.chmod(0o644)
    assert exposure(str(plain)) is None
