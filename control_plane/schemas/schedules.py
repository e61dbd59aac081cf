"""Schedules: when a deployment runs on its own.

A deployment carries zero or more *deployment schedules*; each wraps one *schedule spec*, written in
``orch.yaml`` the way Prefect users already write them::

    schedules:
      - cron: "*/15 * * * *"
        timezone: America/New_York
      - interval: 3600              # seconds (an ISO 8601 duration such as "PT1H" works too)
      - rrule: "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"

The three spec classes are told apart by their key (``cron`` / ``interval`` / ``rrule``), so
:data:`ScheduleSpec` parses those dicts directly and ``model_dump(exclude_defaults=True)`` gives the same dict
back. Validation happens here, once, with messages a user can act on; the arithmetic (next run times, DST
rules, words for the UI, the EventBridge translation) lives in :mod:`orch.control_plane.scheduling`, which
trusts what this module accepted.

Conventions shared with Prefect 3: 5-field cron with ``day_or`` (the day-of-month and day-of-week fields are
OR-ed when both are restricted, as in every Unix cron), intervals anchored at ``anchor_date`` (default
2020-01-01 00:00 in the schedule's time zone), rrules without a ``DTSTART`` start at that same default anchor.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
import uuid
import zoneinfo
from typing import Annotated, Any

from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_serializer,
    field_validator,
    model_validator,
)

from orch.control_plane.schemas.base import ObjectBase, OrchModel

__all__ = [
    "CRON_FIELD_NAMES",
    "DEFAULT_ANCHOR",
    "CronSchedule",
    "DeploymentSchedule",
    "DeploymentScheduleCreate",
    "IntervalSchedule",
    "RRuleSchedule",
    "ScheduleSpec",
    "cron_fields",
    "cron_text",
    "impossible_days",
]

# Naive on purpose: it is a wall-clock time read in each schedule's own time zone (Prefect uses the same
# date).
DEFAULT_ANCHOR = dt.datetime(2020, 1, 1)

CRON_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_CRON_FIELD_RANGES = ("0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-7 or SUN-SAT (0 and 7 are Sunday)")
# The usual Vixie-cron shorthands; croniter knows some of them too, but spelling them out keeps one parser.
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Characters croniter accepts as extensions (L, W, #, ?, H for hashed) that 5-field cron does not have:
# refusing them keeps schedules portable to every backend, EventBridge included.
_CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*/,\-]+$")
_CRON_EXTENSIONS = re.compile(r"[LWH]")


def _validate_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Unknown time zone {name!r} (use an IANA name such as 'UTC' or 'Europe/Paris')") from None
    return name


def _timezone_or_utc(value: Any) -> Any:
    # Prefect clients send "timezone": null for "UTC".
    return "UTC" if value is None else _validate_timezone(value) if isinstance(value, str) else value


Timezone = Annotated[str, Field(description="IANA time zone name, e.g. 'UTC' or 'America/New_York'.")]


def cron_text(expression: str) -> str:
    """The 5-field form of ``expression``: macros such as ``@daily`` spelled out, whitespace normalised."""
    stripped = expression.strip()
    return " ".join(_CRON_MACROS.get(stripped.lower(), stripped).split())


def cron_fields(expression: str) -> tuple[list[int] | None, ...]:
    """Expand a validated 5-field cron (or macro) to its value sets; ``None`` stands for ``*`` (every value).

    Day of week is numbered 0-6 with 0 = Sunday (7 is folded into 0). Raises ``ValueError`` with a message naming
    the offending field; this is the one cron parser orch uses, so validation and evaluation cannot disagree.
    """
    return tuple(None if values is None else list(values) for values in _expand_cron(expression))


@functools.lru_cache(maxsize=1024)
def _expand_cron(expression: str) -> tuple[tuple[int, ...] | None, ...]:
    # Cached: the scheduler evaluates the same few expressions on every tick.
    from croniter import CroniterError, croniter  # imported here: schema modules stay cheap to import

    fields = cron_text(expression).split()
    if len(fields) != 5:
        raise ValueError(f"cron must have 5 fields (minute hour day month weekday), got {len(fields)}")
    for name, allowed, field in zip(CRON_FIELD_NAMES, _CRON_FIELD_RANGES, fields, strict=True):
        upper = field.upper()
        is_name_field = name in ("month", "day of week")
        stripped = re.sub(r"[A-Z]{3}", "", upper) if is_name_field else upper
        if not _CRON_FIELD_RE.match(field) or _CRON_EXTENSIONS.search(stripped):
            raise ValueError(
                f"cron field '{name}' ({field!r}) is not valid 5-field cron: use numbers ({allowed}), "
                "'*', ranges 'a-b', lists 'a,b' and steps '/n'"
            )
    # Expand field by field so that the error names the field at fault.
    for index, (name, allowed) in enumerate(zip(CRON_FIELD_NAMES, _CRON_FIELD_RANGES, strict=True)):
        probe = ["*"] * 5
        probe[index] = fields[index]
        try:
            croniter.expand(" ".join(probe))
        except (CroniterError, ValueError, KeyError, IndexError):
            raise ValueError(
                f"cron field '{name}' ({fields[index]!r}) is invalid: allowed values are {allowed}"
            ) from None
    expanded, _ = croniter.expand(" ".join(fields))
    result: list[tuple[int, ...] | None] = []
    for values in expanded:
        if values == ["*"]:
            result.append(None)
        else:
            result.append(tuple(sorted({int(v) % 7 if len(result) == 4 else int(v) for v in values})))
    return tuple(result)


def impossible_days(days: list[int] | None, months: list[int] | None) -> bool:
    """True when none of ``months`` ever has any of ``days`` (day 30 in February): such a schedule never
    runs."""
    if not days:
        return False
    longest = max(calendar.monthrange(2024, month)[1] for month in (months or range(1, 13)))  # 2024: Feb 29
    return min(days) > longest


class CronSchedule(OrchModel):
    """A 5-field cron expression read in ``timezone`` (DST handling: see
    :mod:`orch.control_plane.scheduling`)."""

    cron: str = Field(examples=["*/15 * * * *", "0 9 * * 1-5"])
    timezone: Timezone = "UTC"
    day_or: bool = Field(
        default=True,
        description="When both day of month and day of week are restricted, run on days matching either "
        "(standard cron) rather than both.",
    )

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str) -> str:
        cron_fields(value)
        return value.strip()

    @model_validator(mode="after")
    def _check_runs_at_all(self) -> CronSchedule:
        _minutes, _hours, days, months, weekdays = cron_fields(self.cron)
        # With day_or and a restricted weekday the weekdays alone still give runs ("0 0 30 2 MON" = Mondays in
        # Feb).
        if (weekdays is None or not self.day_or) and impossible_days(days, months):
            raise ValueError(
                f"cron {self.cron!r} never runs: day {min(days or [0])} does not occur in the months it names"
            )
        return self

    @field_validator("timezone", mode="before")
    @classmethod
    def _check_timezone(cls, value: Any) -> Any:
        return _timezone_or_utc(value)


_TIMEDELTA = TypeAdapter(dt.timedelta)


class IntervalSchedule(OrchModel):
    """Every ``interval`` seconds, counted from ``anchor_date``.

    Whole-day intervals keep the anchor's wall-clock time in ``timezone`` across DST changes; other intervals
    are exact durations. A naive ``anchor_date`` is read in ``timezone``; the default is 2020-01-01 00:00
    there.
    """

    interval: float = Field(description="Seconds between runs (> 0); a timedelta or ISO 8601 duration is accepted.")
    anchor_date: dt.datetime | None = None
    timezone: Timezone = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _timezone_from_anchor(cls, data: Any) -> Any:
        # As in Prefect: without a timezone, an anchor carrying a named zone (a ZoneInfo) supplies it.
        if isinstance(data, dict) and data.get("timezone") is None:
            anchor = data.get("anchor_date")
            zone_name = getattr(getattr(anchor, "tzinfo", None), "key", None)
            if isinstance(zone_name, str):
                return {**data, "timezone": zone_name}
        return data

    @field_validator("interval", mode="before")
    @classmethod
    def _coerce_interval(cls, value: Any) -> Any:
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
            try:
                return _TIMEDELTA.validate_python(value).total_seconds()
            except ValueError:
                raise ValueError(
                    f"interval must be a number of seconds or an ISO 8601 duration such as 'PT1H', got {value!r}"
                ) from None
        return value

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if not value > 0 or value == float("inf"):
            raise ValueError(f"interval must be a positive number of seconds, got {value:g}")
        if value < 1e-6:
            raise ValueError(f"interval must be at least one microsecond, got {value:g} seconds")
        return value

    @field_validator("timezone", mode="before")
    @classmethod
    def _check_timezone(cls, value: Any) -> Any:
        return _timezone_or_utc(value)

    @field_serializer("interval")
    def _serialize_interval(self, value: float) -> float | int:
        # {"interval": 3600} round-trips as 3600, not 3600.0.
        return int(value) if value.is_integer() else value

    @property
    def delta(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.interval)


# DTSTART[;TZID=Zone]:YYYYMMDDTHHMMSS[Z]
_DTSTART_RE = re.compile(r"^DTSTART(?:;TZID=(?P<tzid>[^:;]+))?:(?P<value>\d{8}(?:T\d{6})?)(?P<z>Z?)$", re.IGNORECASE)
_RRULE_LINE_PREFIXES = ("RRULE:", "EXRULE:", "RDATE", "EXDATE")


class RRuleSchedule(OrchModel):
    """An RFC 5545 recurrence rule (``FREQ=...``), optionally with ``DTSTART``, ``RDATE``, ``EXDATE`` lines.

    Times come out as wall-clock times in ``timezone``. Without ``DTSTART`` the rule starts at 2020-01-01
    00:00 in that zone, so ``FREQ=DAILY`` runs at midnight. A ``DTSTART;TZID=...`` (or ``...Z``) names the
    zone when
    ``timezone`` is not given; giving both with different zones is an error.
    """

    rrule: str = Field(examples=["FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", "FREQ=MONTHLY;BYMONTHDAY=1"])
    timezone: Timezone = "UTC"

    @field_validator("timezone", mode="before")
    @classmethod
    def _check_timezone(cls, value: Any) -> Any:
        return _timezone_or_utc(value)

    @model_validator(mode="after")
    def _check_rrule(self) -> RRuleSchedule:
        text = self.rrule.strip()
        lines = [line.strip() for line in text.replace("\\n", "\n").splitlines() if line.strip()]
        if not lines:
            raise ValueError("rrule must not be empty; e.g. 'FREQ=DAILY;BYHOUR=9'")
        dtstart_zone: str | None = None
        for line in lines:
            match = _DTSTART_RE.match(line)
            if match:
                dtstart_zone = match["tzid"] or ("UTC" if match["z"] else None)
            elif line.upper().startswith("DTSTART"):
                raise ValueError(f"invalid rrule: cannot read {line!r} (expected DTSTART:20260101T090000)")
        if dtstart_zone is not None:
            _validate_timezone(dtstart_zone)
            if "timezone" not in self.model_fields_set:
                self.timezone = dtstart_zone
            elif dtstart_zone != self.timezone:
                raise ValueError(
                    f"rrule DTSTART is in {dtstart_zone!r} but timezone is {self.timezone!r}; give only one of them"
                )
        from orch.control_plane.scheduling._rrule import RRuleError, parse_rrule

        try:
            parse_rrule(self.rrule, self.timezone)
        except RRuleError as error:
            raise ValueError(str(error)) from None
        return self


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        for kind in ("cron", "interval", "rrule"):
            if kind in value:
                return kind
        return None
    kinds: dict[type, str] = {CronSchedule: "cron", IntervalSchedule: "interval", RRuleSchedule: "rrule"}
    return kinds.get(type(value))


ScheduleSpec = Annotated[
    Annotated[CronSchedule, Tag("cron")]
    | Annotated[IntervalSchedule, Tag("interval")]
    | Annotated[RRuleSchedule, Tag("rrule")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message="a schedule needs one of the keys 'cron', 'interval' or 'rrule'",
    ),
]
"""One schedule as users write it: ``{"cron": ...}``, ``{"interval": ...}`` or ``{"rrule": ...}``."""


class DeploymentScheduleCreate(OrchModel):
    """``POST /api/deployments/{id}/schedules``: one schedule to attach to a deployment."""

    schedule: ScheduleSpec
    active: bool = True


class DeploymentScheduleUpdate(OrchModel):
    schedule: ScheduleSpec | None = None
    active: bool | None = None


class DeploymentSchedule(ObjectBase):
    """A schedule attached to a deployment, as the API returns it."""

    deployment_id: uuid.UUID
    schedule: ScheduleSpec
    active: bool = True
