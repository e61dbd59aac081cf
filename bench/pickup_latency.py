"""Pick-up latency: from the moment a run becomes due to the first line of its flow code, through a real agent.

For each run queue — the database queue (the agent long-polls the API) and SQS (the control plane sends the run to
its work queue's SQS queue; the agent long-polls SQS on a moto server) — this starts ``orch server start``, deploys
a one-line flow that writes ``time.time()`` to a file as its first statement, starts one agent with the process
launcher, and then, one run at a time, schedules a run ``--lead`` seconds ahead (``--lead 0``: creates it due now)
and waits for that file. Latency = flow start - scheduled time (with ``--lead 0``: - the moment before the request
that created the run). It includes everything in between: the SQS delivery or API long poll, the claim
(Scheduled → Pending), reading the run and deployment, handing the run to the agent's warm engine process (or
starting one), the bundle (cached by hash) and the Running transition. One warm-up run per queue is not
counted (first bundle fetch, bytecode compilation). Prints JSON.

    python bench/pickup_latency.py --runs 20            # both queues
    python bench/pickup_latency.py --queue sqs --runs 50

With SQS and a lead, latencies can be slightly negative: ``DelaySeconds`` is whole seconds, so a message arrives
up to a second early, and the control plane accepts a claim up to 1 s (``SCHEDULED_TIME_TOLERANCE``) early.

Prefect's worker polls every 10 s by default (its median pick-up is ~5 s); the target here is a median under 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.agents.helpers import AgentProcess, create_runs, deploy, write_project  # noqa: E402
from tests.conftest import ServerProcess, free_port, orch_env  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def measure(queue: str, runs: int, lead: float, work: Path) -> dict[str, Any]:
    from orch.client import OrchClient
    from orch.settings import Settings

    moto = None
    extra: dict[str, str] = {"ORCH_SERVICES_INTERVAL": "1"}
    if queue == "sqs":
        from tests.plugins.aws import _start_moto, _stop_process, aws_environment

        moto = _start_moto(work / "moto.log")
        extra.update({"ORCH_RUN_QUEUE": "sqs", **aws_environment(moto.endpoint_url)})
    home = work / "home"
    home.mkdir()
    env = orch_env(home, **extra)
    server = ServerProcess(env, free_port(), work / "server.log")
    agent = None
    try:
        server.wait_ready()
        client = OrchClient(Settings(api_url=server.url, home=home))
        if queue == "sqs":
            client.request("POST", "/work_queues/", {"name": "bench"})
        markers = work / "markers"
        deployment = deploy(client, write_project(work / "project", markers, work_queue="bench"), work / "bundles")
        agent = AgentProcess(
            ["-q", "bench", *(["--sqs"] if queue == "sqs" else [])],
            {**env, "ORCH_API_URL": server.url},
            work / "agent.log",
        )
        latencies: list[float] = []
        for i in range(runs + 1):
            due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=lead)
            if lead > 0:
                (run_id,) = create_runs(client, deployment.id, 1, scheduled_time=due.isoformat())
            else:  # due now: measured from just before the request that creates it
                (run_id,) = create_runs(client, deployment.id, 1)
            marker = markers / run_id
            deadline = time.monotonic() + lead + 60
            while not marker.exists() or not marker.read_text().strip():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"run {run_id} did not start; agent log:\n{agent.text()[-3000:]}")
                time.sleep(0.005)
            started = float(marker.read_text().split()[0])
            if i > 0:  # the first run is the warm-up
                latencies.append(started - due.timestamp())
            # let the engine finish before the next run, so runs do not compete for the CPU
            while str(client.read_flow_run(run_id).state_type) not in ("COMPLETED", "FAILED", "CRASHED"):
                time.sleep(0.05)
        client.close()
        return {
            "queue": queue,
            "lead_s": lead,
            "runs": len(latencies),
            "median_s": round(statistics.median(latencies), 3),
            "p90_s": round(_percentile(latencies, 0.9), 3),
            "max_s": round(max(latencies), 3),
            "min_s": round(min(latencies), 3),
        }
    finally:
        if agent is not None:
            agent.terminate()
        server.stop()
        if moto is not None and moto.process is not None:
            _stop_process(moto.process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", action="append", choices=["database", "sqs"], help="repeatable; default both")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--lead", type=float, default=2.0, help="seconds ahead each run is scheduled")
    args = parser.parse_args()
    results = []
    for queue in args.queue or ["database", "sqs"]:
        with tempfile.TemporaryDirectory(prefix=f"orch-pickup-{queue}-") as tmp:
            results.append(measure(queue, args.runs, args.lead, Path(tmp)))
    print(
        json.dumps(
            {
                "benchmark": "pickup_latency",
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
                "launcher": "process",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
