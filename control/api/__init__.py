"""The JupyterHub-compatible REST API under /hub/api: tokens, scopes, users, servers.

Kept import-light on purpose: control.web.context imports control.api.tokens,
so this package's __init__ must not import the handlers (which import the
context). Wiring uses control.api.routes.add_api_routes.
"""
