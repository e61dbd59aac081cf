"""Loading a flow from an entrypoint, as Prefect does: ``path/to/file.py:flow_function`` or ``package.module:flow``.

The file is imported (its top-level code runs, as for any import) under a private module name, never as
``__main__``, so an ``if __name__ == "__main__":`` block does not run and neither does the flow. The project folder is
put first on ``sys.path`` while importing, so the file's own imports of sibling modules work as they will in the
engine, which imports the same entrypoint from the unpacked bundle.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orch.exceptions import ConfigurationError

__all__ = ["load_flow"]


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def load_flow(entrypoint: str, project_dir: str | Path = ".") -> Any:
    """The ``orch.Flow`` object that ``entrypoint`` names, relative to ``project_dir``."""
    from orch.flows import Flow

    where, sep, attr = entrypoint.rpartition(":")
    if not sep or not where or not attr:
        raise ConfigurationError(f"entrypoint must look like path/to/file.py:flow_function, got {entrypoint!r}")
    root = Path(project_dir).resolve()
    with _on_path(root):
        if where.endswith(".py") or "/" in where or "\\" in where:
            module = _import_file(root / where, entrypoint)
        else:
            try:
                module = importlib.import_module(where)
            except Exception as exc:
                raise ConfigurationError(f"entrypoint {entrypoint!r}: cannot import {where}: {_reason(exc)}") from None
    obj = getattr(module, attr, None)
    if obj is None:
        raise ConfigurationError(f"entrypoint {entrypoint!r}: {where} has no {attr!r}.")
    if not isinstance(obj, Flow):
        raise ConfigurationError(
            f"entrypoint {entrypoint!r}: {attr!r} is a {type(obj).__name__}, not a flow (decorate it with @flow)."
        )
    return obj


def _import_file(path: Path, entrypoint: str) -> Any:
    if not path.is_file():
        raise ConfigurationError(f"entrypoint {entrypoint!r}: {path} does not exist.")
    # A private, stable name per file: importing the same entrypoint twice reuses nothing stale from another file.
    name = f"orch_entrypoint_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"entrypoint {entrypoint!r}: {path} cannot be imported.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise ConfigurationError(f"entrypoint {entrypoint!r}: importing {path.name} failed: {_reason(exc)}") from None
    return module


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
