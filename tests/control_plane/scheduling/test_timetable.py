"""next_times and describe: run times in the schedule's zone, DST days included, and schedules in words."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from croniter import croniter
from dateutil import rrule as du
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from orch.control_plane.scheduling.timetable import describe, is_elapsed_time, next_times
from orch.control_plane.schemas.schedules import CronSchedule, ScheduleSpec, cron_text

from ._strategies import CRONS, DST_WEEKS, ZONES

pytestmark = pytest.mark.unit

SPEC: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)
UTC = dt.UTC
NY = "America/New_York"
SPRING_FORWARD = dt.date(2026, 3, 8)  # New York: 02:00 EST -> 03:00 EDT, a 23-hour day
FALL_BACK = dt.date(2026, 11, 1)  # New York: 02:00 EDT -> 01:00 EST, a 25-hour day


def spec(**data: Any) -> Any:
    return SPEC.validate_python(data)


def local_day(schedule: Any, day: dt.date, zone: str = NY) -> list[dt.datetime]:
    """Every run whose instant falls on local ``day`` in ``zone``."""
    tz = zoneinfo.ZoneInfo(zone)
    start = dt.datetime.combine(day, dt.time(), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tz)
    runs = next_times(schedule, start - dt.timedelta(microseconds=1), until=end - dt.timedelta(microseconds=1))
    return runs


def wall(runs: list[dt.datetime], zone: str = NY) -> list[str]:
    return [run.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%H:%M %Z") for run in runs]


# -- DST --


@pytest.mark.parametrize(
    ("schedule", "day", "count"),
    [
        ({"cron": "*/15 * * * *"}, SPRING_FORWARD, 92),
        ({"cron": "*/15 * * * *"}, FALL_BACK, 100),
        ({"cron": "*/15 * * * *"}, dt.date(2026, 6, 1), 96),
        ({"cron": "0 * * * *"}, SPRING_FORWARD, 23),
        ({"cron": "0 * * * *"}, FALL_BACK, 25),
        ({"cron": "* * * * *"}, SPRING_FORWARD, 23 * 60),
        ({"cron": "* * * * *"}, FALL_BACK, 25 * 60),
        ({"rrule": "FREQ=MINUTELY;INTERVAL=15"}, SPRING_FORWARD, 92),
        ({"rrule": "FREQ=MINUTELY;INTERVAL=15"}, FALL_BACK, 100),
        ({"rrule": "FREQ=HOURLY"}, SPRING_FORWARD, 23),
        ({"rrule": "FREQ=HOURLY"}, FALL_BACK, 25),
        ({"interval": 900}, SPRING_FORWARD, 92),
        ({"interval": 900}, FALL_BACK, 100),
        # Fixed-time schedules listing every quarter hour: gap times collapse into 03:00, repeats run once.
        ({"cron": "0,15,30,45 0-23 * * *"}, SPRING_FORWARD, 92),
        ({"cron": "0,15,30,45 0-23 * * *"}, FALL_BACK, 96),
    ],
)
def test_elapsed_time_schedules_follow_real_time_on_dst_days(
    schedule: dict[str, Any], day: dt.date, count: int
) -> None:
    runs = local_day(spec(timezone=NY, **schedule), day)
    assert len(runs) == count
    assert len(set(runs)) == count
    assert runs == sorted(runs)
    if count in (92, 100) and "0-23" not in str(schedule):
        # One run every 15 real minutes: none missing, none doubled.
        assert {b - a for a, b in itertools.pairwise(runs)} == {dt.timedelta(minutes=15)}


@pytest.mark.parametrize(
    ("schedule", "day", "expected"),
    [
        # 02:30 does not exist on the spring-forward day: the run happens once, at the end of the gap.
        ({"cron": "30 2 * * *"}, SPRING_FORWARD, ["03:00 EDT"]),
        ({"cron": "30 2 * * *"}, FALL_BACK, ["02:30 EST"]),
        ({"cron": "30 2 * * *"}, dt.date(2026, 3, 7), ["02:30 EST"]),
        ({"cron": "30 2 * * *"}, dt.date(2026, 3, 9), ["02:30 EDT"]),
        # 01:30 happens twice on the fall-back day: the run happens at the first occurrence only.
        ({"cron": "30 1 * * *"}, FALL_BACK, ["01:30 EDT"]),
        ({"cron": "30 1 * * *"}, SPRING_FORWARD, ["01:30 EST"]),
        # Several gap times and the end of the gap itself: one run.
        ({"cron": "0,30 2,3 * * *"}, SPRING_FORWARD, ["03:00 EDT", "03:30 EDT"]),
        ({"cron": "0,30 1 * * *"}, FALL_BACK, ["01:00 EDT", "01:30 EDT"]),
        ({"cron": "0 9 * * *"}, SPRING_FORWARD, ["09:00 EDT"]),
        ({"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"}, SPRING_FORWARD, ["03:00 EDT"]),
        ({"rrule": "FREQ=DAILY;BYHOUR=1;BYMINUTE=30"}, FALL_BACK, ["01:30 EDT"]),
        ({"rrule": "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=15"}, SPRING_FORWARD, ["03:00 EDT"]),
        # Whole-day intervals keep the anchor's wall-clock time, with the same rule for the gap and the repeat.
        ({"interval": 86400, "anchor_date": "2026-01-01T02:30:00"}, SPRING_FORWARD, ["03:00 EDT"]),
        ({"interval": 86400, "anchor_date": "2026-01-01T01:30:00"}, FALL_BACK, ["01:30 EDT"]),
        ({"interval": 86400, "anchor_date": "2026-01-01T09:00:00"}, SPRING_FORWARD, ["09:00 EDT"]),
        ({"interval": 86400, "anchor_date": "2026-01-01T09:00:00"}, FALL_BACK, ["09:00 EST"]),
    ],
)
def test_fixed_time_schedules_run_once_on_dst_days(schedule: dict[str, Any], day: dt.date, expected: list[str]) -> None:
    assert wall(local_day(spec(timezone=NY, **schedule), day)) == expected


def test_daily_interval_keeps_wall_clock_but_shorter_intervals_keep_duration() -> None:
    after = dt.datetime(2026, 3, 6, 12, tzinfo=UTC)
    daily = next_times(spec(interval=86400, anchor_date="2026-01-01T09:00:00", timezone=NY), after, n=4)
    assert wall(daily) == ["09:00 EST", "09:00 EST", "09:00 EDT", "09:00 EDT"]
    assert daily[2] - daily[1] == dt.timedelta(hours=23)
    # 12 hours is a duration: across spring forward the wall clock moves by an hour.
    half_days = next_times(spec(interval=43200, anchor_date="2026-01-01T09:00:00", timezone=NY), after, n=6)
    assert {b - a for a, b in itertools.pairwise(half_days)} == {dt.timedelta(hours=12)}
    assert wall(half_days)[-1] == "22:00 EDT"
    # In UTC a whole-day interval is a plain duration as well.
    utc_days = next_times(spec(interval=2 * 86400, anchor_date="2026-01-01T09:00:00Z"), after, n=3)
    assert {b - a for a, b in itertools.pairwise(utc_days)} == {dt.timedelta(days=2)}


# -- intervals and anchors --


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # Default anchor: 2020-01-01 00:00 in the schedule's zone.
        ({"interval": 3600}, "2026-05-05T10:00:00+00:00", ["2026-05-05T11:00:00+00:00", "2026-05-05T12:00:00+00:00"]),
        ({"interval": 900, "anchor_date": "2026-01-01T00:07:00Z"}, "2026-05-05T10:00:00Z", ["10:07", "10:22"]),
        # Anchor in the future: earlier runs keep its phase.
        ({"interval": 900, "anchor_date": "2030-01-01T00:07:00Z"}, "2026-05-05T10:00:00Z", ["10:07", "10:22"]),
        # Naive anchor: read in the schedule's zone (09:00 Tokyo = 00:00 UTC).
        (
            {"interval": 7200, "anchor_date": "2026-01-01T09:00:00", "timezone": "Asia/Tokyo"},
            "2026-05-05T01:00:00Z",
            ["02:00", "04:00"],
        ),
        ({"interval": 1.5, "anchor_date": "2026-01-01T00:00:00Z"}, "2026-01-01T00:00:02Z", ["00:00:03", "00:00:04.5"]),
        # 3,335,640 minutes (a multiple of 7) after 2020-01-01: 10:00 is a run itself, so not "after".
        ({"interval": 420}, "2026-05-05T10:00:00Z", ["10:07", "10:14"]),
    ],
)
def test_interval_runs_are_counted_from_the_anchor(schedule: dict[str, Any], after: str, expected: list[str]) -> None:
    runs = next_times(spec(**schedule), dt.datetime.fromisoformat(after), n=len(expected))
    rendered = [run.isoformat() if "T" in expected[0] else _clock(run) for run in runs]
    assert rendered == expected
    assert all(run.tzinfo is UTC for run in runs)


def _clock(run: dt.datetime) -> str:
    text = run.strftime("%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text[:-3] if text.endswith(":00") and run.microsecond == 0 else text


def test_interval_anchor_instant_itself_is_not_after_itself() -> None:
    anchor = dt.datetime(2026, 1, 1, tzinfo=UTC)
    runs = next_times(spec(interval=60, anchor_date=anchor.isoformat()), anchor, n=2)
    assert runs == [anchor + dt.timedelta(minutes=1), anchor + dt.timedelta(minutes=2)]


# -- cron basics, n and until --


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 9 * * 1-5", "2026-11-20T10:00:00Z", ["2026-11-23T09:00:00+00:00", "2026-11-24T09:00:00+00:00"]),
        ("0 0 1 * *", "2026-11-20T00:00:00Z", ["2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"]),
        ("0 0 * * 7", "2026-11-20T00:00:00Z", ["2026-11-22T00:00:00+00:00", "2026-11-29T00:00:00+00:00"]),
        # Both day fields restricted: the 1st OR a Monday (standard cron).
        ("0 0 1 * 1", "2026-11-27T00:00:00Z", ["2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00"]),
        ("0 0 29 2 *", "2026-01-01T00:00:00Z", ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
        ("@hourly", "2026-11-20T10:30:00Z", ["2026-11-20T11:00:00+00:00", "2026-11-20T12:00:00+00:00"]),
    ],
)
def test_cron_next_times(cron: str, after: str, expected: list[str]) -> None:
    runs = next_times(spec(cron=cron), dt.datetime.fromisoformat(after), n=2)
    assert [run.isoformat() for run in runs] == expected


def test_cron_day_or_false_needs_both_day_fields() -> None:
    friday_13th = spec(cron="0 0 13 * 5", day_or=False)
    runs = next_times(friday_13th, dt.datetime(2026, 1, 1, tzinfo=UTC), n=3)
    assert [run.date().isoformat() for run in runs] == ["2026-02-13", "2026-03-13", "2026-11-13"]
    feb_29_monday = spec(cron="0 0 29 2 1", day_or=False)
    assert next_times(feb_29_monday, dt.datetime(2026, 1, 1, tzinfo=UTC), n=1)[0].date() == dt.date(2044, 2, 29)


def test_results_are_strictly_after_and_until_is_inclusive() -> None:
    every_hour = spec(cron="0 * * * *")
    on_the_hour = dt.datetime(2026, 5, 5, 10, tzinfo=UTC)
    runs = next_times(every_hour, on_the_hour, until=on_the_hour + dt.timedelta(hours=3))
    assert runs == [on_the_hour + dt.timedelta(hours=h) for h in (1, 2, 3)]
    assert next_times(every_hour, on_the_hour, until=on_the_hour + dt.timedelta(hours=3), n=2) == runs[:2]
    assert next_times(every_hour, on_the_hour, n=0) == []
    assert next_times(every_hour, on_the_hour, until=on_the_hour) == []
    # Any aware datetime is accepted; results are UTC.
    tokyo = on_the_hour.astimezone(zoneinfo.ZoneInfo("Asia/Tokyo"))
    assert next_times(every_hour, tokyo, n=1) == [on_the_hour + dt.timedelta(hours=1)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "next_times needs n or until"),
        ({"n": -1}, "n must be zero or more"),
    ],
)
def test_next_times_refuses_unbounded_or_bad_requests(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        next_times(spec(cron="* * * * *"), dt.datetime(2026, 1, 1, tzinfo=UTC), **kwargs)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="after must be a timezone-aware datetime"):
        next_times(spec(cron="* * * * *"), dt.datetime(2026, 1, 1), n=1)
    with pytest.raises(ValueError, match="until must be a timezone-aware datetime"):
        next_times(spec(cron="* * * * *"), dt.datetime(2026, 1, 1, tzinfo=UTC), until=dt.datetime(2026, 1, 2))


# -- rrules --


@pytest.mark.parametrize(
    ("rule", "after", "n", "expected"),
    [
        ("FREQ=WEEKLY;BYDAY=MO", "2026-11-20T00:00:00Z", 2, ["2026-11-23T00:00:00+00:00", "2026-11-30T00:00:00+00:00"]),
        (
            "FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=17",
            "2026-11-01T00:00:00Z",
            2,
            ["2026-11-27T17:00:00+00:00", "2026-12-25T17:00:00+00:00"],
        ),
        # COUNT and UNTIL end the rule: fewer results, then none, and no endless search.
        (
            "DTSTART:20261101T090000\nRRULE:FREQ=DAILY;COUNT=3",
            "2026-11-01T12:00:00Z",
            10,
            ["2026-11-02T09:00:00+00:00", "2026-11-03T09:00:00+00:00"],
        ),
        ("DTSTART:20261101T090000\nRRULE:FREQ=DAILY;COUNT=3", "2027-01-01T00:00:00Z", 10, []),
        ("FREQ=DAILY;UNTIL=20200105T000000", "2026-01-01T00:00:00Z", 5, []),
        (
            "DTSTART:20261101T090000\nRRULE:FREQ=DAILY\nEXDATE:20261103T090000",
            "2026-11-01T12:00:00Z",
            2,
            ["2026-11-02T09:00:00+00:00", "2026-11-04T09:00:00+00:00"],
        ),
        (
            "DTSTART:20261101T090000\nRDATE:20261101T100000,20261101T110000",
            "2026-11-01T09:30:00Z",
            5,
            ["2026-11-01T10:00:00+00:00", "2026-11-01T11:00:00+00:00"],
        ),
    ],
)
def test_rrule_next_times(rule: str, after: str, n: int, expected: list[str]) -> None:
    runs = next_times(spec(rrule=rule), dt.datetime.fromisoformat(after), n=n)
    assert [run.isoformat() for run in runs] == expected


def test_rrule_dtstart_zone_is_used_for_wall_clock() -> None:
    rule = spec(rrule="DTSTART;TZID=America/New_York:20260101T090000\nRRULE:FREQ=DAILY")
    runs = next_times(rule, dt.datetime(2026, 7, 1, tzinfo=UTC), n=1)
    assert runs == [dt.datetime(2026, 7, 1, 13, tzinfo=UTC)]  # 09:00 EDT


@pytest.mark.parametrize("rule", ["FREQ=MINUTELY;INTERVAL=7", "FREQ=HOURLY;INTERVAL=5;BYMINUTE=10,40",
                                  "FREQ=SECONDLY;INTERVAL=45", "FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,FR"])  # fmt: skip
def test_rrule_fast_forward_keeps_the_phase(rule: str) -> None:
    """next_times moves DTSTART next to `after` to skip years of minutely occurrences; dateutil walking the whole
    way from DTSTART must agree."""
    text = f"DTSTART:20260101T000000\nRRULE:{rule}"
    after = dt.datetime(2026, 3, 20, 5, 3, 7, tzinfo=UTC)
    expected = list(du.rrulestr(text).xafter(after.replace(tzinfo=None), count=12))
    runs = next_times(spec(rrule=text), after, n=12)
    assert [run.replace(tzinfo=None) for run in runs] == expected


# -- elapsed or fixed --


@pytest.mark.parametrize(
    ("schedule", "elapsed"),
    [
        ({"cron": "*/15 * * * *"}, True),
        ({"cron": "0 * * * *"}, True),
        ({"cron": "0 */6 * * *"}, True),
        ({"cron": "@hourly"}, True),
        ({"cron": "30 2 * * *"}, False),
        ({"cron": "0 9-17 * * *"}, False),
        ({"rrule": "FREQ=HOURLY"}, True),
        ({"rrule": "FREQ=DAILY;BYHOUR=1,2,3"}, False),
        ({"interval": 60}, False),
    ],
)
def test_which_schedules_count_elapsed_time(schedule: dict[str, Any], elapsed: bool) -> None:
    assert is_elapsed_time(spec(**schedule)) is elapsed


# -- describe --


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        ({"cron": "* * * * *"}, "every minute"),
        ({"cron": "*/15 * * * *"}, "every 15 minutes"),
        ({"cron": "*/15 * * * *", "timezone": NY}, "every 15 minutes (America/New_York)"),
        ({"cron": "0 * * * *"}, "every hour"),
        ({"cron": "@hourly"}, "every hour"),
        ({"cron": "15 * * * *"}, "every hour at minute 15"),
        ({"cron": "0 */6 * * *"}, "every 6 hours"),
        ({"cron": "30 */2 * * *"}, "every 2 hours at minute 30"),
        ({"cron": "30 2 * * *", "timezone": NY}, "at 02:30 every day (America/New_York)"),
        ({"cron": "@daily"}, "at 00:00 every day"),
        ({"cron": "0 9,17 * * *"}, "at 09:00 and 17:00 every day"),
        ({"cron": "0 9 * * 1-5"}, "at 09:00 on weekdays"),
        ({"cron": "0 10 * * 6,0"}, "at 10:00 on weekends"),
        ({"cron": "0 0 * * 0"}, "at 00:00 every Sunday"),
        ({"cron": "0 0 * * 7"}, "at 00:00 every Sunday"),
        ({"cron": "0 0 * * 1,3,5"}, "at 00:00 on Monday, Wednesday and Friday"),
        ({"cron": "0 8 * * 2-4"}, "at 08:00 Tuesday through Thursday"),
        ({"cron": "0 0 1 * *"}, "at 00:00 on the 1st of every month"),
        ({"cron": "30 2 1,15 * *"}, "at 02:30 on the 1st and 15th of every month"),
        ({"cron": "0 0 1 1 *"}, "at 00:00 on January 1"),
        ({"cron": "0 0 1 * 1"}, "at 00:00 on the 1st of every month or on Monday"),
        ({"cron": "0 0 13 * 5", "day_or": False}, "at 00:00 on the 13th of every month if it is a Friday"),
        ({"cron": "0 12 * jan,jul *"}, "at 12:00 in January and July"),
        ({"cron": "*/15 9-17 * * 1-5"}, "every 15 minutes from 09:00 to 17:59 on weekdays"),
        ({"cron": "7,19,31,43,55 1,3,5,7 * * *"}, "7,19,31,43,55 1,3,5,7 * * *"),  # no good sentence: the expression
        ({"interval": 60}, "every minute"),
        ({"interval": 900}, "every 15 minutes"),
        ({"interval": 3600}, "every hour"),
        ({"interval": 5400}, "every 90 minutes"),
        ({"interval": 7200}, "every 2 hours"),
        ({"interval": 86400}, "every day at 00:00"),
        (
            {"interval": 86400, "anchor_date": "2026-01-01T09:30:00", "timezone": "Europe/Paris"},
            "every day at 09:30 (Europe/Paris)",
        ),
        ({"interval": 30}, "every 30 seconds"),
        ({"interval": 1.5}, "every 1.5 seconds"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=MO"}, "weekly on Monday"),
        ({"rrule": "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9"}, "weekly on Monday and Friday at 09:00"),
        ({"rrule": "FREQ=DAILY"}, "daily"),
        ({"rrule": "FREQ=MINUTELY;INTERVAL=15"}, "every 15 minutes"),
        ({"rrule": "FREQ=WEEKLY;INTERVAL=2"}, "every 2 weeks"),
        ({"rrule": "FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9"}, "monthly on the 1st Monday at 09:00"),
        ({"rrule": "FREQ=MONTHLY;BYDAY=-1FR"}, "monthly on the last Friday"),
        ({"rrule": "FREQ=MONTHLY;BYMONTHDAY=1,15"}, "monthly on the 1st and 15th"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=7;BYMONTHDAY=4"}, "yearly on the 4th in July"),
        ({"rrule": "FREQ=DAILY;COUNT=5;BYHOUR=6"}, "daily at 06:00 5 times"),
        ({"rrule": "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1"}, "FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1"),
    ],
)
def test_describe(schedule: dict[str, Any], words: str) -> None:
    assert describe(spec(**schedule)) == words


# -- properties --

AFTER = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 12, 31), timezones=st.just(UTC))


def _valid(cron: str, zone: str, day_or: bool) -> CronSchedule:
    try:
        return CronSchedule(cron=cron, timezone=zone, day_or=day_or)
    except ValidationError:
        assume(False)
        raise


def _is_transition(instant: dt.datetime, zone: dt.tzinfo) -> bool:
    return instant.astimezone(zone).utcoffset() != (instant - dt.timedelta(seconds=1)).astimezone(zone).utcoffset()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(CRONS, st.sampled_from(ZONES), st.booleans(), AFTER, st.integers(1, 25))
def test_cron_runs_increase_and_match_the_cron_in_local_time(
    cron: str, zone_name: str, day_or: bool, after: dt.datetime, n: int
) -> None:
    schedule = _valid(cron, zone_name, day_or)
    zone = zoneinfo.ZoneInfo(zone_name)
    runs = next_times(schedule, after, n=n)
    assert len(runs) == n  # every valid cron fires again within the search horizon
    assert all(run.tzinfo is UTC for run in runs)
    assert runs[0] > after
    assert all(a < b for a, b in itertools.pairwise(runs))
    expression = cron_text(cron)
    for run in runs:
        local = run.astimezone(zone).replace(tzinfo=None)
        if croniter.match(expression, local, day_or=day_or):
            continue
        # The only other way to run: a fixed-time schedule whose time fell into a DST gap runs when it ends.
        assert not is_elapsed_time(schedule), f"{run} ({local}) does not match {cron!r}"
        assert _is_transition(run, zone), f"{run} ({local}) does not match {cron!r} and is no DST gap end"


def _croniter_matcher(expression: str, *, day_or: bool) -> Callable[[dt.datetime], bool]:
    """A fast stand-in for ``croniter.match`` (about 1 ms a call): croniter's own field expansion, standard cron
    day matching. The property test above checks results against ``croniter.match`` itself."""
    expanded, _ = croniter.expand(expression)
    minutes, hours, days, months, weekdays = (
        None if values == ["*"] else {int(v) % 7 if index == 4 else int(v) for v in values}
        for index, values in enumerate(expanded)
    )

    def matches(local: dt.datetime) -> bool:
        if (minutes is not None and local.minute not in minutes) or (hours is not None and local.hour not in hours):
            return False
        if months is not None and local.month not in months:
            return False
        day_ok = days is None or local.day in days
        weekday_ok = weekdays is None or local.isoweekday() % 7 in weekdays
        if days is not None and weekdays is not None and day_or:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    return matches


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(CRONS, st.sampled_from([NY, "Europe/London", "Australia/Lord_Howe"]), st.booleans(), st.sampled_from(DST_WEEKS))
def test_cron_runs_miss_nothing_around_dst_changes(cron: str, zone_name: str, day_or: bool, after: dt.datetime) -> None:
    """Minute by minute in real time over two days around DST changes: every instant whose local time matches the
    cron is a run (for fixed-time schedules only the first occurrence of a repeated time), and nothing else is,
    except gap ends of fixed-time schedules. This scans instants, where next_times resolves wall-clock times."""
    schedule = _valid(cron, zone_name, day_or)
    zone = zoneinfo.ZoneInfo(zone_name)
    until = after + dt.timedelta(days=2)
    runs = next_times(schedule, after, until=until)
    matches = _croniter_matcher(cron_text(cron), day_or=day_or)
    elapsed = is_elapsed_time(schedule)
    expected = []
    instant = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    while instant <= until:
        local = instant.astimezone(zone)
        repeated_later = local.fold == 1
        if matches(local.replace(tzinfo=None)) and (elapsed or not repeated_later):
            expected.append(instant)
        instant += dt.timedelta(minutes=1)
    expected_set = set(expected)
    assert [run for run in runs if run in expected_set] == expected
    gap_ends = [run for run in runs if run not in expected_set]
    assert not (elapsed and gap_ends)
    assert all(_is_transition(run, zone) for run in gap_ends)
