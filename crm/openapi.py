"""The OpenAPI document: errors as RFC 9457 problems, and the 401/403 every guarded
endpoint may answer — what the service really sends, not FastAPI's defaults."""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from commands.api import COMMAND_HEADERS, takes_command_headers
from crm.policy import POLICY

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `errors` lists invalid fields.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string", "example": "Invalid input"},
        "status": {"type": "integer", "example": 422},
        "detail": {"type": "string", "example": "The request has invalid fields."},
        "instance": {"type": "string", "example": "/deals"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "field": {"type": "string", "example": "currency"},
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
GUARDED = {
    "401": {"description": "Missing or bad credentials"},
    "403": {"description": "The role may not do this, or the CRM is disabled"},
}


BAD_HEADER = {"description": "If-Match, Idempotency-Key or X-Correlation-ID is malformed"}


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        add_command_headers(schema, app)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        security = schema["components"].setdefault("securitySchemes", {})
        security.setdefault("HTTPBearer", {"type": "http", "scheme": "bearer"})
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                if POLICY.get((method.upper(), path)) is not None:
                    for code, response in GUARDED.items():
                        operation.setdefault("responses", {}).setdefault(code, dict(response))
                for code, response in operation.get("responses", {}).items():
                    if code.isdigit() and int(code) >= 400:
                        if code == "422":
                            response["description"] = "Invalid input, field by field"
                        response["content"] = {
                            "application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}
                            }
                        }
        app.openapi_schema = schema
        return schema

    return openapi


def add_command_headers(schema: dict[str, Any], app: FastAPI) -> None:
    """Every command operation documents the headers its endpoint reads itself, and the 400
    it answers when one is malformed."""
    for route in iter_route_contexts(app.routes):
        endpoint = route.original_route
        if isinstance(endpoint, APIRoute) and takes_command_headers(endpoint.dependant):
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                operation.setdefault("parameters", []).extend(deepcopy(COMMAND_HEADERS))
                operation.setdefault("responses", {}).setdefault("400", dict(BAD_HEADER))
