"""Serializers: how a persisted result becomes bytes and back.

``"json"`` writes readable JSON (values must be JSON-serialisable, as in Prefect's ``JSONSerializer`` for plain
data); ``"pickle"`` and ``"cloudpickle"`` both use cloudpickle, which also handles lambdas and locally defined
classes (Prefect's ``PickleSerializer`` does the same).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

__all__ = ["SERIALIZERS", "CloudPickleSerializer", "JSONSerializer", "Serializer", "get_serializer"]


class Serializer(Protocol):
    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class JSONSerializer:
    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class CloudPickleSerializer:
    def __init__(self, name: str = "cloudpickle") -> None:
        self.name = name

    def dumps(self, value: Any) -> bytes:
        import cloudpickle

        return cloudpickle.dumps(value)

    def loads(self, data: bytes) -> Any:
        import pickle

        return pickle.loads(data)  # noqa: S301 - results are written by orch itself into the user's own storage


SERIALIZERS: dict[str, Serializer] = {
    "json": JSONSerializer(),
    "pickle": CloudPickleSerializer("pickle"),
    "cloudpickle": CloudPickleSerializer("cloudpickle"),
}


def get_serializer(name: str) -> Serializer:
    """The serializer called ``name``; a clear ``ValueError`` for an unknown one."""
    try:
        return SERIALIZERS[name]
    except KeyError:
        raise ValueError(f"Unknown result serializer {name!r}; use one of {sorted(SERIALIZERS)}.") from None
