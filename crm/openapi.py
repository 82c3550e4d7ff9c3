"""The OpenAPI document: errors as RFC 9457 problems, and the 401/403 every guarded
endpoint may answer — what the service really sends, not FastAPI's defaults."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

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


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
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
