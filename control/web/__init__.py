"""The control plane's aiohttp handlers: login, logout, home, spawn, progress (SSE).

Handlers parse and check the request, call the authenticator or the spawner,
and answer with a page from control.pages or JSON. No Kubernetes call is
made here directly, and no body is read beyond a bounded form.
"""
