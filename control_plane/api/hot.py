"""Hot routes: the endpoints every run calls several times, served without FastAPI's per-request machinery.

Creating a flow run and proposing its states are what a busy control plane does all day (four calls per run).
FastAPI resolves each request's dependencies, validates the body field by field and runs the endpoint through a
chain of wrappers: ~400 µs of CPU per request on this project's reference machine, as much as the transition itself.
A hot route is a plain Starlette route placed ahead of the FastAPI route of the same path and method. It checks
the same scope with the same authenticator, validates the body with the same pydantic model in one pass
(``model_validate_json``), and calls the same handler as the FastAPI route. Validation errors are raised as
FastAPI's ``RequestValidationError``, so they answer the same 422 with the same ``detail`` shape. The FastAPI route
stays: it documents the endpoint in OpenAPI and serves it wherever hot routes are not installed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pydantic
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.routing import Route

from orch.control_plane.api.app import API_PREFIX
from orch.control_plane.api.security import Scope, require_scope

Handler = Callable[[Request], Awaitable[Response]]
Model = TypeVar("Model", bound=pydantic.BaseModel)

_ROUTES: list[Route] = []


def hot_route(path: str, scope: Scope) -> Callable[[Handler], Handler]:
    """Register ``handler`` for ``POST /api{path}``, behind the ``scope`` check."""

    def register(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            await require_scope(request, scope)
            return await handler(request)

        _ROUTES.append(Route(API_PREFIX + path, endpoint, methods=["POST"], include_in_schema=False))
        return handler

    return register


def routes() -> list[Route]:
    return list(_ROUTES)


def path_uuid(request: Request, name: str) -> uuid.UUID:
    raw = request.path_params[name]
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise RequestValidationError(
            [{"type": "uuid_parsing", "loc": ("path", name), "msg": "Input should be a valid UUID", "input": raw}]
        ) from None


async def body(request: Request, model: type[Model]) -> Model:
    """The request's JSON body as ``model``; a 422 like FastAPI's when it is not valid."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"null")
    except pydantic.ValidationError as exc:
        raise body_error(exc) from None


def body_error(exc: pydantic.ValidationError) -> RequestValidationError:
    """A body's validation error as FastAPI reports it (422, locations under ``body``)."""
    errors: list[Any] = []
    for error in exc.errors(include_url=False):
        if isinstance(error.get("input"), bytes):  # the whole body, undecodable: not echoed (as FastAPI)
            error["input"] = {}
        errors.append({**error, "loc": ("body", *error["loc"])})
    return RequestValidationError(errors)
