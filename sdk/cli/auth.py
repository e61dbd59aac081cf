"""``orch auth``: log in to a server with an API key, see who you are, log out.

``login`` checks the key against ``GET /api/auth/whoami`` before it saves anything, then writes the server URL and
the key into the active profile (``$ORCH_HOME/profiles.toml``, mode 0600). Without ``--key`` the key is prompted
for, which keeps it out of shell history and the process list. Nothing here ever prints a key: only its public key
id (``orch_3f9c1a7b2d4e``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from orch.cli._output import JSON_OPTION, fail, fmt, print_fields, print_json
from orch.cli.profiles import active_name, load

app = typer.Typer(help="Log in to an orch server with an API key.", no_args_is_help=True)


def _whoami(client: Any) -> Any:
    from orch.control_plane.schemas.api_keys import WhoAmI

    return WhoAmI.model_validate(client.request("GET", "/auth/whoami"))


@app.command("login")
def login(
    key: str = typer.Option(
        None, "--key", help="The API key (orch_...). Omit it to be prompted (or to read it from standard input)."
    ),
    url: str = typer.Option(None, "--url", help="The server's URL (default: ORCH_API_URL or the profile's)."),
) -> None:
    """Check an API key against a server, then save the URL and key in the active profile."""
    from pydantic import SecretStr, ValidationError

    from orch.client import OrchClient
    from orch.control_plane.auth.keys import parse_key
    from orch.exceptions import ConfigurationError
    from orch.settings import get_settings

    if url is None:
        url = get_settings().api_url
        if url is None:
            fail("No server URL: pass --url https://... (or set ORCH_API_URL).")
    if key is None:
        # Prompted (hidden) on a terminal; piped in otherwise (`orch auth login --url URL < keyfile`).
        key = typer.prompt("API key", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    key = key.strip()
    parsed = parse_key(key)
    if parsed is None:
        fail("That is not an orch API key: keys look like orch_<key id>_<secret>.")
        return
    from orch.settings import Settings

    try:
        settings = Settings(api_url=url, api_key=SecretStr(key))
    except ValidationError as exc:
        raise ConfigurationError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    if settings.api_url is None:
        fail("No server URL: pass --url https://...")
    with OrchClient(settings) as client:
        who = _whoami(client)
    if who.key is None:
        fail(f"The server at {settings.api_url} did not check the key; is it an orch server?")
        return
    profiles = load()
    name = active_name(profiles)
    values = profiles.profiles.setdefault(name, {})
    values["ORCH_API_URL"] = str(settings.api_url)
    values["ORCH_API_KEY"] = key
    profiles.save()
    typer.echo(
        f"Logged in to {settings.api_url} with key {who.key.prefix} ({who.key.name!r}, scope {who.key.scope.value})."
    )
    typer.echo(f"Saved in profile {name!r} ({profiles.path}).")
    if not who.auth_enabled:
        typer.echo("Note: this server does not require API keys at the moment (authentication is off).", err=True)
    for variable in ("ORCH_API_URL", "ORCH_API_KEY"):
        if os.environ.get(variable):
            typer.echo(f"Note: {variable} is set in the environment and overrides the profile.", err=True)


@app.command("status")
def status(as_json: bool = JSON_OPTION) -> None:
    """Which server, which key (its id, name and scope; never the secret)."""
    from orch.client import get_client
    from orch.settings import get_settings

    settings = get_settings()
    profiles = load()
    profile = active_name(profiles)
    if settings.embedded:
        if as_json:
            print_json({"profile": profile, "api_url": None, "embedded": True, "auth_enabled": False, "key": None})
        else:
            typer.echo(f"Embedded mode (profile {profile!r}, no ORCH_API_URL): the local database in {settings.home}.")
        return
    key_source = "environment" if os.environ.get("ORCH_API_KEY") else "profile" if settings.api_key else None
    who = _whoami(get_client())
    if as_json:
        print_json(
            {
                "profile": profile,
                "api_url": settings.api_url,
                "embedded": False,
                "auth_enabled": who.auth_enabled,
                "scope": who.scope.value,
                "key_source": key_source,
                "key": who.key.model_dump(mode="json") if who.key else None,
            }
        )
        return
    fields: list[tuple[str, Any]] = [("server", settings.api_url), ("profile", profile)]
    fields.append(("authentication", "on" if who.auth_enabled else "off (the server accepts requests without a key)"))
    if who.key is not None:
        fields += [
            ("key id", who.key.prefix),
            ("key name", who.key.name),
            ("scope", who.key.scope.value),
            ("expires", fmt(who.key.expires_at) if who.key.expires_at else "never"),
            ("key from", key_source),
        ]
    else:
        fields.append(("key", "none (log in with `orch auth login --key ...`)"))
    print_fields("orch auth status", fields)


@app.command("logout")
def logout() -> None:
    """Remove the API key from the active profile (the server URL stays)."""
    profiles = load()
    name = active_name(profiles)
    values = profiles.profiles.get(name, {})
    if "ORCH_API_KEY" not in values:
        typer.echo(f"No API key saved in profile {name!r}.")
    else:
        del values["ORCH_API_KEY"]
        profiles.save()
        typer.echo(f"Removed the API key from profile {name!r}.")
    if os.environ.get("ORCH_API_KEY"):
        typer.echo("Note: ORCH_API_KEY is still set in the environment.", err=True)
