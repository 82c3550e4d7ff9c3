"""The client commands over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.builders import (
    MISSING_ID,
    accepted,
    days_ago,
    head_position,
    instant,
    invalid_fields,
    problem,
)
from tests.api.helpers import create_contact, read, register_client

DETAILS: dict[str, Any] = {
    "address": {"street": "Gran Vía 1", "city": "Madrid", "postal_code": "28013", "country": "ES"},
    "phones": [{"label": "office", "number": "+34 910 000 000"}],
    "emails": ["sales@acme.example"],
    "website": "https://acme.example/",
    "tax_id": "B12345678",
    "notes": "Met at the fair.",
    "custom_fields": {"segment": "SMB", "employees": 40},
}


def test_registering_a_client_answers_201_with_location_etag_and_position(
    api: TestClient,
) -> None:
    response = api.post("/clients", json={"name": "Acme Ltd", "category": "partner"})

    body = accepted(response, 201)
    assert body["type"] == "client"
    assert response.headers["Location"] == f"/clients/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers["X-Event-Position"]) == body["position"]


def test_a_registered_client_reads_back_with_its_details(api: TestClient) -> None:
    created = register_client(api, category="supplier", status="active", **DETAILS)

    client = read(api, f"/clients/{created['id']}", created["position"])

    assert (client["name"], client["category"], client["status"]) == (
        "Acme Ltd",
        "supplier",
        "active",
    )
    assert client["address"]["country"] == "ES"
    assert client["emails"] == ["sales@acme.example"]
    assert client["website"] == "https://acme.example/"
    assert client["custom_fields"] == {"segment": "SMB", "employees": 40}
    assert client["primary_contact_id"] is None
    assert client["archived"] is False


def test_changing_some_details_keeps_the_fields_left_out(api: TestClient) -> None:
    created = register_client(api, **DETAILS)
    original = read(api, f"/clients/{created['id']}", created["position"])

    response = api.patch(f"/clients/{created['id']}", json={"notes": "Prefers calls."})

    changed = accepted(response)
    assert changed["version"] == 2
    assert response.headers["ETag"] == '"2"'
    client = read(api, f"/clients/{created['id']}", changed["position"])
    assert client["notes"] == "Prefers calls."
    unchanged = ("name", "address", "phones", "emails", "website", "tax_id", "custom_fields")
    assert {key: client[key] for key in unchanged} == {key: original[key] for key in unchanged}


def test_renaming_a_client_changes_its_name(api: TestClient) -> None:
    created = register_client(api)

    response = api.patch(f"/clients/{created['id']}", json={"name": "Acme Group"})

    changed = accepted(response)
    assert read(api, f"/clients/{created['id']}", changed["position"])["name"] == "Acme Group"


def test_renaming_a_client_with_other_details_changes_both(api: TestClient) -> None:
    created = register_client(api)

    response = api.patch(f"/clients/{created['id']}", json={"name": "Acme Group", "notes": "x"})

    client = read(api, f"/clients/{created['id']}", accepted(response)["position"])
    assert (client["name"], client["notes"]) == ("Acme Group", "x")


def test_a_patch_naming_no_field_is_refused_and_records_nothing(api: TestClient) -> None:
    created = register_client(api)
    before = head_position(api)

    response = api.patch(f"/clients/{created['id']}", json={})

    assert "body" in invalid_fields(response)
    assert head_position(api) == before


def test_changing_the_status_keeps_the_category(api: TestClient) -> None:
    created = register_client(api, category="partner", status="prospect")

    changed = accepted(api.post(f"/clients/{created['id']}/status", json={"status": "active"}))

    client = read(api, f"/clients/{created['id']}", changed["position"])
    assert (client["status"], client["category"]) == ("active", "partner")


def test_changing_the_category_keeps_the_status(api: TestClient) -> None:
    created = register_client(api, category="prospect", status="prospect")

    changed = accepted(
        api.post(f"/clients/{created['id']}/status", json={"category": "active_client"})
    )

    client = read(api, f"/clients/{created['id']}", changed["position"])
    assert (client["status"], client["category"]) == ("prospect", "active_client")


def test_a_status_change_that_changes_nothing_is_refused_with_409(api: TestClient) -> None:
    created = register_client(api, category="partner", status="active")

    response = api.post(
        f"/clients/{created['id']}/status", json={"status": "active", "category": "partner"}
    )

    assert "already has status active" in problem(response, 409)["detail"]


def test_an_unknown_status_or_category_is_refused_naming_the_fields(api: TestClient) -> None:
    created = register_client(api)

    response = api.post(
        f"/clients/{created['id']}/status", json={"status": "asleep", "category": "friend"}
    )

    assert invalid_fields(response) == {"status", "category"}


def test_a_linked_contact_becomes_the_primary_contact(api: TestClient) -> None:
    client = register_client(api)
    contact = create_contact(api, client_id=client["id"])

    response = api.put(
        f"/clients/{client['id']}/primary-contact", json={"contact_id": contact["id"]}
    )

    changed = accepted(response)
    assert changed["id"] == client["id"]
    assert (
        read(api, f"/clients/{client['id']}", changed["position"])["primary_contact_id"]
        == (contact["id"])
    )


def test_an_unlinked_contact_cannot_become_the_primary_contact(api: TestClient) -> None:
    client = register_client(api)
    contact = create_contact(api)
    before = head_position(api)

    response = api.put(
        f"/clients/{client['id']}/primary-contact", json={"contact_id": contact["id"]}
    )

    assert "not linked to client" in problem(response, 409)["detail"]
    assert head_position(api) == before


def test_a_contact_of_another_client_cannot_become_the_primary_contact(api: TestClient) -> None:
    client = register_client(api)
    other = register_client(api, name="Other SL")
    contact = create_contact(api, client_id=other["id"])

    response = api.put(
        f"/clients/{client['id']}/primary-contact", json={"contact_id": contact["id"]}
    )

    problem(response, 409)


def test_a_primary_contact_that_does_not_exist_is_refused_naming_contact_id(
    api: TestClient,
) -> None:
    client = register_client(api)
    before = head_position(api)

    response = api.put(f"/clients/{client['id']}/primary-contact", json={"contact_id": MISSING_ID})

    assert invalid_fields(response) == {"contact_id"}
    assert head_position(api) == before


def test_a_client_id_named_as_primary_contact_is_refused_naming_contact_id(
    api: TestClient,
) -> None:
    client = register_client(api)

    response = api.put(
        f"/clients/{client['id']}/primary-contact", json={"contact_id": client["id"]}
    )

    assert invalid_fields(response) == {"contact_id"}


def test_unlinking_the_primary_contact_is_refused_with_409(api: TestClient) -> None:
    client = register_client(api)
    contact = create_contact(api, client_id=client["id"])
    accepted(
        api.put(f"/clients/{client['id']}/primary-contact", json={"contact_id": contact["id"]})
    )
    before = head_position(api)

    response = api.post(f"/contacts/{contact['id']}/unlink")

    assert "primary contact" in problem(response, 409)["detail"]
    assert head_position(api) == before


def test_an_unknown_client_answers_404_to_every_command(api: TestClient) -> None:
    path = f"/clients/{MISSING_ID}"

    problem(api.patch(path, json={"notes": "x"}), 404)
    problem(api.post(f"{path}/status", json={"status": "active"}), 404)
    problem(api.put(f"{path}/primary-contact", json={"contact_id": MISSING_ID}), 404)
    problem(api.post(f"{path}/archive"), 404)
    problem(api.post(f"{path}/restore"), 404)
    problem(api.get(path), 404)


def test_a_client_is_archived_and_restored(api: TestClient) -> None:
    created = register_client(api)

    archived = accepted(api.post(f"/clients/{created['id']}/archive"))
    assert read(api, f"/clients/{created['id']}", archived["position"])["archived"] is True
    restored = accepted(api.post(f"/clients/{created['id']}/restore"))

    assert read(api, f"/clients/{created['id']}", restored["position"])["archived"] is False
    assert restored["version"] == 3


def test_an_archived_client_refuses_changes_until_restored(api: TestClient) -> None:
    created = register_client(api)
    accepted(api.post(f"/clients/{created['id']}/archive"))

    assert (
        "archived"
        in problem(api.patch(f"/clients/{created['id']}", json={"notes": "x"}), 409)["detail"]
    )
    problem(api.post(f"/clients/{created['id']}/archive"), 409)
    problem(
        api.post(
            "/contacts",
            json={
                "first_name": "A",
                "last_name": "B",
                "email": "a@b.example",
                "client_id": created["id"],
            },
        ),
        409,
    )


def test_restoring_a_client_that_is_not_archived_is_refused_with_409(api: TestClient) -> None:
    created = register_client(api)

    assert "not archived" in problem(api.post(f"/clients/{created['id']}/restore"), 409)["detail"]


@pytest.mark.parametrize(
    ("fields", "invalid"),
    [
        ({"emails": ["sales@acme.example", "not-an-email"]}, {"emails.1"}),
        ({"website": "acme dot com"}, {"website"}),
        ({"website": "ftp://acme.example"}, {"website"}),
        ({"address": {"country": "XX"}}, {"address.country"}),
        ({"address": {"country": "Spain"}}, {"address.country"}),
        ({"phones": [{"number": "call me"}]}, {"phones.0.number"}),
        ({"category": "friend", "status": "asleep"}, {"category", "status"}),
        ({"name": ""}, {"name"}),
        ({"name": "Acme", "colour": "red"}, {"colour"}),
    ],
)
def test_invalid_client_fields_are_refused_field_by_field_and_nothing_is_recorded(
    api: TestClient, fields: dict[str, Any], invalid: set[str]
) -> None:
    before = head_position(api)

    response = api.post("/clients", json={"name": "Acme", **fields})

    assert invalid_fields(response) == invalid
    assert head_position(api) == before


def test_invalid_details_in_a_patch_are_refused_field_by_field_and_nothing_is_recorded(
    api: TestClient,
) -> None:
    created = register_client(api)
    before = head_position(api)

    response = api.patch(
        f"/clients/{created['id']}",
        json={"emails": ["nope"], "website": "nope", "address": {"country": "ZZ"}},
    )

    assert invalid_fields(response) == {"emails.0", "website", "address.country"}
    assert head_position(api) == before


def test_a_client_registered_with_a_backdated_occurred_at_keeps_that_business_time(
    api: TestClient,
) -> None:
    occurred_at = "2024-05-06T07:08:09+02:00"

    created = register_client(api, occurred_at=occurred_at)

    client = read(api, f"/clients/{created['id']}", created["position"])
    assert instant(client["created_at"]) == instant(client["updated_at"]) == instant(occurred_at)
    assert instant(client["recorded_at"]) > instant(occurred_at)


def test_an_occurred_at_before_the_clients_previous_event_is_refused_with_409(
    api: TestClient,
) -> None:
    created = register_client(api, occurred_at="2025-01-10T00:00:00Z")
    before = head_position(api)

    response = api.patch(
        f"/clients/{created['id']}", json={"notes": "x", "occurred_at": "2025-01-09T23:59:59Z"}
    )

    assert "before this record's previous event" in problem(response, 409)["detail"]
    assert head_position(api) == before


def test_an_occurred_at_equal_to_the_previous_event_is_accepted(api: TestClient) -> None:
    created = register_client(api, occurred_at="2025-01-10T00:00:00Z")

    response = api.post(
        f"/clients/{created['id']}/archive", json={"occurred_at": "2025-01-10T01:00:00+01:00"}
    )

    accepted(response)


@pytest.mark.parametrize(
    "occurred_at", [days_ago(-1), "2025-01-10T00:00:00", "yesterday", "2025-13-01T00:00:00Z"]
)
def test_an_occurred_at_in_the_future_or_without_offset_is_refused_with_422(
    api: TestClient, occurred_at: str
) -> None:
    before = head_position(api)

    response = api.post("/clients", json={"name": "Acme", "occurred_at": occurred_at})

    assert invalid_fields(response) == {"occurred_at"}
    assert head_position(api) == before


def test_a_change_with_a_stale_if_match_is_refused_with_412(api: TestClient) -> None:
    created = register_client(api)
    accepted(api.patch(f"/clients/{created['id']}", json={"notes": "first"}))

    response = api.patch(
        f"/clients/{created['id']}", json={"notes": "second"}, headers={"If-Match": '"1"'}
    )

    problem(response, 412)
