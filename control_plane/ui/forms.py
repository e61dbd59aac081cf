"""The deployment Run form: fields generated from a deployment's parameter JSON schema, and typed values back.

Each schema property becomes one input: ``boolean`` a checkbox, ``integer``/``number`` a number input, ``enum`` a
select, ``string`` a text input, and anything else (arrays, objects, unions) a JSON textarea. ``Optional[X]``
(``anyOf`` with ``null``) is ``X`` that may be left empty. The browser checks what HTML can (required, number
syntax, JSON syntax via app.js) before submitting; ``parse`` checks it all again on the server, and the deployment
model's own schema validation runs last — its messages are put next to the field they name.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

PREFIX = "p."  # form field names are p.<parameter>, so a parameter cannot collide with csrf or other fields
BOOL_MARK = ".__bool"  # a hidden field that says "this checkbox was on the form" (unchecked boxes send nothing)


@dataclass
class Field:
    name: str
    kind: str  # text | integer | number | boolean | select | json
    label: str
    description: str | None
    required: bool
    value: str  # as shown in the input
    checked: bool = False
    options: list[str] = field(default_factory=list)
    minimum: float | None = None
    maximum: float | None = None
    error: str | None = None

    @property
    def input_name(self) -> str:
        return PREFIX + self.name

    @property
    def input_id(self) -> str:
        return "param-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    for _ in range(10):
        ref = prop.get("$ref")
        if not isinstance(ref, str):
            break
        target = defs.get(ref.rsplit("/", 1)[-1])
        if not isinstance(target, dict):
            break
        prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    return prop


def _kind(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """(input kind, the property to read bounds/enum from, whether null is allowed)."""
    prop = _resolve(prop, defs)
    nullable = False
    options = prop.get("anyOf") or prop.get("oneOf")
    if isinstance(options, list):
        non_null = [_resolve(o, defs) for o in options if isinstance(o, dict) and o.get("type") != "null"]
        nullable = len(non_null) < len(options)
        if len(non_null) == 1:
            inner_kind, inner, _ = _kind(non_null[0], defs)
            return inner_kind, {**inner, **{k: v for k, v in prop.items() if k not in ("anyOf", "oneOf")}}, nullable
        return "json", prop, nullable
    if isinstance(prop.get("enum"), list) and all(isinstance(v, str | int | float) for v in prop["enum"]):
        return "select", prop, nullable
    kind = {"boolean": "boolean", "integer": "integer", "number": "number", "string": "text"}.get(
        str(prop.get("type")), "json"
    )
    return kind, prop, nullable


def _shown(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "json":
        return json.dumps(value, indent=2)
    return str(value)


def build_fields(schema: dict[str, Any], defaults: dict[str, Any]) -> list[Field]:
    """One field per schema property, pre-filled with the deployment's default, else the schema's."""
    properties = schema.get("properties") or {}
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    required = set(schema.get("required") or [])
    fields = []
    for name, raw in properties.items():
        if not isinstance(raw, dict):
            continue
        kind, prop, nullable = _kind(raw, defs)
        value = defaults[name] if name in defaults else raw.get("default", prop.get("default"))
        has_default = name in defaults or "default" in raw or "default" in prop
        f = Field(
            name=name,
            kind=kind,
            label=str(raw.get("title") or name),
            description=raw.get("description") or prop.get("description"),
            required=name in required and not has_default and not nullable,
            value=_shown(kind, value),
            checked=bool(value) if kind == "boolean" else False,
            options=[str(v) for v in prop.get("enum", [])] if kind == "select" else [],
            minimum=prop.get("minimum"),
            maximum=prop.get("maximum"),
        )
        fields.append(f)
    return fields


def parse(fields: list[Field], form: dict[str, str], schema: dict[str, Any]) -> dict[str, Any]:
    """Typed parameter values from the submitted form; sets ``error`` on each bad field (and its shown value)."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
    properties = schema.get("properties") or {}
    values: dict[str, Any] = {}
    for f in fields:
        raw = form.get(f.input_name)
        if f.kind == "boolean":
            if (f.input_name + BOOL_MARK) in form:
                f.checked = raw is not None
                values[f.name] = f.checked
            continue
        f.value = raw or ""
        text = (raw or "").strip()
        if not text:
            if f.required:
                f.error = "This parameter is required."
            continue
        try:
            values[f.name] = _convert(f, text, _kind(properties.get(f.name) or {}, defs)[1])
        except ValueError as exc:
            f.error = str(exc)
    return values


def _convert(f: Field, text: str, prop: dict[str, Any]) -> Any:
    if f.kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("Enter a whole number.") from None
    if f.kind == "number":
        try:
            return float(text)
        except ValueError:
            raise ValueError("Enter a number.") from None
    if f.kind == "select":
        for option in prop.get("enum", []):
            if str(option) == text:
                return option
        raise ValueError(f"Choose one of: {', '.join(f.options)}.")
    if f.kind == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    return text


_PROBLEM = re.compile(r"^\s*([^:;]+?)\s*:\s*(.+)$")


def attach_server_errors(fields: list[Field], message: str) -> str | None:
    """Put the model's validation messages ("Invalid parameters: who: ...; times: ...") next to their fields.
    Returns what could not be attached to a field (shown above the form), or ``None``."""
    by_name = {f.name: f for f in fields}
    body = message.split(":", 1)[1] if message.startswith("Invalid parameter") and ":" in message else None
    if body is None:
        return message
    left = []
    for problem in body.split("; "):
        match = _PROBLEM.match(problem)
        target = by_name.get(match.group(1).split(".")[0]) if match else None
        if match and target is not None:
            target.error = match.group(2).strip().rstrip(".") + "."
        else:
            left.append(problem.strip())
    return "; ".join(left) or None
