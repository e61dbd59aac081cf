"""Deployments and their schedules: upsert, read, filter, update, delete, pause; runs of a deployment.

Two functions create runs of a deployment, and both go through ``models.flow_runs.create`` so the orchestration
rules apply to the first state:

* :func:`create_flow_run` — a run asked for by a person or a program (``orch deployment run``): parameters are the
  deployment's defaults merged with the given ones, checked against the deployment's parameter schema;
* :func:`create_scheduled_run` — the run for ``(deployment, scheduled time)``, which is where every scheduler
  backend ends (the local services tick and the EventBridge trigger Lambda). Its idempotency key
  ``scheduled:{deployment_id}:{UTC ISO time}`` is unique per flow in the database, so a trigger delivered twice
  (EventBridge is at-least-once, or the tick and a trigger overlap) creates one run, under concurrency too.

Runs the scheduler created ahead of time are deleted again (:func:`delete_future_scheduled_runs`) when their
schedules change or the deployment is paused, as Prefect does, so that the UI never shows runs that will not
happen; ``materialized_until`` is reset so the next tick creates the right ones.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from orch.control_plane.db import orm
from orch.control_plane.models import flow_runs as flow_runs_model
from orch.control_plane.models import flows as flows_model
from orch.control_plane.models._common import tags_contain_all
from orch.control_plane.scheduling.timetable import next_times
from orch.control_plane.schemas import deployments as schemas
from orch.control_plane.schemas.base import now_utc
from orch.control_plane.schemas.flow_runs import FlowRunCreate, RunPolicy
from orch.control_plane.schemas.schedules import (
    DeploymentSchedule,
    DeploymentScheduleCreate,
    DeploymentScheduleUpdate,
    ScheduleSpec,
)
from orch.control_plane.schemas.states import StateCreate, StateDetails, StateType
from orch.exceptions import InvalidInput, ObjectNotFound

SCHEDULED_KEY_PREFIX = "scheduled"
AUTO_SCHEDULED_TAG = "auto-scheduled"
_SPEC_ADAPTER: Any = None


def _spec(value: dict[str, Any]) -> ScheduleSpec:
    """A stored schedule dict as its spec class (validated once more: stored data is trusted but typed)."""
    global _SPEC_ADAPTER
    if _SPEC_ADAPTER is None:
        from pydantic import TypeAdapter

        _SPEC_ADAPTER = TypeAdapter(ScheduleSpec)
    spec: ScheduleSpec = _SPEC_ADAPTER.validate_python(value)
    return spec


def spec_of(row: orm.DeploymentSchedule) -> ScheduleSpec:
    return _spec(row.schedule)


def _dump_spec(spec: ScheduleSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude_defaults=True) | {"timezone": spec.timezone}


# -- reading -------------------------------------------------------------------------------------------------------


def read(session: Session, deployment_id: uuid.UUID) -> orm.Deployment | None:
    return session.get(orm.Deployment, deployment_id)


def read_by_name(session: Session, flow_name: str, name: str) -> orm.Deployment | None:
    query = (
        sa.select(orm.Deployment)
        .join(orm.Flow, orm.Flow.id == orm.Deployment.flow_id)
        .where(orm.Flow.name == flow_name, orm.Deployment.name == name)
    )
    return session.scalars(query).first()


def schedules_of(session: Session, deployment_id: uuid.UUID) -> list[orm.DeploymentSchedule]:
    query = (
        sa.select(orm.DeploymentSchedule)
        .where(orm.DeploymentSchedule.deployment_id == deployment_id)
        .order_by(orm.DeploymentSchedule.created, orm.DeploymentSchedule.id)
    )
    return list(session.scalars(query))


def schedule_to_schema(row: orm.DeploymentSchedule) -> DeploymentSchedule:
    return DeploymentSchedule(
        id=row.id,
        created=row.created,
        updated=row.updated,
        deployment_id=row.deployment_id,
        schedule=spec_of(row),
        active=row.active,
    )


def to_schema(session: Session, row: orm.Deployment) -> schemas.Deployment:
    flow = session.get(orm.Flow, row.flow_id)
    out = schemas.Deployment.model_validate(row)
    out.flow_name = flow.name if flow else None
    out.schedules = [schedule_to_schema(s) for s in schedules_of(session, row.id)]
    return out


def filter_(session: Session, flt: schemas.DeploymentFilter) -> list[orm.Deployment]:
    query = sa.select(orm.Deployment).join(orm.Flow, orm.Flow.id == orm.Deployment.flow_id)
    d = flt.deployments
    if d is not None:
        if d.id and d.id.any_ is not None:
            query = query.where(orm.Deployment.id.in_(d.id.any_))
        if d.name and d.name.any_ is not None:
            query = query.where(orm.Deployment.name.in_(d.name.any_))
        if d.name and d.name.like_:
            query = query.where(orm.Deployment.name.ilike(f"%{d.name.like_}%"))
        if d.work_queue_name and d.work_queue_name.any_ is not None:
            query = query.where(orm.Deployment.work_queue_name.in_(d.work_queue_name.any_))
        if d.tags and d.tags.all_:
            query = query.where(tags_contain_all(session, orm.Deployment.tags, d.tags.all_))
        if d.paused is not None:
            query = query.where(orm.Deployment.paused.is_(d.paused))
    if flt.flows is not None:
        flow_ids = flows_model.apply_filter(session, sa.select(orm.Flow.id), flt.flows)
        query = query.where(orm.Deployment.flow_id.in_(flow_ids))
    query = query.order_by(orm.Flow.name, orm.Deployment.name).limit(flt.limit).offset(flt.offset)
    return list(session.scalars(query))


# -- writing -------------------------------------------------------------------------------------------------------

_PLAIN_FIELDS = (
    "description",
    "version",
    "entrypoint",
    "path",
    "parameter_schema",
    "enforce_parameter_schema",
    "work_queue_name",
    "infra_type",
    "infra_overrides",
    "max_lateness",
    "retries",
    "retry_delay",
)


def _apply(row: orm.Deployment, data: schemas.DeploymentCreate | schemas.DeploymentUpdate, *, replace: bool) -> None:
    """Copy fields onto ``row``: the fields set in ``data`` (PATCH), or every field (upsert replaces the object)."""
    given = data.model_fields_set
    for field in _PLAIN_FIELDS:
        if replace or field in given:
            value = getattr(data, field)
            if value is None and field in ("parameter_schema", "infra_overrides"):
                value = {}
            if value is None and field == "enforce_parameter_schema":
                value = True
            if value is None and field == "infra_type":
                value = "process"
            setattr(row, field, value)
    if replace or "tags" in given:
        row.tags = list(data.tags or [])
    if replace or "parameters" in given:
        row.parameters = dict(data.parameters or {})
    if replace or "code_bundle" in given:
        row.code_bundle = data.code_bundle.model_dump(exclude_none=True) if data.code_bundle else None
    # An upsert that does not mention `paused` keeps the current value: re-deploying must not resume a deployment
    # someone paused on purpose.
    if "paused" in given and data.paused is not None:
        row.paused = data.paused


def upsert(
    session: Session, data: schemas.DeploymentCreate, *, now: dt.datetime | None = None
) -> tuple[orm.Deployment, bool]:
    """Create the deployment, or replace the one with the same flow and name. Returns ``(row, created)``."""
    if flows_model.read(session, data.flow_id) is None:
        raise ObjectNotFound(f"Flow {data.flow_id} does not exist.")
    row = session.scalars(
        sa.select(orm.Deployment).where(orm.Deployment.flow_id == data.flow_id, orm.Deployment.name == data.name)
    ).first()
    created = row is None
    if row is None:
        row = orm.Deployment(flow_id=data.flow_id, name=data.name, paused=bool(data.paused))
        session.add(row)
    _apply(row, data, replace=True)
    _check_defaults(row)
    session.flush()
    if data.schedules is not None:
        replace_schedules(session, row, data.schedules, now=now)
    return row, created


def update(
    session: Session, deployment_id: uuid.UUID, data: schemas.DeploymentUpdate, *, now: dt.datetime | None = None
) -> orm.Deployment | None:
    row = read(session, deployment_id)
    if row is None:
        return None
    was_paused = row.paused
    _apply(row, data, replace=False)
    _check_defaults(row)
    session.flush()
    if data.schedules is not None:
        replace_schedules(session, row, data.schedules, now=now)
    if row.paused != was_paused:
        _paused_changed(session, row, now=now)
    return row


def _check_defaults(row: orm.Deployment) -> None:
    """Refuse default parameters the flow does not take: the mistake would otherwise surface at run time."""
    if row.enforce_parameter_schema and row.parameter_schema:
        validate_against_schema(row.parameter_schema, row.parameters, partial=True, what="default parameter")


def delete(session: Session, deployment_id: uuid.UUID) -> bool:
    """Delete the deployment, its schedules (database cascade) and its runs that have not started yet."""
    if read(session, deployment_id) is None:
        return False
    delete_future_scheduled_runs(session, deployment_id, include_past=True)
    session.execute(sa.delete(orm.DeploymentSchedule).where(orm.DeploymentSchedule.deployment_id == deployment_id))
    session.execute(sa.delete(orm.Deployment).where(orm.Deployment.id == deployment_id))
    return True


def set_paused(
    session: Session, deployment_id: uuid.UUID, paused: bool, *, now: dt.datetime | None = None
) -> orm.Deployment | None:
    row = read(session, deployment_id)
    if row is None:
        return None
    if row.paused != paused:
        row.paused = paused
        _paused_changed(session, row, now=now)
        session.flush()
    return row


def _paused_changed(session: Session, row: orm.Deployment, *, now: dt.datetime | None) -> None:
    if row.paused:
        delete_future_scheduled_runs(session, row.id, now=now)
    for schedule in schedules_of(session, row.id):
        schedule.materialized_until = None


def delete_future_scheduled_runs(
    session: Session, deployment_id: uuid.UUID, *, now: dt.datetime | None = None, include_past: bool = False
) -> int:
    """Delete the runs the scheduler created ahead of time that are still plain ``Scheduled`` (never started,
    never claimed). With ``include_past`` also those whose time has come (the deployment is being deleted)."""
    conditions = [
        orm.FlowRun.deployment_id == deployment_id,
        orm.FlowRun.idempotency_key.like(f"{SCHEDULED_KEY_PREFIX}:%"),
        orm.FlowRun.state_type == StateType.SCHEDULED.value,
        orm.FlowRun.state_name.in_(["Scheduled", "Late"]),
        orm.FlowRun.run_count == 0,
    ]
    if not include_past:
        conditions.append(orm.FlowRun.expected_start_time > (now or now_utc()))
    result = session.execute(
        sa.delete(orm.FlowRun).where(*conditions), execution_options={"synchronize_session": False}
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- schedules -----------------------------------------------------------------------------------------------------


def replace_schedules(
    session: Session,
    row: orm.Deployment,
    wanted: list[DeploymentScheduleCreate],
    *,
    now: dt.datetime | None = None,
) -> None:
    """Make the deployment's schedules ``wanted``; unchanged schedules keep their id, mirror and runs."""
    existing = schedules_of(session, row.id)
    remaining = list(wanted)
    changed = False
    for schedule in existing:
        match = next((w for w in remaining if _dump_spec(w.schedule) == schedule.schedule), None)
        if match is None:
            session.delete(schedule)
            changed = True
            continue
        remaining.remove(match)
        if schedule.active != match.active:
            schedule.active = match.active
            schedule.materialized_until = None
            changed = True
    for new in remaining:
        session.add(orm.DeploymentSchedule(deployment_id=row.id, schedule=_dump_spec(new.schedule), active=new.active))
        changed = True
    session.flush()
    if changed:
        _schedules_changed(session, row.id, now=now)


def _schedules_changed(session: Session, deployment_id: uuid.UUID, *, now: dt.datetime | None) -> None:
    delete_future_scheduled_runs(session, deployment_id, now=now)
    for schedule in schedules_of(session, deployment_id):
        schedule.materialized_until = None


def read_schedule(session: Session, deployment_id: uuid.UUID, schedule_id: uuid.UUID) -> orm.DeploymentSchedule | None:
    row = session.get(orm.DeploymentSchedule, schedule_id)
    return row if row is not None and row.deployment_id == deployment_id else None


def create_schedules(
    session: Session,
    deployment_id: uuid.UUID,
    data: list[DeploymentScheduleCreate],
    *,
    now: dt.datetime | None = None,
) -> list[orm.DeploymentSchedule]:
    if read(session, deployment_id) is None:
        raise ObjectNotFound(f"Deployment {deployment_id} not found.")
    rows = [
        orm.DeploymentSchedule(deployment_id=deployment_id, schedule=_dump_spec(d.schedule), active=d.active)
        for d in data
    ]
    session.add_all(rows)
    session.flush()
    return rows


def update_schedule(
    session: Session,
    deployment_id: uuid.UUID,
    schedule_id: uuid.UUID,
    data: DeploymentScheduleUpdate,
    *,
    now: dt.datetime | None = None,
) -> orm.DeploymentSchedule | None:
    row = read_schedule(session, deployment_id, schedule_id)
    if row is None:
        return None
    if data.schedule is not None:
        row.schedule = _dump_spec(data.schedule)
    if data.active is not None:
        row.active = data.active
    session.flush()
    _schedules_changed(session, deployment_id, now=now)
    return row


def delete_schedule(
    session: Session, deployment_id: uuid.UUID, schedule_id: uuid.UUID, *, now: dt.datetime | None = None
) -> bool:
    row = read_schedule(session, deployment_id, schedule_id)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    _schedules_changed(session, deployment_id, now=now)
    return True


def upcoming(
    session: Session, row: orm.Deployment, n: int, *, now: dt.datetime | None = None
) -> list[schemas.UpcomingRun]:
    """The next ``n`` times of the deployment's active schedules, merged in time order (none when paused)."""
    if row.paused:
        return []
    after = now or now_utc()
    times: list[schemas.UpcomingRun] = []
    for schedule in schedules_of(session, row.id):
        if not schedule.active:
            continue
        for when in next_times(spec_of(schedule), after, n=n):
            times.append(schemas.UpcomingRun(scheduled_time=when, schedule_id=schedule.id))
    times.sort(key=lambda u: u.scheduled_time)
    unique: list[schemas.UpcomingRun] = []
    for item in times:
        if not unique or unique[-1].scheduled_time != item.scheduled_time:
            unique.append(item)
    return unique[:n]


# -- runs of a deployment ------------------------------------------------------------------------------------------


def merged_parameters(row: orm.Deployment, given: dict[str, Any]) -> dict[str, Any]:
    """The deployment's default parameters with ``given`` on top, checked against the parameter schema."""
    merged = {**(row.parameters or {}), **given}
    if row.enforce_parameter_schema and row.parameter_schema:
        validate_against_schema(row.parameter_schema, merged, partial=False, what="parameter")
    return merged


def _policy(row: orm.Deployment) -> RunPolicy:
    return RunPolicy(retries=row.retries or 0, retry_delay=row.retry_delay or 0)


def create_flow_run(
    session: Session, row: orm.Deployment, data: schemas.DeploymentFlowRunCreate, *, now: dt.datetime | None = None
) -> tuple[orm.FlowRun, bool]:
    """A run of the deployment (Scheduled at ``scheduled_time``, default now). Returns ``(run, created)``."""
    parameters = merged_parameters(row, data.parameters)
    state = data.state or StateCreate(
        type=StateType.SCHEDULED,
        state_details=StateDetails(scheduled_time=data.scheduled_time or now or now_utc()),
    )
    create = FlowRunCreate(
        flow_id=row.flow_id,
        name=data.name,
        parameters=parameters,
        tags=list(data.tags) if data.tags is not None else list(row.tags or []),
        deployment_id=row.id,
        work_queue_name=data.work_queue_name or row.work_queue_name,
        idempotency_key=data.idempotency_key,
        empirical_policy=data.empirical_policy or _policy(row),
        state=state,
    )
    return flow_runs_model.create(session, create)


def scheduled_key(deployment_id: uuid.UUID, scheduled_time: dt.datetime) -> str:
    """The identity of a scheduled run: one run per (deployment, scheduled instant)."""
    if scheduled_time.tzinfo is None:
        raise ValueError("scheduled_time must be timezone-aware")
    instant = scheduled_time.astimezone(dt.UTC).isoformat()
    return f"{SCHEDULED_KEY_PREFIX}:{deployment_id}:{instant}"


def create_scheduled_run(
    session: Session, deployment_id: uuid.UUID, scheduled_time: dt.datetime
) -> tuple[orm.FlowRun, bool] | None:
    """The run of ``deployment_id`` at ``scheduled_time``, created once: ``(run, created)``; ``None`` when the
    deployment does not exist. A second call for the same instant returns the first run with ``created=False``.

    Every schedule backend ends here. The run is Scheduled at ``scheduled_time`` with the deployment's default
    parameters, tags (plus ``auto-scheduled``), work queue and retry policy. Parameters are not re-validated: the
    defaults were checked when the deployment was saved.
    """
    row = read(session, deployment_id)
    if row is None:
        return None
    tags = list(dict.fromkeys([*(row.tags or []), AUTO_SCHEDULED_TAG]))
    create = FlowRunCreate(
        flow_id=row.flow_id,
        parameters=dict(row.parameters or {}),
        tags=tags,
        deployment_id=row.id,
        work_queue_name=row.work_queue_name,
        idempotency_key=scheduled_key(row.id, scheduled_time),
        empirical_policy=_policy(row),
        state=StateCreate(
            type=StateType.SCHEDULED,
            state_details=StateDetails(scheduled_time=scheduled_time.astimezone(dt.UTC)),
        ),
    )
    return flow_runs_model.create(session, create)


# -- parameter schema ----------------------------------------------------------------------------------------------
#
# The schema is JSON schema as pydantic writes it for the flow function's signature (``orch.deployments`` builds
# it at deploy time). Checking a run's parameters against it rebuilds a pydantic model from the schema, so the
# server needs neither the user's code nor a JSON-schema library, and the reasons read exactly like the ones the
# flow itself gives when called with bad arguments ("who: Input should be a valid string").

_MAX_REF_DEPTH = 20
_models: dict[str, Any] = {}


def validate_against_schema(schema: dict[str, Any], params: dict[str, Any], *, partial: bool, what: str) -> None:
    """Raise ``InvalidInput`` naming each bad parameter and why. ``partial``: missing parameters are fine."""
    properties = schema.get("properties") or {}
    if not isinstance(properties, dict):
        return
    if schema.get("additionalProperties") is not True:
        unknown = [name for name in params if name not in properties]
        if unknown:
            takes = ", ".join(properties) or "no parameters"
            names = ", ".join(repr(n) for n in unknown)
            raise InvalidInput(f"Unknown {what} {names}: the flow takes {takes}.")
    model = _model_for(schema, partial=partial)
    from pydantic import ValidationError

    known = {k: v for k, v in params.items() if k in properties}
    try:
        model.model_validate(known)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error.get("loc") or ()) or "parameters"
            problems.append(f"{where}: {error.get('msg')}")
        raise InvalidInput(f"Invalid {what}s: " + "; ".join(problems)) from None


def _model_for(schema: dict[str, Any], *, partial: bool) -> Any:
    import json

    from pydantic import ConfigDict, Field, create_model

    cache_key = json.dumps([schema, partial], sort_keys=True, default=str)
    model = _models.get(cache_key)
    if model is not None:
        return model
    defs = schema.get("$defs") or schema.get("definitions") or {}
    required = set(schema.get("required") or [])
    fields: dict[str, Any] = {}
    for i, (name, prop) in enumerate((schema.get("properties") or {}).items()):
        annotation = _annotation(prop if isinstance(prop, dict) else {}, defs, 0)
        default: Any = ... if (name in required and not partial) else None
        if default is None:
            annotation = annotation | None
        fields[f"p{i}"] = (annotation, Field(default, alias=name))
    model = create_model("parameters", __config__=ConfigDict(extra="ignore"), **fields)
    if len(_models) > 1000:
        _models.clear()
    _models[cache_key] = model
    return model


def _annotation(prop: dict[str, Any], defs: dict[str, Any], depth: int) -> Any:
    """The Python type a JSON-schema property describes; ``Any`` for whatever it does not recognise."""
    from typing import Literal, Union

    if depth > _MAX_REF_DEPTH:
        return Any
    ref = prop.get("$ref")
    if isinstance(ref, str):
        target = defs.get(ref.rsplit("/", 1)[-1])
        return _annotation(target, defs, depth + 1) if isinstance(target, dict) else Any
    for key in ("anyOf", "oneOf"):
        options = prop.get(key)
        if isinstance(options, list) and options:
            types = tuple(_annotation(o, defs, depth + 1) for o in options if isinstance(o, dict))
            return Any if Any in types or not types else Union[types]  # noqa: UP007 - built at run time
    all_of = prop.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        return _annotation(all_of[0], defs, depth + 1)
    enum = prop.get("enum")
    if isinstance(enum, list) and enum and all(isinstance(v, str | int | bool) or v is None for v in enum):
        return Literal[tuple(enum)]
    kind = prop.get("type")
    if isinstance(kind, list):
        types = tuple(_annotation({**prop, "type": k}, defs, depth + 1) for k in kind)
        return Any if Any in types else Union[types]  # noqa: UP007
    simple = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}
    if kind in simple:
        return simple[kind]
    if kind == "array":
        items = prop.get("items")
        if isinstance(items, dict):
            return list[_annotation(items, defs, depth + 1)]  # type: ignore[misc]
        return list[Any]
    if kind == "object" and isinstance(prop.get("properties"), dict) and prop["properties"]:
        return _object_model(prop, defs, depth + 1)
    if kind == "object":
        extra = prop.get("additionalProperties")
        if isinstance(extra, dict):
            return dict[str, _annotation(extra, defs, depth + 1)]  # type: ignore[misc]
        return dict[str, Any]
    return Any


def _object_model(prop: dict[str, Any], defs: dict[str, Any], depth: int) -> Any:
    """A nested object with properties (a pydantic model or dataclass parameter) as a model of its own."""
    from pydantic import ConfigDict, Field, create_model

    required = set(prop.get("required") or [])
    fields: dict[str, Any] = {}
    for i, (name, sub) in enumerate(prop["properties"].items()):
        annotation = _annotation(sub if isinstance(sub, dict) else {}, defs, depth)
        fields[f"p{i}"] = (annotation, Field(... if name in required else None, alias=name))
    config = ConfigDict(extra="forbid" if prop.get("additionalProperties") is False else "allow")
    return create_model(str(prop.get("title") or "object"), __config__=config, **fields)
