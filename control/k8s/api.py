"""KubeApi: control.kube.Kube over kubernetes_asyncio's ApiClient, plain dicts in and out.

It uses the client only for what it is good at (configuration, auth headers,
token refresh, one pooled aiohttp session) and reads answers as JSON itself:
deserialising 1,000 pods into client models is slow and drops fields the
models do not know. Every call reports (verb, resource, status, seconds) to
the observer and raises only control.errors.KubeError subclasses; it never
retries, caches or logs — callers decide what a failure means.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient

from control.errors import KubeError
from control.k8s.translate import TRANSPORT_ERRORS, error_for_answer, translate
from control.k8s.watch_stream import read_watch_events
from control.kube import Object, ObjectList, WatchEvent

log = logging.getLogger(__name__)

# (verb, resource, HTTP status or 0 when no answer came, seconds)
RequestObserver = Callable[[str, str, int, float], None]

PAGE_SIZE = 500  # list chunk size, as kubectl and client-go use
WATCH_READ_MARGIN = 5.0  # seconds a watch may stay silent beyond its timeoutSeconds

Query = list[tuple[str, str]]


def resource_path(resource: str, namespace: str, name: str = "") -> str:
    """The REST path of a core resource ("pods") or a grouped one ("apps/v1/deployments")."""
    if resource.count("/") == 2:
        group, version, plural = resource.split("/")
        base = f"/apis/{group}/{version}"
    else:
        base, plural = "/api/v1", resource
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    return f"{path}/{name}" if name else path


def _selectors(label_selector: str, field_selector: str) -> Query:
    query: Query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


class KubeApi:
    """One ApiClient, created by connect_kube and closed by close()."""

    def __init__(
        self,
        client: ApiClient,
        *,
        request_timeout: float = 10.0,
        observer: RequestObserver | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self._client = client
        self._request_timeout = request_timeout
        self._observer = observer
        self._page_size = page_size

    async def close(self) -> None:
        await self._client.close()

    # -- the protocol ----------------------------------------------------------

    async def create(
        self, resource: str, namespace: str, body: Object, *, name: str = "", subresource: str = ""
    ) -> Object:
        """POST to the collection, or to one object's subresource (serviceaccounts/NAME/token)."""
        path = resource_path(resource, namespace, name)
        if subresource:
            path = f"{path}/{subresource}"
        return await self._call("create", resource, "POST", path, body=body)

    async def get(self, resource: str, namespace: str, name: str) -> Object:
        return await self._call("get", resource, "GET", resource_path(resource, namespace, name))

    async def delete(
        self, resource: str, namespace: str, name: str, *, grace_seconds: int | None = None
    ) -> None:
        options: Object = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_seconds is not None:
            options["gracePeriodSeconds"] = grace_seconds
        path = resource_path(resource, namespace, name)
        await self._call("delete", resource, "DELETE", path, body=options)

    async def patch(self, resource: str, namespace: str, name: str, patch: Object) -> Object:
        path = resource_path(resource, namespace, name)
        return await self._call(
            "patch",
            resource,
            "PATCH",
            path,
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def list(
        self,
        resource: str,
        namespace: str,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> ObjectList:
        path = resource_path(resource, namespace)
        items: list[Object] = []
        token = ""
        while True:
            query = _selectors(label_selector, field_selector)
            query.append(("limit", str(self._page_size)))
            if token:
                query.append(("continue", token))
            page = await self._call("list", resource, "GET", path, query=query)
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                return ObjectList(items, str(metadata.get("resourceVersion") or ""))

    async def watch(
        self,
        resource: str,
        namespace: str,
        *,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 30,
    ) -> AsyncIterator[WatchEvent]:
        query = _selectors(label_selector, field_selector)
        query += [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        # No total timeout: the server ends the stream; a silent one fails on the read timeout.
        limit = aiohttp.ClientTimeout(
            total=None,
            connect=self._request_timeout,
            sock_read=timeout_seconds + WATCH_READ_MARGIN,
        )
        response = await self._send(
            "watch", resource, "GET", resource_path(resource, namespace), query, None, "", limit
        )
        try:
            if response.status != 200:
                raise error_for_answer(response.status, await response.read(), response.headers)
            async for event in read_watch_events(response.content):
                yield event
        except KubeError:
            raise
        except TRANSPORT_ERRORS as e:
            raise translate(e) from e
        finally:
            response.release()

    # -- one request, observed and translated ------------------------------------

    async def _call(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Object | None = None,
        content_type: str = "",
    ) -> Object:
        timeout = aiohttp.ClientTimeout(total=self._request_timeout)
        response = await self._send(
            verb, resource, method, path, query, body, content_type, timeout
        )
        try:
            data = await response.read()
            if not 200 <= response.status < 300:
                raise error_for_answer(response.status, data, response.headers)
            answer = json.loads(data)
        except KubeError:
            raise
        except TRANSPORT_ERRORS as e:
            raise translate(e) from e
        finally:
            response.release()
        return answer if isinstance(answer, dict) else {}

    async def _send(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        query: Query | None,
        body: Object | None,
        content_type: str,
        limit: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Send one request; the observer hears of it once its status line (or failure) is in."""
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        started = time.monotonic()
        status = 0
        try:
            response: Any = await self._client.call_api(
                path,
                method,
                query_params=query or [],
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=limit,
            )
            status = response.status
            return response  # type: ignore[no-any-return]
        except TRANSPORT_ERRORS as e:
            raise translate(e) from e
        finally:
            self._observe(verb, resource, status, time.monotonic() - started)

    def _observe(self, verb: str, resource: str, status: int, seconds: float) -> None:
        if self._observer is None:
            return
        try:
            self._observer(verb, resource, status, seconds)
        except Exception:
            # A metrics bug must not turn a good answer into a failed call.
            log.exception("the Kubernetes request observer failed")
