"""Run loggers: log lines that carry their flow-run / task-run ids, go to the control plane and echo to the console.

``get_run_logger()`` inside a flow or task returns a logger whose records carry the run's ids. Two handlers sit on
the ``orch`` logger, installed on the first run:

* the *API handler* turns each run record into a log dict and hands it to the run's recorder, whose background
  thread sends logs in batches (never blocking the caller) and flushes them at the end of the outermost flow run and
  at interpreter exit;
* the *console handler* prints ``HH:MM:SS.mmm | INFO    | Flow run 'name' - message`` like Prefect, at the level of
  ``ORCH_LOGGING_LEVEL``.

``log_prints=True`` turns ``print`` inside that run into INFO log lines. ``builtins.print`` is wrapped once; the
wrapper looks at a context variable the engines set per run, so a print in another thread or another run is left
alone (the variable follows contexts, not a global swap).
"""

from __future__ import annotations

import builtins
import contextvars
import logging
import sys
import time
from typing import TYPE_CHECKING, Any

from orch.context import flow_run_var, task_run_var

if TYPE_CHECKING:
    from orch.context import FlowRunContext, TaskRunContext

__all__ = ["get_logger", "get_run_logger"]

_FLOW_LOGGER = "orch.flow_runs"
_TASK_LOGGER = "orch.task_runs"


class RunLoggerAdapter(logging.LoggerAdapter):
    """Adds the run's identity to every record (``extra`` given per call is kept too)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = kwargs.get("extra")
        base = dict(self.extra or {})
        kwargs["extra"] = {**base, **extra} if extra else base
        return msg, kwargs


def get_logger(name: str = "orch") -> logging.Logger:
    """A plain orch logger (no run ids) for library code."""
    return logging.getLogger(name)


def get_run_logger() -> logging.LoggerAdapter:
    """The logger of the current flow or task run; raises ``RuntimeError`` outside a run."""
    task_ctx = task_run_var.get()
    if task_ctx is not None:
        return task_logger(task_ctx)
    flow_ctx = flow_run_var.get()
    if flow_ctx is not None:
        return flow_logger(flow_ctx)
    raise RuntimeError("There is no active flow or task run: get_run_logger() works only inside one.")


def flow_logger(ctx: FlowRunContext) -> logging.LoggerAdapter:
    setup_logging()
    return RunLoggerAdapter(
        logging.getLogger(_FLOW_LOGGER),
        {
            "orch_flow_run_id": ctx.flow_run_id,
            "orch_task_run_id": None,
            "orch_run_label": f"Flow run {ctx.flow_run_name!r}",
            "orch_recorder": ctx.recorder,
        },
    )


def task_logger(ctx: TaskRunContext) -> logging.LoggerAdapter:
    setup_logging()
    flow_ctx = ctx.flow_run
    return RunLoggerAdapter(
        logging.getLogger(_TASK_LOGGER),
        {
            "orch_flow_run_id": flow_ctx.flow_run_id if flow_ctx else None,
            "orch_task_run_id": ctx.task_run_id,
            "orch_run_label": f"Task run {ctx.task_run_name!r}",
            "orch_recorder": flow_ctx.recorder if flow_ctx else None,
        },
    )


class APILogHandler(logging.Handler):
    """Hands run records to the recorder as the API's log dicts (formatting the timestamp is left to it)."""

    def emit(self, record: logging.LogRecord) -> None:
        flow_run_id = getattr(record, "orch_flow_run_id", None)
        task_run_id = getattr(record, "orch_task_run_id", None)
        if flow_run_id is None and task_run_id is None:
            return
        recorder = getattr(record, "orch_recorder", None)
        if recorder is None:
            from orch._engine.recorder import get_recorder

            recorder = get_recorder()
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            recorder.log(
                {
                    "name": record.name,
                    "level": record.levelno,
                    "message": message,
                    "timestamp": record.created,
                    "flow_run_id": str(flow_run_id) if flow_run_id else None,
                    "task_run_id": str(task_run_id) if task_run_id else None,
                }
            )
        except Exception:
            self.handleError(record)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS.mmm | LEVEL   | Flow run 'name' - message``."""

    def format(self, record: logging.LogRecord) -> str:
        label = getattr(record, "orch_run_label", None) or record.name
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp}.{int(record.msecs):03d} | {record.levelname:<7} | {label} - {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners and notebooks replace it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(ConsoleFormatter())

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


_installed = False


def setup_logging(level: str | int | None = None) -> None:
    """Install the API and console handlers on the ``orch`` logger (once; later calls only change the level)."""
    global _installed
    root = logging.getLogger("orch")
    if _installed and level is None:
        return
    console = True
    if level is None:
        from orch.settings import get_settings

        settings = get_settings()
        level = settings.logging_level
        console = settings.log_to_console
    if isinstance(level, str):
        level = logging.getLevelName(level.upper())
        if not isinstance(level, int):
            level = logging.INFO
    if not _installed:
        root.addHandler(APILogHandler())
        if console:
            root.addHandler(_ConsoleHandler())
        _installed = True
    root.setLevel(level)


# -- log_prints ------------------------------------------------------------------------------------------------

_print_target: contextvars.ContextVar[logging.LoggerAdapter | None] = contextvars.ContextVar(
    "orch_print_target", default=None
)
_original_print = builtins.print


def _print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    target = _print_target.get()
    if target is None or (file is not None and file is not sys.stdout):
        _original_print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    target.info((sep if sep is not None else " ").join(str(a) for a in args))


def install_print_hook() -> None:
    """Wrap ``builtins.print`` once; the wrapper only redirects inside runs with ``log_prints``."""
    if builtins.print is not _print:
        builtins.print = _print


def redirect_prints(logger: logging.LoggerAdapter | None) -> contextvars.Token:
    """Send this context's prints to ``logger`` (``None``: print normally); reset with the returned token."""
    if logger is not None:
        install_print_hook()
    return _print_target.set(logger)


def restore_prints(token: contextvars.Token) -> None:
    _print_target.reset(token)
