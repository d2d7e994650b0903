"""A hub-API pod's environment, read back by JupyterHub's own HubOAuth (the server's auth).

The pod manifest is built as podgate sends it; its env (with `$(POD_IP)`
expanded as a kubelet does) is handed to the stock `jupyterhub` package's
HubOAuth, which must find in it the API URL, client, callback and access
scopes a KubeSpawner-started server would have. With hub_api off, the pod
is as before: the edge's token and no JupyterHub variables beyond the prefix.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from control.manifests import pod_manifest, pod_token
from control.settings import Profile, SpawnerSettings
from control.singleuser_env import client_id, client_owner
from control.singleuser_tokens import ServerTokens, pod_hub_token

auth = pytest.importorskip("jupyterhub.services.auth", reason="the stock jupyterhub package")

HUB_URL = "http://podgate.podgate.svc:8000"
POD_IP = "10.1.2.3"
KUBESPAWNER_NAMES = {
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_CLIENT_ID",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_BASE_URL",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_SERVICE_URL",
    "JUPYTERHUB_OAUTH_CALLBACK_URL",
    "JUPYTERHUB_OAUTH_SCOPES",
    "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
    "JUPYTERHUB_USER",
    "JUPYTERHUB_SERVER_NAME",
    "JUPYTERHUB_ACTIVITY_URL",
    "JUPYTERHUB_HOST",
}


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet gives it (downward API and $(VAR) done)."""
    out: dict[str, str] = {}
    for var in pod["spec"]["containers"][0]["env"]:
        if "valueFrom" in var:
            out[var["name"]] = POD_IP
        else:
            out[var["name"]] = var["value"].replace("$(POD_IP)", out.get("POD_IP", ""))
    return out


def test_hub_api_pod_env_is_what_hub_oauth_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SpawnerSettings(hub_api=True, hub_url=HUB_URL, env={"JUPYTERHUB_USER": "mallory"})
    pod = pod_manifest("ada.b@x", settings, None, "the-pod-token-0123")
    env = env_of(pod)
    assert set(env) >= KUBESPAWNER_NAMES
    # The edge adds no token to a hub-API pod: the server asks the hub (OAuth) instead.
    assert "PODGATE_POD_TOKEN" not in env and "JUPYTER_TOKEN" not in env
    assert pod_token(pod) is None and pod_hub_token(pod) == "the-pod-token-0123"
    assert env["JUPYTERHUB_USER"] == "ada.b@x"  # configured env cannot change whose it is
    assert env["JUPYTERHUB_SERVICE_URL"] == f"http://{POD_IP}:8888/user/ada.b@x/"
    assert env["JUPYTERHUB_ACTIVITY_URL"] == f"{HUB_URL}/hub/api/users/ada.b@x/activity"
    assert env["JUPYTERHUB_SERVER_NAME"] == "" and env["JUPYTERHUB_HOST"] == ""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    hub_auth = auth.HubOAuth()
    assert hub_auth.api_token == "the-pod-token-0123"
    assert hub_auth.api_url.rstrip("/") == f"{HUB_URL}/hub/api"
    assert hub_auth.oauth_client_id == "jupyterhub-user-ada.b@x"
    assert hub_auth.oauth_redirect_uri == "/user/ada.b@x/oauth_callback"
    assert hub_auth.oauth_authorization_url == "/hub/api/oauth2/authorize"
    assert hub_auth.oauth_token_url == f"{HUB_URL}/hub/api/oauth2/token"
    assert hub_auth.hub_prefix == "/hub/"
    # (HubOAuth.base_url reads JUPYTERHUB_SERVICE_PREFIX at import time, so not here.)
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == "/user/ada.b@x/"
    assert hub_auth.access_scopes == {
        "access:servers!server=ada.b@x/",
        "access:servers!user=ada.b@x",
    }
    assert json.loads(env["JUPYTERHUB_OAUTH_SCOPES"]) == sorted(hub_auth.access_scopes)
    # The owner has the scope the server checks; another user's server scope does not pass.
    assert auth.check_scopes(hub_auth.access_scopes, {"access:servers!server=ada.b@x/"})
    assert not auth.check_scopes(hub_auth.access_scopes, {"access:servers!server=bob/"})


def test_profiles_turn_hub_api_on_or_off() -> None:
    on = Profile(slug="hub", display_name="Hub", hub_api=True)
    off = Profile(slug="plain", display_name="Plain", hub_api=False)
    settings = SpawnerSettings(hub_url=HUB_URL, profiles=(on, off))
    assert pod_hub_token(pod_manifest("ada", settings, on, "tok-tok-tok")) == "tok-tok-tok"
    plain = pod_manifest("ada", settings, off, "tok-tok-tok")
    assert pod_hub_token(plain) is None and pod_token(plain) == "tok-tok-tok"
    assert "JUPYTERHUB_API_URL" not in env_of(plain)
    inherit = Profile(slug="inherit", display_name="Inherit")
    settings = SpawnerSettings(hub_api=True, hub_url=HUB_URL, profiles=(inherit,))
    assert pod_hub_token(pod_manifest("ada", settings, inherit, "tok-tok-tok")) is not None


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"hub_api": True}, "hub_url: required"),
        (
            {"profiles": (Profile(slug="h", display_name="H", hub_api=True),)},
            "hub_url: required",
        ),
        ({"hub_api": True, "hub_url": "http://podgate:8000/hub"}, "no path"),
        ({"hub_api": True, "hub_url": "podgate:8000"}, "http(s)://HOST"),
        ({"hub_api": True, "hub_url": "http://user:pw@podgate:8000"}, "no path, query or user"),
    ],
)
def test_bad_hub_settings_are_named(settings: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SpawnerSettings(**settings)


def test_client_ids_name_exactly_one_user() -> None:
    for user in ("ada", "ada.b@x", "Zoë", "a/b", "a%2Fb"):
        assert client_owner(client_id(user)) == user
    for client in ("jupyterhub-user-", "service-x", "jupyterhub-user-%ff", "jupyterhub-user-a%2fb"):
        assert client_owner(client) is None


def test_server_tokens_follow_the_pods() -> None:
    settings = SpawnerSettings(hub_api=True, hub_url=HUB_URL)
    tokens = ServerTokens()
    first = pod_manifest("ada", settings, None, "first-token-xyz")
    tokens.observe("ADDED", first, None)
    assert tokens.user_of("first-token-xyz") == "ada" and tokens.has_server("ada")
    second = pod_manifest("ada", settings, None, "second-token-xyz")
    tokens.observe("MODIFIED", second, first)
    assert tokens.user_of("first-token-xyz") is None
    assert tokens.user_of("second-token-xyz") == "ada"
    tokens.observe("DELETED", second, None)
    assert tokens.user_of("second-token-xyz") is None and not tokens.has_server("ada")
    assert tokens.user_of("") is None and tokens.user_of("x" * 10_000) is None
