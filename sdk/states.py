"""Run states as the SDK sees them: cheap objects with a type, a name, and (in memory) the run's result.

A state is a *type* the control plane reasons about (``SCHEDULED`` ... ``CANCELLING``) and a *name* users read.
Several names share a type, as in Prefect: ``Late`` and ``AwaitingRetry`` are ``SCHEDULED``, ``Retrying`` is
``RUNNING``, ``Cached`` is ``COMPLETED``, ``TimedOut`` is ``FAILED``.

The SDK creates several states per task run, so :class:`State` is a slotted class, not a pydantic model: building
one costs a few hundred nanoseconds. Its timestamp is kept as a float and turned into a datetime only when somebody
asks. When a state is recorded it becomes the API's ``StateCreate`` dict (:meth:`State.to_api`); the in-memory
result never leaves the process, only a reference to a persisted result does.

``StateType`` mirrors ``orch.control_plane.schemas.states.StateType`` value for value (a test pins it); it is
repeated here because importing the API schema loads pydantic, which ``import orch`` must not do.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import time
import traceback
from typing import Any

from orch.exceptions import CancelledRun, CrashedRun, UnfinishedRun

__all__ = [
    "AwaitingRetry",
    "Cached",
    "Cancelled",
    "Cancelling",
    "Completed",
    "Crashed",
    "Failed",
    "Late",
    "Paused",
    "Pending",
    "Retrying",
    "Running",
    "Scheduled",
    "State",
    "StateType",
    "TimedOut",
]


class StateType(enum.StrEnum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"
    CANCELLING = "CANCELLING"


FINAL_TYPES = frozenset({StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED})

_DEFAULT_NAMES = {
    StateType.SCHEDULED: "Scheduled",
    StateType.PENDING: "Pending",
    StateType.RUNNING: "Running",
    StateType.COMPLETED: "Completed",
    StateType.FAILED: "Failed",
    StateType.CANCELLED: "Cancelled",
    StateType.CRASHED: "Crashed",
    StateType.PAUSED: "Paused",
    StateType.CANCELLING: "Cancelling",
}


class _NoResult:
    """Marks "no in-memory result"; pickles to the same object so states survive a trip to a worker."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "_NO_RESULT"


_NO_RESULT: Any = _NoResult()


# The last whole second formatted by ``iso_utc`` and its text ("YYYY-MM-DDTHH:MM:SS"); one tuple, replaced whole, so
# threads never see a second with another second's text.
_last_second: tuple[int, str] = (-1, "")


def iso_utc(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat()``, character for character (a test compares them on random
    values), at about a third of the cost: every task run's states are formatted with it. States come seconds apart
    at most, so the date and time of day are formatted once per second and only the microseconds per call; they
    are rounded as ``fromtimestamp`` rounds them (half to even, of the fraction's double)."""
    global _last_second
    if ts < 0:
        return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
    fraction, whole = math.modf(ts)
    second = int(whole)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        second += 1
        micro -= 1_000_000
    cached_second, text = _last_second
    if cached_second != second:
        text = dt.datetime.fromtimestamp(second, dt.UTC).isoformat()[:19]
        _last_second = (second, text)
    return f"{text}.{micro:06d}+00:00" if micro else f"{text}+00:00"


class State:
    """One state of a flow or task run.

    ``result()`` gives the run's return value for a completed state, raises the stored exception for a failed one,
    and raises :class:`~orch.exceptions.UnfinishedRun` for a state that is not final. ``details`` holds the API's
    ``state_details`` fields that are set (``scheduled_time`` as an ISO string, ``cache_key``, ...); ``data`` is the
    reference to a persisted result (``{"storage", "key", "serializer"}``) or ``None``.
    """

    __slots__ = ("_result", "_ts", "data", "details", "message", "name", "type")

    def __init__(
        self,
        type: StateType,
        name: str | None = None,
        message: str | None = None,
        *,
        result: Any = _NO_RESULT,
        data: dict[str, Any] | None = None,
        details: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        self.type = type
        self.name = name or _DEFAULT_NAMES[type]
        self.message = message
        self._result = result
        self.data = data
        self.details = details
        self._ts = time.time() if timestamp is None else timestamp

    # -- what users read ---------------------------------------------------------------------------------------

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._ts, dt.UTC)

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's result; for a failed, crashed or cancelled state, raise (or return) the exception."""
        if self.type in (StateType.FAILED, StateType.CRASHED, StateType.CANCELLED):
            exc = self._exception()
            if raise_on_failure:
                raise exc
            return exc
        if self.type is not StateType.COMPLETED:
            raise UnfinishedRun(f"The run is {self.name!r}; it has no result yet.")
        if self._result is _NO_RESULT:
            if self.data is not None:
                from orch.results import load_reference

                self._result = load_reference(self.data)
            else:
                return None
        return self._result

    def _exception(self) -> BaseException:
        value = self._result
        if isinstance(value, BaseException):
            return value
        if self.type is StateType.CRASHED:
            return CrashedRun(self.message or "The run crashed.")
        if self.type is StateType.CANCELLED:
            return CancelledRun(self.message or "The run was cancelled.")
        from orch.exceptions import OrchError

        return OrchError(self.message or f"The run ended in state {self.name!r}.")

    def is_scheduled(self) -> bool:
        return self.type is StateType.SCHEDULED

    def is_pending(self) -> bool:
        return self.type is StateType.PENDING

    def is_running(self) -> bool:
        return self.type is StateType.RUNNING

    def is_completed(self) -> bool:
        return self.type is StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type is StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type is StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type is StateType.CANCELLED

    def is_cancelling(self) -> bool:
        return self.type is StateType.CANCELLING

    def is_paused(self) -> bool:
        return self.type is StateType.PAUSED

    def is_final(self) -> bool:
        return self.type in FINAL_TYPES

    def __repr__(self) -> str:
        parts = [] if self.name == _DEFAULT_NAMES[self.type] else [f"type={self.type.value}"]
        if self.message:
            parts.append(f"message={self.message!r}")
        return f"{self.name}({', '.join(parts)})"

    # -- the wire form -----------------------------------------------------------------------------------------

    def to_api(self) -> dict[str, Any]:
        """The API's ``StateCreate`` shape; only a persisted-result reference travels as ``data``."""
        return {
            "type": self.type.value,
            "name": self.name,
            "message": self.message,
            "timestamp": iso_utc(self._ts),
            "state_details": dict(self.details) if self.details else {},
            "data": self.data,
        }

    @classmethod
    def from_api(cls, state: Any) -> State:
        """A SDK state from the server's ``State`` model (or a dict of the same shape)."""
        get = state.get if isinstance(state, dict) else lambda key: getattr(state, key, None)
        details = get("state_details")
        if details is not None and not isinstance(details, dict):
            details = details.model_dump(mode="json", exclude_none=True)
        stamp = get("timestamp")
        if isinstance(stamp, str):
            stamp = dt.datetime.fromisoformat(stamp)
        return cls(
            StateType(str(get("type"))),
            get("name"),
            get("message"),
            data=get("data"),
            details={k: v for k, v in (details or {}).items() if v is not None} or None,
            timestamp=stamp.timestamp() if stamp is not None else None,
        )


def _exception_message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _with_exception(state: State, exc: BaseException) -> State:
    tb = "".join(traceback.format_exception(exc))
    state.details = {**(state.details or {}), "traceback": tb[-100_000:]}
    return state


# -- constructors, named as in Prefect ---------------------------------------------------------------------------


def Scheduled(scheduled_time: dt.datetime | None = None, name: str = "Scheduled", message: str | None = None) -> State:
    when = scheduled_time or dt.datetime.now(dt.UTC)
    return State(StateType.SCHEDULED, name, message, details={"scheduled_time": when.isoformat()})


def Late(scheduled_time: dt.datetime | None = None, message: str | None = None) -> State:
    return Scheduled(scheduled_time, "Late", message)


def AwaitingRetry(scheduled_time: dt.datetime | None = None, message: str | None = None) -> State:
    return Scheduled(scheduled_time, "AwaitingRetry", message)


def Pending(message: str | None = None) -> State:
    return State(StateType.PENDING, "Pending", message)


def Running(message: str | None = None) -> State:
    return State(StateType.RUNNING, "Running", message)


def Retrying(message: str | None = None) -> State:
    return State(StateType.RUNNING, "Retrying", message)


def Completed(result: Any = None, message: str | None = None, data: dict[str, Any] | None = None) -> State:
    return State(StateType.COMPLETED, "Completed", message, result=result, data=data)


def Cached(result: Any = None, message: str | None = None, data: dict[str, Any] | None = None) -> State:
    return State(StateType.COMPLETED, "Cached", message, result=result, data=data)


def Failed(exception: BaseException | None = None, message: str | None = None, name: str = "Failed") -> State:
    if exception is None:
        return State(StateType.FAILED, name, message)
    state = State(StateType.FAILED, name, message or _exception_message(exception), result=exception)
    return _with_exception(state, exception)


def TimedOut(exception: BaseException | None = None, message: str | None = None) -> State:
    return Failed(exception, message, name="TimedOut")


def Crashed(exception: BaseException | None = None, message: str | None = None) -> State:
    if exception is None:
        return State(StateType.CRASHED, "Crashed", message)
    state = State(StateType.CRASHED, "Crashed", message or _exception_message(exception), result=exception)
    return _with_exception(state, exception)


def Cancelling(message: str | None = None) -> State:
    return State(StateType.CANCELLING, "Cancelling", message)


def Cancelled(message: str | None = None, exception: BaseException | None = None) -> State:
    return State(StateType.CANCELLED, "Cancelled", message, result=exception if exception else _NO_RESULT)


def Paused(message: str | None = None) -> State:
    return State(StateType.PAUSED, "Paused", message)
