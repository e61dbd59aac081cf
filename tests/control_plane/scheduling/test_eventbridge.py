"""EventBridge Scheduler translation: cron/rate expressions, time zones, and the cases left to the services tick.

EventBridge itself cannot run here; its documented semantics (AWS cron fields; in a time zone, a wall-clock time
inside a DST gap is skipped and a repeated one runs once) are simulated by ``_eventbridge_runs`` below, and the
property tests check that whatever ``to_eventbridge`` emits fires exactly when ``next_times`` says.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
import zoneinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from orch.control_plane.scheduling.eventbridge import EventBridgeExpression, schedule_name, to_eventbridge
from orch.control_plane.scheduling.timetable import next_times
from orch.control_plane.schemas.schedules import CronSchedule, ScheduleSpec, cron_fields

from ._strategies import CRONS, DST_WEEKS

pytestmark = pytest.mark.unit

SPEC: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)
UTC = dt.UTC
NY = "America/New_York"


def translate(**data: Any) -> EventBridgeExpression | None:
    return to_eventbridge(SPEC.validate_python(data))


# -- cron --


@pytest.mark.parametrize(
    ("cron", "expression"),
    [
        ("*/15 * * * *", "cron(0/15 * * * ? *)"),
        ("* * * * *", "cron(* * * * ? *)"),
        ("0 * * * *", "cron(0 * * * ? *)"),
        ("5/10 * * * *", "cron(5/10 * * * ? *)"),
        ("0 9 * * 1-5", "cron(0 9 ? * MON-FRI *)"),
        ("0 9 * * mon-fri", "cron(0 9 ? * MON-FRI *)"),
        ("0 0 1 * *", "cron(0 0 1 * ? *)"),
        ("0 0 * * 0", "cron(0 0 ? * SUN *)"),
        ("0 0 * * 7", "cron(0 0 ? * SUN *)"),
        ("0 0 * * SUN", "cron(0 0 ? * SUN *)"),
        ("0 0 * * 6", "cron(0 0 ? * SAT *)"),
        ("0 0 * * 1,3,5", "cron(0 0 ? * MON,WED,FRI *)"),
        ("0 0 * * 0,6", "cron(0 0 ? * SUN,SAT *)"),
        ("0 0 * * 5-7", "cron(0 0 ? * SUN,FRI,SAT *)"),
        ("0 0 * * 5-0", "cron(0 0 ? * SUN,FRI,SAT *)"),
        ("0 0 * * */2", "cron(0 0 ? * SUN,TUE,THU,SAT *)"),
        ("0 0 * * 1-5/2", "cron(0 0 ? * MON,WED,FRI *)"),
        ("0 0 * * 0-6", "cron(0 0 * * ? *)"),
        ("5 4 * * sun-sat", "cron(5 4 * * ? *)"),
        ("30 2 1,15 * *", "cron(30 2 1,15 * ? *)"),
        ("0 0 1 1 *", "cron(0 0 1 1 ? *)"),
        ("0 */6 * * *", "cron(0 0/6 * * ? *)"),
        ("0 1-23/2 * * *", "cron(0 1/2 * * ? *)"),
        ("0 9-17 * * *", "cron(0 9-17 * * ? *)"),
        ("0,30 8,12,18 * * *", "cron(0,30 8,12,18 * * ? *)"),
        ("0 0 */2 * *", "cron(0 0 1/2 * ? *)"),
        ("0 0 1-7 * *", "cron(0 0 1-7 * ? *)"),
        ("0 12 * jan,jul *", "cron(0 12 * 1,7 ? *)"),
        ("0 12 * JAN-MAR *", "cron(0 12 * 1-3 ? *)"),
        ("0 12 1 */3 *", "cron(0 12 1 1/3 ? *)"),
        ("0 0 29 2 *", "cron(0 0 29 2 ? *)"),
        ("@daily", "cron(0 0 * * ? *)"),
        ("@weekly", "cron(0 0 ? * SUN *)"),
        ("@yearly", "cron(0 0 1 1 ? *)"),
        ("*/5 9-17 * * mon-fri", "cron(0/5 9-17 ? * MON-FRI *)"),
        # Both day fields restricted: cron OR-s them (or AND-s with day_or=False); EventBridge needs one to be "?".
        ("0 0 1 * 1", None),
        ("0 0 1-7 * mon", None),
        ("0 0 13 * 5", None),
    ],
)
def test_cron_translation_in_utc(cron: str, expression: str | None) -> None:
    result = translate(cron=cron)
    if expression is None:
        assert result is None
    else:
        assert result == EventBridgeExpression(expression, "UTC")


def test_cron_with_both_day_fields_and_day_or_false_is_not_translated() -> None:
    assert translate(cron="0 0 13 * 5", day_or=False) is None


@pytest.mark.parametrize(
    ("cron", "zone", "expected"),
    [
        # No DST in the zone: the cron goes as it is, in the zone.
        ("30 2 * * *", "Asia/Kolkata", EventBridgeExpression("cron(30 2 * * ? *)", "Asia/Kolkata")),
        ("*/15 * * * *", "Asia/Kathmandu", EventBridgeExpression("cron(0/15 * * * ? *)", "Asia/Kathmandu")),
        # Every hour of every day: a function of elapsed time only, so a UTC cron is exact on DST days too.
        ("*/15 * * * *", NY, EventBridgeExpression("cron(0/15 * * * ? *)", "UTC")),
        ("0 * * * *", NY, EventBridgeExpression("cron(0 * * * ? *)", "UTC")),
        ("* * * * *", "Europe/London", EventBridgeExpression("cron(* * * * ? *)", "UTC")),
        # Away from the transition hours, EventBridge's own DST handling matches orch's.
        ("0 9 * * 1-5", NY, EventBridgeExpression("cron(0 9 ? * MON-FRI *)", NY)),
        ("0 */6 * * *", NY, EventBridgeExpression("cron(0 0/6 * * ? *)", NY)),
        ("*/5 9-17 * * *", NY, EventBridgeExpression("cron(0/5 9-17 * * ? *)", NY)),
        ("0 0 1 * *", "Europe/Paris", EventBridgeExpression("cron(0 0 1 * ? *)", "Europe/Paris")),
        ("30 1 * * *", "Europe/Paris", EventBridgeExpression("cron(30 1 * * ? *)", "Europe/Paris")),
        # Lord Howe moves by 30 minutes (01:30-01:59 repeats): hourly on the hour never touches it.
        ("0 * * * *", "Australia/Lord_Howe", EventBridgeExpression("cron(0 * * * ? *)", "Australia/Lord_Howe")),
        # A time EventBridge would skip (orch runs it at 03:00) or a repeated one: the services tick.
        ("30 2 * * *", NY, None),
        ("30 1 * * *", NY, None),
        ("30 2 * * *", "Europe/Paris", None),
        ("0 * * * 1-5", NY, None),  # elapsed-time, but 01:00 repeats and orch runs it twice
        ("*/15 * * * *", "Australia/Lord_Howe", None),
    ],
)
def test_cron_translation_in_time_zones(cron: str, zone: str, expected: EventBridgeExpression | None) -> None:
    assert translate(cron=cron, timezone=zone) == expected


# -- intervals --


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # Intervals dividing an hour or a day: a UTC cron with the anchor's phase (default anchor 2020-01-01 00:00).
        ({"interval": 60}, EventBridgeExpression("cron(* * * * ? *)")),
        ({"interval": 300}, EventBridgeExpression("cron(0/5 * * * ? *)")),
        ({"interval": 900}, EventBridgeExpression("cron(0/15 * * * ? *)")),
        ({"interval": 900, "anchor_date": "2026-01-01T00:07:00Z"}, EventBridgeExpression("cron(7/15 * * * ? *)")),
        ({"interval": 1800, "timezone": NY}, EventBridgeExpression("cron(0,30 * * * ? *)")),
        ({"interval": 3600}, EventBridgeExpression("cron(0 * * * ? *)")),
        ({"interval": 3600, "anchor_date": "2026-01-01T00:20:00Z"}, EventBridgeExpression("cron(20 * * * ? *)")),
        ({"interval": 21600, "anchor_date": "2026-01-01T01:30:00Z"}, EventBridgeExpression("cron(30 1/6 * * ? *)")),
        ({"interval": 43200}, EventBridgeExpression("cron(0 0,12 * * ? *)")),
        # Naive anchor read in the zone: 00:00 New York = 05:00 UTC in winter; 3 hours is a duration, so UTC.
        ({"interval": 10800, "timezone": NY}, EventBridgeExpression("cron(0 2/3 * * ? *)")),
        # One day keeps its wall-clock time: a daily cron in the zone, unless that time is a DST transition time.
        ({"interval": 86400}, EventBridgeExpression("cron(0 0 * * ? *)")),
        (
            {"interval": 86400, "anchor_date": "2026-01-01T09:00:00", "timezone": "Europe/Paris"},
            EventBridgeExpression("cron(0 9 * * ? *)", "Europe/Paris"),
        ),
        ({"interval": 86400, "anchor_date": "2026-01-01T02:30:00", "timezone": NY}, None),
        # No cron can say it: a rate() without an anchor (cadence only, flagged inexact); with an anchor, None.
        ({"interval": 420}, EventBridgeExpression("rate(7 minutes)", exact=False)),
        ({"interval": 5400}, EventBridgeExpression("rate(90 minutes)", exact=False)),
        ({"interval": 7 * 3600}, EventBridgeExpression("rate(7 hours)", exact=False)),
        ({"interval": 2 * 86400}, EventBridgeExpression("rate(2 days)", exact=False)),
        ({"interval": 420, "anchor_date": "2026-01-01T00:00:00Z"}, None),
        # EventBridge counts whole minutes.
        ({"interval": 30}, None),
        ({"interval": 90}, None),
        ({"interval": 60, "anchor_date": "2026-01-01T00:00:30Z"}, None),
    ],
)
def test_interval_translation(schedule: dict[str, Any], expected: EventBridgeExpression | None) -> None:
    assert translate(**schedule) == expected


@pytest.mark.parametrize(("minutes", "expression"), [(7, "rate(7 minutes)"), (1500, "rate(25 hours)"),
                                                     (1441, "rate(1441 minutes)"), (2880, "rate(2 days)")])  # fmt: skip
def test_rate_units(minutes: int, expression: str) -> None:
    result = translate(interval=minutes * 60)
    assert result is not None
    assert result.expression == expression


# -- rrules --


@pytest.mark.parametrize(
    ("rule", "expression"),
    [
        ("FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0", "cron(0 9 ? * MON *)"),
        ("FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=9", "cron(0 9 ? * MON,WED,FRI *)"),
        ("FREQ=WEEKLY", "cron(0 0 ? * WED *)"),  # 2020-01-01, the default DTSTART, was a Wednesday
        ("FREQ=DAILY", "cron(0 0 * * ? *)"),
        ("FREQ=DAILY;BYHOUR=9,17;BYMINUTE=30", "cron(30 9,17 * * ? *)"),
        ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8", "cron(0 8 ? * MON-FRI *)"),
        ("FREQ=HOURLY", "cron(0 * * * ? *)"),
        ("FREQ=HOURLY;INTERVAL=6;BYMINUTE=15", "cron(15 0/6 * * ? *)"),
        ("FREQ=MINUTELY;INTERVAL=15", "cron(0/15 * * * ? *)"),
        ("FREQ=MINUTELY;INTERVAL=10;BYHOUR=9", "cron(0/10 9 * * ? *)"),
        ("FREQ=MONTHLY", "cron(0 0 1 * ? *)"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15;BYHOUR=6", "cron(0 6 1,15 * ? *)"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", "cron(0 0 L * ? *)"),
        ("FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9", "cron(0 9 ? * MON#1 *)"),
        ("FREQ=MONTHLY;BYDAY=-1FR", "cron(0 0 ? * 6L *)"),
        ("FREQ=YEARLY;BYMONTH=7;BYMONTHDAY=4;BYHOUR=12", "cron(0 12 4 7 ? *)"),
        ("FREQ=YEARLY", "cron(0 0 1 1 ? *)"),
        ("RRULE:FREQ=DAILY;BYHOUR=9", "cron(0 9 * * ? *)"),
        # Beyond cron: the services tick.
        ("FREQ=WEEKLY;COUNT=3", None),
        ("FREQ=DAILY;UNTIL=20301231T000000", None),
        ("FREQ=WEEKLY;INTERVAL=2", None),
        ("FREQ=DAILY;INTERVAL=3", None),
        ("FREQ=MONTHLY;INTERVAL=2", None),
        ("FREQ=MINUTELY;INTERVAL=7", None),
        ("FREQ=HOURLY;INTERVAL=5", None),
        ("FREQ=SECONDLY;INTERVAL=30", None),
        ("FREQ=DAILY;BYSECOND=30", None),
        ("FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1", None),
        ("FREQ=YEARLY;BYWEEKNO=20", None),
        ("FREQ=YEARLY;BYYEARDAY=100", None),
        ("FREQ=MONTHLY;BYMONTHDAY=-2", None),
        ("FREQ=MONTHLY;BYDAY=1MO,3MO", None),
        ("FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR", None),
        ("FREQ=DAILY\nEXDATE:20261225T000000", None),
        ("FREQ=DAILY\nRRULE:FREQ=WEEKLY", None),
    ],
)
def test_rrule_translation(rule: str, expression: str | None) -> None:
    result = translate(rrule=rule)
    assert result == (EventBridgeExpression(expression) if expression else None)


def test_rrule_translation_in_a_time_zone_and_with_dtstart() -> None:
    assert translate(rrule="FREQ=DAILY;BYHOUR=9", timezone=NY) == EventBridgeExpression("cron(0 9 * * ? *)", NY)
    assert translate(rrule="FREQ=DAILY;BYHOUR=2;BYMINUTE=30", timezone=NY) is None
    assert translate(rrule="FREQ=MINUTELY;INTERVAL=15", timezone=NY) == EventBridgeExpression("cron(0/15 * * * ? *)")
    started = translate(rrule="DTSTART;TZID=America/New_York:20270101T090000\nRRULE:FREQ=DAILY")
    assert started == EventBridgeExpression("cron(0 9 * * ? *)", NY, start_date=dt.datetime(2027, 1, 1, 14, tzinfo=UTC))


# -- names --


def test_schedule_names_fit_eventbridge_rules() -> None:
    deployment, schedule = uuid.uuid4(), uuid.uuid4()
    name = schedule_name(deployment, schedule)
    assert re.fullmatch(r"[0-9a-zA-Z\-_.]{1,64}", name)
    assert name == f"orch-{deployment.hex[:8]}-{schedule.hex}"
    assert schedule_name(str(deployment), str(schedule)) == name  # stable across types
    assert schedule_name(deployment, uuid.uuid4()) != name
    longest = schedule_name(deployment, schedule, prefix="p" * 22)
    assert len(longest) == 64
    assert re.fullmatch(r"[0-9a-zA-Z\-_.]{1,64}", longest)


@pytest.mark.parametrize("prefix", ["", "p" * 23, "my stack", "orch/prod"])
def test_schedule_name_refuses_bad_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match="schedule name prefix must be 1-22 characters"):
        schedule_name(uuid.uuid4(), uuid.uuid4(), prefix=prefix)


def test_schedule_name_refuses_non_uuids() -> None:
    with pytest.raises(ValueError):
        schedule_name("not-a-uuid", uuid.uuid4())


# -- properties: what EventBridge would do equals what next_times says --

_AWS_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
_AWS_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (1, 7)]


def _aws_field(text: str, index: int) -> set[int] | None:
    """One AWS cron field as a set of values (day of week in cron numbering, 0 = Sunday); None for ``*``/``?``."""
    low, high = _AWS_RANGES[index]
    if text in ("*", "?"):
        return None

    def value(token: str) -> int:
        return _AWS_DAYS[token] if index == 4 and token in _AWS_DAYS else int(token)

    values: set[int] = set()
    for part in text.split(","):
        if "/" in part:
            start, step = part.split("/")
            values.update(range(value(start), high + 1, int(step)))
        elif "-" in part:
            first, last = part.split("-")
            assert value(first) <= value(last), f"AWS ranges do not wrap: {part}"
            values.update(range(value(first), value(last) + 1))
        else:
            values.add(value(part))
    assert all(low <= item <= high for item in values), text
    return {item - 1 for item in values} if index == 4 else values


def _parse_aws(expression: str) -> list[set[int] | None]:
    match = re.fullmatch(r"cron\((\S+) (\S+) (\S+) (\S+) (\S+) \*\)", expression)
    assert match, expression
    fields = list(match.groups())
    assert (fields[2] == "?") != (fields[4] == "?"), f"exactly one day field must be '?': {expression}"
    return [_aws_field(field, index) for index, field in enumerate(fields)]


def _eventbridge_runs(expression: str, zone_name: str, after: dt.datetime, until: dt.datetime) -> list[dt.datetime]:
    """EventBridge's documented behaviour, minute by minute: a wall-clock time in a gap never comes (skipped); a
    repeated wall-clock time fires once (at its first occurrence)."""
    minutes, hours, days, months, weekdays = _parse_aws(expression)
    zone = zoneinfo.ZoneInfo(zone_name)
    runs = []
    instant = after.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    while instant <= until:
        local = instant.astimezone(zone)
        if (
            local.fold == 0
            and (minutes is None or local.minute in minutes)
            and (hours is None or local.hour in hours)
            and (days is None or local.day in days)
            and (months is None or local.month in months)
            and (weekdays is None or local.isoweekday() % 7 in weekdays)
        ):
            runs.append(instant)
        instant += dt.timedelta(minutes=1)
    return runs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(CRONS, st.booleans())
def test_translated_crons_have_the_same_fields(cron: str, day_or: bool) -> None:
    try:
        schedule = CronSchedule(cron=cron, day_or=day_or)
    except ValidationError:
        assume(False)
        raise
    minutes, hours, days, months, weekdays = (set(f) if f is not None else None for f in cron_fields(cron))
    result = to_eventbridge(schedule)
    if days is not None and weekdays is not None:
        assert result is None
        return
    assert result is not None
    assert result.timezone == "UTC"
    assert result.exact
    full = [set(range(low, high + 1)) for low, high in [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]]
    parsed = _parse_aws(result.expression)
    for ours, theirs, every in zip([minutes, hours, days, months, weekdays], parsed, full, strict=True):
        assert (ours or every) == (theirs or every)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(
    CRONS,
    st.sampled_from([NY, "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]),
    st.sampled_from(DST_WEEKS),
)
def test_translated_crons_fire_when_next_times_says_on_dst_days(cron: str, zone: str, after: dt.datetime) -> None:
    try:
        schedule = CronSchedule(cron=cron, timezone=zone)
    except ValidationError:
        assume(False)
        raise
    result = to_eventbridge(schedule)
    assume(result is not None)
    assert result is not None
    event(f"translated, evaluated in {'UTC' if result.timezone == 'UTC' else 'the zone'}")
    until = after + dt.timedelta(days=2)
    assert _eventbridge_runs(result.expression, result.timezone, after, until) == next_times(
        schedule, after, until=until
    )


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 14400, 21600, 28800, 43200, 86400]),
    st.datetimes(min_value=dt.datetime(2019, 1, 1), max_value=dt.datetime(2030, 1, 1)).map(
        lambda d: d.replace(second=0, microsecond=0)
    ),
    st.sampled_from(["UTC", NY, "Asia/Kolkata", "Australia/Lord_Howe"]),
    st.sampled_from(DST_WEEKS),
)
def test_translated_intervals_fire_when_next_times_says(
    seconds: int, anchor: dt.datetime, zone: str, after: dt.datetime
) -> None:
    schedule = SPEC.validate_python({"interval": seconds, "anchor_date": anchor.isoformat(), "timezone": zone})
    result = to_eventbridge(schedule)
    assume(result is not None)
    assert result is not None
    assert result.exact
    until = after + dt.timedelta(days=2)
    assert _eventbridge_runs(result.expression, result.timezone, after, until) == next_times(
        schedule, after, until=until
    )
