"""``EmbeddedCaller`` (the embedded ``OrchClient``'s way to the in-process app) must present every request to the app
exactly as httpx's ASGI transport (``EmbeddedTransport``) does, and read the answers alike: an ASGI app that
echoes what it receives is called both ways and the two views compared. Then the real client in the embedded
mode, end to end: answers, errors as exceptions, and a query string."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from orch.client import OrchClient
from orch.client._embedded import EmbeddedCaller, EmbeddedTransport
from orch.control_plane.schemas.flow_runs import FlowRunCreate
from orch.exceptions import InvalidInput, ObjectNotFound
from orch.settings import Settings

pytestmark = pytest.mark.unit

BASE = "http://orch.embedded/api"
HEADERS = {"User-Agent": "orch/test"}
_SCOPE_KEYS = ("type", "http_version", "method", "scheme", "path", "raw_path", "query_string", "server", "client")


async def _echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it saw: the scope's request fields, the headers and the body."""
    message = await receive()
    if scope["path"].endswith("/boom"):
        raise RuntimeError("the app failed")
    seen = {key: scope[key] for key in _SCOPE_KEYS}
    seen = {k: (v.decode("latin-1") if isinstance(v, bytes) else v) for k, v in seen.items()}
    seen["server"], seen["client"] = list(seen["server"]), list(seen["client"])
    seen["headers"] = sorted(
        [k.decode(), v.decode()] for k, v in scope["headers"] if k not in (b"accept", b"accept-encoding", b"connection")
    )
    seen["body"] = message["body"].decode()
    status = 404 if scope["path"].endswith("/missing") else 200
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"x-n", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(seen).encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


CASES: list[tuple[str, str, dict[str, Any] | None, bytes | None]] = [
    ("GET", "/flow_runs/0b7e8f3c-1f2a-4c5d-9e8f-123456789abc", None, None),
    ("POST", "/task_runs/batch", None, b'{"task_runs":[]}'),
    ("POST", "/flow_runs/filter", None, json.dumps({"limit": 5, "name": "é"}, ensure_ascii=False).encode()),
    ("GET", "/flows/name/my flow/é?#", None, None),
    ("GET", "/logs/", {"limit": 10, "tags": ["a", "b c"], "none": None, "flag": True, "x": "ü&="}, None),
    ("DELETE", "/deployments/abc", {}, None),
    ("PATCH", "/flow_runs/x", None, b"{}"),
    ("GET", "/missing", None, None),
]


@pytest.mark.parametrize(("method", "path", "params", "body"), CASES)
def test_the_app_sees_the_same_request_both_ways(
    method: str, path: str, params: dict[str, Any] | None, body: bytes | None
) -> None:
    with httpx.Client(transport=EmbeddedTransport(_echo), base_url=BASE, headers=HEADERS) as client:
        kwargs: dict[str, Any] = {"params": params}
        if body is not None:
            kwargs.update(content=body, headers={"Content-Type": "application/json"})
        expected = client.request(method, path, **kwargs)
    status, headers, content = EmbeddedCaller(_echo, BASE, HEADERS).request(method, path, params, body)
    assert status == expected.status_code
    # (The httpx response adds a Content-Length of its own; the app's headers are the same.)
    assert headers == [h for h in expected.headers.raw if h[0] != b"Content-Length"]
    assert json.loads(content) == expected.json()


def test_an_app_that_raises_answers_500_both_ways() -> None:
    with httpx.Client(transport=EmbeddedTransport(_echo), base_url=BASE) as client:
        assert client.get("/boom").status_code == 500
    status, _, content = EmbeddedCaller(_echo, BASE, HEADERS).request("GET", "/boom", None, None)
    assert (status, content) == (500, b"")


def test_the_embedded_client_end_to_end(tmp_path: Path) -> None:
    client = OrchClient(Settings(home=tmp_path))
    try:
        assert client._caller is not None  # the embedded mode goes through EmbeddedCaller
        flow = client.create_flow("embedded-caller")
        assert client.read_flow(flow.id).name == "embedded-caller"
        assert client.read_flow_by_name("embedded-caller").id == flow.id
        run = client.create_flow_run(FlowRunCreate(flow_id=flow.id, name="r1"))
        assert client.read_flow_run(run.id).name == "r1"
        with pytest.raises(ObjectNotFound):
            client.read_flow_run("0b7e8f3c-1f2a-4c5d-9e8f-123456789abc")
        with pytest.raises(InvalidInput):
            client.request("POST", "/flows/", json={"name": ""})
        assert [f["name"] for f in client.request("POST", "/flows/filter", json={"limit": 1})] == ["embedded-caller"]
        # A query string reaches the app as over HTTP.
        assert client.request("GET", "/health", params={"probe": "x y"})
    finally:
        client.close()


def test_thread_pool_workers_outlive_the_requests(tmp_path: Path) -> None:
    """The task-run batch runs in the app's thread pool (AnyIO worker threads). AnyIO keeps its workers for the
    loop's root task; the embedded loop must have one, or every such request starts a worker thread and stops it
    when the request ends (it did: 500 batches started 500 threads)."""
    import threading

    from orch._engine.recorder import fast_uuid7

    client = OrchClient(Settings(home=tmp_path))
    started = 0
    real_start = threading.Thread.start

    def counting_start(self: threading.Thread) -> None:
        nonlocal started
        started += 1
        real_start(self)

    def batch() -> bytes:
        record = {"id": str(fast_uuid7()), "task_key": "k", "name": "n", "flow_run_id": None, "states": []}
        return json.dumps({"task_runs": [record]}).encode()

    try:
        client.record_task_runs_json(batch())  # the pool's first worker (and the app) start here
        threading.Thread.start = counting_start  # type: ignore[method-assign]
        try:
            answers = [client.record_task_runs_json(batch()) for _ in range(50)]
        finally:
            threading.Thread.start = real_start  # type: ignore[method-assign]
        assert all(answer["accepted"] == 0 for answer in answers)  # recorded (no states to accept)
        assert started <= 1, f"{started} threads started for 50 requests"
    finally:
        client.close()
