"""A sample request for every endpoint: its path filled with one organization's record ids, a
valid body and its required query parameters. A new endpoint that needs a body, a query
parameter or a path id not known here makes the access tests say so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI

from tests.access.support import Endpoint, deal_body

# Path parameters that do not name a record of an organization.
NOT_RECORDS = frozenset({"currency"})
# The default stages and the one the sample adds, open ones in a new order.
NEW_STAGE_ORDER = [
    "extra",
    "negotiation",
    "proposal",
    "qualified",
    "lead",
    "closed_won",
    "closed_lost",
]


@dataclass(frozen=True)
class Records:
    """An organization's records that sample requests name."""

    client: str
    contact: str
    deal: str
    token: str = ""
    users: Mapping[Endpoint, str] = field(default_factory=dict)
    pipeline: str = "default"
    stage: str = "qualified"
    owner: str = "a-manager"
    new_user: str = "added-user"
    new_pipeline: str = "added-pipeline"

    def path(self, endpoint: Endpoint) -> str:
        method, template = endpoint
        by_kind = {"clients": self.client, "contacts": self.contact, "deals": self.deal}
        ids = {
            "client_id": self.client,
            "contact_id": self.contact,
            "deal_id": self.deal,
            "token_id": self.token,
            "record_id": by_kind.get(template.split("/")[1]),
            "user_id": self.users.get(endpoint),
            "pipeline_id": self.pipeline,
            "stage_id": self.stage,
            "currency": "USD",
        }

        def fill(match: re.Match[str]) -> str:
            value = ids.get(match.group(1))
            if not value:
                pytest.fail(f"No sample for {match.group(0)} of {method} {template}: add one.")
            return value

        return re.sub(r"\{(\w+)\}", fill, template)


def names_records(endpoint: Endpoint) -> bool:
    """Whether the endpoint's path names a record (which another organization may own)."""
    return bool(set(re.findall(r"\{(\w+)\}", endpoint[1])) - NOT_RECORDS)


def sample_body(endpoint: Endpoint, own: Records) -> dict[str, Any] | None:
    """A valid body for the endpoint, naming only the caller's own records."""
    bodies: dict[Endpoint, dict[str, Any]] = {
        ("POST", "/clients"): {"name": "Sample client"},
        ("PATCH", "/clients/{client_id}"): {"notes": "changed by a sample request"},
        ("POST", "/clients/{client_id}/status"): {"status": "active"},
        ("PUT", "/clients/{client_id}/primary-contact"): {"contact_id": own.contact},
        ("POST", "/contacts"): {
            "first_name": "Sam",
            "last_name": "Ple",
            "email": f"sam.{uuid4().hex[:12]}@example.com",
        },
        ("PATCH", "/contacts/{contact_id}"): {"job_title": "Buyer"},
        ("POST", "/contacts/{contact_id}/link"): {"client_id": own.client},
        ("POST", "/deals"): deal_body(own.client, owner_id=own.owner),
        ("POST", "/deals/{deal_id}/stage"): {"stage": "qualified"},
        ("PUT", "/deals/{deal_id}/value"): {"value": "2000.00", "currency": "EUR"},
        ("PUT", "/deals/{deal_id}/expected-close-date"): {"expected_close_date": "2030-06-30"},
        ("PUT", "/deals/{deal_id}/probability"): {"probability": 40},
        ("PUT", "/deals/{deal_id}/owner"): {"owner_id": own.owner},
        ("PUT", "/deals/{deal_id}/stakeholders"): {
            "contact_ids": [own.contact],
            "user_ids": [own.owner],
        },
        ("PATCH", "/deals/{deal_id}"): {"notes": "changed by a sample request"},
        ("POST", "/deals/{deal_id}/lose"): {"reason": "price"},
        ("POST", "/deals/{deal_id}/pipeline"): {"pipeline_id": own.pipeline},
        ("POST", "/pipelines"): {"id": own.new_pipeline, "name": "Sample pipeline"},
        ("PATCH", "/pipelines/{pipeline_id}"): {"name": "Renamed pipeline"},
        ("POST", "/pipelines/{pipeline_id}/stages"): {
            "id": "extra",
            "name": "Extra",
            "probability": 60,
        },
        ("PATCH", "/pipelines/{pipeline_id}/stages/{stage_id}"): {"name": "Renamed stage"},
        ("PUT", "/pipelines/{pipeline_id}/stage-order"): {"stage_ids": NEW_STAGE_ORDER},
        ("PUT", "/exchange-rates/{currency}"): {
            "rate_to_base": "0.9",
            "effective_from": "2030-01-01",
        },
        ("PATCH", "/organization"): {"base_currency": "EUR"},
        ("POST", "/users"): {"user_id": own.new_user, "role": "GUEST"},
        ("PUT", "/users/{user_id}/role"): {"role": "CONTRIBUTOR"},
        ("POST", "/users/{user_id}/tokens"): {"label": "sample"},
    }
    return bodies.get(endpoint)


QUERIES: dict[Endpoint, dict[str, str]] = {
    ("GET", "/analytics/forecast/history"): {
        "month": "2030-03",
        "from": "2030-01-01",
        "to": "2030-04-01",
    },
}


def missing_samples(app: FastAPI) -> list[str]:
    """The required bodies and query parameters (per the app's OpenAPI) with no sample here."""
    placeholder = Records(client="c", contact="c", deal="d")
    missing = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            endpoint = (method.upper(), path)
            if operation.get("requestBody", {}).get("required") and not sample_body(
                endpoint, placeholder
            ):
                missing.append(f"{method.upper()} {path}: body")
            for parameter in operation.get("parameters", []):
                wanted = parameter["in"] == "query" and parameter.get("required")
                if wanted and parameter["name"] not in QUERIES.get(endpoint, {}):
                    missing.append(f"{method.upper()} {path}: query {parameter['name']}")
    return missing
