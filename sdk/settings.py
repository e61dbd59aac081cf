"""Settings of the SDK, CLI and agents: the one place they read their configuration from.

Precedence, highest first: environment variables (``ORCH_*``), the active profile in ``$ORCH_HOME/profiles.toml``,
then the defaults below. ``orch auth login`` and ``orch config set`` write the profile file (mode 0600, since it may
hold an API key)::

    active = "default"

    [profiles.default]
    ORCH_API_URL = "https://abc.lambda-url.us-east-1.on.aws"
    ORCH_API_KEY = "orch_..."

Leaving ``ORCH_API_URL`` unset selects the embedded mode: the SDK records into the SQLite database in ``ORCH_HOME``
through the control plane's API app, mounted in-process.
"""

from __future__ import annotations

import functools
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from orch.exceptions import ConfigurationError

PROFILES_FILE = "profiles.toml"
DEFAULT_PROFILE = "default"


def home_from_env() -> Path:
    """``ORCH_HOME`` or ``~/.orch``: needed before the settings exist, to find the profiles file."""
    return Path(os.environ.get("ORCH_HOME") or "~/.orch").expanduser()


class ProfileBackedSettings(BaseSettings):
    """Settings read from the arguments, then ``ORCH_*`` environment variables, then the active profile."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, ProfileSource(settings_cls))


class Settings(ProfileBackedSettings):
    """Client-side settings. Every field can be set as ``ORCH_<FIELD>`` or in a profile."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=lambda: Path("~/.orch").expanduser(), description="orch's own folder.")
    profile: str | None = Field(default=None, description="Profile to use instead of the file's active one.")
    api_url: str | None = Field(default=None, description="Control plane URL; unset = embedded SQLite mode.")
    api_key: SecretStr | None = Field(default=None, description="API key sent as 'Authorization: Bearer ...'.")
    api_timeout: float = Field(default=30.0, gt=0, description="Seconds before an API request times out.")
    logging_level: str = Field(default="INFO", description="Level of run loggers and the console echo.")
    log_to_console: bool = Field(default=True, description="Echo run logs to the console.")
    results_dir: Path | None = Field(default=None, description="Local result storage; default $ORCH_HOME/storage.")
    default_result_storage: str | None = Field(default=None, description="Default result storage (folder or s3://).")
    storage_url: str | None = Field(
        default=None,
        description="Where `orch deploy` puts code bundles (folder or s3://bucket/prefix); default: result storage.",
    )
    record_batch_interval: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between flushes of task-run and log records to the control plane.",
    )
    record_buffer_limit: int = Field(
        default=100_000, ge=100, description="Records kept in memory while the control plane is unreachable."
    )
    heartbeat_interval: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="Seconds between a running flow's heartbeats (the server's default timeout is 90 s).",
    )
    gc_freeze: bool = Field(
        default=True,
        description="While flows run, keep the objects that existed before out of full garbage collections "
        "(orch._engine.gc_scope).",
    )
    debug: bool = Field(default=False, description="Show tracebacks from the CLI.")

    @field_validator("api_url")
    @classmethod
    def _strip_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"ORCH_API_URL must start with http:// or https://, got {value!r}")
        if value.endswith("/api"):
            value = value[: -len("/api")]
        return value

    @property
    def storage_dir(self) -> Path:
        return self.results_dir or (self.home / "storage")

    @property
    def embedded(self) -> bool:
        return self.api_url is None


class ProfileSource(PydanticBaseSettingsSource):
    """Reads the active profile's ``ORCH_*`` values from ``$ORCH_HOME/profiles.toml``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        profiles = ProfileFile.load(home_from_env())
        name = os.environ.get("ORCH_PROFILE") or profiles.active
        values = profiles.profiles.get(name, {})
        out: dict[str, Any] = {}
        for key, value in values.items():
            if key.startswith("ORCH_") and key != "ORCH_HOME":
                out[key[len("ORCH_") :].lower()] = value
        return out


class ProfileFile:
    """The profiles file: named sets of ``ORCH_*`` values and which one is active."""

    def __init__(self, path: Path, active: str, profiles: dict[str, dict[str, str]]) -> None:
        self.path = path
        self.active = active
        self.profiles = profiles

    @classmethod
    def load(cls, home: Path) -> ProfileFile:
        path = home / PROFILES_FILE
        if not path.exists():
            return cls(path, DEFAULT_PROFILE, {DEFAULT_PROFILE: {}})
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigurationError(f"Cannot read {path}: {exc}") from None
        profiles = {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.get("profiles", {}).items()}
        profiles.setdefault(DEFAULT_PROFILE, {})
        return cls(path, str(data.get("active", DEFAULT_PROFILE)), profiles)

    def save(self) -> None:
        import tomli_w

        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = tomli_w.dumps({"active": self.active, "profiles": self.profiles})
        # Create with 0600 from the start: the file may hold API keys.
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)


@functools.cache
def get_settings() -> Settings:
    """The current settings (cached; call ``clear_settings_cache()`` after changing the environment)."""
    try:
        return Settings()
    except ValueError as exc:
        raise ConfigurationError(_one_line(exc)) from None


def clear_settings_cache() -> None:
    get_settings.cache_clear()


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()]
        return "Invalid settings: " + "; ".join(parts)
    return str(exc)
