"""The schedule schemas: the dicts users write in orch.yaml parse, round-trip, and fail with clear messages."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import zoneinfo
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from orch.control_plane.schemas.schedules import (
    CronSchedule,
    DeploymentSchedule,
    DeploymentScheduleCreate,
    IntervalSchedule,
    RRuleSchedule,
    ScheduleSpec,
    cron_fields,
)

pytestmark = pytest.mark.unit

SPEC: TypeAdapter[Any] = TypeAdapter(ScheduleSpec)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        ({"cron": "*/15 * * * *", "timezone": "America/New_York"}, CronSchedule),
        ({"cron": "0 9 * * 1-5"}, CronSchedule),
        ({"cron": "@daily"}, CronSchedule),
        ({"cron": "0 0 1 * 1", "day_or": False}, CronSchedule),
        ({"interval": 3600}, IntervalSchedule),
        ({"interval": 0.5}, IntervalSchedule),
        ({"interval": 86400, "anchor_date": "2026-01-01T09:00:00", "timezone": "Europe/Paris"}, IntervalSchedule),
        ({"rrule": "FREQ=WEEKLY;BYDAY=MO"}, RRuleSchedule),
        ({"rrule": "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;COUNT=3"}, RRuleSchedule),
        ({"rrule": "FREQ=DAILY;BYHOUR=9", "timezone": "Asia/Tokyo"}, RRuleSchedule),
    ],
)
def test_user_dicts_parse_and_round_trip(data: dict[str, Any], kind: type) -> None:
    spec = SPEC.validate_python(data)
    assert isinstance(spec, kind)
    # The YAML shape comes back unchanged, and a full dump parses to the same schedule (API round trip).
    dumped = SPEC.dump_python(spec, mode="json", exclude_defaults=True)
    expected = {key: value for key, value in data.items() if key != "day_or" or value is not True}
    if "anchor_date" in expected:
        expected["anchor_date"] = dt.datetime.fromisoformat(expected["anchor_date"]).isoformat()
    assert dumped == expected
    assert SPEC.validate_python(SPEC.dump_python(spec, mode="json")) == spec
    assert SPEC.validate_json(SPEC.dump_json(spec)) == spec


def test_interval_serialises_whole_seconds_as_int() -> None:
    assert SPEC.dump_python(SPEC.validate_python({"interval": 3600}), mode="json")["interval"] == 3600
    assert isinstance(SPEC.dump_python(SPEC.validate_python({"interval": 3600.0}), mode="json")["interval"], int)
    assert SPEC.dump_python(SPEC.validate_python({"interval": 1.5}), mode="json")["interval"] == 1.5


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(dt.timedelta(hours=1), 3600), ("PT15M", 900), ("P1D", 86400), ("90", 90), (7.5, 7.5)],
)
def test_interval_accepts_timedeltas_and_durations(value: Any, seconds: float) -> None:
    spec = IntervalSchedule(interval=value)
    assert spec.interval == seconds
    assert spec.delta == dt.timedelta(seconds=seconds)


def test_rrule_dtstart_zone_becomes_the_timezone() -> None:
    spec = SPEC.validate_python({"rrule": "DTSTART;TZID=Europe/Paris:20260101T090000\nRRULE:FREQ=DAILY"})
    assert spec.timezone == "Europe/Paris"
    utc = SPEC.validate_python({"rrule": "DTSTART:20260101T090000Z\nRRULE:FREQ=DAILY"})
    assert utc.timezone == "UTC"
    same = SPEC.validate_python(
        {"rrule": "DTSTART;TZID=Europe/Paris:20260101T090000\nRRULE:FREQ=DAILY", "timezone": "Europe/Paris"}
    )
    assert same.timezone == "Europe/Paris"


def test_prefect_shapes_are_accepted() -> None:
    # Prefect clients send null time zones, and intervals whose anchor names the zone.
    assert SPEC.validate_python({"cron": "0 9 * * *", "timezone": None, "day_or": True}).timezone == "UTC"
    assert SPEC.validate_python({"rrule": "FREQ=DAILY", "timezone": None}).timezone == "UTC"
    paris = dt.datetime(2026, 1, 1, 9, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    interval = SPEC.validate_python({"interval": 86400.0, "anchor_date": paris, "timezone": None})
    assert interval.timezone == "Europe/Paris"
    assert SPEC.validate_python({"interval": 60, "anchor_date": paris}).timezone == "Europe/Paris"
    assert SPEC.validate_python({"interval": 60, "anchor_date": paris, "timezone": "UTC"}).timezone == "UTC"
    fixed_offset = SPEC.validate_python({"interval": 60, "anchor_date": "2026-01-01T09:00:00+01:00"})
    assert fixed_offset.timezone == "UTC"


def test_deployment_schedule_schemas() -> None:
    create = DeploymentScheduleCreate.model_validate({"schedule": {"cron": "0 9 * * *"}})
    assert create.active is True
    assert isinstance(create.schedule, CronSchedule)
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    stored = DeploymentSchedule.model_validate(
        {
            "id": str(uuid.uuid4()),
            "deployment_id": str(uuid.uuid4()),
            "schedule": {"interval": 60},
            "active": False,
            "created": now.isoformat(),
            "updated": now.isoformat(),
            "a_field_from_a_newer_server": 1,
        }
    )
    assert isinstance(stored.schedule, IntervalSchedule)
    assert stored.active is False
    assert DeploymentSchedule.model_validate(stored.model_dump(mode="json")) == stored


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cron": "0 0 * * * *"}, "cron must have 5 fields (minute hour day month weekday), got 6"),
        ({"cron": "0 0 *"}, "cron must have 5 fields (minute hour day month weekday), got 3"),
        ({"cron": ""}, "cron must have 5 fields (minute hour day month weekday), got 0"),
        ({"cron": "61 * * * *"}, "cron field 'minute' ('61') is invalid: allowed values are 0-59"),
        ({"cron": "0 24 * * *"}, "cron field 'hour' ('24') is invalid: allowed values are 0-23"),
        ({"cron": "0 0 0 * *"}, "cron field 'day of month' ('0') is invalid"),
        ({"cron": "0 0 * 13 *"}, "cron field 'month' ('13') is invalid"),
        ({"cron": "0 0 * * 8"}, "cron field 'day of week' ('8') is invalid"),
        ({"cron": "0 0 * * funday"}, "cron field 'day of week' ('funday') is invalid"),
        ({"cron": "*/0 * * * *"}, "cron field 'minute' ('*/0') is invalid"),
        ({"cron": "0 0 L * *"}, "cron field 'day of month' ('L') is not valid 5-field cron"),
        ({"cron": "0 0 15W * *"}, "cron field 'day of month' ('15W') is not valid 5-field cron"),
        ({"cron": "0 0 * * MON#1"}, "cron field 'day of week' ('MON#1') is not valid 5-field cron"),
        ({"cron": "0 0 * * 5L"}, "cron field 'day of week' ('5L') is not valid 5-field cron"),
        ({"cron": "0 0 ? * MON"}, "cron field 'day of month' ('?') is not valid 5-field cron"),
        ({"cron": "H * * * *"}, "cron field 'minute' ('H') is not valid 5-field cron"),
        ({"cron": "0 0 30 2 *"}, "cron '0 0 30 2 *' never runs: day 30 does not occur in the months it names"),
        ({"cron": "0 0 31 4,6 *"}, "never runs"),
        ({"cron": "0 0 30 2 1", "day_or": False}, "never runs"),
        ({"cron": "*/15 * * * *", "timezone": "Mars/Base"}, "Unknown time zone 'Mars/Base'"),
        ({"interval": 60, "timezone": "../../etc/passwd"}, "Unknown time zone '../../etc/passwd'"),
        ({"rrule": "FREQ=DAILY", "timezone": ""}, "Unknown time zone ''"),
        ({"interval": 0}, "interval must be a positive number of seconds, got 0"),
        ({"interval": -5}, "interval must be a positive number of seconds, got -5"),
        ({"interval": "soon"}, "interval must be a number of seconds or an ISO 8601 duration such as 'PT1H'"),
        ({"interval": float("nan")}, "interval must be a positive number of seconds, got nan"),
        ({"rrule": "FREQ=SOMETIMES"}, "invalid rrule 'FREQ=SOMETIMES'"),
        ({"rrule": "BYDAY=MO"}, "invalid rrule 'BYDAY=MO'"),
        ({"rrule": ""}, "rrule must not be empty"),
        ({"rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"}, "never runs: BYMONTHDAY does not occur"),
        ({"rrule": "FREQ=MINUTELY;BYMONTH=4;BYMONTHDAY=31"}, "never runs"),
        ({"rrule": "FREQ=DAILY;COUNT=0"}, "never runs: COUNT=0"),
        ({"rrule": "DTSTART:2026\nRRULE:FREQ=DAILY"}, "cannot read 'DTSTART:2026'"),
        (
            {"rrule": "DTSTART;TZID=Europe/Paris:20260101T090000\nRRULE:FREQ=DAILY", "timezone": "UTC"},
            "rrule DTSTART is in 'Europe/Paris' but timezone is 'UTC'",
        ),
        ({"rrule": "DTSTART;TZID=Mars/Base:20260101T090000\nRRULE:FREQ=DAILY"}, "Unknown time zone 'Mars/Base'"),
        ({}, "a schedule needs one of the keys 'cron', 'interval' or 'rrule'"),
        ({"timezone": "UTC"}, "a schedule needs one of the keys 'cron', 'interval' or 'rrule'"),
        ({"cron": "0 9 * * *", "tz": "UTC"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_schedules_are_refused_with_a_clear_message(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        SPEC.validate_python(data)


def test_cron_fields_expand_names_sundays_and_steps() -> None:
    assert cron_fields("*/20 9-11 * jan,jul sun-sat") == ([0, 20, 40], [9, 10, 11], None, [1, 7], None)
    assert cron_fields("0 0 * * 7") == ([0], [0], None, None, [0])
    assert cron_fields("0 0 * * 5-0")[4] == [0, 5, 6]
    assert cron_fields("@hourly") == ([0], None, None, None, None)
    assert cron_fields("  0   0 1 * *  ") == ([0], [0], [1], None, None)
