"""The page a signed-in browser gets from GET /hub/logout: one button that signs out.

JupyterLab's File → Log Out (and JupyterHub-era links) open /hub/logout with
a GET. Signing out stays a POST with the form token, so no other site can
sign anyone out by a link; this page is that POST, one click away. Renders
only.
"""

from __future__ import annotations

from control.pages.markup import layout, post_form, text


def sign_out_page(user: str, *, xsrf: str) -> str:
    main = (
        "<h1>Sign out</h1>"
        f"<p>You are signed in as <strong>{text(user)}</strong>. Sign out of podgate in "
        "this browser? Your servers keep running.</p>"
        '<div class="actions">'
        + post_form("/hub/logout", xsrf, "Sign out", button_class="button button-primary")
        + '<a class="button" href="/hub/home">Stay signed in</a></div>'
    )
    return layout("Sign out", main, user=user, xsrf=xsrf)
