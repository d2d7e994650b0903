"""podgate's server-rendered HTML: the hub's pages, their static files and security headers.

Each page is a plain function returning a str of HTML that works without
JavaScript; the handlers in control.web choose which to render and with
what. Nothing here decides who may do what, talks to Kubernetes or reads
a request: it renders what it is given, escaping everything a user controls.
"""

from control.pages.errors import error_page, too_many_spawns_page
from control.pages.home import NamedServerView, ServerState, home_page
from control.pages.login import (
    INVALID_LOGIN,
    logged_out_page,
    login_page,
    redirect_login_page,
    sign_in_failed_page,
    throttled_message,
)
from control.pages.markup import XSRF_FIELD, local_path, server_url, static_url
from control.pages.security import CONTENT_SECURITY_POLICY, harden, security_headers
from control.pages.spawn import (
    progress_url,
    spawn_failed_page,
    spawn_form_page,
    spawn_pending_page,
)
from control.pages.static_routes import add_static_routes

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "INVALID_LOGIN",
    "XSRF_FIELD",
    "NamedServerView",
    "ServerState",
    "add_static_routes",
    "error_page",
    "harden",
    "home_page",
    "local_path",
    "logged_out_page",
    "login_page",
    "progress_url",
    "redirect_login_page",
    "security_headers",
    "server_url",
    "sign_in_failed_page",
    "spawn_failed_page",
    "spawn_form_page",
    "spawn_pending_page",
    "static_url",
    "throttled_message",
    "too_many_spawns_page",
]
