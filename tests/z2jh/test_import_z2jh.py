"""`podgate import-z2jh` on realistic Zero to JupyterHub values files, and on bad input.

tests/z2jh/values/ holds values files written from the z2jh documentation
(authentication, user environment, resources, storage, culling, scheduling
pages); together they use every z2jh option the importer covers (COVERED).
Each goes through the real command line; what it writes must load with
podgate's own loader, and every key of the input must be named in the report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from control.z2jh import parse, translate
from podgate.config import load_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VALUES = sorted((HERE / "values").glob("*.yaml"))
# podgate's auth.oidc (the oidc authenticator's shape): the only keys the importer may write.
OIDC_KEYS = {
    "preset", "issuer", "client_id", "client_secret", "scopes", "username_claim",
    "groups_claim", "allowed_groups", "admin_groups", "allowed_domains", "tenant",
    "hosted_domain", "allowed_organizations",
}  # fmt: skip
# Every z2jh option the importer translates: each is set by at least one file.
COVERED = [
    "hub.config.JupyterHub.authenticator_class", "hub.config.JupyterHub.admin_access",
    "hub.config.Authenticator.admin_users", "hub.config.Authenticator.allowed_users",
    "hub.config.Authenticator.allow_all", "hub.config.DummyAuthenticator.password",
    "hub.config.GitHubOAuthenticator.allowed_organizations",
    "hub.config.GenericOAuthenticator.authorize_url",
    "hub.config.GenericOAuthenticator.username_claim",
    "hub.config.GenericOAuthenticator.claim_groups_key",
    "hub.config.GenericOAuthenticator.allowed_groups",
    "hub.config.GenericOAuthenticator.admin_groups", "hub.config.GenericOAuthenticator.scope",
    "hub.config.AzureAdOAuthenticator.tenant_id",
    "hub.config.GoogleOAuthenticator.hosted_domain", "hub.config.GitLabOAuthenticator.gitlab_url",
    "hub.config.GitLabOAuthenticator.allowed_gitlab_groups", "hub.config.NativeAuthenticator",
    "hub.concurrentSpawnLimit", "hub.extraConfig", "hub.cookieSecret",
    "singleuser.image.name", "singleuser.image.tag", "singleuser.image.pullPolicy",
    "singleuser.cmd", "singleuser.defaultUrl", "singleuser.startTimeout",
    "singleuser.cpu.guarantee", "singleuser.cpu.limit", "singleuser.memory.guarantee",
    "singleuser.memory.limit", "singleuser.storage.type", "singleuser.storage.capacity",
    "singleuser.storage.homeMountPath", "singleuser.storage.dynamic.storageClass",
    "singleuser.storage.dynamic.storageAccessModes", "singleuser.extraEnv",
    "singleuser.nodeSelector", "singleuser.extraTolerations", "singleuser.extraNodeAffinity",
    "singleuser.extraLabels", "singleuser.extraAnnotations", "singleuser.uid",
    "singleuser.fsGid", "singleuser.serviceAccountName", "singleuser.profileList",
    "cull.enabled", "cull.timeout", "cull.every", "cull.maxAge", "cull.concurrency",
    "cull.users", "cull.adminUsers",
    "scheduling.userPods.tolerations", "scheduling.userPods.nodeAffinity.matchNodePurpose",
]  # fmt: skip
OVERRIDES = ["image", "cmd", "cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit",
             "node_selector", "tolerations", "environment", "extra_labels", "uid"]  # fmt: skip
STORAGE_TYPES = {"dynamic", "none", "static"}
AUTHENTICATORS = {"dummy", "github", "generic-oauth", "azuread", "gitlab",
                  "oauthenticator.google.GoogleOAuthenticator",
                  "nativeauthenticator.NativeAuthenticator"}  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "podgate.cli", "import-z2jh", *args],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )  # fmt: skip


def paths(data: Any, at: str = "") -> set[str]:
    """Every dotted key path set in `data` (mappings only; lists end a path)."""
    found = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{at}.{key}" if at else str(key)
            found |= {path} | paths(value, path)
    return found


def loadable(config: dict[str, Any], tmp_path: Path) -> Any:
    """The config as podgate loads it (an oidc auth included)."""
    if config["auth"]["kind"] == "oidc":
        assert set(config["auth"]["oidc"]) <= OIDC_KEYS, set(config["auth"]["oidc"]) - OIDC_KEYS
    path = tmp_path / "loadable.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(path, {})


# -- the values files ---------------------------------------------------------------


def test_the_files_use_every_covered_option() -> None:
    used: set[str] = set()
    profiles: list[dict[str, Any]] = []
    for path in VALUES:
        data = yaml.safe_load(path.read_text())
        used |= paths(data)
        profiles += data.get("singleuser", {}).get("profileList", [])
    assert not [key for key in COVERED if key not in used]
    overrides = {k for p in profiles for k in p.get("kubespawner_override", {})}
    assert set(OVERRIDES) <= overrides
    assert {"profile_options", "slug", "description", "default"} <= {k for p in profiles for k in p}
    kinds = set()
    for path in VALUES:
        data = yaml.safe_load(path.read_text())
        kinds.add(data.get("singleuser", {}).get("storage", {}).get("type", "dynamic"))
    assert kinds == STORAGE_TYPES
    classes = {
        yaml.safe_load(p.read_text())["hub"]["config"]["JupyterHub"]["authenticator_class"]
        for p in VALUES
    }
    assert classes == AUTHENTICATORS


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_each_file_imports_and_loads(values: Path, tmp_path: Path) -> None:
    out = tmp_path / "podgate.yaml"
    done = run(str(values), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    config = yaml.safe_load(out.read_text())
    loaded = loadable(config, tmp_path)
    data = yaml.safe_load(values.read_text())
    su = data.get("singleuser", {})
    if "image" in su:
        assert loaded.spawner.image == f"{su['image']['name']}:{su['image']['tag']}"
    for section, prefix in (("cpu", "cpu"), ("memory", "memory")):
        for key, suffix in (("guarantee", "request"), ("limit", "limit")):
            given = su.get(section, {}).get(key)
            if given is not None:
                assert getattr(loaded.spawner.resources, f"{prefix}_{suffix}") == str(given)
    storage = su.get("storage", {})
    if storage.get("type", "dynamic") == "dynamic":
        assert loaded.spawner.storage is not None
        assert loaded.spawner.storage.size == storage.get("capacity", "10Gi")
        assert loaded.spawner.storage.storage_class == storage.get("dynamic", {}).get(
            "storageClass"
        )
    else:
        assert loaded.spawner.storage is None
    cull = data.get("cull", {})
    assert loaded.culler.enabled == cull.get("enabled", True)
    assert loaded.culler.timeout == cull.get("timeout", 3600)
    assert loaded.culler.every == cull.get("every", 600)
    assert loaded.culler.max_age == (cull.get("maxAge") or None)
    assert loaded.culler.concurrency == cull.get("concurrency", 10)
    assert loaded.culler.cull_admin_users == cull.get("adminUsers", True)
    limit = data.get("hub", {}).get("concurrentSpawnLimit", 64)
    assert loaded.spawner.concurrent_spawn_limit == limit
    auth = data["hub"]["config"].get("Authenticator", {})
    assert set(loaded.auth.admins) == set(auth.get("admin_users", []))
    assert set(loaded.auth.allowed_users) == set(auth.get("allowed_users", []))
    profiles = su.get("profileList", [])
    assert len(loaded.spawner.profiles) == len(profiles)
    for profile, entry in zip(loaded.spawner.profiles, profiles, strict=True):
        assert profile.display_name == entry["display_name"]
        override = entry.get("kubespawner_override", {})
        if "image" in override:
            assert profile.image == override["image"]
        if "mem_limit" in override:
            assert profile.resources is not None
            assert profile.resources.memory_limit == str(override["mem_limit"])
        if "node_selector" in override:
            assert profile.node_selector == override["node_selector"]
        if "uid" in override:
            assert profile.run_as_user == override["uid"]


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_every_key_is_in_the_report(values: Path) -> None:
    """Nothing is dropped silently: each key set under hub.config's sections, hub,
    singleuser, cull and scheduling, and each top-level key, has a report line."""
    data = parse(values.read_text(), values.name)
    keys = [line.key for line in translate(data).report.lines]
    read = ("hub.", "singleuser.", "cull.", "scheduling.")  # the rest is reported whole
    wanted = {k for k in paths(data) if k.startswith(read) and k.count(".") == 1}
    wanted |= {k for k in paths(data) if k.startswith("hub.config.")}
    wanted |= set(data) - {"hub", "singleuser", "cull", "scheduling"}
    wanted = {k for k in wanted if k.count(".") <= 3}

    def named(key: str) -> bool:
        return any(k == key or k.startswith((key + ".", key + "[")) for k in keys)

    assert not sorted(k for k in wanted if not named(k))


@pytest.mark.parametrize(
    ("hub", "limit", "status"),
    [
        ({"allowNamedServers": True, "namedServerLimitPerUser": 2}, 2, "carried"),
        ({"allowNamedServers": True}, 10, "changed"),  # JupyterHub's "no limit"
        ({"namedServerLimitPerUser": 3}, None, "none"),  # not allowed: nothing to limit
    ],
)
def test_named_servers_carry_over_with_their_limit(
    hub: dict[str, Any], limit: int | None, status: str, tmp_path: Path
) -> None:
    result = translate({"hub": hub})
    assert result.config["spawner"].get("named_server_limit_per_user") == limit
    lines = [x for x in result.report.lines if "namedserver" in x.key.lower()]
    assert lines and {x.status for x in lines} >= {status}
    loaded = loadable(result.config, tmp_path)
    assert loaded.spawner.named_server_limit_per_user == (limit or 0)


def test_python_in_extra_config_is_named_never_read() -> None:
    path = HERE / "values/keycloak-profiles.yaml"
    data = parse(path.read_text(), path.name)
    result = translate(data)
    for name in data["hub"]["extraConfig"]:
        [line] = [x for x in result.report.lines if x.key == f"hub.extraConfig.{name}"]
        assert line.status == "none" and "Python" in line.text and "not translated" in line.text
    dumped = yaml.safe_dump(result.config)
    assert "pre_spawn_hook" not in dumped and "http_timeout" not in dumped


def test_the_report_goes_to_stdout_with_o_and_to_stderr_without(tmp_path: Path) -> None:
    values = HERE / "values/dummy-course.yaml"
    with_file = run(str(values), "-o", str(tmp_path / "out.yaml"))
    to_stdout = run(str(values))
    assert with_file.returncode == to_stdout.returncode == 0
    assert with_file.stdout == to_stdout.stderr.replace("-> stdout", f"-> {tmp_path}/out.yaml")
    assert yaml.safe_load(to_stdout.stdout) == yaml.safe_load((tmp_path / "out.yaml").read_text())
    last = with_file.stdout.strip().splitlines()[-1]
    assert last.endswith("without a counterpart") and "carried over" in last


def test_oidc_output_names_the_authenticator_and_hides_the_secret() -> None:
    done = run(str(HERE / "values/github-resources.yaml"))
    assert "podgate's oidc authenticator (auth.kind: oidc)" in done.stderr
    assert "client_secret: (hidden)" in done.stderr
    assert "0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d" not in done.stderr


# -- bad input: said, exit status 2, never a traceback ---------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("hub: [unclosed\n", "is not valid YAML at line"),
        ("- hub\n- singleuser\n", "holds list, not a mapping"),
        ("", "is empty: not a Zero to JupyterHub values file"),
        ("listen: 0.0.0.0:8000\nspawner: {image: x}\n", "not a Zero to JupyterHub values file"),
        ("singelUser: {image: {name: x}}\nhub: {}\n", "singelUser: not a key of z2jh's values"),
        ("singleuser:\n  storage: {capasity: 1Gi}\n", "singleuser.storage.capasity: not a key"),
        ("cull: {enable: true}\n", "cull.enable: not a key of z2jh's values"),
        ("auth: {type: dummy}\nsingleuser: {}\n", "the 0.x auth block moved to hub.config"),
        ("singleuser: lots\n", "singleuser: expected a mapping, got str"),
        ("singleuser: {profileList: [{slug: a}]}\n", "profileList[0]: expected a mapping with"),
        ("hub: {config: [1]}\n", "hub.config: expected a mapping, got list"),
    ],
)
def test_bad_input_is_said(tmp_path: Path, text: str, words: str) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(text)
    out = tmp_path / "out.yaml"
    done = run(str(values), "-o", str(out))
    assert done.returncode == 2, done.stdout
    assert words in done.stderr, done.stderr
    assert done.stderr.startswith("podgate: import-z2jh: ")
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_every_unknown_key_is_named_at_once(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("hub: {concurentSpawnLimit: 3}\nsingleuser: {memroy: {limit: 1G}}\n")
    done = run(str(values))
    assert done.returncode == 2
    assert "hub.concurentSpawnLimit" in done.stderr and "singleuser.memroy" in done.stderr


def test_a_missing_file_is_said(tmp_path: Path) -> None:
    done = run(str(tmp_path / "nope.yaml"))
    assert done.returncode == 2 and "cannot read" in done.stderr and "Traceback" not in done.stderr


def test_binary_input_is_said(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_bytes(b"\xff\xfe\x00garbage")
    done = run(str(values))
    assert done.returncode == 2 and "not UTF-8" in done.stderr


def test_root_is_never_carried_over() -> None:
    result = translate(parse("singleuser: {uid: 0}\n", "v.yaml"))
    assert "run_as_user" not in result.config["spawner"]
    assert any(x.key == "singleuser.uid" and x.status == "changed" for x in result.report.lines)


def line_of(result: Any, key: str) -> Any:
    [line] = [x for x in result.report.lines if x.key == key]
    return line


def test_an_authenticator_podgate_lacks_is_said() -> None:
    text = (
        "hub:\n  config:\n"
        "    JupyterHub: {authenticator_class: ldapauthenticator.LDAPAuthenticator}\n"
        "    LDAPAuthenticator: {server_address: ldap.example.org}\n"
    )
    result = translate(parse(text, "v.yaml"))
    line = line_of(result, "hub.config.JupyterHub.authenticator_class")
    assert line.status == "none" and "ldapauthenticator.LDAPAuthenticator" in line.text
    assert line_of(result, "hub.config.LDAPAuthenticator.server_address").status == "none"
    assert result.config["auth"]["kind"] == "password"


def test_the_issuer_is_derived_for_keycloak_only() -> None:
    """Keycloak's documented endpoint layout names its issuer; any other provider's
    endpoints are said to need the issuer by hand, never guessed."""
    keycloak = translate(parse((HERE / "values/keycloak-profiles.yaml").read_text(), "k"))
    authorize = yaml.safe_load((HERE / "values/keycloak-profiles.yaml").read_text())["hub"][
        "config"]["GenericOAuthenticator"]["authorize_url"]  # fmt: skip
    assert authorize.startswith(keycloak.config["auth"]["oidc"]["issuer"] + "/protocol/")
    dex = (
        "hub:\n  config:\n    JupyterHub: {authenticator_class: generic-oauth}\n"
        "    GenericOAuthenticator: {authorize_url: 'https://dex.example.org/auth'}\n"
    )
    result = translate(parse(dex, "v.yaml"))
    assert "issuer" not in result.config["auth"]["oidc"]
    line = line_of(result, "hub.config.GenericOAuthenticator.authorize_url")
    assert line.status == "none" and "auth.oidc.issuer by hand" in line.text


def test_a_bad_namespace_is_said() -> None:
    done = run(str(HERE / "values/gitlab.yaml"), "--namespace", "Not_A_Name")
    assert done.returncode == 2 and "is not a namespace name" in done.stderr
