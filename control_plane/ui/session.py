"""Who is looking at a UI page, what they may do, and the cookies that carry it (sessions and CSRF).

The UI follows the API's rule for when authentication is on (``Authenticator.enabled()``: a public bind,
``ORCH_AUTH=on``, or any key exists). With it off, every viewer may do everything, as with the API.

With it on, the login page takes an API key and sets the ``orch_session`` cookie::

    <public key id>.<expiry, unix seconds>.<random nonce>.<hex HMAC-SHA256>

The HMAC key is the key row's stored salted hash (``api_keys.key_hash``): a secret only the database holds, the
same in every server process and Lambda, so no extra signing secret has to be configured, kept equal everywhere or
rotated. The cookie never holds the API key. Each request re-reads the key row by its public id (one indexed read,
as the API does for a bearer key), so a revoked or expired key ends its sessions on the very next request; the
session's own expiry (``SESSION_SECONDS``, capped by the key's) bounds a stolen cookie. The cookie is ``HttpOnly``,
``SameSite=Lax`` and ``Secure`` when the page is served over https.

CSRF: every state-changing request carries a token, in a form field (``csrf``) or the ``X-CSRF-Token`` header that
htmx sends (set once on ``<body hx-headers>``). With a session the token is ``HMAC(key_hash, "csrf." + nonce)``: one
per session, unguessable without the database. Without a session (auth off, or the login form itself) it is a
double-submit token: a random ``orch_csrf`` cookie that the form must echo. A request authenticated by an
``Authorization`` header (scripts, tests) needs no token: browsers never attach that header by themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from orch.control_plane.api.security import Scope
from orch.control_plane.auth import keys
from orch.control_plane.db.engine import Database
from orch.control_plane.schemas.base import now_utc

SESSION_COOKIE = "orch_session"
CSRF_COOKIE = "orch_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
SESSION_SECONDS = 12 * 3600


class LoginRequired(Exception):
    """Authentication is on and the request has no valid session (pages redirect to /login)."""


class NotAllowed(Exception):
    """The viewer's scope does not allow the action, or the CSRF token is missing or wrong (HTTP 403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Viewer:
    """The person behind a request: their scope (``admin`` when authentication is off) and their CSRF token."""

    auth_enabled: bool
    scope: Scope
    csrf: str
    key_name: str | None = None
    key_prefix: str | None = None
    via_header: bool = False
    # A double-submit CSRF cookie to set on the response (first visit with no session).
    new_csrf_cookie: str | None = None

    def can(self, scope: Scope | str) -> bool:
        return self.scope.allows(Scope(scope))

    @property
    def actions(self) -> dict[str, bool]:
        """What the templates may show: one flag per scope."""
        return {s.value: self.can(s) for s in Scope}

    def require(self, scope: Scope) -> None:
        if not self.can(scope):
            raise NotAllowed(f"This needs the {scope.value!r} scope; your key has {self.scope.value!r}.")


def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def session_value(key_prefix: str, key_hash: str, *, expires: int, nonce: str | None = None) -> str:
    nonce = nonce or secrets.token_urlsafe(18)
    body = f"{key_prefix}.{expires}.{nonce}"
    return f"{body}.{_sign(key_hash, 'session.' + body)}"


def csrf_for(key_hash: str, nonce: str) -> str:
    return _sign(key_hash, "csrf." + nonce)


@dataclass(frozen=True)
class _KeyRow:
    id: uuid.UUID
    name: str
    scope: str
    prefix: str
    key_hash: str
    hash_scheme: str
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def usable(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def _key_row(db: Database, prefix: str) -> _KeyRow | None:
    from orch.control_plane.models import api_keys

    with db.session(write=False) as session:
        row = api_keys.read_by_prefix(session, prefix)
        if row is None:
            return None
        return _KeyRow(
            row.id, row.name, row.scope, row.prefix, row.key_hash, row.hash_scheme, row.expires_at, row.revoked_at
        )


def _check_session(db: Database, cookie: str) -> tuple[_KeyRow, str] | None:
    """The key row and the session nonce of a valid session cookie; ``None`` for anything else."""
    parts = cookie.split(".")
    if len(parts) != 4:
        return None
    prefix, expires, nonce, signature = parts
    if not expires.isdigit() or int(expires) < time.time():
        return None
    row = _key_row(db, prefix)
    if row is None or not row.usable(now_utc()):
        return None
    expected = _sign(row.key_hash, f"session.{prefix}.{expires}.{nonce}")
    if not hmac.compare_digest(expected, signature):
        return None
    return row, nonce


async def auth_enabled(request: Request) -> bool:
    authenticator = getattr(request.app.state, "authenticate", None)
    if authenticator is None or getattr(request.app.state, "embedded", False):
        return False
    return bool(await authenticator.enabled())


async def resolve_viewer(request: Request) -> Viewer:
    """The viewer of a request; raises ``LoginRequired`` when authentication is on and there is no session."""
    cached = getattr(request.state, "ui_viewer", None)
    if isinstance(cached, Viewer):
        return cached
    viewer = await _resolve(request)
    request.state.ui_viewer = viewer
    return viewer


async def _resolve(request: Request) -> Viewer:
    if not await auth_enabled(request):
        csrf, new = _double_submit_token(request)
        return Viewer(auth_enabled=False, scope=Scope.ADMIN, csrf=csrf, new_csrf_cookie=new)
    if request.headers.get("authorization"):
        identity = await request.app.state.authenticate.authenticate(request)  # 401/429 as the API answers
        return Viewer(
            True, identity.scope, csrf="", key_name=identity.name, key_prefix=identity.prefix, via_header=True
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise LoginRequired()
    found = await run_in_threadpool(_check_session, request.app.state.database, cookie)
    if found is None:
        raise LoginRequired()
    row, nonce = found
    return Viewer(True, Scope(row.scope), csrf=csrf_for(row.key_hash, nonce), key_name=row.name, key_prefix=row.prefix)


def _double_submit_token(request: Request) -> tuple[str, str | None]:
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and 20 <= len(existing) <= 100:
        return existing, None
    token = secrets.token_urlsafe(24)
    return token, token


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=is_https(request), path="/")


def attach_cookies(response: Response, request: Request, viewer: Viewer) -> None:
    if viewer.new_csrf_cookie:
        set_cookie(response, request, CSRF_COOKIE, viewer.new_csrf_cookie, max_age=None)


def check_origin(request: Request) -> None:
    """Refuse a cross-site POST by its Origin header (a second line behind the CSRF token)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise NotAllowed("Cross-site request refused.")


def check_csrf(request: Request, viewer: Viewer, form: dict[str, str]) -> None:
    """Refuse a state-changing request without the viewer's CSRF token."""
    check_origin(request)
    if viewer.via_header:
        return
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD) or ""
    if viewer.new_csrf_cookie or not viewer.csrf or not hmac.compare_digest(sent.encode(), viewer.csrf.encode()):
        raise NotAllowed("Missing or invalid CSRF token: reload the page and try again.")


# -- login -----------------------------------------------------------------------------------------------------------


class LoginFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def login(request: Request, raw_key: str) -> tuple[str, int]:
    """Check an API key (rate-limited like the API) and return a session cookie value and its lifetime."""
    authenticator: Any = request.app.state.authenticate
    address = request.client.host if request.client else "unknown"
    retry_after = authenticator.limiter.retry_after(address)
    if retry_after is not None:
        raise LoginFailed(f"Too many failed attempts from this address; retry in {retry_after} s.")
    parsed = keys.parse_key(raw_key)
    row = _key_row(request.app.state.database, parsed.prefix) if parsed else None
    if parsed is not None and row is None:
        keys.verify_key(parsed, keys.DUMMY_HASH, keys.HASH_SCHEME)  # same work as a known id
    if parsed is None or row is None or not keys.verify_key(parsed, row.key_hash, row.hash_scheme):
        authenticator.limiter.record_failure(address)
        raise LoginFailed("That is not a valid API key.")
    now = now_utc()
    if not row.usable(now):
        authenticator.limiter.record_failure(address)
        raise LoginFailed(f"API key {row.prefix} is revoked or expired.")
    lifetime = SESSION_SECONDS
    if row.expires_at is not None:
        lifetime = max(1, min(lifetime, int((row.expires_at - now).total_seconds())))
    expires = int(time.time()) + lifetime
    return session_value(row.prefix, row.key_hash, expires=expires), lifetime
