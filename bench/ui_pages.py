"""UI page speed on a large PostgreSQL database: server time of the pages people open most.

Seeds a throwaway PostgreSQL (started from the system's binaries, deleted afterwards) with ``--runs`` flow runs
(default 100,000) spread over 30 days in 20 flows, their state history, task runs (one big run with
``--tasks`` task runs, five for each recent run) and ``--logs`` log lines (default 1,000,000: a fifth in the big
run, the rest in 100-line runs), with ``COPY`` — two to three minutes on 2 shared cores. Then it renders each page
in-process (the real app over ASGI, no network) and reads the server's own time from the ``Server-Timing`` header
that every UI page sends (``total``: from the request reaching the UI to the rendered HTML; ``db``: the database part).

    python bench/ui_pages.py                       # 100k runs, 1M logs
    python bench/ui_pages.py --runs 20000 --logs 200000 --repeat 5

Prints JSON: per page the median and worst server time and the median wall time of ``--repeat`` requests after
one warm-up, plus the seeding time and row counts.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.plugins.postgres import _start_server, new_postgres_database  # noqa: E402

STATES = [  # (type, name, share)
    ("COMPLETED", "Completed", 0.80),
    ("FAILED", "Failed", 0.07),
    ("CRASHED", "Crashed", 0.01),
    ("CANCELLED", "Cancelled", 0.03),
    ("RUNNING", "Running", 0.01),
    ("PENDING", "Pending", 0.01),
    ("SCHEDULED", "Scheduled", 0.05),
    ("SCHEDULED", "Late", 0.02),
]
TAGS = ["etl", "nightly", "ml", "reports", "billing", "adhoc"]


def _ts(value: datetime) -> str:
    return value.isoformat()


def _json(value: Any) -> str:
    # COPY text format: backslashes, tabs and newlines must be escaped.
    return json.dumps(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _copy(conn: Any, table: str, columns: list[str], lines: Iterator[str], chunk: int = 20_000) -> int:
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buf = io.StringIO()
        for line in lines:
            buf.write(line)
            n += 1
            if n % chunk == 0:
                copy.write(buf.getvalue())
                buf = io.StringIO()
        copy.write(buf.getvalue())
    return n


def seed(url: str, *, runs: int, logs: int, tasks: int, rng: random.Random) -> dict[str, Any]:
    import psycopg

    from orch.control_plane.db.engine import Database
    from orch.control_plane.models import deployments, flows, work_queues
    from orch.control_plane.schemas.deployments import DeploymentCreate
    from orch.control_plane.schemas.flows import FlowCreate
    from orch.control_plane.schemas.work_queues import WorkQueueCreate

    seed_started = time.perf_counter()
    db = Database(url)
    flow_ids: list[uuid.UUID] = []
    deployment_ids: list[uuid.UUID] = []
    with db.session() as session:
        for q in ("default", "gpu", "reports"):
            work_queues.create(session, WorkQueueCreate(name=q, concurrency_limit=10 if q == "gpu" else None))
        for i in range(20):
            flow = flows.create(session, FlowCreate(name=f"flow-{i:02d}"))
            flow_ids.append(flow.id)
            row, _ = deployments.upsert(
                session,
                DeploymentCreate.model_validate(
                    {
                        "flow_id": flow.id,
                        "name": "nightly",
                        "work_queue_name": ["default", "gpu", "reports"][i % 3],
                        "schedules": [{"schedule": {"cron": f"{i} 2 * * *", "timezone": "UTC"}}],
                        "parameter_schema": {
                            "type": "object",
                            "properties": {"n": {"type": "integer", "default": 1}, "who": {"type": "string"}},
                        },
                    }
                ),
            )
            deployment_ids.append(row.id)
    db.dispose()

    now = datetime.now(UTC)
    weights = [s[2] for s in STATES]
    run_rows: list[tuple[Any, ...]] = []
    for i in range(runs):
        state_type, state_name, _ = rng.choices(STATES, weights)[0]
        expected = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        if state_type == "SCHEDULED" and state_name == "Scheduled" and rng.random() < 0.5:
            expected = now + timedelta(seconds=rng.uniform(0, 86400))
        started = state_type not in ("SCHEDULED", "PENDING")
        start = expected + timedelta(seconds=rng.uniform(0, 5)) if started else None
        took = rng.uniform(1, 600)
        terminal = state_type in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
        end = start + timedelta(seconds=took) if start and terminal else None
        flow_index = rng.randrange(20)
        deployment = deployment_ids[flow_index] if rng.random() < 0.7 else None
        run_rows.append(
            (
                uuid.uuid4(),
                f"run-{i:06d}",
                flow_ids[flow_index],
                deployment,
                state_type,
                state_name,
                "Flow run failed: ValueError('bad input')" if state_type == "FAILED" else None,
                expected,
                start,
                end,
                took if end else 0.0,
                rng.sample(TAGS, rng.randint(0, 2)),
                ["default", "gpu", "reports"][flow_index % 3] if deployment else None,
            )
        )
    # The "big" run: the most recent completed one gets many task runs and a fifth of the logs.
    big_index = max(
        (i for i, r in enumerate(run_rows) if r[4] == "COMPLETED"),
        key=lambda i: run_rows[i][7],
    )
    big = run_rows[big_index]

    run_columns = [
        "id", "created", "updated", "name", "tags", "state_type", "state_name", "state_timestamp", "state_message",
        "state_details", "state_data", "state_version", "run_count", "expected_start_time", "start_time",
        "end_time", "total_run_time", "flow_id", "deployment_id", "work_queue_name", "parameters",
        "empirical_policy",
    ]  # fmt: skip

    def run_lines() -> Iterator[str]:
        for r in run_rows:
            rid, name, flow_id, dep, st, sn, msg, expected, start, end, took, tags, queue = r
            stamp = end or start or expected
            details = {"scheduled_time": _ts(expected)} if st == "SCHEDULED" else {}
            if st == "FAILED":
                details = {"traceback": "Traceback (most recent call last):\n  ...\nValueError: bad input"}
            yield "\t".join(
                [
                    str(rid), _ts(expected), _ts(stamp), name, _json(tags), st, sn, _ts(stamp),
                    msg if msg else "\\N", _json(details), "\\N", "3", "1" if start else "0", _ts(expected),
                    _ts(start) if start else "\\N", _ts(end) if end else "\\N", repr(took), str(flow_id),
                    str(dep) if dep else "\\N", queue or "\\N", _json({"n": 1}), _json({"retries": 0}),
                ]
            ) + "\n"  # fmt: skip

    def state_lines() -> Iterator[str]:
        for r in run_rows:
            rid, st, sn, expected, start, end = r[0], r[4], r[5], r[7], r[8], r[9]
            history = [("SCHEDULED", "Scheduled", expected)]
            if start:
                history += [("PENDING", "Pending", start - timedelta(seconds=1)), ("RUNNING", "Running", start)]
            if end:
                history.append((st, sn, end))
            elif st not in ("SCHEDULED",):
                history.append((st, sn, start or expected))
            for t, n, when in history:
                yield f"{uuid.uuid4()}\t{_ts(when)}\t{_ts(when)}\t{rid}\t{t}\t{n}\t{_ts(when)}\t\\N\t{{}}\t\\N\n"

    task_columns = [
        "id", "created", "updated", "name", "tags", "state_type", "state_name", "state_timestamp", "state_details",
        "state_version", "run_count", "expected_start_time", "start_time", "end_time", "total_run_time",
        "flow_run_id", "task_key", "dynamic_key", "task_inputs",
    ]  # fmt: skip
    started_runs = sorted((r for r in run_rows if r[8] is not None and r is not big), key=lambda r: r[7], reverse=True)
    recent = started_runs[:2000]

    def task_lines() -> Iterator[str]:
        plan = [(big, tasks)] + [(r, 5) for r in recent]
        for run, count in plan:
            t = run[8] or run[7]
            for k in range(count):
                took = rng.uniform(0.05, 3.0)
                start = t + timedelta(seconds=rng.uniform(0, 2))
                end = start + timedelta(seconds=took)
                t = start if k % 4 else end  # some tasks overlap, some follow each other
                failed = rng.random() < 0.02
                st, sn = ("FAILED", "Failed") if failed else ("COMPLETED", "Completed")
                yield "\t".join(
                    [
                        str(uuid.uuid4()), _ts(start), _ts(end), f"task-{k % 17}-{k}", "[]", st, sn, _ts(end), "{}",
                        "3", "1", _ts(start), _ts(start), _ts(end), repr(took), str(run[0]), f"task-{k % 17}",
                        str(k), "{}",
                    ]
                ) + "\n"  # fmt: skip

    log_columns = ["id", "created", "updated", "flow_run_id", "task_run_id", "name", "level", "message", "timestamp"]
    with_logs = started_runs[: max(1, (logs - logs // 5) // 100)]

    def log_lines() -> Iterator[str]:
        big_share = logs // 5
        per_run = 100
        others = logs - big_share
        plan = [(big, big_share)]
        i = 0
        while others > 0 and with_logs:
            run = with_logs[i % len(with_logs)]
            plan.append((run, min(per_run, others)))
            others -= per_run
            i += 1
        for run, count in plan:
            base = run[8] or run[7]
            rid = str(run[0])
            for k in range(count):
                when = _ts(base + timedelta(milliseconds=k * 3))
                level = 40 if k % 997 == 0 else 30 if k % 101 == 0 else 20
                yield f"{uuid.uuid4()}\t{when}\t{when}\t{rid}\t\\N\torch.flow_runs\t{level}\tline {k} of the run: processed batch {k % 50}\t{when}\n"  # noqa: E501

    counts: dict[str, int] = {}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        counts["flow_runs"] = _copy(conn, "flow_runs", run_columns, run_lines())
        counts["flow_run_states"] = _copy(
            conn,
            "flow_run_states",
            [
                "id",
                "created",
                "updated",
                "flow_run_id",
                "type",
                "name",
                "timestamp",
                "message",
                "state_details",
                "data",
            ],
            state_lines(),
        )
        counts["task_runs"] = _copy(conn, "task_runs", task_columns, task_lines())
        counts["logs"] = _copy(conn, "logs", log_columns, log_lines())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return {
        "seconds": round(time.perf_counter() - seed_started, 1),
        "rows": counts,
        "big_run": str(big[0]),
        "flow_id": str(flow_ids[3]),
    }


def measure(url: str, seeded: dict[str, Any], repeat: int) -> dict[str, Any]:
    import httpx
    import sqlalchemy as sa

    from orch.client._embedded import EmbeddedTransport
    from orch.control_plane.api.app import create_app
    from orch.control_plane.db import orm
    from orch.control_plane.db.engine import Database
    from orch.control_plane.models._common import encode_cursor
    from orch.control_plane.settings import ServerSettings

    db = Database(url)
    with db.session(write=False) as session:
        deep = session.execute(
            sa.select(orm.FlowRun.expected_start_time, orm.FlowRun.id)
            .order_by(orm.FlowRun.expected_start_time.desc(), orm.FlowRun.id.desc())
            .offset(int(seeded["rows"]["flow_runs"] * 0.8))
            .limit(1)
        ).one()
        big = uuid.UUID(seeded["big_run"])
        middle_log = session.execute(
            sa.select(orm.Log.timestamp, orm.Log.id)
            .where(orm.Log.flow_run_id == big)
            .order_by(orm.Log.timestamp, orm.Log.id)
            .offset(seeded["rows"]["logs"] // 10)
            .limit(1)
        ).one()
    deep_cursor = encode_cursor([deep[0], deep[1]])
    log_cursor = encode_cursor([middle_log[0], middle_log[1]])
    pages = {
        "dashboard": "/",
        "runs_first_page": "/runs",
        "runs_filtered": f"/runs?state=FAILED&state=CRASHED&flow={seeded['flow_id']}&since=7d",
        "runs_filtered_tag": "/runs?tag=billing&since=30d",
        "runs_deep_keyset_page": f"/runs?cursor={deep_cursor}",
        "run_page_big": f"/runs/{big}",
        "run_page_live_part": f"/runs/{big}?part=live",
        "run_logs_deep_page": f"/runs/{big}/logs?cursor={log_cursor}",
        "run_logs_errors_only": f"/runs/{big}?level=40",
        "flows": "/flows",
        "deployments": "/deployments",
        "work_queues": "/work-queues",
    }
    app = create_app(ServerSettings(database_url=url), database=db)
    results: dict[str, Any] = {}
    with httpx.Client(transport=EmbeddedTransport(app), base_url="http://127.0.0.1:4200") as client:
        for name, path in pages.items():
            server_ms: list[float] = []
            db_ms: list[float] = []
            wall_ms: list[float] = []
            for attempt in range(repeat + 1):
                t0 = time.perf_counter()
                response = client.get(path)
                wall = (time.perf_counter() - t0) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{name}: {path} answered {response.status_code}: {response.text[:500]}")
                timing = dict(
                    (part.split(";dur=")[0].strip(), float(part.split(";dur=")[1]))
                    for part in response.headers["server-timing"].split(",")
                )
                if attempt:  # the first request compiles templates and warms the pool
                    server_ms.append(timing["total"])
                    db_ms.append(timing.get("db", 0.0))
                    wall_ms.append(wall)
            results[name] = {
                "server_ms_median": round(statistics.median(server_ms), 1),
                "server_ms_max": round(max(server_ms), 1),
                "db_ms_median": round(statistics.median(db_ms), 1),
                "wall_ms_median": round(statistics.median(wall_ms), 1),
                "bytes": len(response.content),
            }
    db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=500, help="task runs of the big run")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from orch.control_plane.db import migrate
    from orch.control_plane.db.engine import Database

    pg = _start_server()
    try:
        url = new_postgres_database(pg, migrated=False)
        db = Database(url)
        migrate.upgrade(db)
        db.dispose()
        seeded = seed(url, runs=args.runs, logs=args.logs, tasks=args.tasks, rng=random.Random(args.seed))
        pages = measure(url, seeded, args.repeat)
    finally:
        pg.stop()
        shutil.rmtree(pg.root, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "ui_pages",
                "database": "postgresql",
                "python": platform.python_version(),
                "cpus": 2,
                "seed": {"seconds": seeded["seconds"], "rows": seeded["rows"], "big_run_task_runs": args.tasks},
                "repeat": args.repeat,
                "pages": pages,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
