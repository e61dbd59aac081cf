"""The batching recorder: task-run states and log lines go to the control plane off the hot path.

Task runs are client-orchestrated: the task engine decides their states and hands them here with one
``deque.extend`` (no dict building, no timestamps formatted, no network). A background thread wakes every
``interval`` seconds, and whenever about 100 task runs were handed in, turns the items into the API's
``TaskRunRecord`` dicts (coalescing several updates of one run into one record carrying all its new states, in
order) and encodes them to JSON; every ``interval`` seconds, or as soon as ``batch_size`` records are encoded, it
sends them with ``client.record_task_runs_json``; logs go with ``client.create_logs``. Records leave out fields at
their defaults (a trivial task's record is a few short keys), and each carries ``state_offset``, the number of
states recorded for the run before it, so that the server skips states it already holds when a batch is sent again.

Few objects live long here, on purpose: the garbage collector scans every container object that survives its young
generations, and with thousands of task runs in flight that scanning costs more than the recording. Engines hand in
the run and its states as flat items (no tuple or list kept per call); the sender drains them every ~100 task runs
and encodes the records right away into JSON fragments (bytes, which the collector ignores); a batch is the
fragments joined, and the encoded batch is what waits for an answer (and what is sent again after a failure).

When the control plane cannot be reached, the encoded batches stay pending and are retried in order with
exponential backoff (up to ``max_backoff`` seconds); the pending buffer is bounded by ``max_pending`` records and
when it must drop records it logs a warning saying how many. ``flush()`` (end of the outermost flow run, and
``atexit``) waits until everything handed in before it has been sent or has failed to send.

In a worker process (process pool, Dask) the engine records into a :class:`CollectingRecorder` instead, whose
contents travel back with the task's result and are replayed into the parent's recorder.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from orch.states import _DEFAULT_NAMES, State, iso_utc

if TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger("orch.recorder")


class TaskRunInfo:
    """The identity and bookkeeping of one task run, as the recorder turns it into a ``TaskRunRecord``."""

    __slots__ = (
        "cache_expiration",
        "cache_key",
        "dynamic_key",
        "flow_run_id",
        "id",
        "name",
        "recorded",
        "run_count",
        "tags",
        "task_inputs",
        "task_key",
    )

    def __init__(
        self,
        id: uuid.UUID,
        flow_run_id: uuid.UUID | None,
        task_key: str,
        dynamic_key: str,
        name: str,
        tags: list[str],
        task_inputs: dict[str, Any],
    ) -> None:
        self.id = id
        self.flow_run_id = flow_run_id
        self.task_key = task_key
        self.dynamic_key = dynamic_key
        self.name = name
        self.tags = tags
        self.task_inputs = task_inputs
        self.run_count = 0
        self.cache_key: str | None = None
        self.cache_expiration: dt.datetime | None = None
        # States of this run turned into records so far (by the recorder's thread): the next one's position.
        self.recorded = 0

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, s) for s in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def to_record(self) -> dict[str, Any]:
        """The run as a ``TaskRunRecord`` with no states yet; fields at their defaults are left out."""
        record: dict[str, Any] = {
            "id": str(self.id),
            "task_key": self.task_key,
            "dynamic_key": self.dynamic_key,
            "name": self.name,
            "run_count": self.run_count,
            "state_offset": self.recorded,
            "states": [],
        }
        if self.flow_run_id is not None:
            record["flow_run_id"] = _flow_run_text(self.flow_run_id)
        if self.tags:
            record["tags"] = list(self.tags)
        if self.task_inputs:
            record["task_inputs"] = self.task_inputs
        self.update_record(record)
        return record

    def update_record(self, record: dict[str, Any]) -> None:
        """Copy the bookkeeping that changes while the run goes on (attempts, cache key) into its record."""
        record["run_count"] = self.run_count
        record["dynamic_key"] = self.dynamic_key
        if self.cache_key is not None:
            record["cache_key"] = self.cache_key
        if self.cache_expiration is not None:
            record["cache_expiration"] = self.cache_expiration.isoformat()


# The flow run id last written as text, and its text: one tuple, replaced whole (threads never see a mismatch). All
# task runs of a flow run carry its id (the same object), and ``str`` of a UUID is Python code.
_last_flow_run: tuple[uuid.UUID | None, str] = (None, "")


def _flow_run_text(flow_run_id: uuid.UUID) -> str:
    global _last_flow_run
    last, text = _last_flow_run
    if last is not flow_run_id:
        text = str(flow_run_id)
        _last_flow_run = (flow_run_id, text)
    return text


class RecorderLike(Protocol):
    """What the engines record into: the batching recorder, or a collector in a worker process."""

    def task_run(self, run: TaskRunInfo, states: list[State]) -> None: ...

    def log(self, record: dict[str, Any]) -> None: ...

    def flush(self, timeout: float | None = 10.0) -> bool: ...


class Backend(Protocol):
    """The two client calls the recorder needs (``OrchClient`` has both)."""

    def record_task_runs_json(self, body: bytes) -> Any: ...

    def create_logs(self, logs: list[dict[str, Any]]) -> None: ...


# Task runs per drain of the inbox (see the module docstring); batches are still ``batch_size`` records.
_DRAIN_RUNS = 100


def _default_backend() -> Backend:
    from orch.client import get_client

    return get_client()


def _state_record(state: State) -> dict[str, Any]:
    """A state as the API's ``StateCreate`` dict, leaving out what the server would fill in the same way."""
    # Plain strings: json.dumps takes a slower path for str subclasses such as the StrEnum itself.
    out: dict[str, Any] = {"type": state.type.value, "timestamp": iso_utc(state._ts)}
    # A state's default name is what the server gives a state without one: not sent (nor escaped, nor validated).
    if state.name != _DEFAULT_NAMES[state.type]:
        out["name"] = state.name
    if state.message is not None:
        out["message"] = state.message
    if state.details:
        out["state_details"] = dict(state.details)
    if state.data is not None:
        out["data"] = state.data
    return out


# A trivial task's record and states have only these keys (see ``TaskRunInfo.to_record`` and ``_state_record``).
_PLAIN_RECORD = frozenset(("id", "task_key", "dynamic_key", "name", "run_count", "state_offset", "states"))
_PLAIN_WITH_FLOW = _PLAIN_RECORD | {"flow_run_id"}
_PLAIN_STATE = frozenset(("type", "timestamp"))
_quote = json.encoder.encode_basestring_ascii


def _record_json(record: dict[str, Any]) -> str:
    """``json.dumps(record, separators=(",", ":"), allow_nan=False)``, the same JSON value (a test compares them on
    random records), written directly for a trivial task's record at half the cost: every task goes through here.
    Ids, counts, state types and ISO times need no escaping; names are escaped as ``json.dumps`` escapes them."""
    states = record["states"]
    keys = record.keys()
    if not _PLAIN_RECORD <= keys <= _PLAIN_WITH_FLOW or any(state.keys() != _PLAIN_STATE for state in states):
        return json.dumps(record, separators=(",", ":"), allow_nan=False)
    flow_run = f',"flow_run_id":"{record["flow_run_id"]}"' if "flow_run_id" in record else ""
    written = ",".join(f'{{"type":"{s["type"]}","timestamp":"{s["timestamp"]}"}}' for s in states)
    return (
        f'{{"id":"{record["id"]}","task_key":{_quote(record["task_key"])},"dynamic_key":{_quote(record["dynamic_key"])}'
        f',"name":{_quote(record["name"])},"run_count":{int(record["run_count"])}'
        f',"state_offset":{int(record["state_offset"])},"states":[{written}]{flow_run}}}'
    )


class Recorder:
    """The process's batching recorder (see the module docstring)."""

    def __init__(
        self,
        backend: Callable[[], Backend] = _default_backend,
        *,
        interval: float = 0.5,
        batch_size: int = 1000,
        max_pending: int = 100_000,
        max_backoff: float = 30.0,
    ) -> None:
        self._backend = backend
        self.interval = interval
        self.batch_size = batch_size
        self.max_pending = max_pending
        self.max_backoff = max_backoff
        # Items handed in by engines: a TaskRunInfo followed by its new State objects, log dicts, or flush events.
        self._inbox: collections.deque[Any] = collections.deque()
        # A task hands in about five items (its run and two states when it starts, its run and its final state when
        # it ends): wake the sender to drain them every ~100 task runs, before they grow old in the collector's eyes.
        self._wake_at = 5 * min(batch_size, _DRAIN_RUNS)
        self._wake = threading.Event()
        # Records of the current drain, by run id as an integer (several updates of one run become one record; a
        # UUID hashes in Python code, its integer in C).
        self._pending_runs: dict[int, dict[str, Any]] = {}
        # Drained records encoded as JSON fragments (``{...},{...}``) that will make up a batch: (bytes, records),
        # and since when the oldest one waits.
        self._fragments: collections.deque[tuple[bytes, int]] = collections.deque()
        self._fragments_since = 0.0
        # Encoded batches waiting to be sent, oldest first: (JSON body, number of records).
        self._pending_batches: collections.deque[tuple[bytes, int]] = collections.deque()
        self._pending_logs: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopped = False
        self.dropped = 0
        self._failures = 0

    # -- the hot path: one extend --------------------------------------------------------------------------------

    def task_run(self, run: TaskRunInfo, states: Iterable[State]) -> None:
        inbox = self._inbox
        # One extend with a tuple is atomic (the GIL is held throughout): the sender never sees a run without the
        # states that follow it.
        inbox.extend((run, *states))
        if self._thread is None:
            self._start()
        # Wake the sender when a drain's worth is waiting; Event.set on every call would cost a lock round trip.
        if len(inbox) >= self._wake_at and not self._wake.is_set():
            self._wake.set()

    def log(self, record: dict[str, Any]) -> None:
        self._inbox.append(record)
        if self._thread is None:
            self._start()

    # -- control -------------------------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything handed in so far was sent; False when some of it is still pending."""
        stopped = self._stopped and (self._thread is None or not self._thread.is_alive())
        if stopped or (self._thread is None and not self._inbox):
            return self.pending == 0
        done = threading.Event()
        self._inbox.append(done)
        self._start()
        self._wake.set()
        if not done.wait(timeout):
            return False
        return not self._pending_runs and not self._fragments and not self._pending_batches and not self._pending_logs

    @property
    def pending(self) -> int:
        """Records, log lines and handed-in items not sent yet."""
        return self._encoded() + len(self._pending_runs) + len(self._pending_logs) + len(self._inbox)

    def _encoded(self) -> int:
        return sum(count for _, count in self._fragments) + sum(count for _, count in self._pending_batches)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None or self._stopped:
                return
            self._thread = threading.Thread(target=self._loop, name="orch-recorder", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the sender, and report what could not be delivered (called at interpreter exit)."""
        if self._thread is None:
            return
        # Keep waiting while the control plane makes progress; give up after `timeout` seconds without any.
        before = self.pending
        while not self.flush(timeout):
            now = self.pending
            if now == 0 or now >= before:
                break
            before = now
        self._stopped = True  # the sender thread ends once the inbox is empty
        self._wake.set()
        atexit.unregister(self.close)
        if self.pending:
            logger.warning(
                "orch: %d task-run records and log lines could not be sent to the control plane and are lost.",
                self.pending,
            )

    # -- the background thread -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        backoff = 0.0
        while True:
            timed_out = not self._wake.wait(max(self.interval, backoff))
            self._wake.clear()
            events: list[threading.Event] = []
            try:
                events = self._drain()
                self._encode()
                # Send every ``interval``, when a batch is full, when somebody flushes, and to retry.
                due = timed_out or bool(events) or self._stopped or backoff > 0 or self._batch_waiting()
                ok = self._send() if due else True
            except Exception:
                # Never let the sender die: a flush would wait for it forever.
                logger.exception("orch: the recorder failed to process records; retrying.")
                ok = False
            finally:
                for event in events:
                    event.set()
            backoff = 0.0 if ok else min(self.max_backoff, max(0.5, backoff * 2))
            if self._stopped and not self._inbox:
                return

    def _drain(self) -> list[threading.Event]:
        """Turn the handed-in items into records (one per run), log dicts and flush events."""
        events: list[threading.Event] = []
        inbox, runs, logs = self._inbox, self._pending_runs, self._pending_logs
        run: TaskRunInfo | None = None
        states: list[dict[str, Any]] = []
        while inbox:
            item = inbox.popleft()
            kind = type(item)
            if kind is State:
                assert run is not None  # a run is always handed in before its states
                states.append(_state_record(item))
                run.recorded += 1
            elif kind is TaskRunInfo:
                run = item
                key = run.id.int
                record = runs.get(key)
                if record is None:
                    record = runs[key] = run.to_record()
                else:
                    # A later update of the same run: its bookkeeping may have changed (retries, cache key).
                    run.update_record(record)
                states = record["states"]
            elif kind is dict:
                ts = item.get("timestamp")
                if isinstance(ts, float):
                    item["timestamp"] = iso_utc(ts)
                logs.append(item)
            else:
                events.append(item)
        self._bound()
        return events

    def _bound(self) -> None:
        excess = len(self._pending_runs) + self._encoded() + len(self._pending_logs) - self.max_pending
        if excess <= 0:
            return
        # Logs go first: losing a log line is cheaper than losing a run's states. Then the oldest records.
        drop_logs = min(excess, len(self._pending_logs))
        del self._pending_logs[:drop_logs]
        dropped = drop_logs
        while dropped < excess and self._pending_batches:
            dropped += self._pending_batches.popleft()[1]
        while dropped < excess and self._fragments:
            dropped += self._fragments.popleft()[1]
        for run_id in list(self._pending_runs)[: max(0, excess - dropped)]:
            del self._pending_runs[run_id]
            dropped += 1
        self.dropped += dropped
        logger.warning(
            "orch: the control plane is unreachable and the record buffer is full: dropped %d records (%d so far).",
            dropped,
            self.dropped,
        )

    def _encode(self) -> None:
        """Encode the drained records into JSON fragments of at most ``batch_size`` records."""
        runs = self._pending_runs
        while runs:
            chunk = [runs.pop(run_id) for run_id in list(itertools.islice(runs, self.batch_size))]
            try:
                encoded = ",".join(map(_record_json, chunk)).encode()
            except (TypeError, ValueError) as exc:
                # Not JSON (a NaN or an object in the task's inputs or result reference): it could never be sent.
                logger.warning("orch: could not encode %d task-run records (%s); they are dropped.", len(chunk), exc)
                self.dropped += len(chunk)
                continue
            if not self._fragments:
                self._fragments_since = time.monotonic()
            self._fragments.append((encoded, len(chunk)))  # the records, comma-separated, without brackets

    def _batch_waiting(self) -> bool:
        if not self._fragments:
            return bool(self._pending_logs)
        full = sum(count for _, count in self._fragments) >= self.batch_size
        return full or time.monotonic() - self._fragments_since >= self.interval

    def _batches(self) -> None:
        """Join the fragments into batches of at most ``batch_size`` records."""
        fragments = self._fragments
        while fragments:
            parts: list[bytes] = []
            count = 0
            while fragments and (not parts or count + fragments[0][1] <= self.batch_size):
                fragment, n = fragments.popleft()
                parts.append(fragment)
                count += n
            self._pending_batches.append((b'{"task_runs":[' + b",".join(parts) + b"]}", count))

    def _send(self) -> bool:
        from orch.exceptions import InvalidInput, ObjectNotFound

        self._batches()
        if not self._pending_batches and not self._pending_logs:
            return True
        try:
            backend = self._backend()
            batches = self._pending_batches
            while batches:
                body, count = batches[0]
                try:
                    answer = backend.record_task_runs_json(body)
                except (InvalidInput, ObjectNotFound) as exc:
                    logger.warning("orch: the control plane refused %d task-run records: %s", count, exc)
                    answer = None
                rejected = answer.get("rejected") if isinstance(answer, dict) else None
                if rejected:
                    logger.warning(
                        "orch: the control plane refused %d task-run states: %s", len(rejected), rejected[:3]
                    )
                batches.popleft()
            while self._pending_logs:
                logs = self._pending_logs[: self.batch_size]
                try:
                    backend.create_logs(logs)
                except (InvalidInput, ObjectNotFound) as exc:
                    logger.warning("orch: the control plane refused %d log lines: %s", len(logs), exc)
                del self._pending_logs[: len(logs)]
        except Exception as exc:
            self._failures += 1
            if self._failures == 1 or self._failures % 20 == 0:
                logger.warning(
                    "orch: could not send %d records to the control plane (%s); retrying with backoff.",
                    self._encoded() + len(self._pending_logs),
                    exc,
                )
            return False
        self._failures = 0
        return True


class CollectingRecorder:
    """Records kept in a list, to travel back from a worker process with the task's result."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def task_run(self, run: TaskRunInfo, states: list[State]) -> None:
        self.items.append((run, list(states)))

    def log(self, record: dict[str, Any]) -> None:
        self.items.append(record)

    def flush(self, timeout: float | None = 10.0) -> bool:
        return True  # the items travel back with the result; nothing to send from here

    def replay(self, into: RecorderLike) -> None:
        for item in self.items:
            if type(item) is tuple:
                into.task_run(*item)
            else:
                into.log(item)


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def get_recorder() -> Recorder:
    """The process-wide recorder, created on first use and flushed at interpreter exit."""
    global _recorder
    recorder = _recorder
    if recorder is None:
        with _recorder_lock:
            if _recorder is None:
                from orch.settings import get_settings

                settings = get_settings()
                _recorder = Recorder(interval=settings.record_batch_interval, max_pending=settings.record_buffer_limit)
                atexit.register(_recorder.close)
            recorder = _recorder
    return recorder


def existing_recorder() -> Recorder | None:
    """The process's recorder if one was made (``get_recorder`` would make one, and its client)."""
    return _recorder


def set_recorder(recorder: Recorder | None) -> Recorder | None:
    """Swap the process-wide recorder (``orch.testing`` uses this); returns the previous one."""
    global _recorder
    with _recorder_lock:
        previous, _recorder = _recorder, recorder
    if recorder is not None:
        atexit.register(recorder.close)
    return previous


_getrandbits = random.getrandbits
_time_ns = time.time_ns
_UUID = uuid.UUID
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = uuid.SafeUUID.unknown


_RAND_B = (1 << 62) - 1
_V7 = (0x7 << 76) | (0b10 << 62)


def fast_uuid7() -> uuid.UUID:
    """A time-ordered (version 7, RFC 9562) UUID without a system call: 48 bits of Unix time in milliseconds, then
    74 random bits. Task-run ids: rows keyed by ids that grow with time are appended at the end of the primary-key
    index instead of at random places in it, which keeps inserts cheap as the table grows (SQLite's B-tree and
    PostgreSQL's alike). 74 random bits per millisecond keep them unique.

    ``uuid.uuid4()`` would read ``os.urandom``, which releases the GIL; with the recorder thread busy, getting it
    back can cost milliseconds per task run. Run ids need uniqueness, not unpredictability, and ``random`` is seeded
    from the OS (and reseeded in forked children).
    """
    ms = _time_ns() // 1_000_000
    rand = _getrandbits(74)
    value = _new(_UUID)
    _set(value, "int", ((ms & 0xFFFF_FFFF_FFFF) << 80) | _V7 | ((rand >> 62) << 64) | (rand & _RAND_B))
    _set(value, "is_safe", _UNKNOWN)
    return value
