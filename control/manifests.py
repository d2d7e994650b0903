"""Pure builders of a user's Pod and PersistentVolumeClaim, and tiny readers of what they carry.

Everything here turns plain arguments (the user, SpawnerSettings, the chosen
Profile, the pod's token) into JSON-shaped dicts ready for the Kubernetes
API, or reads a field back out of such a dict. It must never do I/O, read
the environment or the clock, or know about the cluster it is sent to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from control import names
from control.kube import Object
from control.settings import Profile, Resources, SpawnerSettings
from control.singleuser_env import singleuser_env

CONTAINER_NAME = "notebook"
VOLUME_NAME = "home"
TOKEN_ENV = "PODGATE_POD_TOKEN"
PROFILE_ANNOTATION = "podgate.io/profile"
PROFILE_LABEL = "podgate.io/profile"

# The selector the pod informer watches: every user pod carries these.
BASE_LABELS = names.owned_labels("singleuser-server")
POD_SELECTOR = names.label_selector(BASE_LABELS)

# Characters a user name may hold that stay readable in a URL path; the rest
# (non-ASCII letters) are percent-encoded, which routes.normalise_path decodes
# exactly once back to the name.
_PATH_SAFE = "@+.-_~"


# The path space of user servers: each user's prefix sits directly under it.
USER_PREFIX = "/user/"


def server_url(key: str) -> str:
    """A server's prefix as the browser and the pod see it: "/user/<name>/" for the
    default server, "/user/<name>/<server>/" for a named one (`key`: names.server_key)."""
    user, server = names.split_key(key)
    named = f"{server}/" if server else ""  # server names are URL-safe slugs
    return f"{USER_PREFIX}{quote(user, safe=_PATH_SAFE)}/{named}"


def _labels(key: str, settings: SpawnerSettings, profile: Profile | None) -> dict[str, str]:
    user, server = names.split_key(key)
    labels = {**settings.extra_labels}
    if profile is not None:
        labels.update(profile.extra_labels)
        labels[PROFILE_LABEL] = profile.slug
    # Ours last: extra labels must never hide whose pod this is.
    labels.update(BASE_LABELS)
    labels[names.USER_LABEL] = names.user_label(user)
    labels.pop(names.SERVER_LABEL, None)
    if server:
        labels[names.SERVER_LABEL] = server
    return labels


def _annotations(key: str, settings: SpawnerSettings, profile: Profile | None) -> dict[str, str]:
    user, server = names.split_key(key)
    annotations = {**settings.extra_annotations, names.USER_ANNOTATION: user}
    annotations.pop(names.SERVER_ANNOTATION, None)
    if server:
        annotations[names.SERVER_ANNOTATION] = server
    if profile is not None:
        annotations[PROFILE_ANNOTATION] = profile.slug
    return annotations


def _resources(resources: Resources) -> dict[str, dict[str, str]]:
    requests = {
        key: value
        for key, value in (("cpu", resources.cpu_request), ("memory", resources.memory_request))
        if value is not None
    }
    limits = {
        key: value
        for key, value in (("cpu", resources.cpu_limit), ("memory", resources.memory_limit))
        if value is not None
    }
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _jupyter_args(settings: SpawnerSettings, url: str) -> list[str]:
    """What a Jupyter server needs to serve behind the edge (as jupyterhub-singleuser sets)."""
    return [
        "--ServerApp.ip=$(POD_IP)",  # expanded by the kubelet from the downward API
        f"--ServerApp.port={settings.port}",
        f"--ServerApp.base_url={url}",
        # Requests arrive with the public Host header, not the pod's address.
        "--ServerApp.allow_remote_access=True",
        # The edge sets X-Forwarded-*; the pod is reachable only through it.
        "--ServerApp.trust_xheaders=True",
        "--ServerApp.open_browser=False",
    ]


def _env(key: str, settings: SpawnerSettings, profile: Profile | None, token: str) -> list[Any]:
    url = server_url(key)
    user, server = names.split_key(key)
    values = {
        # Jupyter images read these to find their prefix. JUPYTERHUB_API_TOKEN is
        # left out on purpose: docker-stacks' start script would then run
        # jupyterhub-singleuser against a hub that does not exist.
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVICE_PREFIX": url,
        **settings.env,
        **(profile.env if profile is not None else {}),
        # Last, so no configured env can change whose pod this is or its token.
        "PODGATE_USER": user,
        "PODGATE_BASE_URL": url,
    }
    if settings.uses_hub_api(profile) and settings.hub_url is not None:
        # jupyterhub-singleuser asks the hub who a visitor is (OAuth for browsers), so
        # the edge adds no token upstream: without TOKEN_ENV the route carries none.
        values.update(singleuser_env(user, url, token, settings.hub_url, settings.port, server))
    else:
        values[TOKEN_ENV] = token
        # jupyter_server's token: only the edge, which adds it upstream, knows it.
        values["JUPYTER_TOKEN"] = token
    env: list[Any] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    env.extend({"name": key, "value": value} for key, value in values.items() if key != "POD_IP")
    return env


def _pod_security(settings: SpawnerSettings, profile: Profile | None) -> dict[str, Any]:
    """The pod's securityContext: admitted where Pod Security "restricted" is enforced."""
    uid = profile.run_as_user if profile is not None else None
    return {
        "runAsNonRoot": True,
        "runAsUser": uid if uid is not None else settings.run_as_user,
        "runAsGroup": settings.run_as_group,
        "fsGroup": settings.fs_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_manifest(
    key: str, settings: SpawnerSettings, profile: Profile | None, token: str
) -> Object:
    """A server's Pod (`key`: names.server_key): deterministic name, labels the informer
    selects on, the server to run."""
    url = server_url(key)
    image = (profile.image if profile is not None else None) or settings.image
    cmd = profile.cmd if profile is not None and profile.cmd is not None else settings.cmd
    resources = (profile.resources if profile is not None else None) or settings.resources
    args = list(settings.args)
    if settings.jupyter_args:
        args += _jupyter_args(settings, url)

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": settings.image_pull_policy,
        "env": _env(key, settings, profile, token),
        "ports": [{"name": "notebook", "containerPort": settings.port, "protocol": "TCP"}],
        "resources": _resources(resources),
        # Pod Security "restricted" asks these of every container.
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if cmd:
        container["command"] = list(cmd)
    if args:
        container["args"] = args
    if settings.readiness_path is not None:
        container["readinessProbe"] = {
            "httpGet": {"path": url + settings.readiness_path.lstrip("/"), "port": settings.port},
            "periodSeconds": 2,
            "failureThreshold": 3,
        }

    node_selector = {**settings.node_selector}
    tolerations = list(settings.tolerations)
    if profile is not None:
        node_selector.update(profile.node_selector)
        if profile.tolerations is not None:
            tolerations = list(profile.tolerations)

    spec: dict[str, Any] = {
        "containers": [container],
        # As KubeSpawner: a crashed server is restarted (and a crash loop
        # shows), a server the user shut down cleanly stays stopped.
        "restartPolicy": "OnFailure",
        "terminationGracePeriodSeconds": settings.stop_grace_seconds,
        "securityContext": _pod_security(settings, profile),
        "automountServiceAccountToken": settings.service_account is not None,
    }
    if settings.service_account is not None:
        spec["serviceAccountName"] = settings.service_account
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if settings.storage is not None:
        spec["volumes"] = [
            {
                "name": VOLUME_NAME,
                "persistentVolumeClaim": {"claimName": names.pvc_name(key)},
            }
        ]
        container["volumeMounts"] = [
            {"name": VOLUME_NAME, "mountPath": settings.storage.mount_path}
        ]

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": names.pod_name(key, settings.pod_name_prefix),
            "namespace": settings.namespace,
            "labels": _labels(key, settings, profile),
            "annotations": _annotations(key, settings, profile),
        },
        "spec": spec,
    }


def pvc_manifest(key: str, settings: SpawnerSettings) -> Object:
    """A server's claim (one per server, as KubeSpawner's default); only meaningful when
    settings.storage is set (ValueError otherwise)."""
    storage = settings.storage
    if storage is None:
        raise ValueError("no storage is configured, so there is no claim to build")
    spec: dict[str, Any] = {
        "accessModes": list(storage.access_modes),
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class is not None:
        spec["storageClassName"] = storage.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": names.pvc_name(key),
            "namespace": settings.namespace,
            "labels": _labels(key, settings, None),
            "annotations": _annotations(key, settings, None),
        },
        "spec": spec,
    }


def pod_user(pod: Object) -> str | None:
    """The raw user name a pod belongs to, from its annotation."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    user = annotations.get(names.USER_ANNOTATION)
    return user if isinstance(user, str) and user else None


def pod_server(pod: Object) -> str:
    """The named server a pod runs, "" for a user's default server."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    server = annotations.get(names.SERVER_ANNOTATION)
    return server if isinstance(server, str) else ""


def pod_key(pod: Object) -> str | None:
    """The server key (names.server_key) of a user pod; None if it names no user."""
    user = pod_user(pod)
    return names.server_key(user, pod_server(pod)) if user is not None else None


def pod_profile(pod: Object) -> str | None:
    """The profile slug a pod was started with, if any."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    slug = annotations.get(PROFILE_ANNOTATION)
    return slug if isinstance(slug, str) and slug else None


def pod_token(pod: Object) -> str | None:
    """The pod's own secret token, from the env var the manifest sets."""
    for container in (pod.get("spec") or {}).get("containers") or ():
        for var in container.get("env") or ():
            if var.get("name") == TOKEN_ENV and isinstance(var.get("value"), str):
                return var["value"]
    return None
