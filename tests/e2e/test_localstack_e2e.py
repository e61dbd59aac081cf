"""orch's serverless control plane end to end, with AWS stood in for by LocalStack and a real PostgreSQL.

What runs for real here:

- the control plane under uvicorn (``orch server start``), configured as on AWS: PostgreSQL (for RDS), the SQS run
  queue and S3 storage on LocalStack, and **no services loop of its own** — on AWS the services run from
  EventBridge;
- the EventBridge rule ``rate(1 minute)`` on LocalStack, delivering the services tick to an SQS queue. Lambda
  cannot run on this machine (it needs Docker), so a small bridge thread plays the SQS event-source mapping: it
  receives the rule's messages and calls ``lambda_handlers.services_handler`` in-process with the SQS event Lambda
  would get. ``api_handler`` (an HTTP API v2 event) and ``schedule_handler`` (EventBridge Scheduler's payload,
  which Scheduler cannot deliver here) are called in-process the same way, against the same database;
- ``orch deploy`` bundling a project into LocalStack's S3, and ``orch agent start --sqs --infra process`` taking
  runs off the work queue's SQS queue, claiming them and launching ``python -m orch.engine``, which fetches the
  bundle from S3 and persists the flow's result to S3, where the test reads it back with boto3.

Three runs travel through it: one made by ``orch deployment run``, one by two deliveries of the same EventBridge
Scheduler trigger (one run: idempotent), and one by the services tick's scheduler. The tick's run exists only
because the tick happened: the server's own services loop is off. See docs/e2e.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, free_port, orch_env
from tests.e2e.lambda_events import LambdaContext, http_event, http_response_json, sqs_event
from tests.e2e.timings import Timings
from tests.plugins.aws import LocalStackServer, aws_environment
from tests.plugins.postgres import PostgresServer, new_postgres_database

pytestmark = [pytest.mark.e2e, pytest.mark.aws, pytest.mark.slow, pytest.mark.integration]

PROJECT = Path(__file__).parent / "projects" / "s3_results"
WORK_QUEUE = "e2e"
FLOW = "e2e-add"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
# rate(1 minute) fires once a minute from the rule's creation; allow for LocalStack's delivery on a loaded machine.
TICK_TIMEOUT = 100.0
RUN_TIMEOUT = 90.0


class ServerWithoutServices(ServerProcess):
    """``orch server start`` with ``ORCH_SERVICES_ENABLED=false`` in its environment (as on AWS, where the services
    run from EventBridge); test_server_services_setting.py proves the setting alone turns the loop off."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        command = [sys.executable, "-m", "orch.cli", "server", "start", "--port", str(port)]
        self.proc = subprocess.Popen(
            [*command, "--log-level", "warning"], env=env, stdout=self._log_file, stderr=subprocess.STDOUT
        )


class Agent:
    """``orch agent start --sqs --infra process`` as a real process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        command = [sys.executable, "-m", "orch.cli", "agent", "start", "--sqs", "--work-queue", WORK_QUEUE]
        self.proc = subprocess.Popen(
            [*command, "--infra", "process", "--name", "e2e-agent"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return int(self.proc.returncode)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


class TickBridge(threading.Thread):
    """Plays Lambda's SQS event source for the services tick: receive what the EventBridge rule delivered, invoke
    ``services_handler`` with it in-process, delete the messages once the handler succeeded. Stops after the first
    tick it handled (each later tick would only schedule more runs)."""

    def __init__(self, sqs: Any, queue: dict[str, str], handler: Callable[[dict[str, Any], Any], dict[str, Any]]):
        super().__init__(name="e2e-tick-bridge", daemon=True)
        self.sqs = sqs
        self.queue = queue
        self.handler = handler
        self.events: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                got = self.sqs.receive_message(
                    QueueUrl=self.queue["url"], MaxNumberOfMessages=10, WaitTimeSeconds=2, AttributeNames=["All"]
                )
                messages = got.get("Messages", [])
                if not messages:
                    continue
                event = sqs_event(messages, self.queue["arn"])
                result = self.handler(event, LambdaContext(function_name="orch-services"))
                for message in messages:
                    self.sqs.delete_message(QueueUrl=self.queue["url"], ReceiptHandle=message["ReceiptHandle"])
                self.events.extend(json.loads(record["body"]) for record in event["Records"])
                self.results.append(result)
                return
        except BaseException as exc:  # surfaced by the test, with the traceback
            self.error = exc
        finally:
            self.done.set()


def _run(command: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command[2:])} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _wait_terminal(api: httpx.Client, run_id: str, agent: Agent, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = api.get(f"/flow_runs/{run_id}").raise_for_status().json()
        if run["state"]["type"] in TERMINAL:
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run['state']['name']} after {timeout:.0f} s; agent log:\n{agent.tail()}")
        if agent.proc.poll() is not None:
            pytest.fail(f"the agent exited with {agent.proc.returncode}:\n{agent.tail()}")
        time.sleep(0.5)


def _read_result(localstack: LocalStackServer, reference: dict[str, Any]) -> Any:
    """The persisted result a state's ``data`` points at, read from LocalStack's S3 with plain boto3."""
    from orch.serializers import get_serializer

    assert reference["storage"].startswith("s3://"), reference
    bucket, _, prefix = reference["storage"][len("s3://") :].partition("/")
    key = f"{prefix.strip('/')}/{reference['key']}" if prefix.strip("/") else reference["key"]
    blob = localstack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    head, _, payload = blob.partition(b"\n")
    header = json.loads(head)
    assert header["serializer"] == reference["serializer"]
    return get_serializer(header["serializer"]).loads(payload)


@pytest.fixture
def handlers(
    localstack: LocalStackServer, aws_env: Callable[[Any], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, str]], Any]]:
    """``configure(env)``: sets the environment the Lambda functions would have, then returns
    ``orch.control_plane.lambda_handlers`` with its container state and every settings cache cleared."""
    from orch.control_plane import lambda_handlers
    from orch.control_plane.run_queue import _sqs_queue
    from tests.conftest import _clear_caches

    def configure(env: dict[str, str]) -> Any:
        aws_env(localstack)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        _clear_caches()
        _sqs_queue.cache_clear()
        lambda_handlers._state.clear()
        return lambda_handlers

    yield configure
    lambda_handlers._state.clear()
    _sqs_queue.cache_clear()


@pytest.mark.timeout(420)
def test_runs_travel_through_sqs_s3_eventbridge_and_the_lambda_handlers(
    localstack: LocalStackServer,
    postgres_server: PostgresServer,
    handlers: Callable[[dict[str, str]], Any],
    orch_home: Path,
    tmp_path: Path,
    timings: Timings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    res = localstack.resources
    code_bucket = res["buckets"]["code"]["name"]
    results_bucket = res["buckets"]["results"]["name"]
    bundles_url = f"s3://{code_bucket}/e2e-{tag}/bundles"
    results_url = f"s3://{results_bucket}/e2e-{tag}/results"
    # Our own queue names: the provisioned orch-default has attributes of its own, and other tests share LocalStack.
    queue_prefix = f"orch-e2e-{tag}-"
    database_url = new_postgres_database(postgres_server)
    aws = aws_environment(localstack.endpoint_url)
    control_plane_env = {
        "ORCH_DATABASE_URL": database_url,
        "ORCH_RUN_QUEUE": "sqs",
        "ORCH_SQS_QUEUE_PREFIX": queue_prefix,
        "ORCH_STORAGE_URL": bundles_url,
        "ORCH_RESULTS_STORAGE_URL": results_url,
        "ORCH_SERVICES_ENABLED": "false",
    }
    sqs = localstack.client("sqs")
    server: ServerProcess | None = None
    agent: Agent | None = None
    bridge: TickBridge | None = None
    api = httpx.Client(timeout=30)
    try:
        # -- the control plane under uvicorn ---------------------------------------------------------------------
        server = ServerWithoutServices(
            orch_env(orch_home, **control_plane_env, **aws), free_port(), tmp_path / "server.log"
        )
        server.wait_ready()
        api.base_url = httpx.URL(f"{server.url}/api/")
        timings.mark("server (uvicorn, PostgreSQL, SQS/S3 on LocalStack) ready")

        created = api.post("/work_queues/", json={"name": WORK_QUEUE})
        assert created.status_code == 201, created.text
        queue_url = created.json()["sqs_queue_url"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert attributes["QueueArn"].endswith(f":{queue_prefix}{WORK_QUEUE}")
        assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"].endswith(f"{queue_prefix}e2e-dlq")

        client_env = orch_env(orch_home, ORCH_API_URL=server.url, **aws)
        project = shutil.copytree(PROJECT, tmp_path / "project", ignore=shutil.ignore_patterns("__pycache__"))
        cli = [sys.executable, "-m", "orch.cli"]
        _run([*cli, "deploy", "--dir", str(project), "--all", "--storage", bundles_url], client_env)
        on_demand = api.get(f"/deployments/name/{FLOW}/on-demand").raise_for_status().json()
        every_10s = api.get(f"/deployments/name/{FLOW}/every-10s").raise_for_status().json()
        assert on_demand["code_bundle"]["storage"] == bundles_url
        bundle_keys = [
            o["Key"]
            for o in localstack.client("s3").list_objects_v2(Bucket=code_bucket, Prefix=f"e2e-{tag}/bundles/")[
                "Contents"
            ]
        ]
        assert bundle_keys == [f"e2e-{tag}/bundles/{on_demand['code_bundle']['key']}"]
        timings.mark("work queue + SQS queues created, project deployed to S3")

        agent_env = orch_env(
            orch_home,
            ORCH_API_URL=server.url,
            ORCH_DEFAULT_RESULT_STORAGE=results_url,
            # a short long-poll so SIGTERM stops the agent quickly at the end
            ORCH_AGENT_SQS_WAIT_SECONDS="2",
            **aws,
        )
        agent = Agent(agent_env, tmp_path / "agent.log")

        # -- Lambda handlers in-process, against the same database --------------------------------------------
        lambda_handlers = handlers(
            {
                **control_plane_env,
                "ORCH_DATABASE_POOL": "null",  # as on Lambda behind RDS Proxy
                "ORCH_SCHEDULER_MAX_RUNS": "1",  # one run per tick: the tick's work is exactly one run
                "ORCH_SCHEDULER_HORIZON": "60",
            }
        )
        status, deployment = http_response_json(
            lambda_handlers.api_handler(http_event("GET", f"/api/deployments/{every_10s['id']}"), LambdaContext())
        )
        assert status == 200 and deployment["name"] == "every-10s"
        (schedule,) = deployment["schedules"]

        # EventBridge Scheduler's payload, delivered twice (at-least-once): one run.
        fired = dt.datetime.now(dt.UTC).replace(microsecond=0)
        if fired.second % 10 == 0:  # keep clear of the interval schedule's own times
            fired -= dt.timedelta(seconds=1)
        trigger = {
            "deployment_id": every_10s["id"],
            "schedule_id": schedule["id"],
            "scheduled_time": fired.isoformat().replace("+00:00", "Z"),
        }
        first = lambda_handlers.schedule_handler(dict(trigger), LambdaContext(function_name="orch-schedule"))
        second = lambda_handlers.schedule_handler(dict(trigger), LambdaContext(function_name="orch-schedule"))
        assert first["status"] == second["status"] == "ok"
        assert first["flow_run_id"] is not None and first["flow_run_id"] == second["flow_run_id"]
        triggered_id = first["flow_run_id"]
        timings.mark("agent started; api_handler + schedule_handler x2 in-process")

        run_command = [*cli, "deployment", "run", f"{FLOW}/on-demand", "-p", "a=20", "-p", "b=22", "--json"]
        on_demand_id = json.loads(_run(run_command, client_env))["id"]
        timings.mark("orch deployment run")

        # -- the services tick: EventBridge rule -> SQS -> services_handler -----------------------------------
        bridge = TickBridge(sqs, res["queues"]["services_tick"], lambda_handlers.services_handler)
        bridge.start()
        assert bridge.done.wait(TICK_TIMEOUT), f"no services tick arrived within {TICK_TIMEOUT:.0f} s"
        bridge.join(10)
        if bridge.error is not None:
            raise bridge.error
        timings.mark("first services tick delivered and handled")
        (event, *_) = bridge.events
        assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
        assert event["resources"] == [res["rules"]["services_tick"]["arn"]]
        (tick,) = bridge.results
        assert tick["status"] == "ok"
        # The server runs no services, so only this tick can have created the schedule's run.
        assert tick["results"]["scheduler"] == 1, tick

        flt = {"flow_runs": {"deployment_id": {"any_": [every_10s["id"]]}}}
        status, scheduled_runs = http_response_json(
            lambda_handlers.api_handler(http_event("POST", "/api/flow_runs/filter", flt), LambdaContext())
        )
        assert status == 200
        by_id = {r["id"]: r for r in scheduled_runs}
        assert triggered_id in by_id and len(by_id) == 2, sorted(by_id)
        (ticked_id,) = set(by_id) - {triggered_id}
        assert dt.datetime.fromisoformat(by_id[triggered_id]["expected_start_time"]) == fired
        assert "auto-scheduled" in by_id[ticked_id]["tags"]

        # -- the agent runs all three from SQS; the results are in S3 -----------------------------------------
        finished = {run_id: _wait_terminal(api, run_id, agent) for run_id in (on_demand_id, triggered_id, ticked_id)}
        timings.mark("three runs completed by the SQS agent")
        for run_id, run in finished.items():
            assert run["state"]["type"] == "COMPLETED", (run_id, run["state"], agent.tail())
        # Each run was sent once and its message deleted on the accepted claim: nothing waits, nothing dead-lettered.
        counters = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        for url in (queue_url, created.json()["sqs_dlq_url"]):
            left = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(counters))["Attributes"]
            assert {name: left[name] for name in counters} == dict.fromkeys(counters, "0"), url

        status, read_back = http_response_json(
            lambda_handlers.api_handler(http_event("GET", f"/api/flow_runs/{on_demand_id}"), LambdaContext())
        )
        assert status == 200 and read_back["state"]["type"] == "COMPLETED"
        reference = read_back["state"]["data"]
        assert reference["storage"] == results_url
        value = _read_result(localstack, reference)
        assert value["sum"] == 42
        # The engine ran the bundle it fetched from S3, not the project folder the test deployed from.
        assert not Path(value["code_dir"]).is_relative_to(project)
        assert not Path(value["code_dir"]).is_relative_to(PROJECT)
        for run_id in (triggered_id, ticked_id):
            assert _read_result(localstack, finished[run_id]["state"]["data"])["sum"] == 101
        timings.mark("results read back from S3")
    except BaseException:
        for name, log in (("server", tmp_path / "server.log"), ("agent", tmp_path / "agent.log")):
            if log.exists():
                print(f"--- {name} log (tail) ---\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        if bridge is not None:
            bridge.stopping.set()
            bridge.join(15)
        if agent is not None:
            agent.stop()
        if server is not None:
            server.stop()
        api.close()
        for name in (f"{queue_prefix}{WORK_QUEUE}", f"{queue_prefix}{WORK_QUEUE}-dlq"):
            # best effort: the queue may never have been created
            with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
                sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=name)["QueueUrl"])
