"""Small builders for API tests: a valid body for each create command."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient


def register_client(api: TestClient, **fields: Any) -> dict[str, Any]:
    response = api.post("/clients", json={"name": "Acme Ltd", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_contact(api: TestClient, **fields: Any) -> dict[str, Any]:
    body = {
        "first_name": "Ana",
        "last_name": "Ruiz",
        "email": f"ana.{uuid4().hex[:8]}@example.com",
        **fields,
    }
    response = api.post("/contacts", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def open_deal(api: TestClient, client_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "Website redesign",
        "client_id": client_id,
        "value": "1000.00",
        "currency": "EUR",
        "expected_close_date": "2027-03-31",
        **fields,
    }
    response = api.post("/deals", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def read(api: TestClient, path: str, position: int, **params: Any) -> Any:
    """GET a read endpoint once the read models include ``position``."""
    response = api.get(path, params={"min_position": position, **params})
    assert response.status_code == 200, response.text
    return response.json()
