"""``orch profile``: named sets of settings in ``$ORCH_HOME/profiles.toml`` — list, switch, create, delete.

A profile typically holds a server URL and an API key (``orch auth login`` writes both). The active profile is the
file's ``active`` entry unless ``ORCH_PROFILE`` names another; ``ORCH_*`` environment variables override any profile.
The helpers here (which profile is active, masking secrets) are shared by ``orch auth`` and ``orch config``; they
read the file directly rather than through the settings, so that a profile with a bad value can still be repaired.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit, urlunsplit

import typer

from orch.cli._output import JSON_OPTION, fail, print_json, print_table
from orch.settings import ProfileFile, Settings, home_from_env

app = typer.Typer(help="Manage profiles: named sets of settings (server URL, API key...).", no_args_is_help=True)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Settings whose values are secrets, beyond the SecretStr fields of ``Settings``.
_SECRET_WORDS = ("KEY", "SECRET", "PASSWORD", "TOKEN")


def load() -> ProfileFile:
    return ProfileFile.load(home_from_env())


def active_name(profiles: ProfileFile) -> str:
    """The profile in use: ``ORCH_PROFILE`` (read as the settings' profile source does) or the file's choice."""
    return os.environ.get("ORCH_PROFILE") or profiles.active


def is_secret(name: str) -> bool:
    field = Settings.model_fields.get(name.removeprefix("ORCH_").lower())
    if field is not None and "SecretStr" in str(field.annotation):
        return True
    return any(word in name.upper() for word in _SECRET_WORDS)


def masked(name: str, value: str) -> str:
    """A value fit to print: secrets reduced to their public part, passwords in URLs hidden."""
    if is_secret(name):
        from orch.control_plane.auth.keys import mask

        return mask(value)
    if "://" in value:
        parts = urlsplit(value)
        if parts.password:
            netloc = f"{parts.username}:****@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    return value


def _check_name(name: str) -> str:
    if not _NAME_RE.match(name):
        fail(f"Invalid profile name {name!r}: use letters, digits, '.', '_' and '-' (at most 64).")
    return name


@app.command("ls")
def ls(as_json: bool = JSON_OPTION) -> None:
    """List profiles; the active one is marked."""
    profiles = load()
    active = active_name(profiles)
    rows = [
        {
            "name": name,
            "active": name == active,
            "api_url": values.get("ORCH_API_URL"),
            "api_key": masked("ORCH_API_KEY", values["ORCH_API_KEY"]) if values.get("ORCH_API_KEY") else None,
        }
        for name, values in sorted(profiles.profiles.items())
    ]
    if active not in profiles.profiles:
        rows.append({"name": active, "active": True, "api_url": None, "api_key": None})
    if as_json:
        print_json(rows)
        return
    print_table(
        "Profiles",
        ("", "name", "server", "API key"),
        [("*" if r["active"] else "", r["name"], r["api_url"] or "(embedded)", r["api_key"]) for r in rows],
    )


@app.command("use")
def use(name: str = typer.Argument(..., help="The profile to make active.")) -> None:
    """Make a profile the active one."""
    profiles = load()
    if name not in profiles.profiles:
        fail(f"No profile {name!r}; create it with `orch profile create {name}` (have: {_names(profiles)}).")
    profiles.active = name
    profiles.save()
    typer.echo(f"Active profile: {name}")
    if os.environ.get("ORCH_PROFILE") and os.environ["ORCH_PROFILE"] != name:
        typer.echo(f"Note: ORCH_PROFILE={os.environ['ORCH_PROFILE']} in the environment overrides this.", err=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Name of the new profile."),
    from_: str = typer.Option(None, "--from", help="Copy the settings of this profile."),
) -> None:
    """Create an empty profile (or a copy of another)."""
    profiles = load()
    _check_name(name)
    if name in profiles.profiles:
        fail(f"Profile {name!r} exists already.")
    if from_ is not None and from_ not in profiles.profiles:
        fail(f"No profile {from_!r} to copy (have: {_names(profiles)}).")
    profiles.profiles[name] = dict(profiles.profiles[from_]) if from_ else {}
    profiles.save()
    typer.echo(f"Created profile {name!r}; switch to it with `orch profile use {name}`.")


@app.command("delete")
def delete(name: str = typer.Argument(..., help="The profile to delete.")) -> None:
    """Delete a profile (not the active one)."""
    profiles = load()
    if name not in profiles.profiles:
        fail(f"No profile {name!r} (have: {_names(profiles)}).")
    if name == active_name(profiles):
        fail(f"Profile {name!r} is active; switch to another with `orch profile use NAME` first.")
    del profiles.profiles[name]
    profiles.save()
    typer.echo(f"Deleted profile {name!r}.")


def _names(profiles: ProfileFile) -> str:
    return ", ".join(sorted(profiles.profiles)) or "none"
