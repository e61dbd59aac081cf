"""The JSON schema of a flow's parameters, from the flow function's signature and type hints.

It is what the control plane checks a run's parameters against (``POST /api/deployments/{id}/create_flow_run``)
and what a UI can build a form from. pydantic writes it: one property per parameter, ``required`` for parameters
without a default, ``$defs`` for models and enums. A parameter whose type pydantic cannot describe (an arbitrary
class) gets an empty schema (anything goes) rather than failing the deploy. ``**kwargs`` allows other parameters
(``additionalProperties: true``); ``*args`` cannot be passed by name and is left out.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["parameter_schema"]


def parameter_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    from pydantic import ConfigDict, Field, create_model
    from pydantic.json_schema import PydanticJsonSchemaWarning

    hints = _hints(fn)
    fields: dict[str, Any] = {}
    required: list[str] = []
    extra = False
    order: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            extra = True
            continue
        order.append(param.name)
        annotation = hints.get(param.name, Any)
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        fields[param.name] = (annotation, param.default)

    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    with warnings.catch_warnings():
        # Defaults that are not JSON (a datetime is; an open file is not) are left out of the schema, on purpose.
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        for i, name in enumerate(order):
            annotation, default = fields[name]
            field_default = ... if default is inspect.Parameter.empty else default
            try:
                model = create_model(
                    f"p{i}",
                    __config__=ConfigDict(arbitrary_types_allowed=True),
                    value=(annotation, Field(field_default, title=name)),
                )
                schema = model.model_json_schema()
                prop = dict(schema["properties"]["value"])
                defs.update(schema.get("$defs", {}))
            except Exception:  # a type pydantic cannot describe: accept anything for it
                prop = {"title": name}
                if default is not inspect.Parameter.empty and _is_json(default):
                    prop["default"] = default
            properties[name] = prop
    out: dict[str, Any] = {"title": "Parameters", "type": "object", "properties": properties}
    if required:
        out["required"] = required
    if extra:
        out["additionalProperties"] = True
    if defs:
        out["$defs"] = defs
    return out


def _is_json(value: Any) -> bool:
    import json

    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """The type hints; when some cannot be resolved (a class defined inside a function), each one that can."""
    with contextlib.suppress(Exception):  # unresolvable forward references: fall back to one hint at a time
        return typing.get_type_hints(fn)
    out: dict[str, Any] = {}
    namespace = getattr(fn, "__globals__", {})
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        if not isinstance(annotation, str):
            out[name] = annotation
            continue
        try:
            out[name] = eval(annotation, namespace)  # noqa: S307 - the user's own annotation, as typing would do
        except Exception:
            out[name] = Any
    return out
