"""The first admin key: made by ``orch server bootstrap-key`` locally, taken from Secrets Manager on AWS.

Locally, ``create_bootstrap_key`` draws a random admin key for the database of ``ORCH_DATABASE_URL``/``ORCH_HOME``
and refuses when a working admin key exists (unless forced): whoever can run it can read the database anyway.

On AWS the stack generates a secret (48 letters and digits) whose ARN is in ``ORCH_BOOTSTRAP_KEY_SECRET_ARN``; the
API Lambda calls ``ensure_bootstrap_key(db, value)`` on cold start. The admin key is ``orch_bootstrap_<value>``
(a value that is already a whole orch key is used as it is). Rules, safe under concurrent cold starts:

- a row for the bootstrap key id holding this very key (working or revoked): nothing to do — a revoked bootstrap
  key stays revoked, however often Lambdas start;
- otherwise, if a working admin key exists: nothing (the operators have their own keys);
- otherwise the key is stored (or, if the secret was rotated to recover access, the bootstrap row takes the new
  key's hash and is reinstated).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from sqlalchemy.exc import IntegrityError

from orch.control_plane.auth import keys
from orch.control_plane.db.engine import Database
from orch.control_plane.db.orm import ApiKey
from orch.exceptions import ConfigurationError

logger = logging.getLogger("orch.control_plane.auth")

BOOTSTRAP_KEY_ID = "bootstrap"
BOOTSTRAP_NAME = "bootstrap admin"


class BootstrapResult(enum.StrEnum):
    CREATED = "created"
    REPLACED = "replaced"
    PRESENT = "present"
    ADMIN_EXISTS = "admin-exists"


def bootstrap_key_from_secret(secret_value: str) -> keys.ParsedKey:
    """The admin key a bootstrap secret stands for."""
    value = secret_value.strip()
    parsed = keys.parse_key(value) or keys.parse_key(f"{keys.KEY_PREFIX}_{BOOTSTRAP_KEY_ID}_{value}")
    if parsed is None:
        # Never echo the value: it is the secret.
        raise ConfigurationError(
            f"The bootstrap key secret must be an orch key or 32 to 256 letters and digits "
            f"(it has {len(value)} characters)."
        )
    return parsed


def ensure_bootstrap_key(db: Database, secret_value: str) -> BootstrapResult:
    """Store the hash of the bootstrap admin key unless an admin key exists (call on every cold start)."""
    from orch.control_plane.models import api_keys

    key = bootstrap_key_from_secret(secret_value)
    with db.session() as session:
        row = api_keys.read_by_prefix(session, key.prefix)
        if row is not None and keys.verify_key(key, row.key_hash, row.hash_scheme):
            return BootstrapResult.PRESENT
        if api_keys.active_admin(session) is not None:
            return BootstrapResult.ADMIN_EXISTS
        if row is not None:
            _reinstate(row, key)
            logger.warning("bootstrap admin key %s replaced from a rotated secret", key.prefix)
            return BootstrapResult.REPLACED
        try:
            api_keys.create(session, name=BOOTSTRAP_NAME, scope="admin", key=key)
        except IntegrityError:
            # Another cold start stored it a moment ago.
            return BootstrapResult.PRESENT
    logger.warning("bootstrap admin key %s stored", key.prefix)
    return BootstrapResult.CREATED


def ensure_bootstrap_key_from_aws(db: Database, secret_arn: str, *, secrets_client: Any = None) -> BootstrapResult:
    """``ensure_bootstrap_key`` with the value read from Secrets Manager (``ORCH_BOOTSTRAP_KEY_SECRET_ARN``)."""
    if secrets_client is None:
        import boto3

        secrets_client = boto3.client("secretsmanager")
    value = secrets_client.get_secret_value(SecretId=secret_arn)["SecretString"]
    return ensure_bootstrap_key(db, value)


def _reinstate(row: ApiKey, key: keys.ParsedKey) -> None:
    row.key_hash = keys.hash_key(key)
    row.hash_scheme = keys.HASH_SCHEME
    row.scope = "admin"
    row.revoked_at = None
    row.expires_at = None


def create_bootstrap_key(db: Database, *, name: str = "admin", force: bool = False) -> tuple[ApiKey, str]:
    """A new random admin key for ``orch server bootstrap-key``; refused while a working admin key exists."""
    from orch.control_plane.models import api_keys

    with db.session() as session:
        existing = api_keys.active_admin(session)
        if existing is not None and not force:
            raise ConfigurationError(
                f"An admin key exists already ({existing.prefix}, {existing.name!r}); "
                "create more with `orch api-key create`, or pass --force to make another here."
            )
        row, key = api_keys.create(session, name=name, scope="admin")
    return row, key.full
