"""Binding call arguments to a function's parameters, fast.

Runs record their parameters by name, and cache keys hash them by name, so every flow and task call turns
``(args, kwargs)`` into a ``{name: value}`` dict and back. ``inspect.Signature.bind`` costs several microseconds;
for the common shape (no positional-only parameters, no ``*args``/``**kwargs``) a precomputed zip does the same in
a fraction of that, and anything unusual falls back to ``bind`` (which also produces Python's own error messages).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

_EMPTY = inspect.Parameter.empty


class Binder:
    """Turns call arguments into a parameters dict and a parameters dict back into a call."""

    __slots__ = ("defaults", "fn", "n_positional", "names", "signature", "simple")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())
        self.names = tuple(p.name for p in params)
        self.defaults = {p.name: p.default for p in params if p.default is not _EMPTY}
        self.simple = all(
            p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY) for p in params
        )
        self.n_positional = sum(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """``{name: value}`` for every parameter, defaults included; ``TypeError`` like Python's for a bad call."""
        names = self.names
        if self.simple and len(args) <= self.n_positional:
            params = dict(zip(names, args, strict=False))
            if kwargs:
                for key in kwargs:
                    if key in params or key not in names:
                        return self._slow(args, kwargs)
                params.update(kwargs)
            if len(params) < len(names):
                for name in names:
                    if name not in params:
                        if name not in self.defaults:
                            return self._slow(args, kwargs)
                        params[name] = self.defaults[name]
            return params
        return self._slow(args, kwargs)

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def call(self, fn: Callable[..., Any], params: dict[str, Any]) -> Any:
        """Call ``fn`` (this binder's function, or a wrapper of it) with a parameters dict."""
        if self.simple:
            return fn(**params)
        bound = inspect.BoundArguments(self.signature, params)
        return fn(*bound.args, **bound.kwargs)
