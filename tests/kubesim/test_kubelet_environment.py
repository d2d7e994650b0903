"""Container environment and `$(VAR)` expansion, as a real kubelet builds them."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubesim.kubelet.environment import (
    ContainerConfigError,
    container_argv,
    container_env,
    expand,
)

Obj = dict[str, Any]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("x$(A)y$(B)z", "xaybz"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("cost: 5$", "cost: 5$"),
        ("", ""),
    ],
)
def test_expansion(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}) == expected


def stores(objects: dict[tuple[str, str], Obj]) -> Any:
    return lambda resource, namespace, name: objects.get((resource, name))


POD = {
    "metadata": {
        "name": "jupyter-ada",
        "namespace": "users",
        "uid": "u-1",
        "labels": {"user": "ada"},
    },
    "spec": {"nodeName": "n1"},
}


def test_downward_api_literals_and_references_in_order() -> None:
    container = {
        "name": "nb",
        "env": [
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "WHO", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['user']"}}},
            {"name": "URL", "value": "http://$(IP):8888/$(LATER)"},
            {"name": "LATER", "value": "x"},
        ],
        "command": ["serve", "--ip=$(IP)"],
        "args": ["--name", "$(NAME)", "$$(NAME)"],
    }
    env = container_env(POD, container, "127.0.0.7", stores({}), {"PATH": "/bin"})
    assert env == {
        "PATH": "/bin",
        "IP": "127.0.0.7",
        "NAME": "jupyter-ada",
        "NS": "users",
        "WHO": "ada",
        "URL": "http://127.0.0.7:8888/$(LATER)",  # only earlier variables expand
        "LATER": "x",
    }
    assert container_argv(container, env) == [
        "serve",
        "--ip=127.0.0.7",
        "--name",
        "jupyter-ada",
        "$(NAME)",
    ]


def test_secret_and_configmap_references() -> None:
    objects = {
        ("secrets", "s"): {"data": {"token": base64.b64encode(b"t0k").decode()}},
        ("configmaps", "c"): {"data": {"mode": "lab", "theme": "dark"}},
    }
    container = {
        "envFrom": [{"configMapRef": {"name": "c"}, "prefix": "CFG_"}],
        "env": [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
            {
                "name": "OPT",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
        ],
    }
    env = container_env(POD, container, "127.0.0.7", stores(objects))
    assert env == {"CFG_mode": "lab", "CFG_theme": "dark", "TOKEN": "t0k", "MODE": "lab"}


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ({"secretKeyRef": {"name": "gone", "key": "k"}}, 'secret "gone" not found'),
        ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
        (
            {"secretKeyRef": {"name": "s", "key": "nope"}},
            "couldn't find key nope in Secret users/s",
        ),
    ],
)
def test_missing_references_fail_like_the_kubelet(ref: Obj, message: str) -> None:
    objects = {("secrets", "s"): {"data": {}}}
    container = {"env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(ContainerConfigError, match=message):
        container_env(POD, container, "127.0.0.7", stores(objects))


def test_resource_field_ref() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "nb", "resources": {"limits": {"cpu": "1500m", "memory": "1Gi"}}}
            ]
        },
    }
    container = {
        "env": [
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
        ]
    }
    assert container_env(pod, container, "", stores({})) == {"CPU": "2", "MEM": str(2**30)}
