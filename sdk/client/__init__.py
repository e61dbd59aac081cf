"""``OrchClient``: the one way the SDK, the CLI and agents talk to the control plane.

Over HTTP (httpx) when ``ORCH_API_URL`` is set, sending ``Authorization: Bearer <ORCH_API_KEY>``; otherwise in the
embedded mode, where the control plane's own API app is mounted in-process on the SQLite database in ``ORCH_HOME``
(same routes, same validation, same orchestration rules — only the network is skipped)::

    from orch.client import get_client

    client = get_client()
    flow = client.create_flow("etl")

Each endpoint's request and parsing is defined once in ``_api.py``; ``OrchClient`` sends it synchronously and
``AsyncOrchClient`` asynchronously. Errors are ``orch.exceptions``: ``ObjectNotFound`` (404), ``InvalidInput``
(422), ``AuthenticationError`` (401/403), ``ServerUnavailable`` (unreachable, 502-504; retried a few times first).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from orch.client import _api
from orch.client._errors import raise_for_status, unreachable
from orch.client._requests import Call
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
from orch.settings import Settings, get_settings

if TYPE_CHECKING:
    from orch.client._embedded import EmbeddedCaller

__all__ = ["AsyncOrchClient", "OrchClient", "get_async_client", "get_client", "reset_clients"]

T = TypeVar("T")
Id = uuid.UUID | str
EMBEDDED_BASE_URL = "http://orch.embedded"
# Delays between attempts when the server cannot be reached or answers 502/503/504.
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)
_RETRY_STATUSES = frozenset({502, 503, 504})


def _client_kwargs(settings: Settings) -> dict[str, Any]:
    headers = {"User-Agent": f"orch/{_version()}"}
    if settings.api_key is not None and settings.api_url is not None:
        headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
    base = settings.api_url or EMBEDDED_BASE_URL
    kwargs: dict[str, Any] = {"base_url": f"{base}/api", "headers": headers, "timeout": settings.api_timeout}
    if base.startswith("http://"):
        # Plain HTTP has no certificate to verify: skip loading the CA bundle (~0.15 s of every engine's start).
        # Safe because httpx does not follow redirects (to https) unless asked.
        kwargs["verify"] = False
    return kwargs


_JSON_CONTENT = {"Content-Type": "application/json"}


def _request_body(call: Call[Any]) -> dict[str, Any]:
    """The httpx arguments for a call's query and body: JSON to encode, or JSON already encoded."""
    if call.content is not None:
        return {"params": call.params, "content": call.content, "headers": _JSON_CONTENT}
    return {"params": call.params, "json": call.json}


def _json_body(data: Any) -> bytes:
    """A request's JSON body, encoded as httpx encodes ``json=``."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _version() -> str:
    from orch import __version__

    return __version__


class OrchClient:
    """A synchronous client; thread-safe, cheap to share (``get_client()`` returns a process-wide one)."""

    def __init__(self, settings: Settings | None = None, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings or get_settings()
        self.embedded = self.settings.api_url is None
        self.api_url = self.settings.api_url or EMBEDDED_BASE_URL
        kwargs = _client_kwargs(self.settings)
        # Embedded: requests go straight to the in-process app (see ``EmbeddedCaller``); ``_http`` is then only a
        # fallback nobody uses on the hot paths.
        self._caller: EmbeddedCaller | None = None
        if transport is None and self.embedded:
            from orch.client._embedded import EmbeddedCaller, EmbeddedTransport, embedded_app

            app = embedded_app(self.settings.home)
            self._caller = EmbeddedCaller(app, kwargs["base_url"], kwargs["headers"])
            transport = EmbeddedTransport(app)
        self._http = httpx.Client(transport=transport, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OrchClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        if self._caller is not None:
            return self._send_embedded(call, self._caller)
        for delay in (*RETRY_DELAYS, None):
            try:
                response = self._http.request(call.method, call.path, **_request_body(call))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if delay is None:
                    raise unreachable(self.api_url, exc) from None
                time.sleep(delay)
                continue
            except httpx.HTTPError as exc:
                raise unreachable(self.api_url, exc) from None
            if response.status_code in _RETRY_STATUSES and delay is not None:
                time.sleep(delay)
                continue
            raise_for_status(response)
            return call.parse(response.json() if response.content else None)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send_embedded(self, call: Call[T], caller: EmbeddedCaller) -> T:
        """``_send`` in the embedded mode: the same request, answer and errors, through ``EmbeddedCaller``."""
        body = call.content
        if body is None and call.json is not None:
            body = _json_body(call.json)
        for delay in (*RETRY_DELAYS, None):
            status, headers, content = caller.request(call.method, call.path, call.params, body)
            if status in _RETRY_STATUSES and delay is not None:
                time.sleep(delay)
                continue
            if status >= 400:
                raise_for_status(httpx.Response(status, headers=headers, content=content))
            return call.parse(json.loads(content) if content else None)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def request(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Call any endpoint (path relative to ``/api``) and return its JSON."""
        return self._send(_api.request(method, path, json, params))

    def health(self) -> dict[str, Any]:
        return self._send(_api.health())

    def create_flow(self, name: str, tags: list[str] | None = None) -> Flow:
        return self._send(_api.create_flow(name, tags))

    def read_flow(self, flow_id: Id) -> Flow:
        return self._send(_api.read_flow(flow_id))

    def read_flow_by_name(self, name: str) -> Flow:
        return self._send(_api.read_flow_by_name(name))

    def read_flows(self, flt: FlowFilterRequest | None = None) -> list[Flow]:
        return self._send(_api.read_flows(flt))

    def delete_flow(self, flow_id: Id) -> None:
        return self._send(_api.delete_flow(flow_id))

    def create_flow_run(self, run: FlowRunCreate) -> FlowRun:
        return self._send(_api.create_flow_run(run))

    def read_flow_run(self, run_id: Id) -> FlowRun:
        return self._send(_api.read_flow_run(run_id))

    def read_flow_runs(self, flt: FlowRunFilter | None = None) -> list[FlowRun]:
        return self._send(_api.read_flow_runs(flt))

    def paginate_flow_runs(self, flt: FlowRunFilter | None = None) -> FlowRunPage:
        return self._send(_api.paginate_flow_runs(flt))

    def count_flow_runs(self, flt: FlowRunFilter | None = None) -> int:
        return self._send(_api.count_flow_runs(flt))

    def update_flow_run(self, run_id: Id, update: FlowRunUpdate) -> None:
        return self._send(_api.update_flow_run(run_id, update))

    def delete_flow_run(self, run_id: Id) -> None:
        return self._send(_api.delete_flow_run(run_id))

    def set_flow_run_state(self, run_id: Id, state: StateCreate, force: bool = False) -> OrchestrationResult:
        return self._send(_api.set_flow_run_state(run_id, state, force))

    def heartbeat_flow_run(self, run_id: Id) -> HeartbeatResponse:
        return self._send(_api.heartbeat_flow_run(run_id))

    def read_flow_run_states(self, run_id: Id) -> list[State]:
        return self._send(_api.read_flow_run_states(run_id))

    def record_task_runs(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return self._send(_api.record_task_runs(records))

    def record_task_runs_json(self, body: bytes) -> dict[str, Any]:
        """``record_task_runs`` with the batch already encoded as the JSON of ``{"task_runs": [...]}``."""
        return self._send(_api.record_task_runs_json(body))

    def read_task_run(self, task_run_id: Id) -> TaskRun:
        return self._send(_api.read_task_run(task_run_id))

    def read_task_runs(self, flt: TaskRunFilter | None = None) -> list[TaskRun]:
        return self._send(_api.read_task_runs(flt))

    def read_task_run_states(self, task_run_id: Id) -> list[State]:
        return self._send(_api.read_task_run_states(task_run_id))

    def create_logs(self, logs: list[dict[str, Any]]) -> None:
        return self._send(_api.create_logs(logs))

    def read_logs(self, flt: LogFilter | None = None) -> list[Log]:
        return self._send(_api.read_logs(flt))

    def paginate_logs(self, flt: LogFilter | None = None) -> LogPage:
        return self._send(_api.paginate_logs(flt))


class AsyncOrchClient:
    """The asynchronous twin of ``OrchClient`` (same methods, awaitable)."""

    def __init__(self, settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings or get_settings()
        self.embedded = self.settings.api_url is None
        if transport is None and self.embedded:
            from orch.client._embedded import async_transport, embedded_app

            transport = async_transport(embedded_app(self.settings.home))
        self.api_url = self.settings.api_url or EMBEDDED_BASE_URL
        self._http = httpx.AsyncClient(transport=transport, **_client_kwargs(self.settings))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncOrchClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        for delay in (*RETRY_DELAYS, None):
            try:
                response = await self._http.request(call.method, call.path, **_request_body(call))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if delay is None:
                    raise unreachable(self.api_url, exc) from None
                await asyncio.sleep(delay)
                continue
            except httpx.HTTPError as exc:
                raise unreachable(self.api_url, exc) from None
            if response.status_code in _RETRY_STATUSES and delay is not None:
                await asyncio.sleep(delay)
                continue
            raise_for_status(response)
            return call.parse(response.json() if response.content else None)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def request(self, method: str, path: str, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        return await self._send(_api.request(method, path, json, params))

    async def health(self) -> dict[str, Any]:
        return await self._send(_api.health())

    async def create_flow(self, name: str, tags: list[str] | None = None) -> Flow:
        return await self._send(_api.create_flow(name, tags))

    async def read_flow(self, flow_id: Id) -> Flow:
        return await self._send(_api.read_flow(flow_id))

    async def read_flow_by_name(self, name: str) -> Flow:
        return await self._send(_api.read_flow_by_name(name))

    async def read_flows(self, flt: FlowFilterRequest | None = None) -> list[Flow]:
        return await self._send(_api.read_flows(flt))

    async def delete_flow(self, flow_id: Id) -> None:
        return await self._send(_api.delete_flow(flow_id))

    async def create_flow_run(self, run: FlowRunCreate) -> FlowRun:
        return await self._send(_api.create_flow_run(run))

    async def read_flow_run(self, run_id: Id) -> FlowRun:
        return await self._send(_api.read_flow_run(run_id))

    async def read_flow_runs(self, flt: FlowRunFilter | None = None) -> list[FlowRun]:
        return await self._send(_api.read_flow_runs(flt))

    async def paginate_flow_runs(self, flt: FlowRunFilter | None = None) -> FlowRunPage:
        return await self._send(_api.paginate_flow_runs(flt))

    async def count_flow_runs(self, flt: FlowRunFilter | None = None) -> int:
        return await self._send(_api.count_flow_runs(flt))

    async def update_flow_run(self, run_id: Id, update: FlowRunUpdate) -> None:
        return await self._send(_api.update_flow_run(run_id, update))

    async def delete_flow_run(self, run_id: Id) -> None:
        return await self._send(_api.delete_flow_run(run_id))

    async def set_flow_run_state(self, run_id: Id, state: StateCreate, force: bool = False) -> OrchestrationResult:
        return await self._send(_api.set_flow_run_state(run_id, state, force))

    async def heartbeat_flow_run(self, run_id: Id) -> HeartbeatResponse:
        return await self._send(_api.heartbeat_flow_run(run_id))

    async def read_flow_run_states(self, run_id: Id) -> list[State]:
        return await self._send(_api.read_flow_run_states(run_id))

    async def record_task_runs(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._send(_api.record_task_runs(records))

    async def record_task_runs_json(self, body: bytes) -> dict[str, Any]:
        return await self._send(_api.record_task_runs_json(body))

    async def read_task_run(self, task_run_id: Id) -> TaskRun:
        return await self._send(_api.read_task_run(task_run_id))

    async def read_task_runs(self, flt: TaskRunFilter | None = None) -> list[TaskRun]:
        return await self._send(_api.read_task_runs(flt))

    async def read_task_run_states(self, task_run_id: Id) -> list[State]:
        return await self._send(_api.read_task_run_states(task_run_id))

    async def create_logs(self, logs: list[dict[str, Any]]) -> None:
        return await self._send(_api.create_logs(logs))

    async def read_logs(self, flt: LogFilter | None = None) -> list[Log]:
        return await self._send(_api.read_logs(flt))

    async def paginate_logs(self, flt: LogFilter | None = None) -> LogPage:
        return await self._send(_api.paginate_logs(flt))


_lock = threading.Lock()
_clients: dict[tuple[Any, ...], OrchClient] = {}


def _key(settings: Settings) -> tuple[Any, ...]:
    secret = settings.api_key.get_secret_value() if settings.api_key else None
    return (settings.api_url, secret, str(settings.home))


def get_client() -> OrchClient:
    """The process-wide client for the current settings (a new one when the settings change)."""
    settings = get_settings()
    key = _key(settings)
    client = _clients.get(key)
    if client is not None:
        return client
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = OrchClient(settings)
        return client


def get_async_client() -> AsyncOrchClient:
    """A new asynchronous client for the current settings (use it as ``async with``)."""
    return AsyncOrchClient(get_settings())


def reset_clients() -> None:
    """Close and forget every cached client (tests and ``orch.testing`` switch ``ORCH_HOME``)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
