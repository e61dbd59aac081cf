"""API keys: who may call the control plane, and with which scope.

A key is shown exactly once, in the answer to its creation (``ApiKeyCreated.key``); every other answer carries only
its public key id (``prefix``, e.g. ``orch_3f9c1a7b2d4e``), never the secret nor its hash. ``WhoAmI`` tells a
client which key it is using and what the server enforces.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field, field_validator

# One definition of the scope ladder (read < agent < deploy < admin): the one routes declare.
from orch.control_plane.api.security import Scope
from orch.control_plane.schemas.base import Name, ObjectBase, OrchModel, ResponseModel, UtcDateTime, now_utc


class ApiKeyCreate(OrchModel):
    name: Name
    scope: Scope
    expires_at: UtcDateTime | None = Field(default=None, description="When the key stops working; none = never.")

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z)")
        if value <= now_utc():
            raise ValueError("expires_at must be in the future")
        return value


class ApiKey(ObjectBase):
    """A stored key as the API shows it: no secret, no hash."""

    name: str
    scope: Scope
    prefix: str = Field(description="The public key id: the part of the key before its secret.")
    expires_at: UtcDateTime | None = None
    revoked_at: UtcDateTime | None = None
    last_used_at: UtcDateTime | None = Field(default=None, description="Updated at most once a minute.")

    @property
    def active(self) -> bool:
        now = now_utc()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class ApiKeyCreated(ApiKey):
    """The answer to a creation: the only time the full key is ever shown."""

    key: str = Field(description="The full key. Store it now: the server keeps only a hash.")


class WhoAmI(ResponseModel):
    auth_enabled: bool = Field(description="Whether this server requires an API key on its routes right now.")
    scope: Scope = Field(description="What the caller may do (admin when authentication is off).")
    key: ApiKey | None = Field(default=None, description="The key the caller presented, if any.")
