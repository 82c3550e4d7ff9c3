"""Errors as ``application/problem+json`` (RFC 9457), with field-level detail.

Every refusal says what was wrong in a sentence; validation problems list each field. An
unexpected exception is logged and answered 500 — by definition a bug to fix.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from aggregates.errors import InvalidValue, RuleBroken
from commands.api import InvalidHeader
from commands.errors import (
    ConcurrentChange,
    Forbidden,
    IdempotencyKeyReused,
    RecordNotFound,
    StaleVersion,
)
from crm.identity import Unauthenticated
from crm.policy import Forbidden as PolicyForbidden
from projections.listing import InvalidQuery
from read_api.records import RecordNotFound as ReadRecordNotFound

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the record's rules",
    412: "Precondition failed",
    422: "Invalid input",
    500: "Internal error",
}


def problem(
    request: Request,
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def field_name(location: tuple[Any, ...]) -> str:
    """``body.value`` → ``value``; ``query.from.date`` → ``from``; headers keep their place:
    the same names the service's own field errors use."""
    parts = [str(part) for part in location]
    if parts[:1] in (["query"], ["path"]):
        return parts[1] if len(parts) > 1 else parts[0]
    return ".".join(parts[1:] if parts[:1] == ["body"] else parts) or "body"


def register_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": field_name(tuple(e["loc"])), "message": e["msg"], "type": e["type"]}
            for e in exc.errors()
        ]
        return problem(request, 422, "The request has invalid fields.", errors)

    @app.exception_handler(InvalidValue)
    def invalid_value(request: Request, exc: InvalidValue) -> JSONResponse:
        errors = [{"field": exc.field, "message": exc.message}]
        return problem(request, 422, exc.message, errors)

    @app.exception_handler(InvalidQuery)
    def invalid_query(request: Request, exc: InvalidQuery) -> JSONResponse:
        errors = [{"field": exc.field, "message": exc.message}]
        return problem(request, 422, exc.message, errors)

    @app.exception_handler(InvalidHeader)
    def invalid_header(request: Request, exc: InvalidHeader) -> JSONResponse:
        errors = [{"field": f"header.{exc.header}", "message": exc.message}]
        return problem(request, 400, exc.message, errors)

    @app.exception_handler(RecordNotFound)
    def record_not_found(request: Request, exc: RecordNotFound) -> JSONResponse:
        if exc.field is None:
            return problem(request, 404, str(exc))
        return problem(request, 422, str(exc), [{"field": exc.field, "message": str(exc)}])

    @app.exception_handler(ReadRecordNotFound)
    def read_record_not_found(request: Request, exc: ReadRecordNotFound) -> JSONResponse:
        return problem(request, 404, str(exc))

    @app.exception_handler(RuleBroken)
    def rule_broken(request: Request, exc: RuleBroken) -> JSONResponse:
        return problem(request, 409, str(exc))

    @app.exception_handler(ConcurrentChange)
    def concurrent_change(request: Request, exc: ConcurrentChange) -> JSONResponse:
        return problem(request, 409, str(exc))

    @app.exception_handler(StaleVersion)
    def stale_version(request: Request, exc: StaleVersion) -> JSONResponse:
        return problem(request, 412, str(exc))

    @app.exception_handler(IdempotencyKeyReused)
    def key_reused(request: Request, exc: IdempotencyKeyReused) -> JSONResponse:
        errors = [{"field": "header.Idempotency-Key", "message": str(exc)}]
        return problem(request, 422, str(exc), errors)

    @app.exception_handler(Unauthenticated)
    def unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Bearer realm="monton-crm"'}
        return problem(request, 401, str(exc), headers=headers)

    @app.exception_handler(PolicyForbidden)
    def policy_forbidden(request: Request, exc: PolicyForbidden) -> JSONResponse:
        return problem(request, 403, str(exc))

    @app.exception_handler(Forbidden)
    def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return problem(request, 403, str(exc))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(request, exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(request, 500, "An unexpected error occurred; it has been logged.")
