"""Authorization as a property: no path trick or cookie trick reaches another user's pod.

podgate runs as `podgate run` assembles it (proxy-only and control-enabled,
admin access off and on) in a thread of its own, with recording pods for
alice and bob. Hypothesis sends raw requests with generated paths (dot
segments, %2F/%2f, %252F, %2e, case variants of /user/, unicode, trailing,
doubled and back slashes) and Cookie headers (valid, rotated-in, rotated-out,
foreign-key, expired, tampered, garbage, several session cookies in one
header or across headers), then checks:

- a pod was reached only by a request carrying a valid session of that
  pod's user, or of an admin where admin_access is on;
- no invalid cookie authenticates: without a valid one, no pod is reached
  and the control plane never offers to spawn;
- the session cookie itself never reaches any pod; nothing is a 5xx.

Bounded for CI; PODGATE_RELIABILITY_SCALE=N runs N times as many examples.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from itsdangerous import TimestampSigner
from reliability_kit import (
    COOKIE_NAME,
    CURRENT_SECRET,
    FOREIGN_SECRET,
    PREVIOUS_SECRET,
    RETIRED_SECRET,
    RecordingPod,
    budget,
    parse_responses,
    podgate_config,
    port_of,
    start_pod,
    start_podgate,
)

from edge.session import InvalidSession, SessionCodec

ADMIN = "carol"  # an admin with no pod of her own
USERS = ("alice", "bob", ADMIN)
MAX_AGE = 3600.0
# The session format edge/session.py documents: base64url(user).timestamp.signature,
# HMAC-SHA256 under this salt. test_forged_cookie_kit_matches_podgate checks it still holds.
SALT = "podgate.session"


class _SignerAt(TimestampSigner):
    """An itsdangerous signer that stamps a chosen time (for expired cookies)."""

    def __init__(self, key: str, at: float) -> None:
        super().__init__(key, salt=SALT, digest_method=hashlib.sha256)
        self._at = at

    def get_timestamp(self) -> int:
        return int(self._at)


def forge(user: str, key: str, *, age: float = 0.0) -> str:
    import base64

    payload = base64.urlsafe_b64encode(user.encode()).rstrip(b"=").decode()
    return _SignerAt(key, time.time() - age).sign(payload).decode()


# (kind, user) -> is this a valid session of user for the podgate under test?
VALID_KINDS = frozenset(("current", "previous"))


def cookie_value(kind: str, user: str) -> str:
    if kind == "current":
        return forge(user, CURRENT_SECRET)
    if kind == "previous":
        return forge(user, PREVIOUS_SECRET)
    if kind == "retired":
        return forge(user, RETIRED_SECRET)
    if kind == "foreign":
        return forge(user, FOREIGN_SECRET)
    if kind == "expired":
        return forge(user, CURRENT_SECRET, age=MAX_AGE + 120)
    if kind == "tampered":  # another user's name under this user's signature
        other = forge("bob" if user != "bob" else "alice", CURRENT_SECRET)
        mine = forge(user, CURRENT_SECRET)
        return other.split(".", 1)[0] + "." + mine.split(".", 1)[1]
    if kind == "truncated":
        return forge(user, CURRENT_SECRET)[:-3]
    raise AssertionError(kind)


@dataclass(frozen=True)
class SentCookie:
    kind: str
    user: str
    value: str

    @property
    def valid(self) -> bool:
        return self.kind in VALID_KINDS


def _sent(kind: str, user: str) -> SentCookie:
    return SentCookie(kind, user, cookie_value(kind, user))


# A third valid sessions (signed with the current or the still-accepted previous key),
# a third cookies that must not authenticate, a third garbage.
SESSION_COOKIES = st.one_of(
    st.builds(_sent, st.sampled_from(sorted(VALID_KINDS)), st.sampled_from(USERS)),
    st.builds(
        _sent,
        st.sampled_from(["retired", "foreign", "expired", "tampered", "truncated"]),
        st.sampled_from(USERS),
    ),
    st.builds(
        lambda junk: SentCookie("garbage", "", junk),
        st.text(st.sampled_from("abcXYZ019-_.=%+/\"'"), max_size=60),
    ),
)

PREFIXES = st.sampled_from(
    [
        "/user/",
        "/USER/",
        "/User/",
        "/%75ser/",
        "/us%65r/",
        "//user/",
        "/./user/",
        "/x/../user/",
        "\\user\\",
        "/user%2F",
        "/user%2f",
        "/user%252F",
        "/hub/../user/",
        "/user//",
    ]
)
OWNERS = st.sampled_from(
    [
        "alice",
        "bob",
        "carol",
        "zed",
        "ALICE",
        "al%69ce",
        "%61lice",
        "b%6Fb",
        "alice%2F..%2Fbob",
        "alice/../bob",
        "bob/%2e%2e/alice",
        "alice%252F..%252Fbob",
        "alicé",
        "bob%00",
    ]
)
TAILS = st.lists(
    st.sampled_from(
        [
            "tree",
            "..",
            ".",
            "%2e%2e",
            "%2E%2E",
            "%2e",
            "",
            "%2F",
            "%252F",
            "\\",
            "é",
            "ü%20x",
            "bob",
            "alice",
            "user",
            "api;x=1",
            "%25",
            "~",
        ]
    ),
    max_size=5,
)


def build_path(prefix: str, owner: str, tails: list[str], trailing: bool) -> str:
    return prefix + owner + ("/" + "/".join(tails) if tails else "") + ("/" if trailing else "")


# Half plain paths to real pods, so valid sessions often do reach one; half tricks.
PATHS = st.one_of(
    st.builds(
        build_path,
        st.just("/user/"),
        st.sampled_from(["alice", "bob"]),
        st.lists(st.sampled_from(["tree", "api", "x", "..", "%2e%2e", "%2F"]), max_size=3),
        st.booleans(),
    ),
    st.builds(build_path, PREFIXES, OWNERS, TAILS, st.booleans()),
)


class ThreadedPodgate:
    """podgate and its pods on an event loop in a thread, for synchronous hypothesis tests."""

    def __init__(self, tmp_path: Path, *, control: bool, admin_access: bool) -> None:
        self.tmp_path = tmp_path
        self.control = control
        self.admin_access = admin_access
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.port = 0
        self.pods: dict[str, RecordingPod] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="podgate-under-test", daemon=True)

    def __enter__(self) -> ThreadedPodgate:
        self._thread.start()
        if not self.ready.wait(15) or self.error is not None:
            raise RuntimeError(f"podgate did not start: {self.error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        assert not self._thread.is_alive(), "podgate thread did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self.error = e
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for name in ("alice", "bob"):
            self.pods[name] = await start_pod(name)
        routes = [
            {"path": f"/user/{name}", "target": pod.url, "user": name}
            for name, pod in self.pods.items()
        ]
        config = podgate_config(
            self.tmp_path,
            control=self.control,
            routes=routes,
            admin_access=self.admin_access,
            admins=(ADMIN,),
            max_age_seconds=MAX_AGE,
        )
        gate = await start_podgate(config)
        try:
            self.port = port_of(gate.public_url)
            self.ready.set()
            await self._stop.wait()
        finally:
            await gate.stop()
            for pod in self.pods.values():
                await pod.server.close()

    def hits(self) -> dict[str, int]:
        return {name: len(pod.log.requests) for name, pod in self.pods.items()}

    def send(self, path: str, cookie_headers: list[str]) -> tuple[int, dict[str, str]]:
        """One raw request on a fresh connection: (status, headers); status 0 for a close."""
        head = [f"GET {path} HTTP/1.1", "Host: podgate.test", "Connection: close"]
        head += [f"Cookie: {value}" for value in cookie_headers]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("utf-8")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(data)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        responses, _ = parse_responses(received)
        if not responses:
            return 0, {}
        return responses[0].status, responses[0].headers


@pytest.fixture(
    params=[("proxy", False), ("control", False), ("control", True)],
    ids=["proxy-only", "control", "control-admin-access"],
)
def threaded_gate(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ThreadedPodgate]:
    mode, admin_access = request.param
    with ThreadedPodgate(tmp_path, control=mode == "control", admin_access=admin_access) as gate:
        yield gate


def cookie_headers(cookies: list[SentCookie], extra: bool, split: bool, quoted: bool) -> list[str]:
    parts = [
        f'{COOKIE_NAME}="{c.value}"' if quoted else f"{COOKIE_NAME}={c.value}" for c in cookies
    ]
    if extra:
        parts.insert(0, "theme=dark")
    if not parts:
        return []
    return parts if split else ["; ".join(parts)]


@settings(
    max_examples=budget("authorization", 150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=PATHS,
    cookies=st.lists(SESSION_COOKIES, max_size=3),
    lead=st.sampled_from([None, "alice", "bob", ADMIN]),
    extra=st.booleans(),
    split=st.booleans(),
    quoted=st.booleans(),
)
def test_no_request_reaches_a_pod_its_session_does_not_own(
    threaded_gate: ThreadedPodgate,
    path: str,
    cookies: list[SentCookie],
    lead: str | None,
    extra: bool,
    split: bool,
    quoted: bool,
) -> None:
    if lead is not None:  # often a valid session first, so pods do get reached
        cookies = [_sent("current", lead), *cookies]
    before = threaded_gate.hits()
    status, headers = threaded_gate.send(path, cookie_headers(cookies, extra, split, quoted))
    after = threaded_gate.hits()
    reached = {name for name in after if after[name] > before[name]}
    valid_users = {c.user for c in cookies if c.valid}
    event(f"status {status}, reached {sorted(reached) or 'no pod'}")

    assert not 500 <= status < 600, (path, status)
    for owner in reached:
        allowed = owner in valid_users or (threaded_gate.admin_access and ADMIN in valid_users)
        assert allowed, f"{path!r} with {cookies} reached {owner}'s pod"
        assert headers.get("x-pod") == owner
    if not valid_users:
        assert not reached, f"invalid cookies {cookies} reached {reached} via {path!r}"
        assert "/hub/spawn/" not in headers.get("location", ""), (path, cookies, headers)
    for pod in threaded_gate.pods.values():
        for record in pod.log.requests[-1:]:
            sent = " ".join(v for k, v in record["headers"] if k.lower() == "cookie")
            assert COOKIE_NAME not in sent, sent


def test_forged_cookie_kit_matches_podgate() -> None:
    """The forging helpers above speak podgate's cookie format, so the property means something."""
    codec = SessionCodec([CURRENT_SECRET, PREVIOUS_SECRET], max_age_seconds=MAX_AGE)
    assert codec.verify(cookie_value("current", "alice")).user == "alice"
    assert codec.verify(cookie_value("previous", "bob")).user == "bob"
    assert codec.verify(codec.issue("alice")).user == "alice"
    for kind, reason in [
        ("retired", "bad_signature"),
        ("foreign", "bad_signature"),
        ("expired", "expired"),
        ("tampered", "bad_signature"),
        ("truncated", "bad_signature"),
    ]:
        with pytest.raises(InvalidSession) as caught:
            codec.verify(cookie_value(kind, "alice"))
        assert caught.value.reason == reason, kind


def test_each_user_reaches_only_their_own_pod(threaded_gate: ThreadedPodgate) -> None:
    """The plain case the property generalises, so a broken harness cannot pass vacuously."""
    for user in ("alice", "bob"):
        cookie = f"{COOKIE_NAME}={cookie_value('current', user)}"
        status, headers = threaded_gate.send(f"/user/{user}/tree", [cookie])
        assert (status, headers.get("x-pod")) == (200, user)
        other = "bob" if user == "alice" else "alice"
        status, headers = threaded_gate.send(f"/user/{other}/tree", [cookie])
        assert status == 403 and "x-pod" not in headers
    admin = f"{COOKIE_NAME}={cookie_value('current', ADMIN)}"
    status, headers = threaded_gate.send("/user/alice/tree", [admin])
    if threaded_gate.admin_access:
        assert (status, headers.get("x-pod")) == (200, "alice")
    else:
        assert status == 403
