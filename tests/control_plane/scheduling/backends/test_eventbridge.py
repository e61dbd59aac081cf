"""The EventBridge Scheduler backend against moto's in-process ``mock_aws`` (EventBridge Scheduler create/get/list
work there; nothing ever fires, so triggers are sent by calling ``handle_schedule_trigger`` as the Lambda would).

The API runs with ``ORCH_SCHEDULE_BACKEND=eventbridge`` on SQLite and PostgreSQL: creating, pausing, resuming,
changing and deleting deployments keeps the schedule group in step; ``reconcile`` repairs a mirror that drifted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.aws]

TARGET = "arn:aws:lambda:us-east-1:123456789012:function:orch-schedule"
ROLE = "arn:aws:iam::123456789012:role/orch-scheduler"
GROUP = "orch-test"


@pytest.fixture(autouse=True)
def eventbridge(monkeypatch: pytest.MonkeyPatch, in_process_aws: None) -> Iterator[Any]:
    """moto's mock_aws (``tests/plugins/aws.py``), and orch configured for the EventBridge backend."""
    import boto3

    from orch.control_plane.scheduling.backends import reset_backends
    from orch.control_plane.settings import clear_settings_cache

    for name, value in {
        "ORCH_SCHEDULE_BACKEND": "eventbridge",
        "ORCH_SCHEDULER_GROUP_NAME": GROUP,
        "ORCH_SCHEDULER_TARGET_ARN": TARGET,
        "ORCH_SCHEDULER_ROLE_ARN": ROLE,
    }.items():
        monkeypatch.setenv(name, value)
    clear_settings_cache()
    reset_backends()
    yield boto3.client("scheduler", region_name="us-east-1")
    reset_backends()


def _schedules(client: Any) -> dict[str, dict[str, Any]]:
    listed = client.list_schedules(GroupName=GROUP)["Schedules"]
    return {s["Name"]: client.get_schedule(Name=s["Name"], GroupName=GROUP) for s in listed}


def _deploy(api: Any, schedules: list[dict[str, Any]], name: str = "nightly") -> dict[str, Any]:
    flow = api.post("/flows/", json={"name": "hello"}).json()
    response = api.post(
        "/deployments/",
        json={"flow_id": flow["id"], "name": name, "schedules": [{"schedule": s} for s in schedules]},
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def test_cron_every_15_minutes_in_new_york_becomes_one_schedule(api: Any, eventbridge: Any) -> None:
    from orch.control_plane.scheduling.eventbridge import schedule_name

    dep = _deploy(api, [{"cron": "*/15 * * * *", "timezone": "America/New_York"}])
    (schedule,) = dep["schedules"]
    found = _schedules(eventbridge)
    name = schedule_name(dep["id"], schedule["id"])
    assert list(found) == [name]
    got = found[name]
    assert got["GroupName"] == GROUP
    assert got["ScheduleExpression"] == "cron(0/15 * * * ? *)"
    # An every-15-minutes cron is pure elapsed time: the scheduling package states it in UTC, where EventBridge
    # fires at the same instants as orch on DST days too. In America/New_York EventBridge would run the repeated
    # 01:00-01:59 of 2026-11-01 once (96 runs, not 100).
    assert got["ScheduleExpressionTimezone"] == "UTC"
    assert got["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert got["State"] == "ENABLED"
    assert got["Target"]["Arn"] == TARGET
    assert got["Target"]["RoleArn"] == ROLE
    assert json.loads(got["Target"]["Input"]) == {
        "deployment_id": dep["id"],
        "schedule_id": schedule["id"],
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }


@pytest.mark.parametrize(("day", "expected"), [("2026-03-08", 92), ("2026-11-01", 100)])
def test_the_mirrored_expression_fires_at_the_local_times_on_dst_days(day: str, expected: int) -> None:
    """What EventBridge is given, read back as a schedule, fires as often as the local backend on DST days."""
    import datetime as dt
    import zoneinfo

    from orch.control_plane.scheduling.eventbridge import to_eventbridge
    from orch.control_plane.scheduling.timetable import next_times
    from orch.control_plane.schemas.schedules import CronSchedule

    local = CronSchedule(cron="*/15 * * * *", timezone="America/New_York")
    mirrored = to_eventbridge(local)
    assert mirrored is not None
    assert mirrored.expression == "cron(0/15 * * * ? *)"
    aws_fields = mirrored.expression[len("cron(") : -1].split()[:2]  # minute hour: the rest is "* * ? *"
    as_cron = CronSchedule(
        cron=" ".join([aws_fields[0].replace("0/", "*/"), aws_fields[1], "*", "*", "*"]), timezone=mirrored.timezone
    )
    zone = zoneinfo.ZoneInfo("America/New_York")
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(0), tzinfo=zone)
    end = start.replace(tzinfo=None) + dt.timedelta(days=1)
    end_utc = end.replace(tzinfo=zone).astimezone(dt.UTC)
    before = start.astimezone(dt.UTC) - dt.timedelta(seconds=1)
    aws_times = [t for t in next_times(as_cron, before, until=end_utc) if t < end_utc]
    local_times = [t for t in next_times(local, before, until=end_utc) if t < end_utc]
    assert len(local_times) == expected
    assert aws_times == local_times


def test_fixed_time_cron_keeps_the_deployment_time_zone(api: Any, eventbridge: Any) -> None:
    _deploy(api, [{"cron": "0 9 * * 1-5", "timezone": "America/New_York"}])
    (got,) = _schedules(eventbridge).values()
    assert got["ScheduleExpression"] == "cron(0 9 ? * MON-FRI *)"
    assert got["ScheduleExpressionTimezone"] == "America/New_York"


def test_pause_resume_and_inactive_toggle_the_state(api: Any, eventbridge: Any) -> None:
    dep = _deploy(api, [{"cron": "0 9 * * 1-5", "timezone": "Europe/Paris"}])
    (schedule,) = dep["schedules"]

    def state() -> str:
        (only,) = _schedules(eventbridge).values()
        return str(only["State"])

    assert state() == "ENABLED"
    assert api.post(f"/deployments/{dep['id']}/pause").status_code == 204
    assert state() == "DISABLED"
    assert api.post(f"/deployments/{dep['id']}/resume").status_code == 204
    assert state() == "ENABLED"
    api.patch(f"/deployments/{dep['id']}/schedules/{schedule['id']}", json={"active": False})
    assert state() == "DISABLED"
    api.patch(
        f"/deployments/{dep['id']}/schedules/{schedule['id']}",
        json={"active": True, "schedule": {"cron": "30 8 * * *"}},
    )
    (only,) = _schedules(eventbridge).values()
    assert only["State"] == "ENABLED"
    assert only["ScheduleExpression"] == "cron(30 8 * * ? *)"
    assert only["ScheduleExpressionTimezone"] == "UTC"


def test_deleting_leaves_no_orphan(api: Any, eventbridge: Any) -> None:
    dep = _deploy(api, [{"cron": "0 * * * *"}, {"cron": "30 2 * * *", "timezone": "Asia/Tokyo"}])
    other = _deploy(api, [{"cron": "0 6 * * *"}], name="other")
    assert len(_schedules(eventbridge)) == 3
    (first, _second) = dep["schedules"]
    assert api.delete(f"/deployments/{dep['id']}/schedules/{first['id']}").status_code == 204
    assert len(_schedules(eventbridge)) == 2
    assert api.delete(f"/deployments/{dep['id']}").status_code == 204
    remaining = _schedules(eventbridge)
    assert len(remaining) == 1
    (left,) = remaining.values()
    assert json.loads(left["Target"]["Input"])["deployment_id"] == other["id"]
    # Redeploying with different schedules replaces the mirror too.
    _deploy(api, [], name="other")
    assert _schedules(eventbridge) == {}


def test_schedules_eventbridge_cannot_express_stay_local(api: Any, eventbridge: Any, database: Any) -> None:
    import datetime as dt

    from orch.control_plane.db import orm
    from orch.control_plane.services import scheduler
    from orch.control_plane.settings import get_settings

    # Every 3 days is not a cron: it falls back to the services tick.
    dep = _deploy(api, [{"rrule": "FREQ=DAILY;INTERVAL=3;BYHOUR=9"}, {"cron": "0 9 * * *"}])
    assert len(_schedules(eventbridge)) == 1
    with database.session(write=False) as session:
        refs = {str(s.id): s.backend_ref for s in session.query(orm.DeploymentSchedule).all()}
    rrule_id, cron_id = (s["id"] for s in dep["schedules"])
    assert refs[rrule_id] == "local"
    assert refs[cron_id] is not None
    assert refs[cron_id].startswith("orch-")
    # The tick creates runs for the local schedule only: the cron's runs come from EventBridge triggers.
    now = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    created = scheduler.tick(database, get_settings().model_copy(update={"scheduler_horizon": 86400 * 6}), now=now)
    assert created == 2


def test_reconcile_deletes_orphans_and_recreates_missing(api: Any, eventbridge: Any, database: Any) -> None:
    import uuid

    from orch.control_plane.scheduling.backends import get_backend
    from orch.control_plane.scheduling.eventbridge import schedule_name
    from orch.control_plane.settings import get_settings

    dep = _deploy(api, [{"cron": "0 * * * *"}])
    (schedule,) = dep["schedules"]
    name = schedule_name(dep["id"], schedule["id"])
    orphan = schedule_name(uuid.uuid4(), uuid.uuid4())
    eventbridge.create_schedule(
        Name=orphan,
        GroupName=GROUP,
        ScheduleExpression="rate(1 hour)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET, "RoleArn": ROLE},
    )
    eventbridge.delete_schedule(Name=name, GroupName=GROUP)
    report = get_backend(get_settings()).reconcile(database)
    assert (report.created, report.deleted) == (1, 1)
    assert list(_schedules(eventbridge)) == [name]
    again = get_backend(get_settings()).reconcile(database)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_a_failing_backend_answers_502_and_reconcile_repairs(
    api: Any, eventbridge: Any, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.control_plane.scheduling.backends import get_backend
    from orch.control_plane.settings import get_settings

    backend = get_backend(get_settings())
    target = backend.target_arn  # type: ignore[attr-defined]
    monkeypatch.setattr(backend, "target_arn", None)
    flow = api.post("/flows/", json={"name": "hello"}).json()
    response = api.post(
        "/deployments/", json={"flow_id": flow["id"], "name": "x", "schedules": [{"schedule": {"cron": "0 * * * *"}}]}
    )
    assert response.status_code == 502
    assert "The change was saved" in response.json()["detail"]
    assert "ORCH_SCHEDULER_TARGET_ARN" in response.json()["detail"]
    assert api.get("/deployments/name/hello/x").status_code == 200
    assert _schedules(eventbridge) == {}
    monkeypatch.setattr(backend, "target_arn", target)
    assert backend.reconcile(database).created == 1
    assert len(_schedules(eventbridge)) == 1


def test_services_tick_reconciles_on_aws(api: Any, eventbridge: Any, database: Any) -> None:
    from orch.control_plane.services import scheduler
    from orch.control_plane.settings import get_settings

    dep = _deploy(api, [{"cron": "0 * * * *"}])
    (name,) = _schedules(eventbridge)
    eventbridge.delete_schedule(Name=name, GroupName=GROUP)
    scheduler.tick(database, get_settings())
    assert list(_schedules(eventbridge)) == [name]
    assert dep["id"] in _schedules(eventbridge)[name]["Target"]["Input"]


def test_reconcile_during_a_deploy_keeps_the_fresh_schedule(
    api: Any, eventbridge: Any, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The services tick's reconcile and a deploy race: the deploy commits and mirrors its schedule while the
    reconcile is under way. The reconcile must not take the fresh schedule for an orphan (CI once saw it deleted)."""
    from orch.control_plane.scheduling.backends import get_backend
    from orch.control_plane.settings import get_settings

    backend = get_backend(get_settings())
    listing = backend._existing  # type: ignore[attr-defined]
    deployed: list[dict[str, Any]] = []
    started: list[bool] = []

    def deploy_then_list(prefix: str) -> dict[str, str]:
        if not started:  # once: the deploy's own sync lists too
            started.append(True)
            deployed.append(_deploy(api, [{"cron": "0 * * * *"}]))
        return dict(listing(prefix))

    monkeypatch.setattr(backend, "_existing", deploy_then_list)
    report = backend.reconcile(database)
    assert report.deleted == 0
    (name,) = _schedules(eventbridge)
    assert deployed[0]["id"] in _schedules(eventbridge)[name]["Target"]["Input"]
