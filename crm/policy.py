"""The access policy: one declared entry per endpoint, checked before the endpoint runs.

Every route of the app must appear here (the access-matrix test fails otherwise, and an
endpoint missing at run time is refused). ``PUBLIC`` endpoints need no credentials. The
:class:`AccessControl` middleware enforces it on every request.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from aggregates.access import Capability, may
from crm.identity import Actor, Authenticator, Unauthenticated

MAX_SEGMENTS = 256  # first path segments remembered (unknown ones are not worth more)
PUBLIC: Final = None
MISSING: Final = object()
READ_RECORDS, MANAGE_RECORDS = Capability.READ_RECORDS, Capability.MANAGE_RECORDS
READ_DEALS, CREATE_DEALS = Capability.READ_DEALS, Capability.CREATE_DEALS
CHANGE_DEALS, ADMINISTER = Capability.CHANGE_DEALS, Capability.ADMINISTER

POLICY: Final[dict[tuple[str, str], Capability | None]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # clients and contacts
    ("POST", "/clients"): MANAGE_RECORDS,
    ("PATCH", "/clients/{client_id}"): MANAGE_RECORDS,
    ("POST", "/clients/{client_id}/status"): MANAGE_RECORDS,
    ("PUT", "/clients/{client_id}/primary-contact"): MANAGE_RECORDS,
    ("POST", "/clients/{client_id}/archive"): MANAGE_RECORDS,
    ("POST", "/clients/{client_id}/restore"): MANAGE_RECORDS,
    ("GET", "/clients"): READ_RECORDS,
    ("GET", "/clients/{record_id}"): READ_RECORDS,
    ("GET", "/clients/{record_id}/history"): ADMINISTER,
    ("GET", "/clients/{record_id}/state"): ADMINISTER,
    ("POST", "/contacts"): MANAGE_RECORDS,
    ("PATCH", "/contacts/{contact_id}"): MANAGE_RECORDS,
    ("POST", "/contacts/{contact_id}/link"): MANAGE_RECORDS,
    ("POST", "/contacts/{contact_id}/unlink"): MANAGE_RECORDS,
    ("POST", "/contacts/{contact_id}/archive"): MANAGE_RECORDS,
    ("POST", "/contacts/{contact_id}/restore"): MANAGE_RECORDS,
    ("GET", "/contacts"): READ_RECORDS,
    ("GET", "/contacts/{record_id}"): READ_RECORDS,
    ("GET", "/contacts/{record_id}/history"): ADMINISTER,
    ("GET", "/contacts/{record_id}/state"): ADMINISTER,
    # deals
    ("POST", "/deals"): CREATE_DEALS,
    ("PUT", "/deals/{deal_id}/owner"): CREATE_DEALS,
    ("POST", "/deals/{deal_id}/archive"): CREATE_DEALS,
    ("POST", "/deals/{deal_id}/stage"): CHANGE_DEALS,
    ("PUT", "/deals/{deal_id}/value"): CHANGE_DEALS,
    ("PUT", "/deals/{deal_id}/expected-close-date"): CHANGE_DEALS,
    ("PUT", "/deals/{deal_id}/probability"): CHANGE_DEALS,
    ("PUT", "/deals/{deal_id}/stakeholders"): CHANGE_DEALS,
    ("PATCH", "/deals/{deal_id}"): CHANGE_DEALS,
    ("POST", "/deals/{deal_id}/win"): CHANGE_DEALS,
    ("POST", "/deals/{deal_id}/lose"): CHANGE_DEALS,
    ("POST", "/deals/{deal_id}/reopen"): CHANGE_DEALS,
    ("POST", "/deals/{deal_id}/pipeline"): CHANGE_DEALS,
    ("GET", "/deals"): READ_DEALS,
    ("GET", "/deals/{record_id}"): READ_DEALS,
    ("GET", "/deals/{record_id}/history"): ADMINISTER,
    ("GET", "/deals/{record_id}/state"): ADMINISTER,
    ("GET", "/analytics/pipeline-value"): READ_DEALS,
    ("GET", "/analytics/win-rate"): READ_DEALS,
    ("GET", "/analytics/sales-cycle"): READ_DEALS,
    ("GET", "/analytics/average-deal-size"): READ_DEALS,
    ("GET", "/analytics/conversion"): READ_DEALS,
    ("GET", "/analytics/time-in-stage"): READ_DEALS,
    ("GET", "/analytics/time-in-stage/visits"): READ_DEALS,
    ("GET", "/analytics/rotting"): READ_DEALS,
    ("GET", "/analytics/forecast"): READ_DEALS,
    ("GET", "/analytics/forecast/history"): READ_DEALS,
    ("GET", "/analytics/win-loss"): READ_DEALS,
    ("GET", "/analytics/salespeople"): READ_DEALS,
    # pipelines and exchange rates: settings
    ("POST", "/pipelines"): ADMINISTER,
    ("PATCH", "/pipelines/{pipeline_id}"): ADMINISTER,
    ("POST", "/pipelines/{pipeline_id}/stages"): ADMINISTER,
    ("PATCH", "/pipelines/{pipeline_id}/stages/{stage_id}"): ADMINISTER,
    ("PUT", "/pipelines/{pipeline_id}/stage-order"): ADMINISTER,
    ("DELETE", "/pipelines/{pipeline_id}/stages/{stage_id}"): ADMINISTER,
    ("GET", "/pipelines"): READ_DEALS,
    ("GET", "/pipelines/{pipeline_id}"): READ_DEALS,
    ("PUT", "/exchange-rates/{currency}"): ADMINISTER,
    ("GET", "/exchange-rates"): READ_DEALS,
    # administration: open to ADMIN even while the CRM is disabled, to switch it back on
    ("GET", "/organization"): ADMINISTER,
    ("PATCH", "/organization"): ADMINISTER,
    ("GET", "/users"): ADMINISTER,
    ("POST", "/users"): ADMINISTER,
    ("PUT", "/users/{user_id}/role"): ADMINISTER,
    ("DELETE", "/users/{user_id}"): ADMINISTER,
    ("POST", "/users/{user_id}/tokens"): ADMINISTER,
    ("GET", "/tokens"): ADMINISTER,
    ("DELETE", "/tokens/{token_id}"): ADMINISTER,
    ("GET", "/audit"): ADMINISTER,
}
OUTSIDE_CRM: Final = frozenset(
    key for key in POLICY if key[1].startswith(("/organization", "/users", "/tokens"))
)


class Forbidden(Exception):
    """The caller may not use this endpoint (HTTP 403); the message says why."""


def check_access(actor: Actor, endpoint: tuple[str, str]) -> None:
    """Refuse unless the actor's role may use this endpoint's capability."""
    capability = POLICY.get(endpoint, MISSING)
    if capability is MISSING:
        raise Forbidden(f"{endpoint[0]} {endpoint[1]} has no access policy; it is refused.")
    if capability is None:
        return
    assert isinstance(capability, Capability)
    if not actor.access.crm_enabled and endpoint not in OUTSIDE_CRM:
        raise Forbidden(f"CRM is not enabled for organization {actor.organization_name}.")
    if not may(actor.role, capability, actor.access):
        raise Forbidden(f"Role {actor.role.value} may not {capability.value}.")


class AccessControl:
    """ASGI middleware: authenticate and authorize every request against :data:`POLICY`
    before the app reads its body, so a caller who may not call an endpoint learns nothing
    else about it (not even that the body was malformed)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: list[Any] | None = None
        self._by_segment: dict[str, list[Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fastapi_app: FastAPI = scope["app"]
        endpoint = self.endpoint_of(fastapi_app, scope)
        if endpoint is None or POLICY.get(endpoint, MISSING) is None:
            await self.app(scope, receive, send)  # no such route (404/405), or public
            return
        credential = bearer_credential(Headers(scope=scope).get("authorization"))
        authenticator: Authenticator = fastapi_app.state.authenticator
        try:
            # A remembered token needs no database: no hop to the thread pool either.
            actor = authenticator.remembered(credential)
            if actor is None:
                actor = await run_in_threadpool(authenticator.actor_for, credential)
            check_access(actor, endpoint)
        except Unauthenticated as refusal:
            headers = {"WWW-Authenticate": 'Bearer realm="monton-crm"'}
            await problem_response(scope, 401, str(refusal), headers)(scope, receive, send)
            return
        except Forbidden as refusal:
            await problem_response(scope, 403, str(refusal))(scope, receive, send)
            return
        scope.setdefault("state", {})["actor"] = actor
        await self.app(scope, receive, send)

    def endpoint_of(self, app: FastAPI, scope: Scope) -> tuple[str, str] | None:
        """(method, full path template) of the route the request matches, if any."""
        if self._routes is None:
            self._routes = list(iter_route_contexts(app.routes))
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        partial = None
        for route in self._candidates(first_segment(scope.get("path", ""))):
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return (method, route.path)
            if match is Match.PARTIAL and partial is None:
                partial = route
        return None if partial is None else (method, partial.path)

    def _candidates(self, segment: str) -> list[Any]:
        """The routes, in order, whose path can start with ``segment``: a request is matched
        against a handful of routes, not every one."""
        found = self._by_segment.get(segment)
        if found is None:
            assert self._routes is not None
            found = [
                route
                for route in self._routes
                if first_segment(route.path) in (segment, "") or "{" in first_segment(route.path)
            ]
            if len(self._by_segment) < MAX_SEGMENTS:
                self._by_segment[segment] = found
        return found


def first_segment(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


def bearer_credential(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    return credential.strip() or None if scheme.lower() == "bearer" else None


def problem_response(
    scope: Scope, status: int, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": "Unauthenticated" if status == 401 else "Forbidden",
        "status": status,
        "detail": detail,
        "instance": scope.get("path", ""),
    }
    return JSONResponse(body, status, headers, media_type="application/problem+json")
