"""deploy/chart: lint, render, fit the Kubernetes schema, refuse bad values, match kustomize.

The chart and deploy/'s kustomizations describe one deployment: each
kustomization is rendered with kubectl and its chart counterpart (the chart's
defaults, deploy/chart/examples/) with the real helm, and the objects must be
the same but for what differs by construction (helm_kit.normalized); the
config is compared as podgate loads it, the Secret by what its files mean.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_kit import render
from helm_kit import CHART, ROOT, by_key, run_helm, template

from podgate.config import Config, load_config

KUBE_VERSION = "1.30.0"  # the oldest Kubernetes the chart promises to fit (Chart.yaml)
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))
PLACEHOLDER = (ROOT / "deploy/base/secrets/cookie-secret").read_text().strip()
# The overlays build on base/, without deploy/'s dashboard (kustomize forbids a
# parent as a base).
NO_DASHBOARD = "grafanaDashboard.enabled=false"
# kustomization -> (namespace, the chart's values for the same deployment)
PAIRS: dict[str, tuple[str, list[Path], list[str]]] = {
    "deploy": ("podgate", [], [f"secrets.cookieSecret={PLACEHOLDER}"]),
    "deploy/overlays/example": ("notebooks", [CHART / "examples/example.yaml"], [NO_DASHBOARD]),
    "deploy/overlays/ingress-tls": (
        "podgate",
        [CHART / "examples/ingress-tls.yaml"],
        [NO_DASHBOARD],
    ),
}

Obj = dict[str, Any]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")


def loaded_config(obj: Obj, tmp_path: Path, name: str = "config") -> Config:
    """A ConfigMap's config.yaml as podgate loads it, the secret files stubbed."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "users.yaml").write_text("# none\n")
    (secrets / "api-tokens.yaml").write_text("[]\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(obj["data"]["config.yaml"].replace("/etc/podgate/secrets/", f"{secrets}/"))
    return load_config(path, {"PODGATE_COOKIE_SECRET": "x" * 32})


def secret_meaning(obj: Obj) -> dict[str, Any]:
    """The Secret's files as podgate reads them: the cookie secret's text, the rest parsed."""
    files = {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}
    return {k: v.strip() if k == "cookie-secret" else yaml.safe_load(v) for k, v in files.items()}


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_lint(helm: Path, values: Path | None) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_every_example_is_compared_with_a_kustomization() -> None:
    assert {p for _, paths, _ in PAIRS.values() for p in paths} == set(EXAMPLES)


@pytest.mark.parametrize("kustomization", sorted(PAIRS))
def test_the_chart_renders_what_kustomize_renders(
    helm: Path, kustomization: str, tmp_path: Path
) -> None:
    namespace, values, sets = PAIRS[kustomization]
    charted = by_key(template(helm, namespace, values, sets))
    kustomized = by_key(render(kustomization))
    assert sorted(charted) == sorted(kustomized)
    for key, want in kustomized.items():
        got = charted[key]
        if key == ("ConfigMap", "podgate-config"):
            assert loaded_config(got, tmp_path, "chart") == loaded_config(want, tmp_path, "k")
            got, want = dict(got, data=None), dict(want, data=None)
        if key[0] == "Secret":
            assert secret_meaning(got) == secret_meaning(want)
            got, want = dict(got, data=None), dict(want, data=None)
        assert got == want, key


def test_the_comparison_sees_a_difference(helm: Path, tmp_path: Path) -> None:
    """The check above can fail: one value changed on the chart's side is caught."""
    namespace, values, sets = PAIRS["deploy"]
    charted = by_key(template(helm, namespace, values, [*sets, "podgate.replicas=3"]))
    kustomized = by_key(render("deploy"))
    assert charted[("Deployment", "podgate")] != kustomized[("Deployment", "podgate")]
    charted = by_key(template(helm, namespace, values, [*sets, "cull.timeout=60"]))
    key = ("ConfigMap", "podgate-config")
    assert loaded_config(charted[key], tmp_path, "a") != loaded_config(kustomized[key], tmp_path)


@pytest.mark.parametrize("values", [None, *EXAMPLES], ids=lambda p: p.name if p else "defaults")
def test_every_object_fits_the_kubernetes_schema(helm: Path, values: Path | None) -> None:
    objects = template(helm, "notebooks", [values] if values else [])
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {e.path}")


def test_everything_lives_in_the_release_namespace(helm: Path, tmp_path: Path) -> None:
    objects = template(helm, "hub-7", [CHART / "examples/example.yaml"])
    config = next(o for o in objects if o["metadata"]["name"] == "podgate-config")
    assert loaded_config(config, tmp_path).spawner.namespace == "hub-7"
    for obj in objects:
        meta = obj["metadata"]
        assert (meta["name"] if obj["kind"] == "Namespace" else meta["namespace"]) == "hub-7"
        for subject in obj.get("subjects", []):
            assert subject["namespace"] == "hub-7"


# -- values.schema.json: a wrong key fails, named ------------------------------------


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ("singlueser.image.name=x", "at '': additional properties 'singlueser' not allowed"),
        (
            "singleuser.storage.capasity=1",
            "at '/singleuser/storage': additional properties 'capasity'",
        ),
        ("cull.users=true", "at '/cull': additional properties 'users'"),
        ("singleuser.cpu.limit=lots", "at '/singleuser/cpu/limit'"),
        ("singleuser.storage.type=static", "at '/singleuser/storage/type'"),
        ("scheduling.userPods.nodeAffinity.matchNodePurpose=prefer", "matchNodePurpose"),
        ("singleuser.profileList[0].display_name=A", None),
        ("singleuser.profileList[0].kubespawner_override.mem_limt=1G", "mem_limt"),
        ("singleuser.profileList[0].slug=Not_A_Label", "at '/singleuser/profileList/0/slug'"),
        ("singleuser.uid=0", "at '/singleuser/uid'"),
        ("auth.kind=native", "at '/auth/kind'"),
        ("secrets.cookieSecret=short", "at '/secrets/cookieSecret'"),
    ],
)
def test_a_wrong_value_fails_naming_its_key(helm: Path, setting: str, words: str | None) -> None:
    done = run_helm(helm, "template", "podgate", str(CHART), "--set", setting, ok=False)
    if words is None:  # a good setting: the check can pass
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode != 0, done.stdout[:500]
    assert "don't meet the specifications of the schema" in done.stderr, done.stderr
    assert words in done.stderr, done.stderr


def test_install_checks_the_schema_too(helm: Path) -> None:
    """`helm install --dry-run` (no cluster reached) refuses the same key."""
    done = run_helm(helm, "install", "podgate", str(CHART), "--dry-run=client",
                    "--set", "cull.every_seconds=5", ok=False)  # fmt: skip
    assert done.returncode != 0 and "additional properties 'every_seconds'" in done.stderr


# -- secrets ----------------------------------------------------------------------


def secret_of(objects: list[Obj]) -> dict[str, Any]:
    return secret_meaning(next(o for o in objects if o["kind"] == "Secret"))


def test_a_cookie_secret_is_made_when_none_is_given(helm: Path) -> None:
    first, second = (secret_of(template(helm))["cookie-secret"] for _ in range(2))
    assert len(first) == 64 and first.isalnum() and first != second


def test_users_and_tokens_go_into_the_secret(helm: Path, tmp_path: Path) -> None:
    values = tmp_path / "v.yaml"
    tokens = [{"name": "culler", "token": "t" * 32, "scopes": ["list:users"]}]
    given = {"auth": {"users": {"ann": "$scrypt$x"}}, "apiTokens": tokens}
    values.write_text(yaml.safe_dump(given))
    meaning = secret_of(template(helm, values=[values]))
    assert meaning["users.yaml"] == {"ann": "$scrypt$x"}
    assert meaning["api-tokens.yaml"] == tokens


def test_an_existing_secret_replaces_the_charts(helm: Path) -> None:
    objects = template(helm, sets=["secrets.existingSecret=site-secrets"])
    assert not [o for o in objects if o["kind"] == "Secret"]
    pod = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][1]["secret"]["secretName"] == "site-secrets"
    env = pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]
    assert env == {"name": "site-secrets", "key": "cookie-secret"}
    done = run_helm(helm, "template", "podgate", str(CHART), "--set",
                    "secrets.existingSecret=s,auth.users.ann=h", ok=False)  # fmt: skip
    assert done.returncode != 0 and "secrets.existingSecret" in done.stderr, done.stderr
