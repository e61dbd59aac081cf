"""Flow parameters: validation against type hints, and the JSON-safe form recorded with the flow run.

Validation builds, once per flow, a pydantic model with one field per parameter (aliased, so parameter names such
as ``json`` or ``_private`` cannot clash with pydantic's own attributes) and validates each call's arguments
through it in lax mode: ``"3"`` becomes ``3`` for an ``int`` parameter, a dict becomes a model. Parameters without a
hint accept anything. pydantic is imported here only, on the first call of a validating flow.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
import typing
import uuid
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

from orch.exceptions import ParameterValidationError


@dataclasses.dataclass(slots=True)
class Validator:
    model: Any
    fields: dict[str, str]  # parameter name -> field name


def build_validator(fn: Callable[..., Any], flow_name: str) -> Validator:
    from pydantic import ConfigDict, Field, create_model

    hints = _hints(fn)
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for i, param in enumerate(inspect.signature(fn).parameters.values()):
        annotation = hints.get(param.name, Any)
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            annotation = tuple[annotation, ...]  # type: ignore[valid-type]
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            annotation = dict[str, annotation]  # type: ignore[valid-type]
        default = ... if param.default is inspect.Parameter.empty else param.default
        field_name = f"p{i}"
        names[param.name] = field_name
        fields[field_name] = (annotation, Field(default, alias=param.name))
    model = create_model(
        f"{flow_name}_parameters",
        __config__=ConfigDict(arbitrary_types_allowed=True, populate_by_name=False),
        **fields,
    )
    return Validator(model, names)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' type hints; one that cannot be resolved (a local class named in a string) becomes Any."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: S110 - fall back to resolving one hint at a time
        pass
    closure = getattr(fn, "__closure__", None) or ()
    local_names = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in closure), strict=False))
    hints: dict[str, Any] = {}
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, fn.__globals__, local_names)  # noqa: S307 - the user's own annotation
            except Exception:
                annotation = Any
        hints[name] = annotation
    return hints


def validate_parameters(validator: Validator, params: dict[str, Any], flow_name: str) -> dict[str, Any]:
    from pydantic import ValidationError

    try:
        model = validator.model.model_validate(params)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error.get("loc") or ("?",)
            where = ".".join(str(part) for part in loc)
            problems.append(f"parameter {where!r}: {error.get('msg')} (got {error.get('input')!r})")
        raise ParameterValidationError(
            f"Flow {flow_name!r} was called with bad parameters: " + "; ".join(problems)
        ) from None
    return {name: getattr(model, field) for name, field in validator.fields.items()}


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe rendering of a parameter for the API (unknown objects become their ``repr``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth > 20:
        return repr(value)[:1000]
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # noqa: S110 - fall back to repr below
            pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), depth + 1)
    return repr(value)[:1000]
