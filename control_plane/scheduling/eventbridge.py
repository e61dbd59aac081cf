"""Translating schedules to EventBridge Scheduler expressions (``cron(...)`` / ``rate(...)``), when that is exact.

On AWS each deployment schedule becomes one EventBridge Scheduler schedule that invokes the trigger Lambda; the
local scheduler loop (the "services tick") covers everything else. :func:`to_eventbridge` returns an expression
only when EventBridge fires at the instants :func:`orch.control_plane.scheduling.timetable.next_times` computes,
and ``None`` otherwise - the caller then leaves that schedule to the services tick. One exception, flagged with
``exact=False``: an interval without an anchor that no cron can express becomes a ``rate()`` (below).

AWS cron has six fields, ``cron(minute hour day-of-month month day-of-week year)``:

* the year is always ``*``;
* exactly one of day-of-month / day-of-week must be ``?``. Standard cron OR-s the two fields when both are
  restricted (``0 0 1 * 1``: the 1st *and* every Monday); EventBridge cannot say that, nor the AND of
  ``day_or=False``, so such crons return ``None`` rather than raise - they are valid schedules, just not
  EventBridge ones;
* day-of-week is 1-7 with 1 = Sunday (cron: 0-6, 0 or 7 = Sunday). orch writes names (``MON-FRI``,
  ``SUN,TUE,THU,SAT`` for ``*/2``), which cannot be misread.

Fields are rebuilt from the expanded value sets, not rewritten textually, so ``5-0``, ``sun-sat``, ``7`` and steps
in any field come out right by construction; ``*/15`` becomes ``0/15``.

Daylight saving time. EventBridge evaluates a cron in ``ScheduleExpressionTimezone`` and, per AWS
(https://repost.aws/knowledge-center/eventbridge-scheduler-adjust-dst), *skips* a wall-clock time that does not
exist and runs a repeated wall-clock time *once*. orch's
rules (see :mod:`.timetable`) differ in two places: a fixed-time schedule in a gap runs at the end of the gap, and
an elapsed-time schedule runs a repeated time twice. So, in a zone with DST transitions:

* an elapsed-time cron that fires every hour of every day (``*/15 * * * *``, ``0 * * * *``) is a pure function of
  elapsed time, identical to a cron in **UTC** (its minutes shifted when the zone's offset is not whole hours):
  orch emits that, and it is exact on DST days too;
* otherwise the times of day the schedule can fire are compared with the zone's transition windows (02:00-02:59
  and 01:00-01:59 in New York): if a fixed-time schedule touches a gap or a repeated hour, or an elapsed-time one
  touches a repeated hour, the result is ``None``; if not (``0 9 * * 1-5``, ``0 */6 * * *``), the cron is emitted
  in the schedule's zone and EventBridge handles DST exactly as orch would.

Transition windows come from the installed tz database over 2020-2045.

Intervals. A ``rate()`` schedule starts when it is created, so it cannot honour an anchor. orch uses a UTC cron
when the interval divides an hour (``0/15 * * * ? *``) or a day (``30 1/6 * * ? *``), with the anchor's phase:
exact. A one-day interval keeps its wall-clock time (see :mod:`.timetable`) and becomes a daily cron in the
schedule's zone. Other whole-minute intervals (7 minutes, 90 minutes, 2 days) become ``rate(N unit)`` with
``exact=False`` when no anchor was given (the user asked for a cadence, not a phase), and ``None`` when an anchor
was given. Intervals that are not whole minutes (EventBridge's resolution) return ``None``.

RRULEs. A single RRULE without COUNT, UNTIL, BYSETPOS, BYWEEKNO, BYYEARDAY, EXDATE/RDATE translates when cron can
say it: DAILY, WEEKLY and MONTHLY/YEARLY with INTERVAL=1 (BYDAY, BYMONTHDAY including -1 -> ``L``, one ordinal
weekday such as ``1MO`` -> ``MON#1`` or ``-1FR`` -> ``6L``, BYMONTH, BYHOUR, BYMINUTE), HOURLY with an INTERVAL
dividing 24 and MINUTELY with one dividing 60. An explicit DTSTART becomes ``start_date``.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
import zoneinfo
from dataclasses import dataclass

from orch.control_plane.scheduling._rrule import parse_rrule, rule_parts
from orch.control_plane.scheduling.timetable import is_elapsed_time, resolve_wall_time
from orch.control_plane.schemas.schedules import (
    DEFAULT_ANCHOR,
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    ScheduleSpec,
    cron_fields,
)

__all__ = ["EventBridgeExpression", "schedule_name", "to_eventbridge"]

UTC = dt.UTC
_AWS_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")  # index = cron weekday; AWS number = index + 1
_TRANSITION_YEARS = (2020, 2045)


@dataclass(frozen=True)
class EventBridgeExpression:
    """What ``scheduler.create_schedule`` needs: ``ScheduleExpression`` and ``ScheduleExpressionTimezone``.

    ``exact`` is False only for a ``rate()`` standing in for an unanchored interval (it keeps the cadence, not the
    phase next_times shows). ``start_date`` (aware UTC), when set, is the schedule's ``StartDate``.
    """

    expression: str
    timezone: str = "UTC"
    exact: bool = True
    start_date: dt.datetime | None = None


def to_eventbridge(spec: ScheduleSpec) -> EventBridgeExpression | None:
    """The EventBridge Scheduler expression for ``spec``, or ``None`` when only the services tick is exact."""
    if isinstance(spec, CronSchedule):
        return _from_cron(spec)
    if isinstance(spec, IntervalSchedule):
        return _from_interval(spec)
    if isinstance(spec, RRuleSchedule):
        return _from_rrule(spec)
    raise TypeError(f"not a schedule: {spec!r}")


_NAME_PREFIX = re.compile(r"^[0-9A-Za-z_.-]{1,22}$")


def schedule_name(deployment_id: uuid.UUID | str, schedule_id: uuid.UUID | str, *, prefix: str = "orch") -> str:
    """A stable EventBridge schedule name (1-64 characters of ``[0-9a-zA-Z-_.]``) for one deployment schedule.

    ``{prefix}-{first 8 hex digits of the deployment}-{schedule id as 32 hex digits}``: the schedule id alone makes
    it unique; the deployment part lets an operator group names by eye in the console.
    """
    if not _NAME_PREFIX.match(prefix):
        raise ValueError(f"schedule name prefix must be 1-22 characters of [0-9a-zA-Z-_.], got {prefix!r}")
    deployment = deployment_id if isinstance(deployment_id, uuid.UUID) else uuid.UUID(str(deployment_id))
    schedule = schedule_id if isinstance(schedule_id, uuid.UUID) else uuid.UUID(str(schedule_id))
    return f"{prefix}-{deployment.hex[:8]}-{schedule.hex}"


# -- what a cron can say -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """A schedule as AWS cron fields: value sets (``None`` = every value) or special values (``L``, ``MON#1``)."""

    minutes: tuple[int, ...] | None
    hours: tuple[int, ...] | None
    days: tuple[int, ...] | None = None
    months: tuple[int, ...] | None = None
    weekdays: tuple[int, ...] | None = None  # cron numbering, 0 = Sunday
    day_special: str | None = None
    weekday_special: str | None = None

    @property
    def every_day(self) -> bool:
        return self.days is None and self.months is None and self.weekdays is None and not self._specials

    @property
    def _specials(self) -> bool:
        return self.day_special is not None or self.weekday_special is not None

    def render(self, minute_shift: int = 0) -> str | None:
        minutes = self.minutes
        if minutes is not None and minute_shift:
            minutes = tuple(sorted((minute - minute_shift) % 60 for minute in minutes))
        day_restricted = self.days is not None or self.day_special is not None
        weekday_restricted = self.weekdays is not None or self.weekday_special is not None
        if day_restricted and weekday_restricted:
            return None
        if weekday_restricted:
            day_field = "?"
            weekday_field = self.weekday_special or _weekday_field(self.weekdays or ())
        else:
            day_field = self.day_special or _field(self.days, 1, 31)
            weekday_field = "?"
        fields = (
            _field(minutes, 0, 59),
            _field(self.hours, 0, 23),
            day_field,
            _field(self.months, 1, 12),
            weekday_field,
            "*",
        )
        return f"cron({' '.join(fields)})"


def _field(values: tuple[int, ...] | None, low: int, high: int) -> str:
    if values is None or list(values) == list(range(low, high + 1)):
        return "*"
    if len(values) >= 2:
        first, step = values[0], values[1] - values[0]
        if len(values) >= 3 and step > 1 and first < step and list(values) == list(range(first, high + 1, step)):
            return f"{first}/{step}"
    return ",".join(f"{a}-{b}" if b - a >= 2 else (f"{a},{b}" if b > a else str(a)) for a, b in _runs(values))


def _runs(values: tuple[int, ...]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _weekday_field(weekdays: tuple[int, ...]) -> str:
    if sorted(weekdays) == list(range(7)):
        return "*"
    parts = []
    for first, last in _runs(tuple(sorted(weekdays))):  # cron order 0..6 is AWS order 1..7: runs carry over
        names = [_AWS_WEEKDAYS[day] for day in range(first, last + 1)]
        parts.append(f"{names[0]}-{names[-1]}" if len(names) >= 3 else ",".join(names))
    return ",".join(parts)


# -- DST: where a zone's wall clock jumps ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _ZoneClock:
    gap_minutes: frozenset[int]  # minutes of the day (0-1439) that do not exist on some day
    fold_minutes: frozenset[int]  # minutes of the day that happen twice on some day
    offset_minute_residues: frozenset[int]  # UTC offsets in minutes, modulo 60

    @property
    def has_transitions(self) -> bool:
        return bool(self.gap_minutes or self.fold_minutes)


@functools.lru_cache(maxsize=128)
def _zone_clock(name: str) -> _ZoneClock:
    if name == "UTC":
        return _ZoneClock(frozenset(), frozenset(), frozenset({0}))
    zone = zoneinfo.ZoneInfo(name)
    gaps: set[int] = set()
    folds: set[int] = set()
    residues: set[int] = set()
    first, last = _TRANSITION_YEARS
    instant = dt.datetime(first, 1, 1, tzinfo=UTC)
    end = dt.datetime(last + 1, 1, 1, tzinfo=UTC)
    previous = _offset(instant, zone)
    residues.add(_minutes(previous) % 60)
    step = dt.timedelta(hours=12)  # transitions are months apart; 12-hour samples cannot miss one
    while instant < end:
        following = instant + step
        offset = _offset(following, zone)
        if offset != previous:
            transition = _bisect(instant, following, zone, previous)
            low, high = sorted((_minutes(previous), _minutes(offset)))
            wall_start = transition + dt.timedelta(minutes=low)  # local wall time, as naive minutes of the day
            window = {(wall_start.hour * 60 + wall_start.minute + i) % 1440 for i in range(high - low)}
            (gaps if offset > previous else folds).update(window)
            residues.add(_minutes(offset) % 60)
            previous = offset
        instant = following
    return _ZoneClock(frozenset(gaps), frozenset(folds), frozenset(residues))


def _offset(instant: dt.datetime, zone: dt.tzinfo) -> dt.timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _minutes(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _bisect(low: dt.datetime, high: dt.datetime, zone: dt.tzinfo, before: dt.timedelta) -> dt.datetime:
    while high - low > dt.timedelta(minutes=1):
        middle = low + (high - low) / 2
        if _offset(middle, zone) == before:
            low = middle
        else:
            high = middle
    return high.replace(second=0, microsecond=0)


def _translate(plan: _Plan, zone: str, *, elapsed: bool) -> EventBridgeExpression | None:
    clock = _zone_clock(zone)
    if not clock.has_transitions:
        expression = plan.render()
        return EventBridgeExpression(expression, zone) if expression else None
    if elapsed and plan.hours is None and plan.every_day and len(clock.offset_minute_residues) == 1:
        # Every hour of every day: only the minute matters, and in UTC it never jumps.
        (residue,) = clock.offset_minute_residues
        expression = plan.render(minute_shift=residue)
        return EventBridgeExpression(expression, "UTC") if expression else None
    times = {hour * 60 + minute for hour in (plan.hours or range(24)) for minute in (plan.minutes or range(60))}
    risky = clock.fold_minutes if elapsed else clock.gap_minutes | clock.fold_minutes
    if times & risky:
        return None
    expression = plan.render()
    return EventBridgeExpression(expression, zone) if expression else None


# -- the three kinds --------------------------------------------------------------------------------------------


def _tuple(values: list[int] | None) -> tuple[int, ...] | None:
    return tuple(values) if values is not None else None


def _from_cron(spec: CronSchedule) -> EventBridgeExpression | None:
    minutes, hours, days, months, weekdays = cron_fields(spec.cron)
    if days is not None and weekdays is not None:
        return None  # OR (day_or) or AND of both day fields: EventBridge needs one of them to be "?"
    plan = _Plan(_tuple(minutes), _tuple(hours), _tuple(days), _tuple(months), _tuple(weekdays))
    return _translate(plan, spec.timezone, elapsed=is_elapsed_time(spec))


def _rate(minutes: int) -> str:
    for unit, size in (("day", 1440), ("hour", 60), ("minute", 1)):
        if minutes % size == 0:
            count = minutes // size
            return f"rate({count} {unit}{'' if count == 1 else 's'})"
    raise AssertionError("unreachable: size 1 divides everything")


def _from_interval(spec: IntervalSchedule) -> EventBridgeExpression | None:
    if spec.interval % 60:
        return None  # EventBridge counts whole minutes
    minutes = int(spec.interval // 60)
    anchor = spec.anchor_date or DEFAULT_ANCHOR
    if anchor.tzinfo is None:
        anchor_wall = anchor
        anchor_utc = resolve_wall_time(anchor, _zone(spec.timezone), elapsed=False)[0]
    else:
        anchor_utc = anchor.astimezone(UTC)
        anchor_wall = anchor.astimezone(_zone(spec.timezone)).replace(tzinfo=None)
    on_the_minute = anchor_utc.second == 0 and anchor_utc.microsecond == 0
    if minutes == 1440 and anchor_wall.second == 0 and anchor_wall.microsecond == 0:
        # One day keeps its wall-clock time in the zone: a daily cron there (DST-checked like any cron).
        plan = _Plan((anchor_wall.minute,), (anchor_wall.hour,))
        return _translate(plan, spec.timezone, elapsed=False)
    if on_the_minute and 60 % minutes == 0:
        plan = _Plan(tuple(range(anchor_utc.minute % minutes, 60, minutes)), None)
        return _translate(plan, "UTC", elapsed=True)
    if on_the_minute and minutes % 60 == 0 and 24 % (minutes // 60) == 0 and minutes < 1440:
        hours = minutes // 60
        plan = _Plan((anchor_utc.minute,), tuple(range(anchor_utc.hour % hours, 24, hours)))
        return _translate(plan, "UTC", elapsed=True)
    if spec.anchor_date is None:
        return EventBridgeExpression(_rate(minutes), "UTC", exact=False)
    return None


def _zone(name: str) -> dt.tzinfo:
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def _from_rrule(spec: RRuleSchedule) -> EventBridgeExpression | None:
    parsed = parse_rrule(spec.rrule, spec.timezone)
    if not parsed.is_simple:
        return None
    rule = rule_parts(parsed.rules[0])
    if rule.count is not None or rule.until is not None or rule.has_unusual_parts or rule.bysecond != (0,):
        return None
    freq, interval = rule.freq, rule.interval
    hours: tuple[int, ...] | None = rule.byhour or None
    minutes: tuple[int, ...] | None = rule.byminute or None
    if freq == 5:  # MINUTELY: the phase of INTERVAL from DTSTART, then the BYMINUTE filter
        if 60 % interval:
            return None
        phase = set(range(rule.dtstart.minute % interval, 60, interval))
        minutes = tuple(sorted(phase & set(minutes))) if minutes else tuple(sorted(phase))
    elif freq == 4:  # HOURLY
        if 24 % interval:
            return None
        phase = set(range(rule.dtstart.hour % interval, 24, interval))
        hours = tuple(sorted(phase & set(hours))) if hours else tuple(sorted(phase))
    elif freq == 6 or interval != 1:  # SECONDLY; every N days/weeks/months/years
        return None
    if not minutes or (hours is not None and not hours):
        return None  # BYxxx filters that exclude every time: leave it to the services tick
    weekdays = tuple(sorted((day + 1) % 7 for day in rule.byweekday)) or None  # dateutil 0 = Monday
    days: tuple[int, ...] | None = rule.bymonthday or None
    day_special = weekday_special = None
    if rule.bynmonthday:
        if rule.bynmonthday != (-1,) or days:
            return None
        day_special = "L"
    if rule.bynweekday:
        if len(rule.bynweekday) != 1 or weekdays:
            return None
        day, n = rule.bynweekday[0]
        aws_day = (day + 1) % 7
        if 1 <= n <= 5:
            weekday_special = f"{_AWS_WEEKDAYS[aws_day]}#{n}"
        elif n == -1:
            weekday_special = f"{aws_day + 1}L"
        else:
            return None
    plan = _Plan(
        minutes,
        hours,
        days,
        rule.bymonth or None,
        weekdays,
        day_special=day_special,
        weekday_special=weekday_special,
    )
    result = _translate(plan, spec.timezone, elapsed=parsed.sub_daily)
    if result is None or not parsed.explicit_dtstart:
        return result
    start = resolve_wall_time(parsed.dtstart, _zone(spec.timezone), elapsed=False)[0]
    return EventBridgeExpression(result.expression, result.timezone, result.exact, start)
