"""Timetables: the instants at which a schedule fires.

:func:`next_times` turns a :data:`~orch.control_plane.schemas.schedules.ScheduleSpec` into aware UTC
datetimes, strictly after a given instant and in increasing order. Both the local scheduler loop and the UI's
"upcoming runs" use it; :mod:`orch.control_plane.scheduling.eventbridge` only translates a schedule for AWS
when EventBridge would fire at exactly these instants.

How a schedule becomes instants
-------------------------------
Cron expressions and rrules describe *wall-clock* times in the schedule's time zone (croniter expands the cron
fields, dateutil enumerates the rrule); each wall-clock time is then turned into an instant. Intervals are
counted from their anchor (default 2020-01-01 00:00 in the schedule's zone, as in Prefect).

Daylight saving time
--------------------
Twice a year a wall-clock time either does not exist (spring forward: 02:00-02:59 in New York on 2026-03-08)
or exists twice (fall back: 01:00-01:59 on 2026-11-01). orch follows what Vixie cron / cronie do on a Linux
box, so a crontab moved to orch keeps its behaviour. Schedules come in two kinds:

* **Elapsed-time schedules** repeat within the day: a cron whose minute or hour field starts with ``*``
  (``*/15 * * * *``, ``0 * * * *``, ``0 */6 * * *``) and rrules with ``FREQ=HOURLY``, ``MINUTELY`` or
  ``SECONDLY``. They follow the clock as it is: wall-clock times inside a gap are skipped, and wall-clock
  times that happen twice run twice. ``*/15 * * * *`` in New York runs 92 times on the 23-hour 2026-03-08 and
  100 times on the 25-hour 2026-11-01 - one run every 15 real minutes, none missing, none doubled.
* **Fixed-time schedules** are everything else (``30 2 * * *``, ``0 9 * * 1-5``, ``FREQ=DAILY;BYHOUR=2``).
  They run *once* per matching wall-clock time: a time inside a gap runs at the first instant after the gap
  (``30 2 * * *`` runs at 03:00 EDT on 2026-03-08), a time that happens twice runs at its first occurrence
  only (``30 1 * * *`` runs at 01:30 EDT, not again at 01:30 EST). Several gap times collapse into one run at
  the end of the gap.

rrules follow the same rule (for a time inside a gap this is 03:00, where RFC 5545 would say 03:30; one rule
for every schedule kind is worth more than that detail).

Intervals are durations in absolute time - 3600 seconds stays 3600 seconds across DST - except a whole number
of days, which keeps the anchor's wall-clock time in the schedule's time zone (a daily interval anchored at
09:00 New York runs at 09:00 local in winter and summer, 23 or 25 hours apart on DST days; Prefect does the
same). The wall-clock time of such an interval is turned into an instant with the fixed-time rule above.

Termination
-----------
:func:`next_times` needs ``n`` or ``until``: schedules rarely end. Rules that end (COUNT, UNTIL) or whose last
occurrence is past simply return fewer times. Cron searches at most 400 years ahead (any valid 5-field cron
fires far more often); rrules that can never occur because of BYMONTH/BYMONTHDAY are refused by the schema.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence

from orch.control_plane.scheduling._describe import describe
from orch.control_plane.scheduling._rrule import parse_rrule
from orch.control_plane.schemas.schedules import (
    DEFAULT_ANCHOR,
    CronSchedule,
    IntervalSchedule,
    RRuleSchedule,
    ScheduleSpec,
    cron_fields,
    cron_text,
)

__all__ = ["describe", "is_elapsed_time", "iter_times", "next_times", "resolve_wall_time"]

UTC = dt.UTC
_DAY = dt.timedelta(days=1)
# A run after `after` never has a wall-clock time more than this before after's own: DST moves clocks back by at
# most 2 hours (Antarctica/Troll), one hour almost everywhere.
_MARGIN = dt.timedelta(hours=3)
# A valid 5-field cron fires at least every 28 years or so (Feb 29 on a given weekday): 400 years is a safe
# bound.
_CRON_HORIZON_YEARS = 400


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> dt.tzinfo:
    return UTC if name == "UTC" else zoneinfo.ZoneInfo(name)


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def next_times(
    spec: ScheduleSpec,
    after: dt.datetime,
    *,
    until: dt.datetime | None = None,
    n: int | None = None,
) -> list[dt.datetime]:
    """The schedule's next instants (aware UTC), strictly after ``after``, increasing.

    Stops after ``n`` times or at ``until`` (inclusive), whichever comes first; at least one of them is
    required because a schedule may never end.
    """
    if n is None and until is None:
        raise ValueError("next_times needs n or until (or both): a schedule may never end")
    if n is not None and n < 0:
        raise ValueError(f"n must be zero or more, got {n}")
    after_utc = _as_utc(after, "after")
    until_utc = _as_utc(until, "until") if until is not None else None
    result: list[dt.datetime] = []
    if n == 0 or (until_utc is not None and until_utc <= after_utc):
        return result
    for when in iter_times(spec, after_utc, stop=until_utc):
        if until_utc is not None and when > until_utc:
            break
        result.append(when)
        if n is not None and len(result) >= n:
            break
    return result


def iter_times(spec: ScheduleSpec, after: dt.datetime, *, stop: dt.datetime | None = None) -> Iterator[dt.datetime]:
    """Lazily yield the schedule's instants strictly after ``after`` (aware UTC, increasing).

    ``stop`` is a hint: the iterator may end soon after it rather than searching further. Without ``stop`` an
    endless schedule yields endlessly, so take what you need (:func:`next_times` does).
    """
    after_utc = _as_utc(after, "after")
    if isinstance(spec, CronSchedule):
        return _cron_instants(spec, after_utc, stop)
    if isinstance(spec, IntervalSchedule):
        return _interval_instants(spec, after_utc, stop)
    if isinstance(spec, RRuleSchedule):
        return _rrule_instants(spec, after_utc, stop)
    raise TypeError(f"not a schedule: {spec!r}")


def is_elapsed_time(spec: ScheduleSpec) -> bool:
    """Whether DST treats the schedule as elapsed time (gap times skipped, repeated times run twice).

    True for crons whose minute or hour field starts with ``*`` (Vixie cron's "wildcard jobs") and for HOURLY,
    MINUTELY and SECONDLY rrules. Intervals are not wall-clock schedules, so the question does not arise:
    False.
    """
    if isinstance(spec, CronSchedule):
        minute, hour, *_ = cron_text(spec.cron).split()
        return minute.startswith("*") or hour.startswith("*")
    if isinstance(spec, RRuleSchedule):
        return parse_rrule(spec.rrule, spec.timezone).sub_daily
    return False


def resolve_wall_time(wall: dt.datetime, zone: dt.tzinfo, *, elapsed: bool) -> tuple[dt.datetime, ...]:
    """The instants (UTC) at which naive wall-clock time ``wall`` in ``zone`` fires, following the module's
    DST rule.

    Usually one instant; none for an elapsed-time schedule in a gap; two for an elapsed-time schedule at a
    repeated time (earlier first); the end of the gap for a fixed-time schedule in a gap.
    """
    first = wall.replace(tzinfo=zone)
    offset = first.utcoffset()
    second_offset = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert offset is not None
    assert second_offset is not None
    instant = (wall - offset).replace(tzinfo=UTC)
    if offset == second_offset:
        return (instant,)
    if instant.astimezone(zone).replace(tzinfo=None) == wall:
        # The wall time happens twice: fold=0 is the earlier occurrence (PEP 495).
        return (instant, (wall - second_offset).replace(tzinfo=UTC)) if elapsed else (instant,)
    # A gap: fold=0 read the time with the offset from before the transition, fold=1 with the one after.
    return () if elapsed else (_gap_end(wall, zone, before=offset, after=second_offset),)


def _gap_end(wall: dt.datetime, zone: dt.tzinfo, *, before: dt.timedelta, after: dt.timedelta) -> dt.datetime:
    """The first instant after the DST gap containing ``wall``: the transition itself (03:00 local in New
    York)."""
    low = (wall - after).replace(tzinfo=UTC)  # still on the old offset
    high = (wall - before).replace(tzinfo=UTC)  # already on the new one
    one_second = dt.timedelta(seconds=1)
    while high - low > one_second:
        middle = low + ((high - low) // 2 // one_second) * one_second
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high


def _resolve_days(
    days: Iterable[tuple[dt.date, Sequence[dt.time]]], zone: dt.tzinfo, *, elapsed: bool, after: dt.datetime
) -> Iterator[dt.datetime]:
    """Turn batches of wall-clock times (one local day each, in order) into increasing instants after
    ``after``.

    Batching by day lets a repeated hour interleave correctly (01:00 EDT, 01:15 EDT... then 01:00 EST) and
    lets gap times collapse into one run. Days without a DST change (all but two a year) are converted lazily,
    so asking for the next run of ``* * * * *`` does not convert a whole day.
    """
    last = after
    for day, times in days:
        if not times:
            continue
        offset = _steady_offset(dt.datetime.combine(day, times[0]), dt.datetime.combine(day, times[-1]), zone)
        instants: Iterable[dt.datetime]
        if offset is not None:  # the usual day: no transition between its first and last time
            instants = ((dt.datetime.combine(day, time) - offset).replace(tzinfo=UTC) for time in times)
        else:
            walls = [dt.datetime.combine(day, time) for time in times]
            instants = sorted({when for wall in walls for when in resolve_wall_time(wall, zone, elapsed=elapsed)})
        for when in instants:
            if when > last:
                last = when
                yield when


def _steady_offset(first: dt.datetime, last: dt.datetime, zone: dt.tzinfo) -> dt.timedelta | None:
    """The zone's UTC offset when it is the same, unambiguously, at both wall-clock times (else None).

    Zones change offset at most once a day, so equal offsets at both ends mean none in between.
    """
    offsets = {
        first.replace(tzinfo=zone).utcoffset(),
        first.replace(tzinfo=zone, fold=1).utcoffset(),
        last.replace(tzinfo=zone).utcoffset(),
        last.replace(tzinfo=zone, fold=1).utcoffset(),
    }
    return offsets.pop() if len(offsets) == 1 else None


def _local_day(instant: dt.datetime, zone: dt.tzinfo) -> dt.date:
    return instant.astimezone(zone).date()


# -- cron --


def _cron_instants(spec: CronSchedule, after: dt.datetime, stop: dt.datetime | None) -> Iterator[dt.datetime]:
    minutes, hours, days, months, weekdays = cron_fields(spec.cron)
    zone = _zone(spec.timezone)
    times = [dt.time(hour, minute) for hour in (hours or range(24)) for minute in (minutes or range(60))]
    earliest = after.astimezone(zone).replace(tzinfo=None) - _MARGIN
    last_day = _local_day(stop, zone) + _DAY if stop is not None else None
    matching = _cron_days(days, months, weekdays, day_or=spec.day_or, start=earliest.date(), end=last_day)

    def batches() -> Iterator[tuple[dt.date, Sequence[dt.time]]]:
        for day in matching:
            # Skip the part of the first day that cannot produce a run after `after` (cheap for "* * * * *").
            yield day, times[bisect.bisect_left(times, earliest.time()) :] if day == earliest.date() else times

    return _resolve_days(batches(), zone, elapsed=is_elapsed_time(spec), after=after)


def _cron_days(
    days: list[int] | None,
    months: list[int] | None,
    weekdays: list[int] | None,
    *,
    day_or: bool,
    start: dt.date,
    end: dt.date | None,
) -> Iterator[dt.date]:
    """Local dates matching the day-of-month, month and day-of-week fields, from ``start`` on.

    Standard cron semantics (croniter's too): when both day fields are restricted a day matches either of them
    (``day_or``) or, with ``day_or=False``, both; when only one is restricted, that one decides.
    """
    day_set = set(days) if days is not None else None
    weekday_set = set(weekdays) if weekdays is not None else None
    month_list = months or list(range(1, 13))
    last_year = min(start.year + _CRON_HORIZON_YEARS, dt.MAXYEAR)
    for year in range(start.year, last_year + 1):
        for month in month_list:
            if (year, month) < (start.year, start.month):
                continue
            first = dt.date(year, month, 1)
            if end is not None and first > end:
                return
            # With day_or and both fields restricted, a weekday can match on any day of the month.
            every_day = day_set is None or (weekday_set is not None and day_or)
            candidates = range(1, _days_in_month(year, month) + 1) if every_day else sorted(day_set or ())
            for day_number in candidates:
                if day_number > _days_in_month(year, month):
                    break
                day = first.replace(day=day_number)
                if day < start:
                    continue
                if end is not None and day > end:
                    return
                if _day_matches(day, day_set, weekday_set, day_or=day_or):
                    yield day


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (dt.date(year, month + 1, 1) - dt.date(year, month, 1)).days


def _day_matches(day: dt.date, day_set: set[int] | None, weekday_set: set[int] | None, *, day_or: bool) -> bool:
    cron_weekday = day.isoweekday() % 7  # cron: 0 = Sunday
    if day_set is None or weekday_set is None:
        # At most one field is restricted (a None field matches everything).
        return (day_set is None or day.day in day_set) and (weekday_set is None or cron_weekday in weekday_set)
    if day_or:
        return day.day in day_set or cron_weekday in weekday_set
    return day.day in day_set and cron_weekday in weekday_set


# -- interval --


def _interval_instants(spec: IntervalSchedule, after: dt.datetime, stop: dt.datetime | None) -> Iterator[dt.datetime]:
    zone = _zone(spec.timezone)
    delta = spec.delta
    anchor = spec.anchor_date or DEFAULT_ANCHOR
    if anchor.tzinfo is None:
        anchor_wall = anchor
        anchor_instant = resolve_wall_time(anchor, zone, elapsed=False)[0]
    else:
        anchor_instant = anchor.astimezone(UTC)
        anchor_wall = anchor.astimezone(zone).replace(tzinfo=None)
    try:
        if delta % _DAY == dt.timedelta(0):
            yield from _wall_clock_days(anchor_wall, delta, zone, after, stop)
            return
        step = (after - anchor_instant) // delta + 1
        while True:
            when = anchor_instant + step * delta
            yield when
            if stop is not None and when > stop:
                return
            step += 1
    except OverflowError:  # past the year 9999: the end of time, as far as datetime is concerned
        return


def _wall_clock_days(
    anchor_wall: dt.datetime,
    delta: dt.timedelta,
    zone: dt.tzinfo,
    after: dt.datetime,
    stop: dt.datetime | None,
) -> Iterator[dt.datetime]:
    # Count in naive wall-clock time, where every day has 24 hours; start one step early for the DST margin.
    step = (after.astimezone(zone).replace(tzinfo=None) - anchor_wall) // delta - 1
    last = after
    while True:
        when = resolve_wall_time(anchor_wall + step * delta, zone, elapsed=False)[0]
        if when > last:
            last = when
            yield when
        if stop is not None and when > stop:
            return
        step += 1


# -- rrule --


def _rrule_instants(spec: RRuleSchedule, after: dt.datetime, stop: dt.datetime | None) -> Iterator[dt.datetime]:
    zone = _zone(spec.timezone)
    parsed = parse_rrule(spec.rrule, spec.timezone)
    start = after.astimezone(zone).replace(tzinfo=None) - _MARGIN
    end = stop.astimezone(zone).replace(tzinfo=None) + _MARGIN if stop is not None else None
    walls: Iterator[dt.datetime] = parsed.build(start_hint=start).xafter(start, inc=True)
    if end is not None:
        walls = itertools.takewhile(lambda wall: wall <= end, walls)
    batches = (
        (day, [wall.time() for wall in group]) for day, group in itertools.groupby(walls, key=lambda wall: wall.date())
    )
    return _resolve_days(batches, zone, elapsed=parsed.sub_daily, after=after)
