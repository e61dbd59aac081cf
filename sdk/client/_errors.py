"""Turn HTTP answers into orch exceptions with one readable line."""

from __future__ import annotations

from typing import Any

import httpx

from orch.exceptions import (
    AuthenticationError,
    InvalidInput,
    ObjectAlreadyExists,
    ObjectNotFound,
    OrchError,
    ServerUnavailable,
)


def detail_of(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list):
        parts = []
        for err in detail:
            if isinstance(err, dict):
                loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
            else:
                parts.append(str(err))
        return "; ".join(parts)
    return str(detail)


def raise_for_status(response: httpx.Response) -> None:
    code = response.status_code
    if code < 400:
        return
    detail = detail_of(response)
    if code == 404:
        raise ObjectNotFound(detail)
    if code == 409:
        raise ObjectAlreadyExists(detail)
    if code in (400, 422):
        raise InvalidInput(detail)
    if code == 401:
        raise AuthenticationError(f"Not authenticated: {detail}")
    if code == 403:
        raise AuthenticationError(f"Not allowed: {detail}")
    if code in (502, 503, 504):
        raise ServerUnavailable(f"The orch API is unavailable ({code}): {detail}")
    raise OrchError(f"The orch API answered {code}: {detail}")


def unreachable(base_url: str, exc: Exception) -> ServerUnavailable:
    return ServerUnavailable(f"Cannot reach the orch API at {base_url}: {type(exc).__name__}: {exc}")
