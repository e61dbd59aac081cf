"""The one place that maps domain errors to HTTP answers. No client input may ever produce a 500."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from orch.exceptions import (
    AuthenticationError,
    InvalidInput,
    ObjectAlreadyExists,
    ObjectNotFound,
    OrchError,
)

logger = logging.getLogger("orch.control_plane.api")


class Forbidden(AuthenticationError):
    """The key is valid but its scope does not allow this (HTTP 403)."""


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True, default=str)
        return Response(body, status_code=422, media_type="application/json")

    @app.exception_handler(UnicodeEncodeError)
    async def _unicode(_: Request, exc: UnicodeEncodeError) -> JSONResponse:
        return JSONResponse(
            {"detail": "The request contains text that is not valid Unicode (e.g. a lone surrogate such as \\ud800)."},
            status_code=422,
        )

    @app.exception_handler(ObjectNotFound)
    async def _not_found(_: Request, exc: ObjectNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc) or "Not found."}, status_code=404)

    @app.exception_handler(ObjectAlreadyExists)
    async def _conflict(_: Request, exc: ObjectAlreadyExists) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidInput)
    async def _invalid(_: Request, exc: InvalidInput) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(AuthenticationError)
    async def _unauthenticated(_: Request, exc: AuthenticationError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="orch"'})

    @app.exception_handler(OrchError)
    async def _orch_error(_: Request, exc: OrchError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        logger.info("integrity error: %s", exc.orig)
        if "foreign key" in str(exc.orig).lower():
            return JSONResponse({"detail": "The request refers to an object that does not exist."}, status_code=422)
        return JSONResponse({"detail": "The request conflicts with stored data."}, status_code=409)

    @app.exception_handler(DataError)
    async def _data(_: Request, exc: DataError) -> JSONResponse:
        logger.info("data error: %s", exc.orig)
        return JSONResponse({"detail": "The database refused a value in the request."}, status_code=422)

    @app.exception_handler(OperationalError)
    async def _operational(_: Request, exc: OperationalError) -> JSONResponse:
        logger.warning("database unavailable: %s", exc.orig)
        return JSONResponse(
            {"detail": "The database is busy or unavailable; try again."},
            status_code=503,
            headers={"Retry-After": "1"},
        )
