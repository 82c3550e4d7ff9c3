"""The contact commands over HTTP, on SQLite and on PostgreSQL."""

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
    link_contact,
    problem,
)
from tests.api.helpers import create_contact, read, register_client


def new_contact(email: str, **fields: Any) -> dict[str, Any]:
    return {"first_name": "Ana", "last_name": "Ruiz", "email": email, **fields}


def test_creating_a_contact_answers_201_and_reads_back(api: TestClient) -> None:
    response = api.post(
        "/contacts",
        json=new_contact(
            "ana@acme.example",
            job_title="CTO",
            category="decision_maker",
            social_profiles=[{"network": "linkedin", "url": "https://linkedin.example/in/ana"}],
            communication_preferences={"preferred_channel": "email", "opt_outs": ["phone"]},
        ),
    )

    created = accepted(response, 201)
    assert response.headers["Location"] == f"/contacts/{created['id']}"
    contact = read(api, f"/contacts/{created['id']}", created["position"])
    assert (contact["first_name"], contact["last_name"], contact["email"]) == (
        "Ana",
        "Ruiz",
        "ana@acme.example",
    )
    assert (contact["job_title"], contact["category"]) == ("CTO", "decision_maker")
    assert contact["communication_preferences"]["opt_outs"] == ["phone"]
    assert contact["client_id"] is None


def test_a_contact_created_with_a_client_is_linked_to_it(api: TestClient) -> None:
    client = register_client(api)

    created = create_contact(api, client_id=client["id"])

    assert (
        read(api, f"/contacts/{created['id']}", created["position"])["client_id"] == (client["id"])
    )
    history = read(api, f"/contacts/{created['id']}/history", created["position"])
    assert [entry["type"] for entry in history["entries"]] == ["ContactCreated", "ContactLinked"]


def test_a_contact_for_an_unknown_client_is_refused_naming_client_id(api: TestClient) -> None:
    before = head_position(api)

    response = api.post("/contacts", json=new_contact("ana@acme.example", client_id=MISSING_ID))

    assert invalid_fields(response) == {"client_id"}
    assert head_position(api) == before


def test_a_second_contact_with_the_same_email_is_refused_with_409(api: TestClient) -> None:
    create_contact(api, email="ana@acme.example")
    before = head_position(api)

    response = api.post("/contacts", json=new_contact("ana@acme.example", first_name="Other"))

    assert "already used" in problem(response, 409)["detail"]
    assert head_position(api) == before


def test_the_email_is_unique_whatever_its_case(api: TestClient) -> None:
    create_contact(api, email="ana@acme.example")
    before = head_position(api)

    response = api.post("/contacts", json=new_contact("  ANA@Acme.Example "))

    problem(response, 409)
    assert head_position(api) == before


def test_changing_to_an_email_another_contact_uses_is_refused_with_409(api: TestClient) -> None:
    create_contact(api, email="ana@acme.example")
    other = create_contact(api, email="bea@acme.example")
    before = head_position(api)

    response = api.patch(f"/contacts/{other['id']}", json={"email": "Ana@acme.example"})

    problem(response, 409)
    assert head_position(api) == before


def test_changing_a_contacts_email_frees_the_old_one_for_another_contact(
    api: TestClient,
) -> None:
    ana = create_contact(api, email="ana@acme.example")
    changed = accepted(api.patch(f"/contacts/{ana['id']}", json={"email": "ana@new.example"}))

    reuse = api.post("/contacts", json=new_contact("ana@acme.example", first_name="Other"))

    accepted(reuse, 201)
    problem(api.post("/contacts", json=new_contact("ana@new.example")), 409)
    assert read(api, f"/contacts/{ana['id']}", changed["position"])["email"] == "ana@new.example"


def test_a_contact_can_take_back_an_email_it_gave_up(api: TestClient) -> None:
    ana = create_contact(api, email="ana@acme.example")
    accepted(api.patch(f"/contacts/{ana['id']}", json={"email": "ana@new.example"}))

    response = api.patch(f"/contacts/{ana['id']}", json={"email": "ana@acme.example"})

    assert read(api, f"/contacts/{ana['id']}", accepted(response)["position"])["email"] == (
        "ana@acme.example"
    )


def test_changing_some_details_keeps_the_fields_left_out(api: TestClient) -> None:
    created = create_contact(
        api, email="ana@acme.example", job_title="CTO", department="IT", notes="VIP"
    )

    response = api.patch(
        f"/contacts/{created['id']}", json={"last_name": "Ruiz Gil", "department": "Ops"}
    )

    contact = read(api, f"/contacts/{created['id']}", accepted(response)["position"])
    assert (contact["last_name"], contact["department"]) == ("Ruiz Gil", "Ops")
    assert (contact["first_name"], contact["email"]) == ("Ana", "ana@acme.example")
    assert (contact["job_title"], contact["notes"]) == ("CTO", "VIP")


def test_a_contact_is_linked_to_a_client_and_unlinked(api: TestClient) -> None:
    client = register_client(api)
    created = create_contact(api)

    linked = link_contact(api, created["id"], client["id"])
    assert read(api, f"/contacts/{created['id']}", linked["position"])["client_id"] == client["id"]
    unlinked = accepted(api.post(f"/contacts/{created['id']}/unlink"))

    assert read(api, f"/contacts/{created['id']}", unlinked["position"])["client_id"] is None


def test_a_linked_contact_cannot_be_linked_to_another_client_before_unlinking(
    api: TestClient,
) -> None:
    first, second = register_client(api), register_client(api, name="Second SL")
    created = create_contact(api, client_id=first["id"])

    response = api.post(f"/contacts/{created['id']}/link", json={"client_id": second["id"]})

    assert "unlink it first" in problem(response, 409)["detail"]


def test_unlinking_a_contact_that_is_not_linked_is_refused_with_409(api: TestClient) -> None:
    created = create_contact(api)

    problem(api.post(f"/contacts/{created['id']}/unlink"), 409)


def test_linking_to_an_unknown_client_is_refused_naming_client_id(api: TestClient) -> None:
    created = create_contact(api)

    response = api.post(f"/contacts/{created['id']}/link", json={"client_id": MISSING_ID})

    assert invalid_fields(response) == {"client_id"}


def test_linking_to_an_archived_client_is_refused_with_409(api: TestClient) -> None:
    client = register_client(api)
    accepted(api.post(f"/clients/{client['id']}/archive"))
    created = create_contact(api)

    problem(api.post(f"/contacts/{created['id']}/link", json={"client_id": client["id"]}), 409)


def test_unlinking_the_primary_contact_is_refused_until_another_is_primary(
    api: TestClient,
) -> None:
    client = register_client(api)
    ana = create_contact(api, client_id=client["id"])
    bea = create_contact(api, client_id=client["id"])
    primary = f"/clients/{client['id']}/primary-contact"
    accepted(api.put(primary, json={"contact_id": ana["id"]}))

    problem(api.post(f"/contacts/{ana['id']}/unlink"), 409)
    accepted(api.put(primary, json={"contact_id": bea["id"]}))

    accepted(api.post(f"/contacts/{ana['id']}/unlink"))


def test_a_contact_is_archived_and_restored(api: TestClient) -> None:
    created = create_contact(api)

    archived = accepted(api.post(f"/contacts/{created['id']}/archive"))
    assert read(api, f"/contacts/{created['id']}", archived["position"])["archived"] is True
    problem(api.patch(f"/contacts/{created['id']}", json={"notes": "x"}), 409)
    restored = accepted(api.post(f"/contacts/{created['id']}/restore"))

    assert read(api, f"/contacts/{created['id']}", restored["position"])["archived"] is False
    problem(api.post(f"/contacts/{created['id']}/restore"), 409)


def test_an_archived_contact_cannot_become_the_primary_contact(api: TestClient) -> None:
    client = register_client(api)
    created = create_contact(api, client_id=client["id"])
    accepted(api.post(f"/contacts/{created['id']}/archive"))

    response = api.put(
        f"/clients/{client['id']}/primary-contact", json={"contact_id": created["id"]}
    )

    problem(response, 409)


def test_an_unknown_contact_answers_404(api: TestClient) -> None:
    path = f"/contacts/{MISSING_ID}"

    problem(api.get(path), 404)
    problem(api.patch(path, json={"notes": "x"}), 404)
    problem(api.post(f"{path}/unlink"), 404)
    problem(api.post(f"{path}/archive"), 404)


@pytest.mark.parametrize(
    ("fields", "invalid"),
    [
        ({"email": "ana-at-acme"}, {"email"}),
        ({"email": "ana@"}, {"email"}),
        ({"first_name": "", "last_name": " "}, {"first_name", "last_name"}),
        ({"social_profiles": [{"network": "x", "url": "not a url"}]}, {"social_profiles.0.url"}),
        ({"phones": [{"number": "12"}]}, {"phones.0.number"}),
        ({"category": "boss"}, {"category"}),
        (
            {"communication_preferences": {"opt_outs": ["pigeon"]}},
            {"communication_preferences.opt_outs.0"},
        ),
        ({"client_id": "not-a-uuid"}, {"client_id"}),
    ],
)
def test_invalid_contact_fields_are_refused_field_by_field_and_nothing_is_recorded(
    api: TestClient, fields: dict[str, Any], invalid: set[str]
) -> None:
    before = head_position(api)

    response = api.post("/contacts", json={**new_contact("ana@acme.example"), **fields})

    assert invalid_fields(response) == invalid
    assert head_position(api) == before


def test_an_invalid_email_in_a_patch_is_refused_and_the_old_email_stays(api: TestClient) -> None:
    created = create_contact(api, email="ana@acme.example")
    before = head_position(api)

    response = api.patch(f"/contacts/{created['id']}", json={"email": "nope"})

    assert invalid_fields(response) == {"email"}
    assert head_position(api) == before
    assert read(api, f"/contacts/{created['id']}", before)["email"] == "ana@acme.example"


def test_a_contact_created_with_a_backdated_occurred_at_keeps_that_business_time(
    api: TestClient,
) -> None:
    occurred_at = "2023-02-03T04:05:06Z"

    created = create_contact(api, occurred_at=occurred_at)

    contact = read(api, f"/contacts/{created['id']}", created["position"])
    assert instant(contact["created_at"]) == instant(occurred_at)


def test_linking_before_the_contacts_previous_event_is_refused_with_409(api: TestClient) -> None:
    client = register_client(api)
    created = create_contact(api, occurred_at="2025-06-01T12:00:00Z")
    before = head_position(api)

    response = api.post(
        f"/contacts/{created['id']}/link",
        json={"client_id": client["id"], "occurred_at": "2025-06-01T11:59:59Z"},
    )

    problem(response, 409)
    assert head_position(api) == before


def test_a_change_dated_in_the_future_is_refused_naming_occurred_at(api: TestClient) -> None:
    created = create_contact(api)
    before = head_position(api)

    response = api.patch(
        f"/contacts/{created['id']}", json={"notes": "x", "occurred_at": days_ago(-2)}
    )

    assert invalid_fields(response) == {"occurred_at"}
    assert head_position(api) == before
