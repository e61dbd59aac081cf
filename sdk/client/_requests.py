"""What each API call sends and how its answer is read, defined once for the sync and the async client."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] | None = None
    # A body already encoded as JSON (sent as is, instead of ``json``).
    content: bytes | None = None
    # Status codes that mean "no such object" and should parse as None instead of raising.
    none_on_404: bool = False


def dump(model: BaseModel) -> Any:
    return model.model_dump(mode="json", exclude_unset=True)


def as_list(model: type[BaseModel]) -> Callable[[Any], list[Any]]:
    adapter: TypeAdapter[list[Any]] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter.validate_python


def nothing(_: Any) -> None:
    return None


def raw(data: Any) -> Any:
    return data


def uid(value: uuid.UUID | str) -> str:
    return str(value)
