"""connect_kube: build one KubeApi from a kubeconfig or the pod's service account.

The configuration goes into a fresh kubernetes_asyncio Configuration, never
the library's global default, so two clusters (or two tests) never share
credentials. It never talks to the API: the first call does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import (
    ConfigException,
    load_incluster_config,
    load_kube_config,
    load_kube_config_from_dict,
)

from control.errors import KubeError
from control.k8s.api import KubeApi, RequestObserver

# Watches hold a pooled connection each; leave room for them next to a burst of spawns.
CONNECTION_POOL_SIZE = 64
# As kubernetes_asyncio sets it: one watch event may hold an object of up to 1.5 MiB.
WATCH_READ_BUFFER = 2**21


async def connect_kube(
    *,
    kubeconfig: str | dict[str, Any] | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    request_timeout: float = 10.0,
    observer: RequestObserver | None = None,
) -> KubeApi:
    """A KubeApi for the cluster the kubeconfig (path or parsed dict) or the pod names.

    kubeconfig=None and in_cluster=False read the default kubeconfig
    ($KUBECONFIG or ~/.kube/config). A configuration that cannot be loaded
    raises KubeError with status 0 and reason "BadKubeconfig".
    """
    configuration = Configuration()
    try:
        if in_cluster:
            load_incluster_config(client_configuration=configuration)
        elif isinstance(kubeconfig, dict):
            await load_kube_config_from_dict(
                kubeconfig, context=context, client_configuration=configuration
            )
        else:
            await load_kube_config(
                config_file=kubeconfig,
                context=context,
                client_configuration=configuration,
                persist_config=False,  # never write tokens back into someone's file
            )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as e:
        raise KubeError(0, "BadKubeconfig", f"cannot load the cluster configuration: {e}") from e
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    client = ApiClient(configuration=configuration)
    _read_the_environment_once(client, configuration.host)
    return KubeApi(client, request_timeout=request_timeout, observer=observer)


def _read_the_environment_once(client: ApiClient, host: str) -> None:
    """The client's session, minus its per-call look at the environment.

    kubernetes_asyncio's session trusts the environment, so before every API
    call aiohttp read ~/.netrc on a worker thread (a thread hop and a file
    read per pod create, and one more thread wanting the interpreter lock
    beside the edge's). The proxy the environment names for the API server
    (HTTPS_PROXY, NO_PROXY) is read here, once, unless the kubeconfig names one;
    the session keeps its connector and no longer looks.
    """
    rest = client.rest_client
    if rest.proxy is None:
        scheme = urlsplit(host).scheme or "https"
        proxy = getproxies().get(scheme)
        if proxy and not proxy_bypass(urlsplit(host).hostname or ""):
            rest.proxy = proxy
    trusting = rest.pool_manager
    connector = trusting.connector
    trusting.detach()  # the connector (its TLS settings and pool) carries over
    rest.pool_manager = aiohttp.ClientSession(
        connector=connector, trust_env=False, read_bufsize=WATCH_READ_BUFFER
    )
