"""Organizations, members and tokens for the access tests, made through the app's own API."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from fastapi import FastAPI

from aggregates.access import Role
from commands import models
from commands.administration import Administration
from commands.service import CommandMeta
from crm.app import create_app
from crm.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

try:
    from fastapi.routing import iter_route_contexts
except ImportError:  # FastAPI before lazy router inclusion: app.routes is already flat

    def iter_route_contexts(routes: Any) -> Any:  # type: ignore[misc]
        return iter(routes)


Headers = dict[str, str]
Endpoint = tuple[str, str]
PROBLEM_JSON = "application/problem+json"


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every (method, path template) the app serves, included routers too; HEAD is GET's."""
    return [
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in sorted(getattr(route, "methods", None) or ())
        if method != "HEAD"
    ]


# The app's route table: the app is built, never started.
APP_ENDPOINTS = endpoints(create_app(Settings(data_dir=Path("never-started"), database_url=None)))


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """The app with its service started; a server error comes back as a 500, not raised."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def first_run_token(client: TestClient) -> str:
    """The token the first run printed for the default organization's admin."""
    token: str = client.app.state.service.first_run_token  # type: ignore[attr-defined]
    return token


def first_admin(client: TestClient) -> Headers:
    return bearer(first_run_token(client))


def create_organization(client: TestClient, name: str, admin_user_id: str) -> tuple[UUID, str]:
    """A second organization, made the way ``crm admin create-organization`` makes it."""
    organization_id = uuid4()
    issued = Administration(client.app.state.commands).create_organization(  # type: ignore[attr-defined]
        models.CreateOrganization(name=name, admin_user_id=admin_user_id),
        CommandMeta(organization_id=organization_id, actor_id="test"),
    )
    return organization_id, issued.secret


def add_member(client: TestClient, admin: Headers, user_id: str, role: Role) -> None:
    added = client.post("/users", json={"user_id": user_id, "role": role.value}, headers=admin)
    assert added.status_code == 201, added.text


def issue_token(client: TestClient, admin: Headers, user_id: str, **fields: Any) -> tuple[str, str]:
    """(token id, secret) of a new API token of ``user_id``."""
    issued = client.post(f"/users/{user_id}/tokens", json=fields or None, headers=admin)
    assert issued.status_code == 201, issued.text
    body = issued.json()
    return body["id"], body["token"]


def member_with_token(client: TestClient, admin: Headers, user_id: str, role: Role) -> Headers:
    add_member(client, admin, user_id, role)
    return bearer(issue_token(client, admin, user_id)[1])


def created(client: TestClient, path: str, headers: Headers, body: dict[str, Any]) -> str:
    """POST a create command; the new record's id."""
    response = client.post(path, json=body, headers=headers)
    assert response.status_code == 201, response.text
    record_id: str = response.json()["id"]
    return record_id


def accepted(client: TestClient, method: str, path: str, headers: Headers, body: Any) -> None:
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text


def head_position(client: TestClient) -> int:
    """The event log's head, as the public health endpoint reports it."""
    position: int = client.get("/healthz").json()["head_position"]
    return position


def deal_body(client_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "Website redesign",
        "client_id": client_id,
        "value": "1000.00",
        "currency": "EUR",
        "expected_close_date": "2030-03-31",
        **fields,
    }
