"""Argument wrappers that change how a task call treats one argument (as in Prefect's ``utilities.annotations``).

``unmapped(x)``: in ``task.map(...)``, pass ``x`` whole to every mapped run instead of iterating over it.
``allow_failure(future)``: let the downstream task run even when this upstream failed; it receives the exception
as the value.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["allow_failure", "unmapped"]


class _Wrapper(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"

    def __getstate__(self) -> Any:
        return self.value

    def __setstate__(self, value: Any) -> None:
        self.value = value


class unmapped(_Wrapper[T]):
    """Do not map over this argument in ``Task.map``: every mapped run gets the whole value."""

    def __getitem__(self, index: Any) -> T:
        return self.value


class allow_failure(_Wrapper[T]):
    """Run the downstream task even if this upstream failed (it receives the upstream's exception as the value)."""
