"""The README's identity-provider examples are configs podgate loads, with the keys they show."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from control.auth.presets import profile_of
from podgate.config import Config
from podgate.schema import build

README = Path(__file__).resolve().parents[2] / "README.md"


def examples() -> list[dict]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Sign in with your identity provider", 1)[1].split("\n### ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def test_the_keycloak_github_and_azure_examples_load() -> None:
    loaded = [build(Config, example) for example in examples()]
    presets = [c.auth.oidc.preset for c in loaded if c.auth.oidc is not None]
    assert presets == ["generic", "github", "azuread"]
    keycloak, github, azure = (profile_of(c.auth.oidc) for c in loaded if c.auth.oidc)
    assert keycloak.issuer == "https://sso.example.org/realms/lab"
    assert github.allowed_groups == frozenset({"example-lab"})
    assert azure.issuer is not None and azure.issuer.startswith(
        "https://login.microsoftonline.com/00000000-1111"
    )
