"""``orch server start`` as a real process: it migrates a fresh ``ORCH_HOME``, answers health, serves the API to
``OrchClient`` and the CLI over real HTTP, runs the late-runs service, and exits cleanly (code 0) on SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess, free_port, orch_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _http_client(url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from orch.client import OrchClient
    from orch.settings import clear_settings_cache, get_settings

    monkeypatch.setenv("ORCH_API_URL", url)
    clear_settings_cache()
    return OrchClient(get_settings())


def test_server_migrates_serves_the_client_and_the_cli(
    server_process: ServerProcess, orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import Database

    health = httpx.get(f"{server_process.url}/api/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["database"] == "sqlite"

    # The fresh ORCH_HOME was migrated on start.
    db = Database(f"sqlite:///{orch_home / 'orch.db'}")
    assert migrate.current_revision(db) == migrate.head_revision()
    db.dispose()

    from orch.control_plane.schemas.flow_runs import FlowRunCreate
    from orch.control_plane.schemas.states import StateCreate, StateType

    with _http_client(server_process.url, monkeypatch) as client:
        assert not client.embedded
        flow = client.create_flow("over-http")
        run = client.create_flow_run(FlowRunCreate(flow_id=flow.id, state=StateCreate(type=StateType.SCHEDULED)))
        assert client.read_flow_run(run.id).state_type is StateType.SCHEDULED
        assert client.set_flow_run_state(run.id, StateCreate(type=StateType.PENDING)).status.value == "ACCEPT"

    cli = subprocess.run(
        [sys.executable, "-m", "orch.cli", "flow-run", "ls", "--json"],
        env=orch_env(orch_home, ORCH_API_URL=server_process.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    listed = json.loads(cli.stdout)  # stdout is JSON and nothing else
    assert [r["id"] for r in listed] == [str(run.id)]
    assert listed[0]["state_type"] == "PENDING"
    assert listed[0]["flow_id"] == str(flow.id)


def test_sigterm_stops_the_server_cleanly(server_process: ServerProcess) -> None:
    """``ServerProcess.stop()`` sends SIGTERM (what systemd, ECS and Ctrl-C in a container send): the server shuts
    down gracefully and exits with code 0, not killed by the signal (-15)."""
    assert httpx.get(f"{server_process.url}/api/health", timeout=5).status_code == 200
    assert server_process.stop() == 0
    log = server_process.log.read_text()
    assert "Traceback" not in log
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server_process.url}/api/health", timeout=2)


def test_late_runs_service_marks_a_run_late_while_the_server_runs(
    orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orch.control_plane.schemas.flow_runs import FlowRunCreate
    from orch.control_plane.schemas.states import StateCreate, StateDetails, StateType

    env = orch_env(orch_home, ORCH_LATE_RUNS_THRESHOLD="0", ORCH_SERVICES_INTERVAL="0.2")
    server = ServerProcess(env, free_port(), tmp_path / "late-server.log")
    try:
        server.wait_ready()
        with _http_client(server.url, monkeypatch) as client:
            flow = client.create_flow("late")
            due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
            future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
            overdue = client.create_flow_run(
                FlowRunCreate(
                    flow_id=flow.id,
                    state=StateCreate(type=StateType.SCHEDULED, state_details=StateDetails(scheduled_time=due)),
                )
            )
            later = client.create_flow_run(
                FlowRunCreate(
                    flow_id=flow.id,
                    state=StateCreate(type=StateType.SCHEDULED, state_details=StateDetails(scheduled_time=future)),
                )
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and client.read_flow_run(overdue.id).state_name != "Late":
                time.sleep(0.2)
            assert client.read_flow_run(overdue.id).state_name == "Late", server.log.read_text()[-2000:]
            assert client.read_flow_run(later.id).state_name == "Scheduled"
            names = [s.name for s in client.read_flow_run_states(overdue.id)]
            assert names == ["Scheduled", "Late"]
    finally:
        server.stop()


def _children(pid: int) -> list[tuple[int, str]]:
    """The child processes of ``pid`` as (pid, start time): pids wrap around quickly here (pid_max 32768)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [(int(p), _start_time(int(p))) for p in out]


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return ""


def _alive(pid: int, started: str) -> bool:
    """The same process (same pid *and* start time) still exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return _start_time(pid) == started and "zombie" not in status


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_workers_serve_together_and_the_services_run_in_the_parent(
    database_url: str, orch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--workers 2``: two worker processes share the port and the database; every transition still goes through
    the optimistic-concurrency check (concurrent claims across workers: one winner); the services loop runs (a due
    run is marked Late) from the supervising parent; SIGTERM stops everything with code 0."""
    import concurrent.futures

    env = orch_env(
        orch_home,
        ORCH_DATABASE_URL=database_url,
        ORCH_SERVER_WORKERS="2",
        ORCH_LATE_RUNS_THRESHOLD="0",
        ORCH_SERVICES_INTERVAL="0.2",
    )
    server = ServerProcess(env, free_port(), tmp_path / "workers.log")
    try:
        server.wait_ready()
        workers = _children(server.proc.pid)
        assert len(workers) >= 2, workers  # the two workers (spawn may add its resource tracker)
        api = f"{server.url}/api"
        flow = httpx.post(f"{api}/flows/", json={"name": "workers"}, timeout=10).json()
        run = httpx.post(f"{api}/flow_runs/", json={"flow_id": flow["id"], "state": {"type": "SCHEDULED"}}).json()

        def claim(_: int) -> str:
            r = httpx.post(f"{api}/flow_runs/{run['id']}/set_state", json={"state": {"type": "PENDING"}}, timeout=30)
            return str(r.json()["status"])

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(claim, range(32)))
        assert outcomes.count("ACCEPT") == 1, outcomes
        states = [s["type"] for s in httpx.get(f"{api}/flow_runs/{run['id']}/states").json()]
        # One Pending, last; the late-runs service (threshold 0) may have marked the run Late before the claims.
        assert states.count("PENDING") == 1 and states[-1] == "PENDING", states

        due = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
        overdue = httpx.post(
            f"{api}/flow_runs/",
            json={"flow_id": flow["id"], "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": due}}},
        ).json()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if httpx.get(f"{api}/flow_runs/{overdue['id']}").json()["state_name"] == "Late":
                break
            time.sleep(0.2)
        assert httpx.get(f"{api}/flow_runs/{overdue['id']}").json()["state_name"] == "Late"
        # Marked once: a services loop per worker would race to the same transition; one loop makes one.
        assert [s["name"] for s in httpx.get(f"{api}/flow_runs/{overdue['id']}/states").json()] == [
            "Scheduled",
            "Late",
        ]
    finally:
        code = server.stop()
    assert code == 0, server.log.read_text()[-3000:]
    assert "Traceback" not in server.log.read_text()
    # The workers are gone when the parent exits; spawn's resource tracker follows once its pipe closes.
    deadline = time.monotonic() + 10
    while [pid for pid, started in workers if _alive(pid, started)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid, started in workers if _alive(pid, started)]


def test_workers_on_a_public_address_require_a_key(orch_home: Path, tmp_path: Path) -> None:
    """``--host 0.0.0.0 --workers 2``: the workers build their settings from the environment, and the public bind
    that turns authentication on must reach them (reached here through 127.0.0.1)."""
    port = free_port()
    log = tmp_path / "public-workers.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orch.cli", "server", "start", "--host", "0.0.0.0", "--port", str(port)],
            env=orch_env(orch_home, ORCH_SERVER_WORKERS="2"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            answers = {
                httpx.post(f"http://127.0.0.1:{port}/api/flows/", json={"name": "x"}).status_code for _ in range(8)
            }
            assert answers == {401}, log.read_text()[-2000:]
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def test_workers_each_take_some_of_the_connections_opened_at_once(orch_home: Path, tmp_path: Path) -> None:
    """``--workers 2`` with 16 keep-alive connections opened together (as 16 agents or benchmark clients do): both
    workers serve some of them. With one shared listening socket the first worker to wake accepted all 16, and the
    other sat idle; each worker now listens on its own ``SO_REUSEPORT`` socket and the kernel spreads connections
    (all 16 on one worker by chance: 1 in 32,768)."""
    import socket

    import psutil

    server = ServerProcess(orch_env(orch_home, ORCH_SERVER_WORKERS="2"), free_port(), tmp_path / "spread.log")
    connections: list[socket.socket] = []
    try:
        server.wait_ready()
        workers = [pid for pid, _ in _children(server.proc.pid) if _serves_http(pid)]
        assert len(workers) == 2, workers
        # Ready means one worker answers; wait for both to listen (a socket joins the port's group as it listens).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_listens(pid, server.port) for pid in workers):
            time.sleep(0.1)
        connections = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(16)]
        for conn in connections:
            conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: test\r\n\r\n")
        for conn in connections:
            assert conn.recv(65536).startswith(b"HTTP/1.1 200"), "no answer on a keep-alive connection"
        held = {
            pid: sum(
                1
                for c in psutil.Process(pid).net_connections(kind="tcp")
                if c.laddr and c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED
            )
            for pid in workers
        }
        assert sum(held.values()) == 16, held
        assert all(count > 0 for count in held.values()), held
    finally:
        for conn in connections:
            conn.close()
        code = server.stop()
    assert code == 0, server.log.read_text()[-3000:]


def _listens(pid: int, port: int) -> bool:
    import psutil

    return any(
        c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        for c in psutil.Process(pid).net_connections(kind="tcp")
    )


def _serves_http(pid: int) -> bool:
    """A uvicorn worker (spawn's resource tracker is a child of the parent too)."""
    return "resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_text()


def test_workers_on_a_port_in_use_exit_2_in_one_line(orch_home: Path, tmp_path: Path) -> None:
    """A port something already listens on is refused before any worker starts, even though the workers' own
    sockets could join a ``SO_REUSEPORT`` group: a second server on the port would silently take connections."""
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "orch.cli", "server", "start", "--port", str(port), "--no-services"],
            env=orch_env(orch_home, ORCH_SERVER_WORKERS="2"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
