"""Where an agent's candidate runs come from.

A ``Candidate`` is a run id plus what to do with the message it came in (SQS) once the claim is decided: ``ack``
(delete: the run is claimed, or someone else's), ``release`` (make it visible again, optionally after a delay: the
server said WAIT), ``extend`` (keep it hidden while the claim or launch is slow), ``leave`` (do nothing: a poison
message comes back after the visibility timeout until SQS moves it to the dead-letter queue). The database source has no
messages, so its candidates' methods do nothing.

Each source runs ONE poller over all the agent's queues, so that queue priority decides who gets a free slot
(``--limit``): a poller takes work only after reserving capacity, and then takes the best work there is.

- Database queue: one long poll of ``POST /api/work_queues/get_runs`` for all queues, asking for at most the free
  room; the server answers with the due runs in priority order (queue priority, then expected start time).
- SQS: a sweep over the queues in priority order (lower number first); a lower-priority queue is received from only
  when every higher one answered a long poll with nothing and room remains. With several queues each receive is a
  long poll of ``SWEEP_WAIT_SECONDS``, so the sweep comes back to the high-priority queues quickly; not a short poll
  (``WaitTimeSeconds=0``), which samples a few SQS servers and can answer nothing while a message is there.

No SQS message is received — and hidden from other agents — unless it can be handled. Candidates go through a
shared priority queue (queue priority, then arrival), which also orders held and retried candidates.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

logger = logging.getLogger("orch.agents")
_counter = itertools.count()
# The most runs one get_runs call may ask for (the API's limit).
MAX_GET_RUNS = 100
# A queue the agent could not read is polled anyway; the server creates it with this priority.
DEFAULT_PRIORITY = 100
# With several SQS queues, the longest one receive waits before the sweep moves on to the next queue.
SWEEP_WAIT_SECONDS = 1


@dataclasses.dataclass
class Candidate:
    run_id: uuid.UUID
    work_queue: str
    priority: int
    ack: Callable[[], None] = lambda: None
    release: Callable[[float], None] = lambda delay: None
    extend: Callable[[int], None] = lambda seconds: None
    leave: Callable[[], None] = lambda: None  # neither ack nor release: SQS redelivers it, then dead-letters it
    received_at: float = dataclasses.field(default_factory=time.monotonic)


class Capacity:
    """How many more runs the agent may take (``None`` = no limit)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._active = 0
        self._reserved = 0
        self._cond = threading.Condition()

    def free(self) -> int:
        with self._cond:
            if self.limit is None:
                return 10
            return max(0, self.limit - self._active - self._reserved)

    def free_locked(self) -> int:
        if self.limit is None:
            return 10
        return max(0, self.limit - self._active - self._reserved)

    def acquire(self, most: int, stop: threading.Event, timeout: float = 1.0) -> int:
        """Wait for room, then reserve up to ``most`` slots in one step (so two pollers cannot both take the last
        slot); returns how many were reserved (0 on timeout or stop). Unreserve what goes unused."""
        with self._cond:
            self._cond.wait_for(lambda: stop.is_set() or self.free_locked() > 0, timeout=timeout)
            if stop.is_set():
                return 0
            n = min(most, self.free_locked())
            self._reserved += n
            return n

    def reserve(self, n: int) -> None:
        with self._cond:
            self._reserved += n

    def unreserve(self, n: int = 1) -> None:
        with self._cond:
            self._reserved = max(0, self._reserved - n)
            self._cond.notify_all()

    def started(self) -> None:
        with self._cond:
            self._active += 1

    def finished(self) -> None:
        with self._cond:
            self._active = max(0, self._active - 1)
            self._cond.notify_all()

    @property
    def active(self) -> int:
        with self._cond:
            return self._active


class Source(Protocol):
    def start(self, out: queue.PriorityQueue[tuple[int, int, Candidate]], capacity: Capacity) -> None: ...

    def stop(self) -> None: ...


class _Pollers:
    """Thread plumbing shared by the sources: one thread per queue, retrying with exponential backoff.

    While the control plane or SQS is unreachable each poller logs one line per attempt (no traceback: an outage
    is expected, not a bug) and waits 1, 2, 4... up to ``backoff_max`` seconds; the first success logs recovery.
    """

    def __init__(self, backoff_max: float = 30.0) -> None:
        self.stop_event = threading.Event()
        self.threads: list[threading.Thread] = []
        self.backoff_max = backoff_max

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guard(target), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            failures = 0
            name = threading.current_thread().name
            while not self.stop_event.is_set():
                try:
                    target()
                except Exception as exc:
                    failures += 1
                    delay = min(self.backoff_max, 2.0 ** min(failures - 1, 10)) * random.uniform(0.8, 1.2)
                    expected = _is_outage(exc)
                    logger.warning(
                        "%s: %s; retrying in %.0f s (attempt %d)",
                        name,
                        _one_line(exc),
                        delay,
                        failures,
                        exc_info=not expected,
                    )
                    self.stop_event.wait(delay)
                else:
                    if failures:
                        logger.info("%s: reachable again after %d failed attempts", name, failures)
                    failures = 0

        return run

    def stop(self, join_timeout: float = 25.0) -> None:
        self.stop_event.set()
        deadline = time.monotonic() + join_timeout
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


def _is_outage(exc: BaseException) -> bool:
    """Errors an agent expects while the control plane or AWS is unreachable or overloaded."""
    from orch.exceptions import OrchError

    if isinstance(exc, OrchError | OSError | TimeoutError):
        return True
    module = type(exc).__module__
    return module.startswith(("botocore", "urllib3", "httpx"))


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"


def put(out: queue.PriorityQueue[tuple[int, int, Candidate]], candidate: Candidate) -> None:
    out.put((candidate.priority, next(_counter), candidate))


class DatabaseSource:
    """Long-polls ``POST /api/work_queues/get_runs`` for all the agent's queues at once."""

    def __init__(
        self,
        client: Any,
        queues: dict[str, int],
        *,
        wait_seconds: float = 10.0,
        agent_name: str = "",
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.queues = queues  # name -> priority (the server orders by the queues' current priorities)
        self.wait_seconds = wait_seconds
        self.agent_name = agent_name
        self._pollers = _Pollers(backoff_max)
        # Runs handed out and not yet decided: do not hand them out twice while the claim is in flight.
        self._in_flight: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    def start(self, out: queue.PriorityQueue[tuple[int, int, Candidate]], capacity: Capacity) -> None:
        self._pollers.spawn("orch-poll", self._poll_loop(out, capacity))

    def _poll_loop(
        self, out: queue.PriorityQueue[tuple[int, int, Candidate]], capacity: Capacity
    ) -> Callable[[], None]:
        names = list(self.queues)

        def once() -> None:
            room = capacity.acquire(MAX_GET_RUNS, self._pollers.stop_event)
            if room <= 0:
                return
            with self._lock:
                skipped = len(self._in_flight)
            try:
                # Runs this agent is still deciding are Scheduled on the server and come first in its answer:
                # ask for that many more, so that ``room`` new runs can still be the best due ones.
                answer = self.client.request(
                    "POST",
                    "/work_queues/get_runs",
                    json={
                        "work_queue_names": names,
                        "limit": min(MAX_GET_RUNS, room + skipped),
                        "wait_seconds": self.wait_seconds,
                        "agent_name": self.agent_name,
                    },
                )
            except BaseException:
                capacity.unreserve(room)
                raise
            fresh: list[tuple[uuid.UUID, str]] = []
            with self._lock:
                for run in answer.get("runs", []):
                    run_id = uuid.UUID(run["id"])
                    if len(fresh) < room and run_id not in self._in_flight:
                        self._in_flight.add(run_id)
                        fresh.append((run_id, str(run.get("work_queue_name") or "")))
            # The fresh runs keep their reserved slot until the claim is decided; the rest go back.
            capacity.unreserve(room - len(fresh))
            for run_id, name in fresh:
                put(
                    out,
                    Candidate(
                        run_id,
                        name,
                        self.queues.get(name, DEFAULT_PRIORITY),
                        ack=self._done(run_id),
                        release=self._later(run_id),
                        leave=self._done(run_id),
                    ),
                )
            if not fresh:
                # Nothing new (or only runs already being claimed): do not spin.
                self._pollers.stop_event.wait(0.05 if answer.get("runs") else 0)

        return once

    def _done(self, run_id: uuid.UUID) -> Callable[[], None]:
        def ack() -> None:
            with self._lock:
                self._in_flight.discard(run_id)

        return ack

    def _later(self, run_id: uuid.UUID) -> Callable[[float], None]:
        def release(delay: float) -> None:
            def forget() -> None:
                with self._lock:
                    self._in_flight.discard(run_id)

            if delay <= 0:
                forget()
            else:
                timer = threading.Timer(delay, forget)
                timer.daemon = True
                timer.start()

        return release

    def stop(self) -> None:
        # Nothing to hand back (no messages): do not wait for a long poll in flight.
        self._pollers.stop(join_timeout=1.0)


class SqsSource:
    """Receives from the work queues' SQS queues, higher-priority queues first (see the module docstring).

    One queue: long polls of ``wait_seconds`` (``ORCH_AGENT_SQS_WAIT_SECONDS``). Several: sweeps in priority order,
    each receive waiting at most ``SWEEP_WAIT_SECONDS``; a sweep stops at the first queue that gives runs, and the
    next sweep starts again from the top.

    Stopping: no new receive starts; a receive already in flight is waited for (at most ``wait_seconds``) and
    whatever it returns is made visible again at once (``VisibilityTimeout=0``), so other agents get those runs
    now rather than after the queue's visibility timeout.
    """

    def __init__(
        self,
        client: Any,
        queues: dict[str, tuple[int, str]],
        *,
        wait_seconds: int = 20,
        backoff_max: float = 30.0,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.client = client
        self.queues = queues  # name -> (priority, queue URL)
        # Priority order; the name breaks ties so that the order is the same on every sweep.
        self._ordered = sorted(queues.items(), key=lambda item: (item[1][0], item[0]))
        self.wait_seconds = wait_seconds
        self._receive_wait = wait_seconds if len(queues) == 1 else min(wait_seconds, SWEEP_WAIT_SECONDS)
        # the read timeout must outlast the long poll
        self.sqs = boto3.client("sqs", config=Config(read_timeout=wait_seconds + 10, retries={"mode": "standard"}))
        self._pollers = _Pollers(backoff_max)

    def start(self, out: queue.PriorityQueue[tuple[int, int, Candidate]], capacity: Capacity) -> None:
        self._pollers.spawn("orch-sqs", self._sweep(out, capacity))

    def _sweep(self, out: queue.PriorityQueue[tuple[int, int, Candidate]], capacity: Capacity) -> Callable[[], None]:
        def once() -> None:
            room = capacity.acquire(10, self._pollers.stop_event)
            if room <= 0:
                return
            try:
                for name, (priority, url) in self._ordered:
                    if self._pollers.stop_event.is_set():
                        return
                    kept = self._receive(name, priority, url, room, out)
                    room -= kept
                    if kept:
                        # Runs from this queue: the next sweep looks at the higher-priority queues again before
                        # any lower one, since they may have received messages meanwhile.
                        return
            finally:
                capacity.unreserve(room)

        return once

    def _receive(
        self,
        name: str,
        priority: int,
        url: str,
        room: int,
        out: queue.PriorityQueue[tuple[int, int, Candidate]],
    ) -> int:
        """One receive of at most ``room`` messages from one queue; returns how many became candidates (each keeps
        one reserved slot)."""
        import json

        got = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=room,
            WaitTimeSeconds=self._receive_wait,
            AttributeNames=["ApproximateReceiveCount"],
        )
        messages = got.get("Messages", [])
        if self._pollers.stop_event.is_set():
            # Received after stop: hand them back at once.
            for message in messages:
                self._release(url, message["ReceiptHandle"])(0)
            if messages:
                logger.info("handed back %d message(s) received while stopping (%s)", len(messages), name)
            return 0
        kept = 0
        for message in messages:
            receipt = message["ReceiptHandle"]
            try:
                run_id = uuid.UUID(json.loads(message["Body"])["flow_run_id"])
            except (ValueError, KeyError, TypeError):
                # A poison message: leave it; after maxReceiveCount receives SQS moves it to the DLQ.
                logger.error("unreadable message on %s left for the dead-letter queue: %.200s", name, message["Body"])
                continue
            kept += 1
            put(
                out,
                Candidate(
                    run_id,
                    name,
                    priority,
                    ack=self._ack(url, receipt),
                    release=self._release(url, receipt),
                    extend=self._extend(url, receipt),
                ),
            )
        return kept

    def _ack(self, url: str, receipt: str) -> Callable[[], None]:
        def ack() -> None:
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)

        return ack

    def _release(self, url: str, receipt: str) -> Callable[[float], None]:
        def release(delay: float) -> None:
            self.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=max(0, min(43_200, int(delay)))
            )

        return release

    def _extend(self, url: str, receipt: str) -> Callable[[int], None]:
        def extend(seconds: int) -> None:
            self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt, VisibilityTimeout=seconds)

        return extend

    def stop(self) -> None:
        self._pollers.stop(join_timeout=self.wait_seconds + 5)
