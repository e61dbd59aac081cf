"""The first admin key: ``orch server bootstrap-key`` locally, ``ensure_bootstrap_key`` on a Lambda cold start."""

from __future__ import annotations

import secrets
import string
from typing import Any

import pytest
import sqlalchemy as sa

from orch.control_plane.auth import ensure_bootstrap_key, ensure_bootstrap_key_from_aws
from orch.control_plane.auth.bootstrap import BootstrapResult, bootstrap_key_from_secret, create_bootstrap_key
from orch.control_plane.auth.keys import verify_key
from orch.control_plane.db import orm
from orch.control_plane.schemas.base import now_utc
from orch.exceptions import ConfigurationError

pytestmark = pytest.mark.integration


def stack_secret() -> str:
    """A value like the one the CDK stack generates: 48 letters and digits."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))


def admin_rows(database: Any) -> list[orm.ApiKey]:
    with database.session(write=False) as session:
        return list(session.scalars(sa.select(orm.ApiKey).where(orm.ApiKey.scope == "admin")))


def test_cold_start_stores_the_hash_of_the_secret_once(database: Any) -> None:
    value = stack_secret()
    assert ensure_bootstrap_key(database, value) is BootstrapResult.CREATED
    assert ensure_bootstrap_key(database, value) is BootstrapResult.PRESENT
    [row] = admin_rows(database)
    assert row.prefix == "orch_bootstrap"
    assert value not in row.key_hash
    assert verify_key(bootstrap_key_from_secret(value), row.key_hash, row.hash_scheme)


def test_a_revoked_bootstrap_key_stays_revoked_across_cold_starts(database: Any) -> None:
    value = stack_secret()
    ensure_bootstrap_key(database, value)
    with database.session() as session:
        session.execute(sa.update(orm.ApiKey).values(revoked_at=now_utc()))
    assert ensure_bootstrap_key(database, value) is BootstrapResult.PRESENT
    assert admin_rows(database)[0].revoked_at is not None


def test_nothing_is_stored_when_an_admin_key_exists(database: Any) -> None:
    create_bootstrap_key(database)
    assert ensure_bootstrap_key(database, stack_secret()) is BootstrapResult.ADMIN_EXISTS
    assert [r.prefix for r in admin_rows(database)] != ["orch_bootstrap"]
    assert len(admin_rows(database)) == 1


def test_a_rotated_secret_restores_access_when_no_admin_key_works(database: Any) -> None:
    ensure_bootstrap_key(database, stack_secret())
    with database.session() as session:
        session.execute(sa.update(orm.ApiKey).values(revoked_at=now_utc()))
    rotated = stack_secret()
    assert ensure_bootstrap_key(database, rotated) is BootstrapResult.REPLACED
    [row] = admin_rows(database)
    assert row.revoked_at is None
    assert verify_key(bootstrap_key_from_secret(rotated), row.key_hash, row.hash_scheme)


def test_a_whole_orch_key_as_secret_is_used_as_it_is(database: Any) -> None:
    from orch.control_plane.auth.keys import generate_key

    key = generate_key()
    assert ensure_bootstrap_key(database, key.full + "\n") is BootstrapResult.CREATED
    assert admin_rows(database)[0].prefix == key.prefix


@pytest.mark.parametrize("value", ["short", "has spaces in it and is long enough to pass", "ünïcödé" * 8])
def test_a_bad_secret_value_is_refused_without_echo(database: Any, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ensure_bootstrap_key(database, value)
    assert value not in str(info.value)
    assert admin_rows(database) == []


def test_local_bootstrap_refuses_a_second_admin_unless_forced(database: Any) -> None:
    row, key = create_bootstrap_key(database)
    assert key.startswith(row.prefix + "_")
    with pytest.raises(ConfigurationError, match="admin key exists already"):
        create_bootstrap_key(database)
    create_bootstrap_key(database, force=True, name="second")
    assert len(admin_rows(database)) == 2


@pytest.mark.aws
def test_cold_start_reads_the_secret_from_secrets_manager(moto: Any, aws_env: Any, database: Any) -> None:
    aws_env(moto)
    value = stack_secret()
    arn = moto.client("secretsmanager").create_secret(Name="orch/bootstrap-admin-key", SecretString=value)["ARN"]
    assert ensure_bootstrap_key_from_aws(database, arn) is BootstrapResult.CREATED
    assert ensure_bootstrap_key_from_aws(database, arn) is BootstrapResult.PRESENT
    [row] = admin_rows(database)
    assert verify_key(bootstrap_key_from_secret(value), row.key_hash, row.hash_scheme)


def test_bootstrap_key_command_uses_the_configured_database(database_url: str, database: Any, orch_home: Any) -> None:
    """``orch server bootstrap-key`` as a real process, for ORCH_DATABASE_URL (SQLite file or PostgreSQL)."""
    from tests.auth.conftest import orch

    result = orch(orch_home, "server", "bootstrap-key", "--name", "ops", ORCH_DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert result.stdout.strip() == key  # stdout is the key alone; explanations are on stderr
    assert "Created admin API key" in result.stderr and key.rsplit("_", 1)[1] not in result.stderr
    [row] = admin_rows(database)
    assert row.name == "ops" and key.startswith(row.prefix + "_")
    refused = orch(orch_home, "server", "bootstrap-key", ORCH_DATABASE_URL=database_url)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"Error: An admin key exists already ({row.prefix}, 'ops'); create more with `orch api-key create`, "
        "or pass --force to make another here."
    ]
    forced = orch(orch_home, "server", "bootstrap-key", "--force", ORCH_DATABASE_URL=database_url)
    assert forced.returncode == 0 and len(admin_rows(database)) == 2
