"""Settings of the control plane: the one place it reads its configuration from (prefix ``ORCH_``)."""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path("~/.orch").expanduser()


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseSettings):
    """Everything ``orch server start`` and the Lambda handlers read from the environment."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=_default_home, description="Folder for the SQLite database, storage, profiles.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db. Unset: SQLite at $ORCH_HOME/orch.db.",
    )
    database_pool: Literal["queue", "null"] = Field(
        default="queue", description="'null' opens a connection per session (Lambda, RDS Proxy)."
    )
    database_pool_size: int = Field(default=10, ge=1, le=200, description="Pool size for PostgreSQL.")
    database_secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager secret with the PostgreSQL credentials (RDS format: username, password, host, "
        "port, dbname). Used when ORCH_DATABASE_URL is unset (AWS).",
    )
    database_host: str | None = Field(
        default=None, description="Overrides the secret's host, e.g. the RDS Proxy endpoint (AWS)."
    )
    database_name: str | None = Field(default=None, description="Overrides the secret's database name (AWS).")
    database_iam_auth: bool = Field(
        default=False, description="Connect with short-lived IAM tokens instead of the secret's password (AWS)."
    )
    results_storage_url: str | None = Field(
        default=None, description="Where flow results are persisted by default: a folder or s3://bucket/prefix."
    )
    server_host: str = Field(default="127.0.0.1", description="Address `orch server start` binds to.")
    server_port: int = Field(default=4200, ge=1, le=65535, description="Port `orch server start` listens on.")
    server_workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="API worker processes of `orch server start` (the background services run once, in the parent).",
    )
    late_runs_threshold: float = Field(
        default=15.0,
        ge=0,
        description="Seconds a run may stay Scheduled past its start before it is marked Late.",
    )
    services_interval: float = Field(default=5.0, gt=0, description="Seconds between ticks of the services loop.")
    services_enabled: bool = Field(default=True, description="Run the background services loop in the server.")
    heartbeat_timeout: float = Field(
        default=90.0, gt=0, description="Seconds without a heartbeat after which a Running run is Crashed."
    )
    pending_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a claimed (Pending) run may take to start before it is Crashed (agent died after "
        "the claim; Fargate image pulls can take minutes).",
    )
    run_queue: Literal["database", "sqs"] = Field(default="database", description="Where due runs are queued.")
    sqs_queue_prefix: str = Field(
        default="orch-", max_length=40, description="Prefix of the SQS queue names created for work queues."
    )
    sqs_max_receives: int = Field(
        default=5, ge=1, le=1000, description="Receives after which a run message moves to the dead-letter queue."
    )
    sqs_visibility_timeout: int = Field(
        default=60, ge=0, le=43_200, description="Seconds a received run message stays hidden from other agents."
    )
    get_runs_poll_interval: float = Field(
        default=0.1, gt=0, le=5, description="How often a waiting get_runs call looks for due runs (database queue)."
    )
    schedule_backend: Literal["local", "eventbridge"] = Field(default="local", description="Who triggers schedules.")
    scheduler_horizon: float = Field(
        default=3600.0, gt=0, le=86_400 * 100, description="Seconds ahead the local scheduler creates runs for."
    )
    scheduler_max_runs: int = Field(
        default=100, ge=1, le=10_000, description="Most runs the local scheduler creates per schedule per tick."
    )
    scheduler_group_name: str = Field(default="orch", description="EventBridge Scheduler schedule group.")
    scheduler_name_prefix: str = Field(default="orch", description="Prefix of orch's EventBridge schedule names.")
    scheduler_role_arn: str | None = Field(
        default=None, description="IAM role EventBridge Scheduler assumes to invoke the schedule Lambda."
    )
    scheduler_target_arn: str | None = Field(
        default=None, description="ARN of the control plane's schedule Lambda that EventBridge schedules invoke."
    )
    storage_url: str | None = Field(
        default=None, description="Storage for code bundles and results: a folder or s3://bucket/prefix."
    )
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API-key authentication: auto = on when bound beyond loopback or any key exists.",
    )
    auth_failure_limit: int = Field(
        default=20, ge=1, description="Failed authentications per source address per window before 429."
    )
    auth_failure_window: float = Field(
        default=60.0, gt=0, description="Seconds over which failed authentications are counted (and blocked)."
    )
    bootstrap_key_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret with the first admin key (AWS); hashed in on cold start."
    )
    on_lambda: bool = Field(
        default_factory=lambda: "AWS_LAMBDA_FUNCTION_NAME" in os.environ,
        description="True when running inside AWS Lambda (detected from the runtime's environment).",
    )
    xray_tracing: bool = Field(
        default_factory=lambda: "AWS_XRAY_DAEMON_ADDRESS" in os.environ,
        description="Trace Lambda invocations with X-Ray (on when the function has active tracing).",
    )
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS; closed by default.")

    @property
    def sqlite_path(self) -> Path:
        return self.home / "orch.db"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.sqlite_path}"

    @model_validator(mode="after")
    def _refuse_open_server_without_auth(self) -> ServerSettings:
        public = not is_loopback(self.server_host)
        if self.auth == "off" and (public or self.on_lambda):
            where = "on AWS Lambda" if self.on_lambda else f"on the non-loopback address {self.server_host}"
            raise ValueError(
                f"ORCH_AUTH=off is refused {where}: anyone who can reach the server could run code. "
                "Bind to 127.0.0.1 or keep authentication on."
            )
        return self


@functools.cache
def get_settings() -> ServerSettings:
    """The server settings from the environment; an invalid combination is one ``ConfigurationError`` line."""
    from pydantic import ValidationError

    from orch.exceptions import ConfigurationError

    try:
        return ServerSettings()
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()]
        raise ConfigurationError(
            "Invalid server settings: " + "; ".join(p.replace("Value error, ", "") for p in problems)
        ) from None


def clear_settings_cache() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
