"""API throughput: flow runs created and driven Scheduled → Pending → Running → Completed over real HTTP.

Starts ``orch server start`` (a real uvicorn process) on SQLite or on a throwaway PostgreSQL, then drives runs with
one client (sequential) and with N concurrent clients (asyncio, one connection each). Every ``set_state`` is a
transition through the orchestration rules; creation with a Scheduled state counts as one too. Prints JSON.

    python bench/api_throughput.py --db sqlite --db postgresql --runs 300 --clients 16 [--workers 2] [--client httpx]

The clients speak HTTP/1.1 over keep-alive connections with a minimal asyncio client by default, so that the
machine's two cores go to the server rather than to httpx (which spends ~1.9 ms CPU per request here); ``--client
httpx`` uses httpx instead. The JSON reports CPU per transition for the server processes, PostgreSQL and the client,
context switches per transition (each wake-up of a process: a round trip to PostgreSQL costs two, a response the
client reads in two pieces one more), and each server process's CPU seconds (the parent first, then the workers:
how evenly the work was spread). This VM's speed varies by up to 60% within minutes, so the JSON also gives a
calibration loop (ms for 1M additions, before and after): compare figures only beside it, or interleave A/B runs.

Also checks correctness: every run ends Completed with exactly 4 states and ``state_version`` 4 (no lost update,
no deadlock).

``--url http://HOST:PORT/api`` drives a server that is already running instead, the same way: another orch, or
Prefect 3's (its REST API takes the same calls), for a side-by-side figure. Then only the client's CPU is
reported, and a run is checked by its final state and its number of states (Prefect's runs have no
``state_version``; their states are read from ``/flow_run_states/``)::

    python bench/api_throughput.py --url http://127.0.0.1:4299/api --runs 800 --clients 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _machine import calibration_ms  # noqa: E402  (bench/ is the script's folder: first on sys.path)

from tests.plugins.postgres import _start_server, free_port, new_postgres_database  # noqa: E402


def start_server(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "orch.cli", "server", "start", "--port", str(port), "--log-level", "warning"]
    if workers > 1:
        env = {**env, "ORCH_SERVER_WORKERS": str(workers)}
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text()[-2000:])
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not start")


class RawHTTP:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: JSON in, (status, JSON) out. Real HTTP on a real
    socket, at a fraction of httpx's CPU cost, so that the benchmark measures the server."""

    def __init__(self, base: str) -> None:
        url = httpx.URL(base)
        self.host, self.port, self.prefix = url.host, url.port or 80, url.path.rstrip("/")

    async def __aenter__(self) -> RawHTTP:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        )
        self.writer.write(head.encode() + data)
        response = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in response.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length)
        return int(response[9:12]), json.loads(payload)


class HttpxHTTP:
    def __init__(self, base: str) -> None:
        self.client = httpx.AsyncClient(base_url=base, timeout=60)

    async def __aenter__(self) -> HttpxHTTP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        r = await self.client.post(path, json=body)
        return r.status_code, r.json()


def cpu_seconds(pids: list[int] | Callable[[], list[int]]) -> float:
    """User + system CPU of processes from /proc (``pids`` may be a function, for process sets that change)."""
    total = 0
    for pid in pids() if callable(pids) else pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def context_switches(pids: list[int] | Callable[[], list[int]]) -> int:
    """Voluntary + involuntary context switches of the processes' threads so far (from /proc)."""
    total = 0
    for pid in pids() if callable(pids) else pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                for line in (task / "status").read_text().splitlines():
                    if "ctxt_switches" in line:
                        total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):  # the process or thread has gone
            continue
    return total


def process_tree(pid: int) -> list[int]:
    out = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out += process_tree(int(child))
    return out


async def drive(
    base: str,
    flow_id: str,
    runs: int,
    clients: int,
    client: str = "raw",
    watch: dict[str, list[int] | Callable[[], list[int]]] | None = None,
) -> dict[str, Any]:
    latencies: list[float] = []
    per_client = [runs // clients + (1 if i < runs % clients else 0) for i in range(clients)]
    created: list[str] = []
    http_class = RawHTTP if client == "raw" else HttpxHTTP

    async def worker(n: int) -> None:
        async with http_class(base) as http:
            for _ in range(n):
                t0 = time.perf_counter()
                status, body = await http.post("/flow_runs/", {"flow_id": flow_id, "state": {"type": "SCHEDULED"}})
                if status >= 300:
                    raise RuntimeError(f"create: {status} {body}")
                run_id = body["id"]
                created.append(run_id)
                latencies.append(time.perf_counter() - t0)
                for state in ("PENDING", "RUNNING", "COMPLETED"):
                    t0 = time.perf_counter()
                    status, body = await http.post(f"/flow_runs/{run_id}/set_state", {"state": {"type": state}})
                    if status >= 300 or body["status"] != "ACCEPT":
                        raise RuntimeError(f"{state} not accepted: {status} {body}")
                    latencies.append(time.perf_counter() - t0)

    watch = watch or {}
    cpu_before = {name: cpu_seconds(pids) for name, pids in watch.items()}
    switches_before = {name: context_switches(pids) for name, pids in watch.items()}
    own_switches_before = context_switches([os.getpid()])
    # Each server process on its own: with --workers N, how evenly the connections (and the work) were spread.
    processes = [pid for pid in watch.get("server", []) if isinstance(pid, int)] if watch else []
    process_before = [cpu_seconds([pid]) for pid in processes]
    own_before = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in per_client if n))
    elapsed = time.perf_counter() - start
    transitions = runs * 4
    cpu_ms = {
        f"{name}_cpu_ms": (cpu_seconds(pids) - cpu_before[name]) * 1000 / transitions for name, pids in watch.items()
    }
    cpu_ms["client_cpu_ms"] = (time.process_time() - own_before) * 1000 / transitions
    switches = {name: (context_switches(pids) - switches_before[name]) / transitions for name, pids in watch.items()}
    switches["client"] = (context_switches([os.getpid()]) - own_switches_before) / transitions
    process_cpu = [round(cpu_seconds([pid]) - before, 2) for pid, before in zip(processes, process_before, strict=True)]
    # Verify: no lost update, nothing half done.
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        bad = 0
        for run_id in created[:: max(1, len(created) // 50)]:
            run = (await http.get(f"/flow_runs/{run_id}")).json()
            answer = await http.get(f"/flow_runs/{run_id}/states")
            if answer.status_code == 404:  # Prefect: no state_version, states under /flow_run_states/
                states = (await http.get("/flow_run_states/", params={"flow_run_id": run_id})).json()
                version_ok = True
            else:
                states = answer.json()
                version_ok = run["state_version"] == 4
            if run["state_type"] != "COMPLETED" or not version_ok or len(states) != 4:
                bad += 1
    latencies.sort()
    return {
        "clients": clients,
        "runs": runs,
        "transitions": transitions,
        "seconds": round(elapsed, 3),
        "transitions_per_second": round(transitions / elapsed, 1),
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 2),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "inconsistent_runs_sampled": bad,
        "cpu_ms_per_transition": {k.removesuffix("_cpu_ms"): round(v, 3) for k, v in cpu_ms.items()},
        "context_switches_per_transition": {k: round(v, 2) for k, v in switches.items()},
        "server_process_cpu_seconds": process_cpu,
        "client": client,
    }


def postgres_pids(pg: Any) -> Callable[[], list[int]]:
    """The postmaster and its backends, looked up each time: backends come and go with connections. A backend that
    exits during the run takes its CPU time with it, so the figure is a lower bound (the pools keep theirs open)."""
    postmaster = subprocess.run(["pgrep", "-f", str(pg.root)], capture_output=True, text=True).stdout.split()
    return lambda: [p for pid in postmaster for p in process_tree(int(pid))]


def bench_db(kind: str, runs: int, clients: list[int], workers: int, pg: Any, client: str) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(ORCH_HOME=str(home), ORCH_SERVICES_ENABLED="false")
    if kind == "postgresql":
        env["ORCH_DATABASE_URL"] = new_postgres_database(pg, migrated=False)
    port = free_port()
    proc = start_server(env, port, workers, home / "server.log")
    try:
        base = f"http://127.0.0.1:{port}/api"
        flow_id = httpx.post(f"{base}/flows/", json={"name": "bench"}).json()["id"]
        asyncio.run(drive(base, flow_id, min(runs, 50), 1, client))  # warm-up
        watch: dict[str, list[int] | Callable[[], list[int]]] = {"server": process_tree(proc.pid)}
        if kind == "postgresql":
            watch["postgresql"] = postgres_pids(pg)
        results = []
        for c in clients:
            results.append(asyncio.run(drive(base, flow_id, runs, c, client, watch)))
            print(kind, json.dumps(results[-1]), file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)
    return {"database": kind, "server_workers": workers, "results": results}


def bench_url(base: str, runs: int, clients: list[int], client: str) -> dict[str, Any]:
    """The same drive against a server somebody else started (``--url``): its CPU is not attributed here."""
    answer = httpx.post(f"{base}/flows/", json={"name": "bench"}, timeout=60)
    if answer.status_code >= 300:
        raise SystemExit(f"{base}/flows/: {answer.status_code} {answer.text[:200]}")
    flow_id = answer.json()["id"]
    out: dict[str, Any] = {"benchmark": "api_throughput", "url": base, "calibration_loop_ms_before": calibration_ms()}
    asyncio.run(drive(base, flow_id, min(runs, 50), 1, client))  # warm-up
    out["results"] = [asyncio.run(drive(base, flow_id, runs, c, client)) for c in clients]
    out["calibration_loop_ms_after"] = calibration_ms()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append", choices=["sqlite", "postgresql"])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clients", type=int, action="append")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (orch server start --workers)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw", help="HTTP client of the benchmark")
    parser.add_argument("--url", help="drive this running server's API instead of starting orch (e.g. Prefect's)")
    args = parser.parse_args()
    if args.url:
        print(json.dumps(bench_url(args.url.rstrip("/"), args.runs, args.clients or [16], args.client), indent=2))
        return
    dbs = args.db or ["sqlite", "postgresql"]
    clients = args.clients or [1, 16]
    pg = _start_server() if "postgresql" in dbs else None
    try:
        out: dict[str, Any] = {
            "benchmark": "api_throughput",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "calibration_loop_ms_before": calibration_ms(),
        }
        out["runs"] = [bench_db(db, args.runs, clients, args.workers, pg, args.client) for db in dbs]
        out["calibration_loop_ms_after"] = calibration_ms()
    finally:
        if pg is not None:
            pg.stop()
            shutil.rmtree(pg.root, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
