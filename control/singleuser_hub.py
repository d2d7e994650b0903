"""SingleuserHub: what podgate's hub holds to be the hub jupyterhub-singleuser servers expect.

Built by the wiring when the spawner (or a profile) has `hub_api` on, stored
on the Hub (control.web.context), and read by the handlers of /hub/api/user,
/hub/api/users/<name>/activity (control.api.singleuser) and the OAuth flow
(control.web.oauth). Plain data; it does nothing itself.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from control.oauth_codes import SpentCodes
from control.oauth_grants import OAuthGrants
from control.singleuser_tokens import ServerTokens

# (server key, epoch seconds): record activity a server reported, where the edge's goes
# (the key is control.names.server_key: the user, or "user/server" for a named server).
ActivityReport = Callable[[str, float], Awaitable[None]]


@dataclass
class SingleuserHub:
    tokens: ServerTokens
    grants: OAuthGrants
    codes: SpentCodes
    report_activity: ActivityReport
    clock: Callable[[], float] = field(default=time.time)
