"""orch: workflows in plain Python, with Prefect 3's API (``from orch import flow, task``).

Names are loaded on first use (module ``__getattr__``), so ``import orch`` stays cheap: the control plane, FastAPI,
SQLAlchemy, httpx, pydantic and boto3 are imported only when a flow first runs or a client is first asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "State",
    "Task",
    "__version__",
    "allow_failure",
    "flow",
    "get_client",
    "get_run_logger",
    "tags",
    "task",
    "unmapped",
]

# name -> module it lives in (relative to this package)
_LAZY = {
    "flow": "orch.flows",
    "Flow": "orch.flows",
    "task": "orch.tasks",
    "Task": "orch.tasks",
    "State": "orch.states",
    "get_run_logger": "orch.logging",
    "tags": "orch.context",
    "unmapped": "orch._annotations",
    "allow_failure": "orch._annotations",
    "get_client": "orch.client",
}

if TYPE_CHECKING:
    from orch._annotations import allow_failure, unmapped
    from orch.client import get_client
    from orch.context import tags
    from orch.flows import Flow, flow
    from orch.logging import get_run_logger
    from orch.states import State
    from orch.tasks import Task, task


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name.startswith("__"):
            raise AttributeError(f"module 'orch' has no attribute {name!r}")
        # Submodules such as orch.states and orch.runtime are importable as attributes too.
        try:
            return importlib.import_module(f"orch.{name}")
        except ModuleNotFoundError:
            raise AttributeError(f"module 'orch' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
