"""``orch config``: set, unset and view the ``ORCH_*`` settings saved in the active profile.

Only client settings (the fields of ``orch.settings.Settings``) belong in a profile; server settings are read from
the server's own environment. Values are validated before they are written. ``view`` masks secrets (an API key
shows only its public key id) and says which values the environment overrides.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from orch.cli._output import JSON_OPTION, fail, print_json, print_table
from orch.cli.profiles import active_name, load, masked
from orch.settings import Settings

app = typer.Typer(help="View and change the settings saved in the active profile.", no_args_is_help=True)

# Settings that cannot live in a profile: the profile file is found through them.
_NOT_IN_PROFILE = {"home", "profile"}


def _setting_name(raw: str) -> str:
    """``api_url``, ``API_URL`` or ``ORCH_API_URL`` -> ``ORCH_API_URL``; unknown names are refused."""
    field = raw.strip().upper().removeprefix("ORCH_").lower()
    if field in _NOT_IN_PROFILE:
        fail(f"ORCH_{field.upper()} cannot be saved in a profile: set it in the environment.")
    if field not in Settings.model_fields:
        known = ", ".join(f"ORCH_{n.upper()}" for n in sorted(Settings.model_fields) if n not in _NOT_IN_PROFILE)
        fail(f"Unknown setting {raw.strip()!r}: a profile can hold {known}.")
    return f"ORCH_{field.upper()}"


def _validate(name: str, value: str) -> str:
    """The value as it will be stored, or one line saying what is wrong with it (never echoing a secret)."""
    from pydantic import ValidationError

    field = name.removeprefix("ORCH_").lower()
    try:
        settings = Settings.model_validate({field: value})
    except ValidationError as exc:
        problems = [e["msg"].removeprefix("Value error, ") for e in exc.errors() if e["loc"][:1] == (field,)]
        if problems:
            fail(f"Invalid {name}: {'; '.join(problems)}")
        return value  # another (already saved or environment) value is bad; this one is fine
    stored = getattr(settings, field)
    # Store the normalised form where there is one (a URL without its trailing /api), the text otherwise.
    return stored if field == "api_url" and isinstance(stored, str) else value


@app.command("set")
def set_(
    assignments: list[str] = typer.Argument(..., help="One or more KEY=VALUE, e.g. ORCH_API_URL=https://..."),
) -> None:
    """Save settings in the active profile."""
    profiles = load()
    name = active_name(profiles)
    values = profiles.profiles.setdefault(name, {})
    changes: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            fail(f"Expected KEY=VALUE, got {key.strip()!r}.")
        setting = _setting_name(key)
        changes[setting] = _validate(setting, value.strip())
    values.update(changes)
    profiles.save()
    for setting, value in changes.items():
        typer.echo(f"Set {setting}={masked(setting, value)} in profile {name!r}.")
        if os.environ.get(setting):
            typer.echo(f"Note: {setting} is also set in the environment, which overrides the profile.", err=True)


@app.command("unset")
def unset(settings: list[str] = typer.Argument(..., help="One or more setting names, e.g. ORCH_API_KEY.")) -> None:
    """Remove settings from the active profile."""
    profiles = load()
    name = active_name(profiles)
    values = profiles.profiles.setdefault(name, {})
    names = [_setting_name(s) for s in settings]
    missing = [n for n in names if n not in values]
    if missing:
        fail(f"Not set in profile {name!r}: {', '.join(missing)}.")
    for setting in names:
        del values[setting]
    profiles.save()
    typer.echo(f"Unset {', '.join(names)} in profile {name!r}.")


@app.command("view")
def view(as_json: bool = JSON_OPTION) -> None:
    """Show the active profile's settings (secrets masked) and the environment variables that override them."""
    profiles = load()
    name = active_name(profiles)
    saved = profiles.profiles.get(name, {})
    rows: list[dict[str, Any]] = []
    for setting in sorted(
        set(saved) | {f"ORCH_{f.upper()}" for f in Settings.model_fields if os.environ.get(f"ORCH_{f.upper()}")}
    ):
        env_value = os.environ.get(setting)
        source = "environment" if env_value else "profile"
        value = env_value if env_value else saved[setting]
        rows.append({"setting": setting, "value": masked(setting, value), "source": source})
    if as_json:
        print_json({"profile": name, "path": str(profiles.path), "settings": rows})
        return
    typer.echo(f"Profile {name!r} ({profiles.path})")
    if not rows:
        typer.echo("No settings: the SDK runs embedded on the local database in ORCH_HOME.")
        return
    print_table(None, ("setting", "value", "from"), [(r["setting"], r["value"], r["source"]) for r in rows])
