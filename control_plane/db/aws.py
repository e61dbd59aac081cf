"""PostgreSQL on AWS: credentials from Secrets Manager, optional IAM authentication, no pool across invocations.

On Lambda the control plane connects through RDS Proxy with ``ORCH_DATABASE_POOL=null`` (a connection per
session: the proxy pools, and a frozen Lambda cannot keep a client-side pool healthy). The secret is read once per
container; with ``ORCH_DATABASE_IAM_AUTH=true`` every new connection gets a fresh 15-minute IAM token instead of
the password. Nothing here logs or returns a password outside the connection URL handed to SQLAlchemy.
"""

from __future__ import annotations

import functools
import json
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from orch.exceptions import ConfigurationError


@functools.cache
def read_secret(arn: str) -> dict[str, Any]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    except (BotoCoreError, ClientError) as exc:
        raise ConfigurationError(f"Cannot read the database secret {arn}: {type(exc).__name__}") from None
    try:
        data = json.loads(value)
    except ValueError:
        raise ConfigurationError(f"The database secret {arn} is not JSON.") from None
    if not isinstance(data, dict) or "username" not in data:
        raise ConfigurationError(f"The database secret {arn} has no 'username' (RDS secret format expected).")
    return data


def url_from_secret(arn: str, *, host: str | None = None, dbname: str | None = None, iam_auth: bool = False) -> str:
    secret = read_secret(arn)
    user = quote(str(secret["username"]), safe="")
    password = "" if iam_auth else ":" + quote(str(secret.get("password", "")), safe="")
    where = host or secret.get("host")
    if not where:
        raise ConfigurationError("No database host: set ORCH_DATABASE_HOST or put 'host' in the secret.")
    port = int(secret.get("port", 5432))
    name = dbname or secret.get("dbname") or "postgres"
    return f"postgresql+psycopg://{user}{password}@{where}:{port}/{name}?sslmode=require"


def enable_iam_auth(engine: Engine) -> None:
    """Give every new connection a fresh IAM token as its password."""
    url = engine.url

    @event.listens_for(engine, "do_connect")
    def _token(_dialect: Any, _record: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        import boto3

        kwargs["password"] = boto3.client("rds").generate_db_auth_token(
            DBHostname=url.host, Port=url.port or 5432, DBUsername=url.username
        )


def resolve_url(settings: Any) -> str:
    """The database URL for settings that name a secret instead of a URL."""
    return url_from_secret(
        settings.database_secret_arn,
        host=settings.database_host,
        dbname=settings.database_name,
        iam_auth=settings.database_iam_auth,
    )


def is_postgres(url: str) -> bool:
    return sa.make_url(url).get_backend_name() == "postgresql"
