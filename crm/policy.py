"""The access policy: one declared entry per endpoint, checked before the endpoint runs.

Every route of the app must appear here (the access-matrix test fails otherwise, and an
endpoint missing at run time is refused). ``PUBLIC`` endpoints need no credentials.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request
from starlette.routing import Route

from aggregates.access import Capability, may
from crm.identity import CurrentActor

PUBLIC: Final = None
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
    ("GET", "/deals"): READ_DEALS,
    ("GET", "/deals/{record_id}"): READ_DEALS,
    ("GET", "/deals/{record_id}/history"): ADMINISTER,
    ("GET", "/deals/{record_id}/state"): ADMINISTER,
    ("GET", "/analytics/pipeline-value"): READ_DEALS,
    ("GET", "/analytics/win-rate"): READ_DEALS,
    ("GET", "/analytics/sales-cycle"): READ_DEALS,
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


def capability_of(method: str, path: str) -> Capability | None:
    try:
        return POLICY[(method, path)]
    except KeyError:
        raise Forbidden(f"{method} {path} has no access policy; it is refused.") from None


def authorize(request: Request, actor: CurrentActor) -> None:
    """Refuse the request unless the actor's role may use this endpoint's capability."""
    route = request.scope.get("route")
    path = route.path if isinstance(route, Route) else request.url.path
    method = "GET" if request.method == "HEAD" else request.method
    capability = capability_of(method, path)
    if capability is None:
        return
    if not actor.access.crm_enabled and (method, path) not in OUTSIDE_CRM:
        raise Forbidden(f"CRM is not enabled for organization {actor.organization_name}.")
    if not may(actor.role, capability, actor.access):
        raise Forbidden(f"Role {actor.role.value} may not {capability.value}.")
