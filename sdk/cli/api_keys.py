"""``orch api-key``: create, list and revoke API keys (admin scope; embedded mode works on the local database).

``create`` prints the key once: explanations go to stderr and the key alone to stdout, as the last line, so that
``KEY=$(orch api-key create ...)`` captures exactly the key. ``--json`` prints the created object with its ``key``.
Listings never show secrets: keys are named by their public key id (``orch_3f9c1a7b2d4e``) or their UUID.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

import typer

from orch.cli._output import JSON_OPTION, fail, print_json, print_table

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

SCOPES = ("read", "agent", "deploy", "admin")
_DURATION_RE = re.compile(r"^(\d{1,6})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_expiry(value: str, now: dt.datetime | None = None) -> dt.datetime:
    """``90d``, ``12h``, ``30m``, ``2w`` from now, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or dt.datetime.now(dt.UTC)
    text = value.strip().lower()
    match = _DURATION_RE.match(text)
    if match:
        amount = int(match.group(1))
        if amount == 0:
            fail("--expires must be in the future (e.g. 90d).")
        return now + dt.timedelta(**{_UNITS[match.group(2)]: amount})
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        fail(f"Invalid --expires {value!r}: use a duration such as 90d, 12h, 2w or a date such as 2027-01-31.")
        raise  # unreachable: fail() raises
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    if when <= now:
        fail(f"--expires {value} is in the past.")
    return when


def _client() -> Any:
    from orch.client import get_client

    return get_client()


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="What the key is for (e.g. 'ci', 'agent-prod')."),
    scope: str = typer.Option(..., "--scope", help="read, agent, deploy or admin."),
    expires: str = typer.Option(None, "--expires", help="Lifetime (90d, 12h, 2w) or a date; default: never."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key and print it once."""
    from orch.control_plane.schemas.api_keys import ApiKeyCreated

    if scope not in SCOPES:
        fail(f"Invalid --scope {scope!r}: use one of {', '.join(SCOPES)}.")
    body: dict[str, Any] = {"name": name, "scope": scope}
    if expires is not None:
        body["expires_at"] = parse_expiry(expires).isoformat()
    created = ApiKeyCreated.model_validate(_client().request("POST", "/api_keys/", json=body))
    if as_json:
        print_json(created)
        return
    until = f"expires {created.expires_at:%Y-%m-%d %H:%M} UTC" if created.expires_at else "does not expire"
    typer.echo(f"Created API key {created.prefix} ({created.name!r}, scope {created.scope.value}; {until}).", err=True)
    typer.echo("Store it now: it is shown only this once.", err=True)
    typer.echo(created.key)


@app.command("ls")
def ls(
    all_: bool = typer.Option(False, "--all", "-a", help="Include revoked and expired keys."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List keys (never their secrets)."""
    from orch.control_plane.schemas.api_keys import ApiKey

    keys = [ApiKey.model_validate(k) for k in _client().request("GET", "/api_keys/", params=_params(all_))]
    if as_json:
        print_json(keys)
        return
    print_table(
        "API keys",
        ("key id", "name", "scope", "expires", "last used", "status"),
        [(k.prefix, k.name, k.scope.value, k.expires_at, k.last_used_at, _status(k)) for k in keys],
    )


@app.command("revoke")
def revoke(
    key: str = typer.Argument(..., help="The key's id (UUID) or public key id (orch_3f9c1a7b2d4e)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key: it stops working on the next request."""
    from orch.control_plane.schemas.api_keys import ApiKey

    key_uuid = _resolve(key.strip())
    revoked = ApiKey.model_validate(_client().request("POST", f"/api_keys/{key_uuid}/revoke"))
    if as_json:
        print_json(revoked)
        return
    typer.echo(f"Revoked API key {revoked.prefix} ({revoked.name!r}).")


def _resolve(ref: str) -> uuid.UUID:
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    from orch.control_plane.auth.keys import parse_key

    # A whole key pasted by mistake is reduced to its public id; the secret is never echoed.
    parsed = parse_key(ref)
    prefix = parsed.prefix if parsed else ref
    if not re.match(r"^orch_[a-z0-9]{1,32}$", prefix):
        fail("Name the key by its id (a UUID) or its public key id (orch_3f9c1a7b2d4e), as `orch api-key ls` shows.")
    for item in _client().request("GET", "/api_keys/", params=_params(True)):
        if item["prefix"] == prefix:
            return uuid.UUID(item["id"])
    from orch.exceptions import ObjectNotFound

    raise ObjectNotFound(f"No API key {prefix}.")


def _params(include_inactive: bool) -> dict[str, str]:
    return {"include_inactive": "true"} if include_inactive else {}


def _status(key: Any) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= dt.datetime.now(dt.UTC):
        return "expired"
    return "active"
