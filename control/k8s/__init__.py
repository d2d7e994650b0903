"""control.k8s: the only package that imports kubernetes_asyncio.

It turns the Kube protocol (control.kube) into API calls and the answers back
into plain dicts and control.errors exceptions. Nothing above it sees a
client model, an ApiException or an aiohttp error.
"""

from control.k8s.api import KubeApi, RequestObserver
from control.k8s.connect import connect_kube
from control.k8s.namespaces import ensure_namespace

__all__ = ["KubeApi", "RequestObserver", "connect_kube", "ensure_namespace"]
