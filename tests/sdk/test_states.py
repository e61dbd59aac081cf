"""States: constructors, types and names as on the server, results and exceptions, the API form."""

from __future__ import annotations

import datetime as dt
import pickle

import pytest

from orch import states
from orch.exceptions import CancelledRun, CrashedRun, UnfinishedRun
from orch.states import State, StateType

pytestmark = pytest.mark.unit


def test_state_types_mirror_the_server_enum() -> None:
    from orch.control_plane.schemas.states import DEFAULT_NAMES
    from orch.control_plane.schemas.states import StateType as ApiStateType

    assert [t.value for t in StateType] == [t.value for t in ApiStateType]
    for api_type, name in DEFAULT_NAMES.items():
        assert State(StateType(api_type.value)).name == name


@pytest.mark.parametrize(
    ("make", "type_", "name"),
    [
        (states.Scheduled, StateType.SCHEDULED, "Scheduled"),
        (states.Late, StateType.SCHEDULED, "Late"),
        (states.AwaitingRetry, StateType.SCHEDULED, "AwaitingRetry"),
        (states.Pending, StateType.PENDING, "Pending"),
        (states.Running, StateType.RUNNING, "Running"),
        (states.Retrying, StateType.RUNNING, "Retrying"),
        (states.Completed, StateType.COMPLETED, "Completed"),
        (states.Cached, StateType.COMPLETED, "Cached"),
        (states.Failed, StateType.FAILED, "Failed"),
        (states.TimedOut, StateType.FAILED, "TimedOut"),
        (states.Crashed, StateType.CRASHED, "Crashed"),
        (states.Cancelling, StateType.CANCELLING, "Cancelling"),
        (states.Cancelled, StateType.CANCELLED, "Cancelled"),
        (states.Paused, StateType.PAUSED, "Paused"),
    ],
)
def test_constructors_give_prefects_type_and_name(make: object, type_: StateType, name: str) -> None:
    state = make()  # type: ignore[operator]
    assert isinstance(state, State)
    assert (state.type, state.name) == (type_, name)
    assert isinstance(state.timestamp, dt.datetime)
    assert state.timestamp.tzinfo is not None


def test_predicates() -> None:
    assert states.Completed(1).is_completed()
    assert states.Completed(1).is_final()
    assert states.Failed().is_failed()
    assert states.Failed().is_final()
    assert states.Crashed().is_crashed()
    assert states.Cancelled().is_cancelled()
    assert states.Running().is_running()
    assert not states.Running().is_final()
    assert states.Pending().is_pending()
    assert states.Late().is_scheduled()
    assert states.Paused().is_paused()


def test_result_returns_the_value_or_raises_the_stored_exception() -> None:
    assert states.Completed({"a": 1}).result() == {"a": 1}
    error = ValueError("boom")
    failed = states.Failed(error)
    with pytest.raises(ValueError, match="boom"):
        failed.result()
    assert failed.result(raise_on_failure=False) is error
    assert failed.message == "ValueError: boom"
    assert "ValueError: boom" in failed.details["traceback"]
    with pytest.raises(CrashedRun):
        states.Crashed(message="gone").result()
    with pytest.raises(CancelledRun):
        states.Cancelled().result()
    with pytest.raises(UnfinishedRun):
        states.Running().result()


def test_api_form_matches_state_create() -> None:
    from orch.control_plane.schemas.states import StateCreate

    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for state in (states.AwaitingRetry(when, message="later"), states.Completed(5, data={"storage": "s", "key": "k"})):
        api = state.to_api()
        assert set(api) == {"type", "name", "message", "timestamp", "state_details", "data"}
        parsed = StateCreate.model_validate(api)
        assert parsed.type.value == state.type.value
        assert parsed.name == state.name
    assert StateCreate.model_validate(states.AwaitingRetry(when).to_api()).state_details.scheduled_time == when
    # An in-memory result never travels; only a reference to a persisted one does.
    assert states.Completed(object()).to_api()["data"] is None


def test_from_api_round_trip_and_pickling() -> None:
    from orch.control_plane.schemas.states import State as ApiState

    api = ApiState.model_validate({**states.Late(message="m").to_api()})
    back = State.from_api(api)
    assert (back.type, back.name, back.message) == (StateType.SCHEDULED, "Late", "m")
    copy = pickle.loads(pickle.dumps(states.Completed([1, 2])))  # noqa: S301 - our own bytes
    assert copy.result() == [1, 2]
    empty = pickle.loads(pickle.dumps(states.Cancelled()))  # noqa: S301 - our own bytes
    with pytest.raises(CancelledRun):
        empty.result()


def test_state_is_cheap() -> None:
    assert not hasattr(State(StateType.RUNNING), "__dict__")


def test_iso_utc_is_fromtimestamps_isoformat_character_for_character() -> None:
    """The recorder formats every state's time with ``iso_utc`` (a per-second cache and the microseconds rounded
    half to even, as ``datetime.fromtimestamp`` rounds them): it must write exactly what datetime writes."""
    import datetime as dt
    import random
    import time

    from orch.states import iso_utc

    rng = random.Random(3)
    now = time.time()
    values = [now + rng.uniform(-1e6, 1e6) for _ in range(100_000)]
    # Whole seconds, exact halves of a microsecond (ties), and fractions that round up into the next second.
    values += [
        rng.randrange(4_000_000_000) + rng.choice([0.0, 5e-7, 1.5e-6, 0.9999995, 0.99999999, 0.25])
        for _ in range(50_000)
    ]
    values += [0.0, 1e-7, 0.9999999, 59.9999996, 86_399.9999995, -1.5, -0.0000004]
    for value in values:
        assert iso_utc(value) == dt.datetime.fromtimestamp(value, dt.UTC).isoformat(), value
