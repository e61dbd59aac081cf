"""Scopes: each route declares the scope it needs, in its decorator, with ``dependencies=[requires(Scope.X)]``.

Scopes are ordered: ``read`` < ``agent`` < ``deploy`` < ``admin`` (an admin key may do everything, a deploy key
everything an agent key may, and so on). The key check itself lives in ``orch.control_plane.auth``.
"""

from __future__ import annotations

import enum
from typing import Any

from fastapi import Depends, Request


class Scope(enum.StrEnum):
    READ = "read"
    AGENT = "agent"
    DEPLOY = "deploy"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


_RANKS = {Scope.READ: 0, Scope.AGENT: 1, Scope.DEPLOY: 2, Scope.ADMIN: 3}
PUBLIC = "public"


class _ScopeCheck:
    def __init__(self, scope: Scope | str) -> None:
        self.scope = scope

    async def __call__(self, request: Request) -> None:
        checker = getattr(request.app.state, "authenticate", None)
        if checker is not None and self.scope != PUBLIC:
            await checker(request, self.scope)


def requires(scope: Scope | str) -> Any:
    """The dependency a route lists to declare the scope it needs (``PUBLIC`` for none)."""
    return Depends(_ScopeCheck(scope))


def declared_scope(route: Any) -> Scope | str | None:
    """The scope a route declared with ``requires()`` (``None`` if it declared none)."""
    for dep in getattr(route, "dependencies", []):
        check = getattr(dep, "dependency", None)
        if isinstance(check, _ScopeCheck):
            return check.scope
    return None


async def require_scope(request: Request, scope: Scope) -> None:
    """Ask for a further scope inside a route whose needs depend on its input (e.g. a flow run *of a deployment*
    needs ``deploy`` where an ad-hoc run needs ``agent``). A no-op where authentication is off or in-process."""
    checker = getattr(request.app.state, "authenticate", None)
    if checker is not None:
        await checker(request, scope)
