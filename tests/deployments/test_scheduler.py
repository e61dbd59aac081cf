"""The local scheduler with a controllable clock (``now`` passed to ``tick``), on SQLite and PostgreSQL: DST days,
the horizon and ``materialized_until``, paused deployments and inactive schedules, idempotent triggers (also two
threads at once), and ``max_lateness``."""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from typing import Any

import pytest

from tests.deployments.helpers import make_deployment, runs_of

pytestmark = pytest.mark.integration

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = dt.UTC


def _settings(**values: Any) -> Any:
    from orch.control_plane.settings import ServerSettings

    return ServerSettings(**values)


def _tick_through(db: Any, start: dt.datetime, end: dt.datetime, step: dt.timedelta, settings: Any) -> int:
    from orch.control_plane.services import scheduler

    created = 0
    now = start
    while now <= end:
        created += scheduler.tick(db, settings, now=now)
        now += step
    return created


@pytest.mark.parametrize(
    ("day", "expected"),
    [(dt.date(2026, 3, 8), 92), (dt.date(2026, 11, 1), 100), (dt.date(2026, 6, 1), 96)],
)
def test_a_day_of_every_15_minutes_in_new_york(database: Any, day: dt.date, expected: int) -> None:
    dep = make_deployment(database, schedules=[{"cron": "*/15 * * * *", "timezone": "America/New_York"}])
    midnight = dt.datetime.combine(day, dt.time(0), tzinfo=NY).astimezone(UTC)
    next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=NY).astimezone(UTC)
    # Tick every 20 minutes of real time from before the day to its end; the horizon is one hour.
    _tick_through(
        database,
        midnight - dt.timedelta(minutes=30),
        next_midnight,
        dt.timedelta(minutes=20),
        _settings(scheduler_horizon=3600),
    )
    times = [r.expected_start_time for r in runs_of(database, dep)]
    in_day = [t for t in times if midnight <= t < next_midnight]
    assert len(in_day) == expected
    # One run every 15 real minutes: none missing in the gap, none doubled in the repeated hour.
    assert in_day == [midnight + dt.timedelta(minutes=15 * i) for i in range(expected)]
    assert len(set(times)) == len(times)
    # The first run of the day is at local midnight, the last at 23:45 local.
    assert in_day[0].astimezone(NY).time() == dt.time(0, 0)
    assert in_day[-1].astimezone(NY).time() == dt.time(23, 45)


def test_horizon_materialized_until_and_run_fields(database: Any) -> None:
    from orch.control_plane.db import orm
    from orch.control_plane.services import scheduler

    dep = make_deployment(
        database,
        schedules=[{"cron": "0 * * * *"}],
        parameters={"who": "x"},
        tags=["t"],
        work_queue_name="q",
        retries=3,
        retry_delay=10,
    )
    now = dt.datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    settings = _settings(scheduler_horizon=3 * 3600)
    assert scheduler.tick(database, settings, now=now) == 3  # 11:00, 12:00, 13:00
    assert scheduler.tick(database, settings, now=now) == 0  # nothing new: materialized up to the horizon
    assert scheduler.tick(database, settings, now=now + dt.timedelta(hours=1)) == 1  # 14:00
    runs = runs_of(database, dep)
    assert [r.expected_start_time.hour for r in runs] == [11, 12, 13, 14]
    run = runs[0]
    assert run.state_type == "SCHEDULED"
    assert run.state_name == "Scheduled"
    assert run.parameters == {"who": "x"}
    assert run.tags == ["t", "auto-scheduled"]
    assert run.work_queue_name == "q"
    assert run.empirical_policy == {"retries": 3, "retry_delay": 10.0}
    assert run.idempotency_key == f"scheduled:{dep}:2026-05-01T11:00:00+00:00"
    with database.session(write=False) as session:
        (schedule,) = session.query(orm.DeploymentSchedule).all()
        assert schedule.materialized_until == now + dt.timedelta(hours=4)


def test_max_runs_per_tick_then_catch_up(database: Any) -> None:
    from orch.control_plane.services import scheduler

    dep = make_deployment(database, schedules=[{"interval": 60}])
    now = dt.datetime(2026, 5, 1, 10, 0, 30, tzinfo=UTC)
    settings = _settings(scheduler_horizon=600, scheduler_max_runs=4)
    assert scheduler.tick(database, settings, now=now) == 4
    assert scheduler.tick(database, settings, now=now) == 4
    assert scheduler.tick(database, settings, now=now) == 2  # 10 minutes of the horizon in all
    times = [r.expected_start_time for r in runs_of(database, dep)]
    assert times == [dt.datetime(2026, 5, 1, 10, i, tzinfo=UTC) for i in range(1, 11)]


def test_paused_deployments_and_inactive_schedules_are_skipped(database: Any) -> None:
    from orch.control_plane.models import deployments
    from orch.control_plane.services import scheduler

    paused = make_deployment(database, name="paused", schedules=[{"cron": "0 * * * *"}], paused=True)
    inactive = make_deployment(database, name="inactive")
    with database.session() as session:
        from orch.control_plane.schemas.schedules import DeploymentScheduleCreate

        deployments.create_schedules(
            session,
            inactive,
            [DeploymentScheduleCreate.model_validate({"schedule": {"cron": "0 * * * *"}, "active": False})],
        )
    now = dt.datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert scheduler.tick(database, _settings(), now=now) == 0
    assert runs_of(database, paused) == []
    assert runs_of(database, inactive) == []
    # Resuming schedules again; pausing deletes the runs created ahead that have not started.
    with database.session() as session:
        deployments.set_paused(session, paused, False, now=now)
    assert scheduler.tick(database, _settings(scheduler_horizon=7200), now=now) == 2
    with database.session() as session:
        deployments.set_paused(session, paused, True, now=now)
    assert runs_of(database, paused) == []


def test_duplicate_triggers_create_one_run(database: Any) -> None:
    from orch.control_plane.services.scheduler import handle_schedule_trigger

    dep = make_deployment(database, schedules=[{"cron": "0 * * * *"}])
    with database.session(write=False) as session:
        from orch.control_plane.models import deployments

        (schedule,) = deployments.schedules_of(session, dep)
    first = handle_schedule_trigger(database, dep, schedule.id, "2026-05-01T11:00:00Z")
    again = handle_schedule_trigger(database, str(dep), str(schedule.id), "2026-05-01T11:00:00Z")
    assert first is not None
    assert again == first
    # The local tick creating the same instant is a no-op too.
    from orch.control_plane.services import scheduler

    scheduler.tick(database, _settings(), now=dt.datetime(2026, 5, 1, 10, 30, tzinfo=UTC))
    assert [r.id for r in runs_of(database, dep)] == [first]


def test_two_threads_trigger_the_same_time_at_once(database: Any) -> None:
    from orch.control_plane.models import deployments
    from orch.control_plane.services.scheduler import handle_schedule_trigger

    dep = make_deployment(database, schedules=[{"cron": "0 * * * *"}])
    with database.session(write=False) as session:
        (schedule,) = deployments.schedules_of(session, dep)
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def trigger() -> None:
        try:
            barrier.wait()
            results.append(handle_schedule_trigger(database, dep, schedule.id, "2026-05-01T12:00:00Z"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=trigger) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(results)) == 1
    assert results[0] is not None
    assert len(runs_of(database, dep)) == 1


def test_triggers_for_paused_inactive_or_deleted_schedules_are_ignored(database: Any) -> None:
    import uuid

    from orch.control_plane.models import deployments
    from orch.control_plane.schemas.schedules import DeploymentScheduleUpdate
    from orch.control_plane.services.scheduler import handle_schedule_trigger

    dep = make_deployment(database, schedules=[{"cron": "0 * * * *"}])
    with database.session(write=False) as session:
        (schedule,) = deployments.schedules_of(session, dep)
    with database.session() as session:
        deployments.set_paused(session, dep, True)
    assert handle_schedule_trigger(database, dep, schedule.id, "2026-05-01T12:00:00Z") is None
    with database.session() as session:
        deployments.set_paused(session, dep, False)
        deployments.update_schedule(session, dep, schedule.id, DeploymentScheduleUpdate(active=False))
    assert handle_schedule_trigger(database, dep, schedule.id, "2026-05-01T12:00:00Z") is None
    assert handle_schedule_trigger(database, dep, uuid.uuid4(), "2026-05-01T12:00:00Z") is None
    assert handle_schedule_trigger(database, uuid.uuid4(), None, "2026-05-01T12:00:00Z") is None
    assert runs_of(database, dep) == []
    # Without a schedule id only the deployment's pause counts.
    run_id = handle_schedule_trigger(database, dep, None, "2026-05-01T12:00:00+00:00")
    assert [r.id for r in runs_of(database, dep)] == [run_id]


def test_max_lateness_skips_runs_that_are_too_late(database: Any) -> None:
    from orch.control_plane.services import late_runs, scheduler

    strict = make_deployment(database, name="strict", schedules=[{"cron": "0 * * * *"}], max_lateness=120)
    relaxed = make_deployment(database, name="relaxed", schedules=[{"cron": "0 * * * *"}])
    settings = _settings(scheduler_horizon=3600, late_runs_threshold=15)
    start = dt.datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    scheduler.tick(database, settings, now=start)
    eleven = dt.datetime(2026, 5, 1, 11, 0, tzinfo=UTC)
    late_runs.tick(database, settings, now=eleven + dt.timedelta(seconds=60))
    assert [(r.state_type, r.state_name) for r in runs_of(database, strict)] == [("SCHEDULED", "Late")]
    late_runs.tick(database, settings, now=eleven + dt.timedelta(seconds=121))
    (skipped,) = runs_of(database, strict)
    assert (skipped.state_type, skipped.state_name) == ("CANCELLED", "Skipped")
    assert "max_lateness of 120s" in skipped.state_message
    (late,) = runs_of(database, relaxed)
    assert (late.state_type, late.state_name) == ("SCHEDULED", "Late")
