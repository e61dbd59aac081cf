"""The check every route runs: is authentication on, whose key is this, and does its scope allow the route?

``install()`` puts an ``Authenticator`` on ``app.state.authenticate``; ``requires(scope)`` awaits it with the scope
the route declared. In order:

1. In-process calls (the embedded SDK, ``app.state.embedded``) cross no network boundary and are trusted.
2. Is authentication on? Always on a non-loopback bind, on Lambda or with ``ORCH_AUTH=on``; never with
   ``ORCH_AUTH=off`` (refused by the settings wherever it would be unsafe); on loopback with ``auto`` once any key
   exists. That last check is cached for ``KEY_CHECK_INTERVAL`` seconds and latched once true: keys are never
   deleted, so "a key exists" never becomes false again.
3. An address with too many recent failures gets 429 and ``Retry-After`` (``ratelimit.FailureLimiter``).
4. The key is parsed, its row found by its public id (unique index), its hash compared in constant time, and its
   revocation and expiry checked — on every request, with no cache: a revoked key fails on the very next request,
   in every process and every Lambda instance. The lookup is one indexed read.
5. The key's scope must reach the route's (403 otherwise).

Failures are logged with the source address and the public key id only, never the key. ``last_used_at`` is written
at most once per ``TOUCH_INTERVAL`` per key and process, so a busy agent does not turn every read into a write.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from orch.control_plane.api.errors import Forbidden
from orch.control_plane.api.security import Scope
from orch.control_plane.auth import keys
from orch.control_plane.auth.ratelimit import FailureLimiter
from orch.control_plane.db.engine import Database
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.settings import ServerSettings, is_loopback
from orch.exceptions import AuthenticationError

logger = logging.getLogger("orch.control_plane.auth")

KEY_CHECK_INTERVAL = 2.0
TOUCH_INTERVAL = 60.0
BEARER_HINT = "send 'Authorization: Bearer <key>' (orch auth login --key ...)"


@dataclass(frozen=True)
class Identity:
    """The key a request was made with."""

    id: uuid.UUID
    name: str
    scope: Scope
    prefix: str
    expires_at: dt.datetime | None


class _Refused(Exception):
    """A key that does not work: ``detail`` goes to the client, ``reason`` and ``prefix`` to the log."""

    def __init__(self, detail: str, reason: str, prefix: str | None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason
        self.prefix = prefix


class Authenticator:
    def __init__(self, settings: ServerSettings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.limiter = FailureLimiter(settings.auth_failure_limit, settings.auth_failure_window)
        self._always_on = settings.auth == "on" or settings.on_lambda or not is_loopback(settings.server_host)
        self._keys_exist = False
        self._checked_at = -KEY_CHECK_INTERVAL
        self._touched: dict[uuid.UUID, float] = {}
        self._lock = threading.Lock()

    async def __call__(self, request: Request, scope: Scope | str) -> None:
        if getattr(request.app.state, "embedded", False):
            return
        if not await self.enabled():
            return
        identity = await self.authenticate(request)
        needed = Scope(scope)
        if not identity.scope.allows(needed):
            raise Forbidden(
                f"API key {identity.prefix} has scope {identity.scope.value!r}; "
                f"this request needs {needed.value!r} or higher."
            )

    # -- is authentication on? ---------------------------------------------------------------------------------

    async def enabled(self) -> bool:
        if self._always_on:
            return True
        if self.settings.auth == "off":
            return False
        if self._keys_exist:
            return True
        if time.monotonic() - self._checked_at >= KEY_CHECK_INTERVAL:
            self._keys_exist = await run_in_threadpool(self._any_key_exists)
            self._checked_at = time.monotonic()
        return self._keys_exist

    def note_key_created(self) -> None:
        """A key was created through this app: authentication is on from the next request (auto mode)."""
        self._keys_exist = True

    def _any_key_exists(self) -> bool:
        from orch.control_plane.models import api_keys

        with self.database.session(write=False) as session:
            return api_keys.any_exists(session)

    # -- whose key is it? --------------------------------------------------------------------------------------

    async def authenticate(self, request: Request) -> Identity:
        """The identity of the request's key; 401 for a missing or bad key, 429 for a blocked address."""
        cached = getattr(request.state, "orch_identity", None)
        if isinstance(cached, Identity):
            return cached
        address = request.client.host if request.client else "unknown"
        retry_after = self.limiter.retry_after(address)
        if retry_after is not None:
            logger.warning("authentication refused from %s: too many failures (retry in %ss)", address, retry_after)
            raise HTTPException(
                status_code=429,
                detail=f"Too many failed authentications from this address; retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
            )
        header = request.headers.get("authorization")
        if not header:
            raise AuthenticationError(f"Missing API key: {BEARER_HINT}.")
        try:
            identity = await self._identify(header)
        except _Refused as refused:
            self.limiter.record_failure(address)
            logger.warning(
                "authentication failed from %s: %s (key id %s)", address, refused.reason, refused.prefix or "-"
            )
            raise AuthenticationError(refused.detail) from None
        request.state.orch_identity = identity
        return identity

    async def identify_if_present(self, request: Request) -> Identity | None:
        """The identity of a presented key even when authentication is off (``whoami``); ``None`` without one."""
        if not request.headers.get("authorization"):
            return getattr(request.state, "orch_identity", None)
        return await self.authenticate(request)

    async def _identify(self, header: str) -> Identity:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _Refused(f"Malformed Authorization header: {BEARER_HINT}.", "malformed header", None)
        parsed = keys.parse_key(token)
        if parsed is None:
            raise _Refused("Invalid API key: not an orch key (orch_<key id>_<secret>).", "not an orch key", None)
        return await run_in_threadpool(self._check, parsed)

    def _check(self, parsed: keys.ParsedKey) -> Identity:
        from orch.control_plane.models import api_keys

        with self.database.session(write=False) as session:
            row = api_keys.read_by_prefix(session, parsed.prefix)
            if row is None:
                keys.verify_key(parsed, keys.DUMMY_HASH, keys.HASH_SCHEME)  # same work as a known id
                raise _Refused("Invalid API key.", "unknown key id", parsed.prefix)
            if not keys.verify_key(parsed, row.key_hash, row.hash_scheme):
                raise _Refused("Invalid API key.", "wrong secret", parsed.prefix)
            now = now_utc()
            if row.revoked_at is not None:
                raise _Refused(
                    f"API key {row.prefix} was revoked at {row.revoked_at:%Y-%m-%d %H:%M:%S} UTC.",
                    "revoked key",
                    row.prefix,
                )
            if row.expires_at is not None and row.expires_at <= now:
                raise _Refused(
                    f"API key {row.prefix} expired at {row.expires_at:%Y-%m-%d %H:%M:%S} UTC.",
                    "expired key",
                    row.prefix,
                )
            identity = Identity(row.id, row.name, Scope(row.scope), row.prefix, row.expires_at)
        self._touch(identity.id, now)
        return identity

    def _touch(self, key_id: uuid.UUID, now: dt.datetime) -> None:
        with self._lock:
            last = self._touched.get(key_id)
            due = last is None or time.monotonic() - last >= TOUCH_INTERVAL
            if due:
                self._touched[key_id] = time.monotonic()
        if not due:
            return
        from orch.control_plane.models import api_keys

        try:
            with self.database.session() as session:
                api_keys.touch(session, key_id, now)
        except SQLAlchemyError as exc:  # a busy database must not fail an authenticated request
            logger.info("could not record the use of an API key: %s", type(exc).__name__)
