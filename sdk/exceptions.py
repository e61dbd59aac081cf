"""The exceptions users of orch can catch.

One root, so ``except OrchError`` catches everything orch raises on purpose::

    OrchError
    ├── ConfigurationError        bad settings, profile or project file
    ├── ObjectNotFound            the API answered 404
    ├── ObjectAlreadyExists       the API answered 409
    ├── InvalidInput              the API answered 422 (or the CLI refused an argument)
    ├── AuthenticationError       401 / 403: missing, wrong, expired or too weak API key
    ├── ServerUnavailable         the control plane could not be reached
    ├── OrchestrationRejected     the control plane refused a state transition
    ├── FlowRunAborted            the control plane told the engine to stop (ABORT)
    ├── ParameterValidationError  a flow was called with bad parameters
    ├── TaskTimeoutError / FlowTimeoutError  a run exceeded ``timeout_seconds``
    ├── UnfinishedRun             ``.result()`` on a state that is not final
    ├── UpstreamTaskError         a task's input came from a task that did not complete
    ├── CancelledRun / CrashedRun raised by ``State.result()`` for those states
    └── InfrastructureError       an agent could not launch or watch a run
"""

from __future__ import annotations


class OrchError(Exception):
    """Root of every error orch raises on purpose."""


class ConfigurationError(OrchError):
    """Settings, a profile or a project file are not valid."""


class ObjectNotFound(OrchError):
    """The object asked for does not exist (HTTP 404)."""


class ObjectAlreadyExists(OrchError):
    """An object with the same unique key exists already (HTTP 409)."""


class InvalidInput(OrchError):
    """The control plane refused the input (HTTP 422 or 400)."""


class AuthenticationError(OrchError):
    """The API key is missing, wrong, expired, revoked, or lacks the scope (HTTP 401/403)."""


class ServerUnavailable(OrchError):
    """The control plane could not be reached."""


class OrchestrationRejected(OrchError):
    """The control plane refused a proposed state transition."""


class FlowRunAborted(OrchError):
    """The control plane answered ABORT: this run must stop now."""


class ParameterValidationError(OrchError, ValueError):
    """A flow was called with parameters that do not match its signature."""


class TaskTimeoutError(OrchError, TimeoutError):
    """A task ran longer than its ``timeout_seconds``."""


class FlowTimeoutError(OrchError, TimeoutError):
    """A flow ran longer than its ``timeout_seconds``."""


class UnfinishedRun(OrchError):
    """``result()`` was asked of a state that is not final."""


class UpstreamTaskError(OrchError):
    """A task did not run because a run it depends on did not complete (raised through ``orch.futures``)."""


class CancelledRun(OrchError):
    """The run was cancelled."""


class CrashedRun(OrchError):
    """The run crashed: its process or infrastructure died without reporting a result."""


class InfrastructureError(OrchError):
    """An agent could not launch, watch or stop a run's infrastructure."""
