"""The agent loop: claim each candidate run exactly once, launch it, watch it, cancel it, heartbeat.

For each candidate (from the API's long poll or SQS) the agent proposes ``Pending``:

- ACCEPT: the run is ours — delete the message, launch the infrastructure; a launch that fails makes the run
  ``Crashed`` with the reason;
- REJECT: someone else claimed it, or it finished — delete the message and move on;
- WAIT: not yet (scheduled later, or the queue is at its concurrency limit) — make the message visible again after
  the delay the server gave;
- ABORT: it was cancelled — delete the message.

Launched runs are watched: an engine that exits without reporting a final state leaves its run ``Crashed`` with the
exit reason; a run that turns ``Cancelling`` has its infrastructure killed and becomes ``Cancelled``. On SIGTERM the
agent stops taking work, makes the messages it holds but has not claimed visible again for other agents, reports
itself offline and exits; runs it already launched keep running (they report to the control plane themselves).

An unreachable control plane or SQS never stops the agent: pollers back off (1 s doubling to
``ORCH_AGENT_BACKOFF_MAX``), a claim that cannot be made goes back to the queue, and heartbeats resume when the
control plane answers again. Settings: ``orch.agents.settings``.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import socket
import threading
import time
import uuid
from typing import Any

from orch.agents.infrastructure import Infrastructure, LaunchRequest, get_infrastructure
from orch.agents.settings import AgentSettings, get_agent_settings
from orch.agents.sources import Candidate, Capacity, DatabaseSource, Source, SqsSource, put
from orch.exceptions import InfrastructureError, ObjectNotFound, OrchError

logger = logging.getLogger("orch.agents")

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
# A run due within this many seconds is held by the agent and claimed on time instead of going back to the queue.
HOLD_SECONDS = 3.0


class Agent:
    def __init__(
        self,
        work_queues: list[str],
        *,
        sqs: bool = False,
        infra: str = "process",
        limit: int | None = None,
        name: str | None = None,
        client: Any = None,
        infra_options: dict[str, Any] | None = None,
        poll_wait: float = 10.0,
        heartbeat_interval: float = 10.0,
        watch_interval: float = 1.0,
        settings: AgentSettings | None = None,
    ) -> None:
        from orch.client import get_client

        if not work_queues:
            raise OrchError("An agent needs at least one work queue (--work-queue NAME).")
        self.settings = settings or get_agent_settings()
        self.client = client or get_client()
        self.queue_names = list(dict.fromkeys(work_queues))
        self.use_sqs = sqs
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.limit = limit
        self.capacity = Capacity(limit)
        self.poll_wait = poll_wait
        self.heartbeat_interval = heartbeat_interval
        self.watch_interval = watch_interval
        self.infra_kind = infra
        self.infrastructure: Infrastructure = get_infrastructure(
            infra, log_sink=self.client.create_logs, **(infra_options or {})
        )
        self.candidates: queue.PriorityQueue[tuple[int, int, Candidate]] = queue.PriorityQueue()
        self.active: dict[uuid.UUID, Any] = {}
        self.stopping = threading.Event()
        self.source: Source | None = None
        self.launched = 0
        self._held: dict[int, tuple[threading.Timer, Candidate]] = {}
        self._held_lock = threading.Lock()

    # -- life cycle ----------------------------------------------------------------------------------------------

    def _queues(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name in self.queue_names:
            try:
                found[name] = self.client.request("GET", f"/work_queues/name/{name}")
            except ObjectNotFound:
                if self.use_sqs:
                    raise OrchError(
                        f"Work queue {name!r} does not exist: create it first (`orch work-queue create {name}`), "
                        "which creates its SQS queue."
                    ) from None
                found[name] = {"name": name, "priority": 100}
        return found

    def start(self) -> None:
        queues = self._queues()
        if self.use_sqs:
            missing = [n for n, q in queues.items() if not q.get("sqs_queue_url")]
            if missing:
                raise OrchError(
                    f"Work queue(s) {', '.join(missing)} have no SQS queue: the control plane runs with "
                    "ORCH_RUN_QUEUE=database. Start the agent without --sqs, or the server with ORCH_RUN_QUEUE=sqs."
                )
            self.source = SqsSource(
                self.client,
                {n: (q["priority"], q["sqs_queue_url"]) for n, q in queues.items()},
                wait_seconds=self.settings.agent_sqs_wait_seconds,
                backoff_max=self.settings.agent_backoff_max,
            )
        else:
            self.source = DatabaseSource(
                self.client,
                {n: q["priority"] for n, q in queues.items()},
                wait_seconds=self.poll_wait,
                agent_name=self.name,
                backoff_max=self.settings.agent_backoff_max,
            )
        self.source.start(self.candidates, self.capacity)
        self._heartbeat("ONLINE")
        logger.info(
            "agent %s polling %s (%s, %s launcher, limit %s)",
            self.name,
            ", ".join(self.queue_names),
            "SQS" if self.use_sqs else "API",
            self.infra_kind,
            self.limit or "none",
        )

    def run(self) -> None:
        """Work until ``stop()`` (SIGTERM, Ctrl-C)."""
        if not self._start_when_reachable():
            self._heartbeat("OFFLINE")
            return
        next_heartbeat = time.monotonic() + self.heartbeat_interval
        next_watch = time.monotonic()
        try:
            while not self.stopping.is_set():
                try:
                    _, _, candidate = self.candidates.get(timeout=0.2)
                except queue.Empty:
                    candidate = None
                if candidate is not None:
                    self.handle(candidate)
                now = time.monotonic()
                if now >= next_watch:
                    self._safely(self.watch)
                    next_watch = now + self.watch_interval
                if now >= next_heartbeat:
                    self._heartbeat("ONLINE")
                    next_heartbeat = now + self.heartbeat_interval
        finally:
            self.shutdown()

    def _start_when_reachable(self) -> bool:
        """``start()``, retried with backoff while the control plane cannot be reached; False if stopped first."""
        from orch.exceptions import ServerUnavailable

        attempt = 0
        while not self.stopping.is_set():
            try:
                self.start()
                return True
            except ServerUnavailable as exc:
                attempt += 1
                delay = min(self.settings.agent_backoff_max, 2.0 ** min(attempt - 1, 10))
                logger.warning("cannot start yet: %s; retrying in %.0f s (attempt %d)", exc, delay, attempt)
                self.stopping.wait(delay)
        return False

    def stop(self) -> None:
        self.stopping.set()

    def shutdown(self) -> None:
        """Stop taking work and hand back what was received but not claimed."""
        self.stopping.set()
        if self.source is not None:
            self.source.stop()
        with self._held_lock:
            held, self._held = list(self._held.values()), {}
        for timer, candidate in held:
            timer.cancel()
            put(self.candidates, candidate)
        released = 0
        while True:
            try:
                _, _, candidate = self.candidates.get_nowait()
            except queue.Empty:
                break
            self._safely(candidate.release, 0)
            self.capacity.unreserve()
            released += 1
        self._heartbeat("OFFLINE")
        self.infrastructure.close()
        logger.info(
            "agent %s stopped (%d unclaimed runs handed back, %d still running)", self.name, released, len(self.active)
        )

    # -- one candidate -------------------------------------------------------------------------------------------

    def handle(self, candidate: Candidate) -> None:
        from orch.control_plane.schemas.states import SetStateStatus, StateCreate, StateType

        if self.settings.agent_claim_delay and self.stopping.wait(self.settings.agent_claim_delay):
            # Test hook (ORCH_AGENT_CLAIM_DELAY): the window between receive and claim, made observable.
            self._finish_candidate(candidate, release=0)
            return
        try:
            if time.monotonic() - candidate.received_at > 10:
                candidate.extend(60)  # still ours while we claim
            answer = self.client.set_flow_run_state(candidate.run_id, StateCreate(type=StateType.PENDING))
        except ObjectNotFound:
            # A message naming no run is a poison message: leave it, so that after the queue's maximum receives
            # SQS moves it to the dead-letter queue where `orch work-queue inspect` shows it.
            logger.warning("run %s does not exist; its message is left for the dead-letter queue", candidate.run_id)
            self._safely(candidate.leave)
            self.capacity.unreserve()
            return
        except OrchError as exc:
            # Unreachable or failing control plane: the run goes back to the queue for a later try (or another
            # agent); for SQS the redrive policy bounds how often a message that always fails comes back.
            logger.warning("cannot claim run %s now (%s); it goes back to the queue", candidate.run_id, exc)
            self._finish_candidate(candidate, release=5)
            return
        except Exception as exc:
            logger.warning("cannot claim run %s now (%s: %s)", candidate.run_id, type(exc).__name__, exc)
            self._finish_candidate(candidate, release=5)
            return
        if answer.status is SetStateStatus.ACCEPT:
            self._safely(candidate.ack)
            self.launch(candidate)
            return
        if answer.status is SetStateStatus.WAIT:
            delay = float(answer.details.delay_seconds or 5)
            if delay <= HOLD_SECONDS and not self.stopping.is_set():
                # Due in a moment (SQS delays have whole-second granularity, so messages arrive up to a second
                # early): keep the candidate and its capacity slot, and claim again right on time.
                self._hold(candidate, delay)
                return
            self._finish_candidate(candidate, release=math.ceil(delay))
            return
        # REJECT: claimed by another agent, or already finished; ABORT: cancelled. Either way, not ours.
        logger.debug("run %s not claimed: %s", candidate.run_id, answer.details.reason)
        self._finish_candidate(candidate, ack=True)

    def _hold(self, candidate: Candidate, delay: float) -> None:
        def due() -> None:
            with self._held_lock:
                if self._held.pop(id(candidate), None) is None:
                    return  # shutdown handed it back already
            put(self.candidates, candidate)

        timer = threading.Timer(delay, due)
        timer.daemon = True
        with self._held_lock:
            self._held[id(candidate)] = (timer, candidate)
        timer.start()

    def _finish_candidate(self, candidate: Candidate, *, ack: bool = False, release: float | None = None) -> None:
        if ack:
            self._safely(candidate.ack)
        elif release is not None:
            self._safely(candidate.release, release)
        self.capacity.unreserve()

    def launch(self, candidate: Candidate) -> None:
        from orch.control_plane.schemas.flow_runs import FlowRunUpdate

        try:
            run = self.client.read_flow_run(candidate.run_id)
            deployment = None
            if run.deployment_id is not None:
                deployment = self.client.request("GET", f"/deployments/{run.deployment_id}")
            request = LaunchRequest(
                flow_run=run,
                deployment=deployment,
                env=self._run_env(run),
                overrides=dict((deployment or {}).get("infra_overrides") or {}),
            )
            handle = self.infrastructure.launch(request)
        except (InfrastructureError, OrchError) as exc:
            self._crash(candidate.run_id, f"The {self.infra_kind} launcher could not start the run: {exc}")
            self.capacity.unreserve()
            return
        except Exception as exc:
            self._crash(candidate.run_id, f"The agent failed to launch the run: {type(exc).__name__}: {exc}")
            self.capacity.unreserve()
            return
        self.capacity.started()
        self.capacity.unreserve()
        self.active[candidate.run_id] = handle
        self.launched += 1
        self._safely(
            self.client.update_flow_run, candidate.run_id, FlowRunUpdate(infrastructure_pid=handle.ident[:500])
        )
        logger.info("launched run %s (%s %s)", candidate.run_id, self.infra_kind, handle.ident)

    def _run_env(self, run: Any) -> dict[str, str]:
        settings = self.client.settings
        env = {"ORCH_FLOW_RUN_ID": str(run.id), "ORCH_LOG_TO_CONSOLE": "false"}
        if settings.api_url:
            env["ORCH_API_URL"] = settings.api_url
        if settings.api_key is not None:
            env["ORCH_API_KEY"] = settings.api_key.get_secret_value()
        env["ORCH_HOME"] = str(settings.home)
        return env

    # -- watching ------------------------------------------------------------------------------------------------

    def watch(self) -> None:
        """Reap finished infrastructure; kill what was cancelled."""
        from orch.control_plane.schemas.filters import FlowRunFilter

        if not self.active:
            return
        for run_id, handle in list(self.active.items()):
            status = self._safely(self.infrastructure.poll, handle)
            if status is None:
                continue
            del self.active[run_id]
            self.capacity.finished()
            if not status.ok:
                self._crash(run_id, f"The run's infrastructure stopped: {status.reason}", only_if_unfinished=True)
        if not self.active:
            return
        try:
            runs = self.client.read_flow_runs(
                FlowRunFilter.model_validate(
                    {"flow_runs": {"id": {"any_": [str(i) for i in self.active]}}, "limit": len(self.active)}
                )
            )
        except OrchError:
            return
        for run in runs:
            if run.state_type is not None and run.state_type.value == "CANCELLING" and run.id in self.active:
                self.cancel(run.id)

    def cancel(self, run_id: uuid.UUID) -> None:
        from orch.control_plane.schemas.states import StateCreate, StateType

        handle = self.active.pop(run_id, None)
        if handle is not None:
            self._safely(self.infrastructure.kill, handle)
            self.capacity.finished()
        self._safely(
            self.client.set_flow_run_state,
            run_id,
            StateCreate(type=StateType.CANCELLED, message=f"Cancelled: agent {self.name} stopped its infrastructure."),
        )
        logger.info("cancelled run %s", run_id)

    def _crash(self, run_id: uuid.UUID, message: str, *, only_if_unfinished: bool = False) -> None:
        from orch.control_plane.schemas.states import StateCreate, StateType

        if only_if_unfinished:
            run = self._safely(self.client.read_flow_run, run_id)
            if run is None or (run.state_type is not None and run.state_type.value in TERMINAL):
                return
        logger.warning("run %s crashed: %s", run_id, message)
        self._safely(
            self.client.set_flow_run_state, run_id, StateCreate(type=StateType.CRASHED, message=message[:20_000])
        )

    def _heartbeat(self, status: str) -> None:
        self._safely(
            self.client.request,
            "POST",
            "/agents/heartbeat",
            {
                "name": self.name,
                "work_queues": self.queue_names,
                "infra_type": self.infra_kind,
                "hostname": socket.gethostname(),
                "status": status,
            },
        )

    @staticmethod
    def _safely(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (OrchError, OSError) as exc:  # an outage: one line, no traceback
            logger.warning("%s failed: %s", getattr(fn, "__name__", fn), exc)
            return None
        except Exception:
            logger.warning("%s failed", getattr(fn, "__name__", fn), exc_info=True)
            return None
