"""The stack's settings, read once from CDK context and validated before any construct exists.

Every knob of the `OrchControlPlane` stack is a CDK context key (`cdk deploy -c key=value`, `cdk.json`, or
`python app.py -c key=value`). Values arrive as strings from the command line and as JSON values from `cdk.json`,
so each is parsed here into one typed, frozen `StackConfig`; a bad value raises `ConfigError` with one line that
names the key, and nothing else in the package reads context directly.

The defaults are the cheap path: Aurora Serverless v2 that may pause, no NAT gateway, no RDS Proxy (it costs more
than everything else together when idle, see docs/aws.md), Fargate tasks in public subnets with a public IP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CONTEXT_KEYS", "LOG_RETENTION_DAYS", "ConfigError", "StackConfig"]

DatabaseKind = Literal["aurora", "instance"]
ApiEndpoint = Literal["function_url", "http_api"]

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
# Work-queue names become SQS queue names `<prefix>-<queue>-dlq` (SQS allows 80 characters of [A-Za-z0-9_-]).
_QUEUE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


class ConfigError(ValueError):
    """A context value the stack cannot use; the message is one line naming the key."""


def _as_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"context {key}={value!r}: expected true or false")


def _as_number(key: str, value: Any, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context {key}={value!r}: expected a number") from None
    if not low <= number <= high:
        raise ConfigError(f"context {key}={value!r}: must be between {low:g} and {high:g}")
    return number


def _as_int(key: str, value: Any, low: int, high: int) -> int:
    number = _as_number(key, value, low, high)
    if number != int(number):
        raise ConfigError(f"context {key}={value!r}: expected a whole number")
    return int(number)


def _as_choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text not in choices:
        raise ConfigError(f"context {key}={value!r}: expected one of {', '.join(choices)}")
    return text


def _as_queue_list(key: str, value: Any) -> tuple[str, ...]:
    items: Any = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                raise ConfigError(f"context {key}={value!r}: not a JSON list") from None
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(items, list | tuple) or not items or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"context {key}={value!r}: expected a non-empty list of names")
    if len(set(items)) != len(items):
        raise ConfigError(f"context {key}={value!r}: names repeat")
    for name in items:
        if not _QUEUE_RE.match(name):
            raise ConfigError(f"context {key}: queue name {name!r} must match {_QUEUE_RE.pattern}")
    return tuple(items)


@dataclass(frozen=True)
class StackConfig:
    """Typed settings of one `OrchControlPlane` stack; `from_context` is the only way in from CDK."""

    prefix: str = "orch"
    database: DatabaseKind = "aurora"
    # RDS Proxy bills for at least 8 ACUs (Aurora Serverless) or 2 vCPUs (instance) around the clock and keeps
    # Aurora from pausing, so it is opt-in.
    rds_proxy: bool = False
    db_iam_auth: bool = False
    deletion_protection: bool = True
    aurora_min_acu: float | None = None  # None: 0 (auto-pause) without a proxy, 0.5 with one
    aurora_max_acu: float = 4.0
    auto_pause_minutes: int = 10
    db_backup_days: int = 7
    work_queues: tuple[str, ...] = ("default",)
    nat_gateways: int = 0
    vpc_endpoints: bool | None = None  # None: on exactly when there is no NAT gateway
    endpoint_azs: int = 1
    container_insights: bool = False
    api_endpoint: ApiEndpoint = "function_url"
    log_retention_days: int = 30
    services_rate_minutes: int = 1

    @property
    def queue_prefix(self) -> str:
        """Prefix of every work-queue name; the SQS adapter reads it as ORCH_SQS_QUEUE_PREFIX."""
        return f"{self.prefix}-"

    @property
    def min_acu(self) -> float:
        if self.aurora_min_acu is not None:
            return self.aurora_min_acu
        # With a proxy holding connections the writer never pauses; 0.5 is what it would bill anyway.
        return 0.5 if self.rds_proxy else 0.0

    @property
    def use_vpc_endpoints(self) -> bool:
        return self.nat_gateways == 0 if self.vpc_endpoints is None else self.vpc_endpoints

    @classmethod
    def from_context(cls, get: Callable[[str], Any]) -> StackConfig:
        """Build from a context lookup (`node.try_get_context`); unknown keys are not looked at."""
        values: dict[str, Any] = {}
        for key, parse in _PARSERS.items():
            raw = get(key)
            if raw is not None:
                values[key] = parse(key, raw)
        config = cls(**values)
        config._check()
        return config

    def _check(self) -> None:
        if self.aurora_min_acu is not None and self.aurora_min_acu > self.aurora_max_acu:
            raise ConfigError("context aurora_min_acu: must not exceed aurora_max_acu")
        if self.aurora_min_acu is not None and self.aurora_min_acu * 2 != int(self.aurora_min_acu * 2):
            raise ConfigError("context aurora_min_acu: Aurora capacity moves in steps of 0.5")
        if self.aurora_max_acu * 2 != int(self.aurora_max_acu * 2):
            raise ConfigError("context aurora_max_acu: Aurora capacity moves in steps of 0.5")
        if self.db_iam_auth and not self.rds_proxy:
            raise ConfigError(
                "context db_iam_auth=true needs rds_proxy=true: IAM auth is between the Lambdas and the proxy"
            )
        if self.nat_gateways == 0 and not self.use_vpc_endpoints:
            raise ConfigError("context vpc_endpoints=false needs nat_gateways>=1: the Lambdas would reach no AWS API")
        for queue in self.work_queues:
            if len(f"{self.queue_prefix}{queue}-dlq") > 80:
                raise ConfigError(f"context work_queues: {queue!r} makes an SQS name longer than 80 characters")


def _parse_prefix(key: str, value: Any) -> str:
    text = str(value)
    if not _PREFIX_RE.match(text):
        raise ConfigError(f"context {key}={value!r}: must match {_PREFIX_RE.pattern}")
    return text


def _parse_retention(key: str, value: Any) -> int:
    days = _as_int(key, value, 1, 3653)
    if days not in LOG_RETENTION_DAYS:
        raise ConfigError(f"context {key}={value!r}: CloudWatch Logs allows {LOG_RETENTION_DAYS}")
    return days


_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "prefix": _parse_prefix,
    "database": lambda k, v: _as_choice(k, v, ("aurora", "instance")),
    "rds_proxy": _as_bool,
    "db_iam_auth": _as_bool,
    "deletion_protection": _as_bool,
    "aurora_min_acu": lambda k, v: _as_number(k, v, 0, 256),
    "aurora_max_acu": lambda k, v: _as_number(k, v, 1, 256),
    "auto_pause_minutes": lambda k, v: _as_int(k, v, 5, 1440),
    "db_backup_days": lambda k, v: _as_int(k, v, 1, 35),
    "work_queues": _as_queue_list,
    "nat_gateways": lambda k, v: _as_int(k, v, 0, 2),
    "vpc_endpoints": _as_bool,
    "endpoint_azs": lambda k, v: _as_int(k, v, 1, 2),
    "container_insights": _as_bool,
    "api_endpoint": lambda k, v: _as_choice(k, v, ("function_url", "http_api")),
    "log_retention_days": _parse_retention,
    "services_rate_minutes": lambda k, v: _as_int(k, v, 1, 60),
}

CONTEXT_KEYS: tuple[str, ...] = (*_PARSERS, "lambda_asset", "nag")
