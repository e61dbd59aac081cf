"""The calls of the orch API: one function per endpoint, returning a ``Call`` both clients can send."""

from __future__ import annotations

import uuid
from typing import Any

from orch.client._requests import Call, as_list, dump, nothing, raw, uid
from orch.control_plane.schemas.filters import FlowFilterRequest, FlowRunFilter, LogFilter, TaskRunFilter
from orch.control_plane.schemas.flow_runs import (
    FlowRun,
    FlowRunCreate,
    FlowRunPage,
    FlowRunUpdate,
    HeartbeatResponse,
)
from orch.control_plane.schemas.flows import Flow
from orch.control_plane.schemas.logs import Log, LogPage
from orch.control_plane.schemas.states import OrchestrationResult, State, StateCreate
from orch.control_plane.schemas.task_runs import TaskRun
from orch.control_plane.schemas.work_queues import GetRunsResponse, WorkQueuesGetRunsRequest

Id = uuid.UUID | str


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/health", raw)


# -- flows ---------------------------------------------------------------------------------------------------------


def create_flow(name: str, tags: list[str] | None = None) -> Call[Flow]:
    return Call("POST", "/flows/", Flow.model_validate, json={"name": name, "tags": tags or []})


def read_flow(flow_id: Id) -> Call[Flow]:
    return Call("GET", f"/flows/{uid(flow_id)}", Flow.model_validate)


def read_flow_by_name(name: str) -> Call[Flow]:
    return Call("GET", f"/flows/name/{name}", Flow.model_validate)


def read_flows(flt: FlowFilterRequest | None = None) -> Call[list[Flow]]:
    return Call("POST", "/flows/filter", as_list(Flow), json=dump(flt) if flt else {})


def delete_flow(flow_id: Id) -> Call[None]:
    return Call("DELETE", f"/flows/{uid(flow_id)}", nothing)


# -- flow runs -----------------------------------------------------------------------------------------------------


def create_flow_run(run: FlowRunCreate) -> Call[FlowRun]:
    return Call("POST", "/flow_runs/", FlowRun.model_validate, json=dump(run))


def read_flow_run(run_id: Id) -> Call[FlowRun]:
    return Call("GET", f"/flow_runs/{uid(run_id)}", FlowRun.model_validate)


def read_flow_runs(flt: FlowRunFilter | None = None) -> Call[list[FlowRun]]:
    return Call("POST", "/flow_runs/filter", as_list(FlowRun), json=dump(flt) if flt else {})


def paginate_flow_runs(flt: FlowRunFilter | None = None) -> Call[FlowRunPage]:
    return Call("POST", "/flow_runs/paginate", FlowRunPage.model_validate, json=dump(flt) if flt else {})


def count_flow_runs(flt: FlowRunFilter | None = None) -> Call[int]:
    return Call("POST", "/flow_runs/count", int, json=dump(flt) if flt else {})


def update_flow_run(run_id: Id, update: FlowRunUpdate) -> Call[None]:
    return Call("PATCH", f"/flow_runs/{uid(run_id)}", nothing, json=dump(update))


def delete_flow_run(run_id: Id) -> Call[None]:
    return Call("DELETE", f"/flow_runs/{uid(run_id)}", nothing)


def set_flow_run_state(run_id: Id, state: StateCreate, force: bool = False) -> Call[OrchestrationResult]:
    body = {"state": dump(state), "force": force}
    return Call("POST", f"/flow_runs/{uid(run_id)}/set_state", OrchestrationResult.model_validate, json=body)


def heartbeat_flow_run(run_id: Id) -> Call[HeartbeatResponse]:
    return Call("POST", f"/flow_runs/{uid(run_id)}/heartbeat", HeartbeatResponse.model_validate)


def read_flow_run_states(run_id: Id) -> Call[list[State]]:
    return Call("GET", f"/flow_runs/{uid(run_id)}/states", as_list(State))


# -- task runs -----------------------------------------------------------------------------------------------------


def record_task_runs(records: list[dict[str, Any]]) -> Call[dict[str, Any]]:
    return Call("POST", "/task_runs/batch", raw, json={"task_runs": records})


def record_task_runs_json(body: bytes) -> Call[dict[str, Any]]:
    """The batch already encoded as the JSON of ``{"task_runs": [...]}`` (the recorder encodes each batch once)."""
    return Call("POST", "/task_runs/batch", raw, content=body)


def read_task_run(task_run_id: Id) -> Call[TaskRun]:
    return Call("GET", f"/task_runs/{uid(task_run_id)}", TaskRun.model_validate)


def read_task_runs(flt: TaskRunFilter | None = None) -> Call[list[TaskRun]]:
    return Call("POST", "/task_runs/filter", as_list(TaskRun), json=dump(flt) if flt else {})


def read_task_run_states(task_run_id: Id) -> Call[list[State]]:
    return Call("GET", f"/task_runs/{uid(task_run_id)}/states", as_list(State))


# -- logs ----------------------------------------------------------------------------------------------------------


def create_logs(logs: list[dict[str, Any]]) -> Call[None]:
    return Call("POST", "/logs/", nothing, json=logs)


def read_logs(flt: LogFilter | None = None) -> Call[list[Log]]:
    return Call("POST", "/logs/filter", as_list(Log), json=dump(flt) if flt else {})


def paginate_logs(flt: LogFilter | None = None) -> Call[LogPage]:
    return Call("POST", "/logs/paginate", LogPage.model_validate, json=dump(flt) if flt else {})


# -- work queues ---------------------------------------------------------------------------------------------------


def get_work_queues_runs(request: WorkQueuesGetRunsRequest) -> Call[GetRunsResponse]:
    """The due runs of several queues, higher-priority queues' runs first (the database queue's long poll)."""
    return Call("POST", "/work_queues/get_runs", GetRunsResponse.model_validate, json=dump(request))


# -- generic -------------------------------------------------------------------------------------------------------


def request(method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Call[Any]:
    """Any other endpoint, answered as plain JSON (used by newer features before they get typed helpers)."""
    return Call(method, path, raw, json=json, params=params)
