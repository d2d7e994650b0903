"""The one scripted sequence of API calls both servers answer.

`run_script` plays it against one server and returns every answer in order;
test_conformance compares the two lists field by field. Pods name a
scheduler that does not exist (`conformance-none`), so the real scheduler
leaves them alone and no status write races the script; the pod deleted
gracefully names a node instead, as a scheduled pod would. All names are
fixed, so answers line up step by step.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from conformance_client import Answer, RawApi

Obj = dict[str, Any]

SCHEDULER = "conformance-none"
NODE = "conformance-node"
SERVICE_ACCOUNT_SECONDS = 30.0
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass
class Server:
    """One server under test: its client and how to compact its history."""

    name: str
    api: RawApi
    compact: Callable[[], Awaitable[None]]
    makes_service_accounts: bool  # a controller-manager fills each namespace's `default`


def pod(name: str, labels: dict[str, str], **spec: Any) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "schedulerName": SCHEDULER,
            "containers": [
                {
                    "name": "main",
                    "image": "podgate-test/none:1",
                    "env": [{"name": "A", "value": "1"}],
                }
            ],
            **spec,
        },
    }


class Recorder:
    """Plays calls against one server and keeps every answer."""

    def __init__(self, server: Server, namespace: str) -> None:
        self.server = server
        self.api = server.api
        self.ns = namespace
        self.answers: list[Answer] = []

    def path(self, resource: str, name: str = "") -> str:
        base = f"/api/v1/namespaces/{self.ns}/{resource}"
        return f"{base}/{name}" if name else base

    async def call(self, step: str, method: str, path: str, **kw: Any) -> Answer:
        answer = await self.api.call(step, method, path, **kw)
        self.answers.append(answer)
        return answer

    async def watch(self, step: str, path: str, query: dict[str, str]) -> Answer:
        answer = await self.api.watch(step, path, query)
        self.answers.append(answer)
        return answer


async def run_script(server: Server, namespace: str) -> list[Answer]:
    r = Recorder(server, namespace)
    await _namespace(r)
    await _crud(r)
    await _patches(r)
    await _apply(r)
    await _selectors(r)
    await _paging(r)
    await _watches(r)
    await _invalid(r)
    await _deletion(r)
    await _other_kinds(r)
    return r.answers


async def _namespace(r: Recorder) -> None:
    await r.call(
        "namespace: create", "POST", "/api/v1/namespaces", body={"metadata": {"name": r.ns}}
    )
    if r.server.makes_service_accounts:
        # The ServiceAccount admission plugin refuses pods until `default` exists.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVICE_ACCOUNT_SECONDS
        while (await r.api.call("", "GET", r.path("serviceaccounts", "default"))).code != 200:
            if loop.time() > deadline:
                raise AssertionError(f"no default ServiceAccount in {r.ns}")
            await asyncio.sleep(0.2)


async def _crud(r: Recorder) -> None:
    pods = r.path("pods")
    # Server defaults, seen on a dry run so no scheduler ever acts on it.
    bare = {
        "metadata": {"name": "defaults"},
        "spec": {"containers": [{"name": "main", "image": "podgate-test/none"}]},
    }
    await r.call(
        "pod: dry-run create shows defaults", "POST", pods, body=bare, query={"dryRun": "All"}
    )
    await r.call("pod: dry run stored nothing", "GET", r.path("pods", "defaults"))
    await r.call("pod: create", "POST", pods, body=pod("web-1", {"app": "web", "tier": "front"}))
    await r.call("pod: create again", "POST", pods, body=pod("web-1", {"app": "web"}))
    await r.call(
        "pod: create web-2", "POST", pods, body=pod("web-2", {"app": "web", "tier": "back"})
    )
    await r.call("pod: create db-1", "POST", pods, body=pod("db-1", {"app": "db"}))
    await r.call("pod: get missing", "GET", r.path("pods", "nobody"))
    got = await r.call("pod: get", "GET", r.path("pods", "web-1"))
    await r.call(
        "pod: patch a label",
        "PATCH",
        r.path("pods", "web-1"),
        body={"metadata": {"labels": {"touched": "yes"}}},
        content_type=MERGE,
    )
    stale = got.body
    stale["metadata"]["annotations"] = {"note": "stale"}
    await r.call(
        "pod: update with a stale resourceVersion", "PUT", r.path("pods", "web-1"), body=stale
    )
    fresh = (await r.api.call("", "GET", r.path("pods", "web-1"))).body
    fresh["metadata"]["annotations"] = {"note": "fresh"}
    await r.call("pod: update", "PUT", r.path("pods", "web-1"), body=fresh)
    await r.call(
        "pod: update a missing pod", "PUT", r.path("pods", "nobody"), body=pod("nobody", {})
    )
    await r.call("pod: update with another name", "PUT", r.path("pods", "web-2"), body=fresh)


async def _patches(r: Recorder) -> None:
    web1 = r.path("pods", "web-1")
    await r.call(
        "merge patch: labels and annotations",
        "PATCH",
        web1,
        content_type=MERGE,
        body={
            "metadata": {
                "labels": {"touched": None, "patched": "merge"},
                "annotations": {"merge": "1"},
            }
        },
    )
    await r.call(
        "strategic merge: container image by name",
        "PATCH",
        web1,
        content_type=STRATEGIC,
        body={"spec": {"containers": [{"name": "main", "image": "podgate-test/none:2"}]}},
    )
    await r.call(
        "strategic merge: env of a pod is immutable",
        "PATCH",
        web1,
        content_type=STRATEGIC,
        body={"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "2"}]}]}},
    )
    await r.call(
        "strategic merge: tolerations may be added",
        "PATCH",
        web1,
        content_type=STRATEGIC,
        body={"spec": {"tolerations": [{"key": "gpu", "operator": "Exists"}]}},
    )
    await r.call(
        "json patch: add, replace, test",
        "PATCH",
        web1,
        content_type=JSON_PATCH,
        body=[
            {"op": "test", "path": "/metadata/labels/app", "value": "web"},
            {"op": "add", "path": "/metadata/labels/json", "value": "yes"},
            {"op": "replace", "path": "/metadata/annotations/merge", "value": "2"},
        ],
    )
    await r.call(
        "json patch: a failing test",
        "PATCH",
        web1,
        content_type=JSON_PATCH,
        body=[
            {"op": "test", "path": "/metadata/labels/app", "value": "db"},
            {"op": "add", "path": "/metadata/labels/never", "value": "x"},
        ],
    )
    await r.call(
        "json patch: remove a missing path",
        "PATCH",
        web1,
        content_type=JSON_PATCH,
        body=[{"op": "remove", "path": "/metadata/labels/absent"}],
    )
    await r.call(
        "patch: unknown content type", "PATCH", web1, content_type="text/plain", body="labels: x"
    )
    await r.call(
        "json patch: a malformed quantity",
        "PATCH",
        web1,
        content_type=JSON_PATCH,
        body=[{"op": "replace", "path": "/spec/containers/0/resources",
               "value": {"requests": {"cpu": "1 core"}}}],
    )  # fmt: skip
    await r.call(
        "patch: missing object",
        "PATCH",
        r.path("pods", "nobody"),
        content_type=MERGE,
        body={"metadata": {"labels": {"x": "y"}}},
    )
    await r.call("pod: after the patches", "GET", web1)


async def _apply(r: Recorder) -> None:
    cm = r.path("configmaps", "applied")

    def config(data: dict[str, str]) -> str:
        return (
            '{"apiVersion": "v1", "kind": "ConfigMap", '
            f'"metadata": {{"name": "applied"}}, "data": {_json(data)}}}'
        )

    await r.call(
        "apply: without fieldManager", "PATCH", cm, content_type=APPLY, body=config({"a": "1"})
    )
    await r.call(
        "apply: creates",
        "PATCH",
        cm,
        content_type=APPLY,
        query={"fieldManager": "alpha"},
        body=config({"a": "1", "b": "1"}),
    )
    await r.call(
        "apply: same manager changes its field",
        "PATCH",
        cm,
        content_type=APPLY,
        query={"fieldManager": "alpha"},
        body=config({"a": "2", "b": "1"}),
    )
    await r.call(
        "apply: another manager, same value, shares",
        "PATCH",
        cm,
        content_type=APPLY,
        query={"fieldManager": "beta"},
        body=config({"b": "1"}),
    )
    await r.call(
        "apply: another manager, other value, conflicts",
        "PATCH",
        cm,
        content_type=APPLY,
        query={"fieldManager": "beta"},
        body=config({"a": "3"}),
    )
    await r.call(
        "apply: force takes the field",
        "PATCH",
        cm,
        content_type=APPLY,
        query={"fieldManager": "beta", "force": "true"},
        body=config({"a": "3"}),
    )
    await r.call(
        "apply: a manager drops a field only it owned",
        "PATCH",
        cm,
        content_type=APPLY,
        query={"fieldManager": "alpha"},
        body=config({"b": "1"}),
    )
    await r.call("apply: after", "GET", cm)


def _json(value: Any) -> str:
    return json.dumps(value)


async def _selectors(r: Recorder) -> None:
    pods = r.path("pods")
    for selector in (
        "app=web",
        "app==web",
        "app!=web",
        "app in (web,db)",
        "tier notin (front)",
        "tier",
        "!tier",
        "app=web,tier=back",
        "app in (nothing)",
    ):
        await r.call(
            f"list: labelSelector {selector}", "GET", pods, query={"labelSelector": selector}
        )
    for selector in (
        "metadata.name=web-2",
        "metadata.name!=web-2",
        "status.phase=Pending",
        "status.phase=Running",
        "spec.nodeName=",
        "metadata.namespace=" + r.ns,
        "spec.schedulerName=x",
        "spec.image=x",
        "nonsense",
    ):
        await r.call(
            f"list: fieldSelector {selector}", "GET", pods, query={"fieldSelector": selector}
        )
    await r.call("list: a bad label selector", "GET", pods, query={"labelSelector": "a in b"})


async def _paging(r: Recorder) -> None:
    pods = r.path("pods")
    first = await r.call("list: limit 2", "GET", pods, query={"limit": "2"})
    token = first.body["metadata"].get("continue", "")
    await r.call("list: continue", "GET", pods, query={"limit": "2", "continue": token})
    await r.call(
        "list: a garbage continue token", "GET", pods, query={"limit": "2", "continue": "garbage"}
    )
    await r.call("list: limit larger than the list", "GET", pods, query={"limit": "50"})
    await r.call("list: a negative limit", "GET", pods, query={"limit": "-1"})
    await _snapshots(r)


async def _snapshots(r: Recorder) -> None:
    """Later pages and exact versions show the list as it was, not as it is."""
    cms = r.path("configmaps")
    for name in ("p-1", "p-2", "p-3"):
        await r.api.call(
            "", "POST", cms, body={"metadata": {"name": name, "labels": {"page": "1"}}}
        )
    query = {"labelSelector": "page=1"}
    first = await r.call("snapshot: first page", "GET", cms, query={**query, "limit": "2"})
    then = first.body["metadata"]["resourceVersion"]
    await r.api.call("", "POST", cms, body={"metadata": {"name": "p-9", "labels": {"page": "1"}}})
    await r.api.call("", "DELETE", r.path("configmaps", "p-3"))
    await r.api.call(
        "", "PATCH", r.path("configmaps", "p-2"), body={"data": {"new": "1"}}, content_type=MERGE
    )
    token = first.body["metadata"]["continue"]
    await r.call(
        "snapshot: next page", "GET", cms, query={**query, "limit": "2", "continue": token}
    )
    exact = {**query, "resourceVersion": then, "resourceVersionMatch": "Exact"}
    await r.call("snapshot: exact resourceVersion", "GET", cms, query=exact)
    await r.call(
        "snapshot: exact resourceVersion, paged", "GET", cms, query={**exact, "limit": "1"}
    )
    newer = {**query, "resourceVersion": then, "resourceVersionMatch": "NotOlderThan"}
    await r.call("snapshot: not older than", "GET", cms, query=newer)
    await r.call("snapshot: now", "GET", cms, query=query)
    await _dry_runs(r)


async def _dry_runs(r: Recorder) -> None:
    p1 = r.path("configmaps", "p-1")
    dry = {"dryRun": "All"}
    await r.call(
        "dry run: patch", "PATCH", p1, query=dry, body={"data": {"x": "1"}}, content_type=MERGE
    )
    current = (await r.api.call("", "GET", p1)).body
    await r.call("dry run: update", "PUT", p1, query=dry, body={**current, "data": {"y": "2"}})
    await r.call("dry run: delete", "DELETE", p1, query=dry)
    await r.call("dry run: nothing changed", "GET", p1)
    await r.call(
        "dry run: an unknown value",
        "PATCH",
        p1,
        query={"dryRun": "Some"},
        body={"data": {"x": "1"}},
        content_type=MERGE,
    )
    await r.call(
        "deletecollection: the pages",
        "DELETE",
        r.path("configmaps"),
        query={"labelSelector": "page=1"},
    )


async def _watches(r: Recorder) -> None:
    cms = r.path("configmaps")
    start = await r.api.call("", "GET", cms)
    rv = start.body["metadata"]["resourceVersion"]
    label = {"metadata": {"name": "watched", "labels": {"w": "1"}}, "data": {"k": "v"}}
    await r.call("watch: create", "POST", cms, body=label)
    await r.call(
        "watch: modify",
        "PATCH",
        r.path("configmaps", "watched"),
        content_type=MERGE,
        body={"data": {"k": "w"}},
    )
    await r.call("watch: delete", "DELETE", r.path("configmaps", "watched"))
    await r.watch(
        "watch: from a resourceVersion, in order",
        cms,
        {"resourceVersion": rv, "labelSelector": "w=1", "timeoutSeconds": "1"},
    )
    # The real server sends a bookmark only past the last event it sent: a change
    # the selector hides moves the version on while the watch is open, well
    # before the bookmark it sends 2 s ahead of the watch's end.
    bookmarks = asyncio.create_task(
        r.watch(
            "watch: bookmarks",
            cms,
            {
                "resourceVersion": rv,
                "labelSelector": "w=1",
                "timeoutSeconds": "5",
                "allowWatchBookmarks": "true",
            },
        )
    )
    await asyncio.sleep(0.3)
    await r.api.call("", "POST", cms, body={"metadata": {"name": "unwatched"}})
    await bookmarks
    token = (await r.api.call("", "GET", r.path("pods"), query={"limit": "1"})).body["metadata"][
        "continue"
    ]
    # A write after the token's list, so compaction passes the token's version.
    await r.api.call("", "POST", cms, body={"metadata": {"name": "after-token"}})
    await r.server.compact()
    await r.call(
        "list: continue after compaction",
        "GET",
        r.path("pods"),
        query={"limit": "1", "continue": token},
    )
    await r.watch(
        "watch: from a compacted resourceVersion",
        cms,
        {"resourceVersion": rv, "labelSelector": "w=1", "timeoutSeconds": "1"},
    )
    await r.watch(
        "watch: from resourceVersion 1",
        cms,
        {"resourceVersion": "1", "labelSelector": "w=1", "timeoutSeconds": "1"},
    )
    await r.watch(
        "watch: a bad resourceVersion", cms, {"resourceVersion": "abc", "timeoutSeconds": "1"}
    )


async def _invalid(r: Recorder) -> None:
    pods = r.path("pods")
    await r.call("invalid: bad name", "POST", pods, body=pod("Bad_Name", {}))
    bare = pod("no-containers", {})
    bare["spec"]["containers"] = []
    await r.call("invalid: no containers", "POST", pods, body=bare)
    await r.call("invalid: bad label value", "POST", pods, body=pod("bad-label", {"a": "-x-"}))
    await r.call(
        "invalid: several at once", "POST", pods, body=pod("Bad.Name_", {"a": "b c"}, containers=[])
    )
    await r.call(
        "invalid: namespace mismatch",
        "POST",
        pods,
        body={**pod("elsewhere", {}), "metadata": {"name": "x", "namespace": "other"}},
    )
    await r.call(
        "invalid: into a missing namespace",
        "POST",
        "/api/v1/namespaces/conformance-missing/configmaps",
        body={"metadata": {"name": "x"}},
    )
    await r.call("invalid: not JSON", "POST", pods, body="{not json")
    # One resource each: the real server walks a Go map, so with two the causes'
    # order would vary from run to run.
    for step, resources in (
        ("invalid: a request above its limit", {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
        ("invalid: a negative request", {"requests": {"memory": "-1Gi"}}),
        ("invalid: a malformed quantity", {"requests": {"cpu": "1 core"}}),
    ):
        body = pod("resources", {})
        body["spec"]["containers"][0]["resources"] = resources
        await r.call(step, "POST", pods, body=body)


async def _deletion(r: Recorder) -> None:
    pods = r.path("pods")
    since = (await r.api.call("", "GET", pods)).body["metadata"]["resourceVersion"]
    await r.call(
        "delete: create a scheduled pod",
        "POST",
        pods,
        body=pod("graceful", {"app": "grace"}, nodeName=NODE),
    )
    await r.call(
        "delete: with a grace period",
        "DELETE",
        r.path("pods", "graceful"),
        body={"gracePeriodSeconds": 20},
    )
    await r.call("delete: still there, terminating", "GET", r.path("pods", "graceful"))
    await r.call(
        "delete: again with a longer grace",
        "DELETE",
        r.path("pods", "graceful"),
        query={"gracePeriodSeconds": "25"},
    )
    await r.call(
        "delete: now", "DELETE", r.path("pods", "graceful"), query={"gracePeriodSeconds": "0"}
    )
    await r.call("delete: gone", "GET", r.path("pods", "graceful"))
    await r.call("delete: an unscheduled pod goes at once", "DELETE", r.path("pods", "db-1"))
    await r.watch(
        "delete: both deletions as a watch sees them",
        pods,
        {"resourceVersion": since, "labelSelector": "app in (grace,db)", "timeoutSeconds": "1"},
    )
    await r.call("delete: missing", "DELETE", r.path("pods", "nobody"))
    await r.call(
        "delete: with a stale uid precondition",
        "DELETE",
        r.path("pods", "web-2"),
        body={"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}},
    )
    await r.call("deletecollection: by label", "DELETE", pods, query={"labelSelector": "app=web"})
    await r.call("deletecollection: left", "GET", pods)


async def _other_kinds(r: Recorder) -> None:
    cm = {"metadata": {"name": "settings", "labels": {"k": "v"}}, "data": {"a": "1"}}
    await r.call("configmap: create", "POST", r.path("configmaps"), body=cm)
    await r.call(
        "configmap: replace data",
        "PUT",
        r.path("configmaps", "settings"),
        body={**cm, "data": {"b": "2"}},
    )
    await r.call("configmap: delete", "DELETE", r.path("configmaps", "settings"))
    secret = {"metadata": {"name": "token"}, "stringData": {"t": "abc"}}
    await r.call("secret: create", "POST", r.path("secrets"), body=secret)
    await r.call(
        "secret: bad base64",
        "POST",
        r.path("secrets"),
        body={"metadata": {"name": "bad"}, "data": {"t": "!!"}},
    )
    # Line breaks inside base64 (kustomize folds long values) are skipped; the
    # answer carries the value unbroken.
    folded = base64.b64encode(b"x" * 80).decode()
    await r.call(
        "secret: folded base64",
        "POST",
        r.path("secrets"),
        body={"metadata": {"name": "folded"}, "data": {"t": folded[:60] + "\n" + folded[60:]}},
    )
    await r.call("secret: folded base64 deleted", "DELETE", r.path("secrets", "folded"))
    await r.call("secret: delete", "DELETE", r.path("secrets", "token"))
    service = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8888}],
        },
    }
    await r.call("service: create", "POST", r.path("services"), body=service)
    await r.call(
        "service: strategic merge of ports by port",
        "PATCH",
        r.path("services", "web"),
        content_type=STRATEGIC,
        body={"spec": {"ports": [{"port": 443, "name": "https"}]}},
    )
    # What kubectl apply sends: the order of the whole list beside the change.
    order = [{"port": 80}, {"port": 8080}, {"port": 443}]
    await r.call(
        "service: strategic merge with $setElementOrder",
        "PATCH",
        r.path("services", "web"),
        content_type=STRATEGIC,
        body={"spec": {"$setElementOrder/ports": order, "ports": [{"port": 8080, "name": "alt"}]}},
    )
    await r.call(
        "service: strategic merge $patch delete",
        "PATCH",
        r.path("services", "web"),
        content_type=STRATEGIC,
        body={"spec": {"ports": [{"port": 8080, "$patch": "delete"}]}},
    )
    await r.call("service: delete", "DELETE", r.path("services", "web"))
    claim = {
        "metadata": {"name": "home"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    await r.call("pvc: create", "POST", r.path("persistentvolumeclaims"), body=claim)
    await r.call("pvc: delete", "DELETE", r.path("persistentvolumeclaims", "home"))
    event = {
        "metadata": {"name": "ev-1"},
        "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": r.ns},
        "reason": "Started",
        "message": "started",
        "type": "Normal",
        "source": {"component": "conformance"},
    }
    await r.call("event: create", "POST", r.path("events"), body=event)
    await r.call(
        "event: list by involvedObject",
        "GET",
        r.path("events"),
        query={"fieldSelector": "involvedObject.name=web-1,involvedObject.kind=Pod"},
    )
    await r.call(
        "event: without involvedObject",
        "POST",
        r.path("events"),
        body={"metadata": {"name": "ev-2"}, "reason": "x"},
    )
    await _group_kinds(r)
    await r.call("namespace: delete", "DELETE", f"/api/v1/namespaces/{r.ns}")


async def _group_kinds(r: Recorder) -> None:
    """A kind outside the core group: Status details name its group."""
    roles = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{r.ns}/roles"
    rule = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "reader"}, "rules": [rule]}  # fmt: skip
    await r.call("role: create", "POST", roles, body=role)
    await r.call("role: create again", "POST", roles, body=role)
    await r.call("role: get missing", "GET", f"{roles}/nobody")
    await r.call("role: list", "GET", roles)
    await r.call("role: delete", "DELETE", f"{roles}/reader")
    await r.call("role: delete missing", "DELETE", f"{roles}/reader")
    deployments = f"/apis/apps/v1/namespaces/{r.ns}/deployments"
    await r.call("deployment: get missing", "GET", f"{deployments}/nobody")
