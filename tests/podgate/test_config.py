"""Config is validated at start; every error names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from podgate.config import load_config
from podgate.schema import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_match_the_design_contract() -> None:
    config = load_config(None, environ={})
    assert config.listen_address == ("127.0.0.1", 8000)
    assert config.ops_address == ("127.0.0.1", 8081)
    assert config.control.enabled is True
    assert config.cluster.kind == "sim"
    assert config.auth.kind == "dummy"


def test_the_documented_example_keys_load(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
listen: 127.0.0.1:9000
ops_listen: "[::1]:9001"
control: {enabled: false}
cluster: {kind: kube, kubeconfig: /etc/kube/config}
auth: {kind: dummy, password: letmein, admins: [ops]}
api_tokens:
- {name: culler, token: abc, scopes: [list:users, read:servers, delete:servers]}
spawner: {namespace: users, image: jupyter/base, cmd: [jupyterhub-singleuser], port: 8888}
routes:
- {path: /user/bench/, target: "http://127.0.0.1:9999", user: bench}
""",
        ),
        environ={},
    )
    assert config.listen_address == ("127.0.0.1", 9000)
    assert config.ops_address == ("::1", 9001)
    assert config.control.enabled is False
    assert config.cluster.kubeconfig == "/etc/kube/config"
    assert config.api_tokens[0].scopes == ("list:users", "read:servers", "delete:servers")
    assert config.spawner.cmd == ("jupyterhub-singleuser",)
    assert config.routes[0].user == "bench"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("listen: '8000'", "listen", "HOST:PORT"),
        ("listen: 8000", "listen", "string"),
        ("ops_listen: 'x:70000'", "ops_listen", "0-65535"),
        ("spawner: {imagee: x}", "spawner.imagee", "unknown key"),
        ("bogus: 1", "bogus", "unknown key"),
        ("control: {enabled: 3}", "control.enabled", "true or false"),
        ("control: yes", "control", "mapping"),
        ("auth: {kind: oauth}", "auth.kind", "one of"),
        ("auth: {kind: oidc}", "auth.oidc", "required with kind oidc"),
        (
            "auth: {kind: oidc, oidc: {issuer: 'https://id.example.org'}}",
            "auth.oidc.client_id",
            "required",
        ),
        ("auth: {kind: oidc, oidc: {client_id: lab}}", "auth.oidc.issuer", "required"),
        ("auth: {kind: oidc, oidc: {preset: okta, client_id: lab}}", "auth.oidc.preset", "one of"),
        (
            "auth: {kind: oidc, oidc: {client_id: lab, issuer: 'https://id.example.org', "
            "client_secret: s, client_secret_file: /f}}",
            "auth.oidc.client_secret_file",
            "not both",
        ),
        (
            "auth: {kind: oidc, oidc: {client_id: lab, issuer: 'https://id.example.org', "
            "clientid: x}}",
            "auth.oidc.clientid",
            "unknown key",
        ),
        (
            "auth: {kind: oidc, oidc: {client_id: lab, issuer: 'http://id.example.org'}}",
            "auth.oidc.issuer",
            "must use https",
        ),
        (
            "auth: {kind: oidc, oidc: {client_id: lab, issuer: 'id.example.org'}}",
            "auth.oidc.issuer",
            "not an http(s) URL",
        ),
        (
            "auth: {kind: oidc, oidc: {preset: azuread, client_id: lab}}",
            "auth.oidc.tenant",
            "required",
        ),
        (
            "auth: {kind: oidc, oidc: {preset: github, client_id: lab}}",
            "auth.oidc.client_secret",
            "GitHub needs",
        ),
        (
            "auth: {kind: oidc, oidc: {client_id: lab, issuer: 'https://id.example.org', "
            "tenant: t}}",
            "auth.oidc.tenant",
            "only meaningful with preset azuread",
        ),
        (
            "auth: {kind: oidc, oidc: {client_id: lab, issuer: 'https://id.example.org', "
            "refresh_seconds: -1}}",
            "auth.oidc.refresh_seconds",
            "between 0",
        ),
        (
            "auth: {kind: password, users_file: /u, oidc: {client_id: lab}}",
            "auth.oidc",
            "only meaningful with kind: oidc",
        ),
        ("api_tokens: [{name: x}]", "api_tokens[0].token", "missing"),
        ("api_tokens: {name: x}", "api_tokens", "list"),
        ("spawner: {port: '8888'}", "spawner.port", "integer"),
        ("routes: [{path: x, target: 'http://a'}]", "routes[0].path", "start with"),
        ("routes: [{path: /x, target: 'ftp://a'}]", "routes[0].target", "http"),
        ("session: {cookie_secrets: [short]}", "session.cookie_secrets", "16"),
        ("edge: {upstream_timeout: 0}", "edge.upstream_timeout", "positive"),
        ("edge: {head_timeout: 0}", "edge.head_timeout", "above 0"),
        ("edge: {hub_body_timeout: 7200}", "edge.hub_body_timeout", "at most 3600"),
        ("edge: {incomplete_per_address: 0}", "edge.incomplete_per_address", "at least 1"),
        ("edge: {incomplete_per_address: 2.5}", "edge.incomplete_per_address", "integer"),
        ("edge: {allowed_origins: [lab.example.org]}", "edge.allowed_origins[0]", "origin"),
        ("edge: {allowed_origins: ['https://a.org/x']}", "edge.allowed_origins[0]", "origin"),
        ("cluster: {kind: sim, kubeconfig: k}", "cluster.kubeconfig", "kube"),
        ("spawner: {run_as_user: 0}", "spawner", "run_as_user: 0 is root"),
        (
            "spawner: {profiles: [{slug: x, display_name: X, run_as_user: 0}]}",
            "spawner.profiles[0]",
            "run_as_user: 0 is root",
        ),
        ("spawner: {hub_api: true}", "spawner", "hub_url: required"),
        ("spawner: {hub_api: true, hub_url: 'http://p:8000/x'}", "spawner", "no path"),
        (
            "ops_listen: '127.0.0.1:8081'\nspawner: {hub_api: true, hub_url: 'http://p:8081'}",
            "spawner.hub_url",
            "ops port",
        ),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), environ={})
    assert caught.value.key == key
    assert words in str(caught.value)
    assert str(caught.value).startswith(key + ":")


def test_unreadable_and_non_yaml_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(write(tmp_path, "a: 1\nb: [\n"), environ={})
    with pytest.raises(ConfigError, match="mapping of settings"):
        load_config(write(tmp_path, "- 1\n- 2\n"), environ={})


def test_secrets_from_the_environment_win_over_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "session: {cookie_secrets: [file-secret-0123456789]}\nproxy_auth_token: from-file\n",
    )
    env = {
        "PODGATE_COOKIE_SECRET": "new-secret-0123456789, old-secret-0123456789",
        "CONFIGPROXY_AUTH_TOKEN": "from-env",
    }
    config = load_config(path, environ=env)
    assert config.session.cookie_secrets == ("new-secret-0123456789", "old-secret-0123456789")
    assert config.proxy_auth_token == "from-env"
    assert load_config(path, environ={}).proxy_auth_token == "from-file"


def test_a_weak_secret_from_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"PODGATE_COOKIE_SECRET": "short"})
    assert caught.value.key == "PODGATE_COOKIE_SECRET"


def test_allowed_origins_reach_the_edge_in_one_spelling(tmp_path: Path) -> None:
    from podgate.assembly import edge_settings

    text = "edge: {allowed_origins: ['https://Lab.Example.org:443', 'http://10.0.0.9:8080']}"
    config = load_config(write(tmp_path, text), environ={})
    assert edge_settings(config).allowed_origins == {
        "https://lab.example.org",
        "http://10.0.0.9:8080",
    }
