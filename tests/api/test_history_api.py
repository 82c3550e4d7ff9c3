"""Per-record history and past states over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregates.email_claim import EmailClaim
from crm.identity import DEFAULT_ORGANIZATION_ID
from tests.api.builders import MISSING_ID, accepted, instant, invalid_parameters, problem
from tests.api.helpers import create_contact, open_deal, read, register_client

OPENED, MOVED, WON = (
    "2025-01-01T09:00:00+00:00",
    "2025-01-15T09:00:00+00:00",
    "2025-02-01T17:30:00+00:00",
)


def backfilled_deal(api: TestClient) -> tuple[str, int]:
    """A deal opened, moved to proposal and won, each at a past business time."""
    deal = open_deal(api, register_client(api)["id"], occurred_at=OPENED, owner_id="maria")
    path = f"/deals/{deal['id']}"
    accepted(api.post(f"{path}/stage", json={"stage": "proposal", "occurred_at": MOVED}))
    won = accepted(api.post(f"{path}/win", json={"occurred_at": WON}))
    return deal["id"], won["position"]


def test_a_deals_history_lists_each_event_with_who_and_when(api: TestClient) -> None:
    started = datetime.now(UTC)
    deal_id, position = backfilled_deal(api)

    entries = read(api, f"/deals/{deal_id}/history", position)["entries"]

    assert [e["type"] for e in entries] == ["DealOpened", "StageChanged", "DealWon"]
    assert [e["version"] for e in entries] == [1, 2, 3]
    assert {e["actor_id"] for e in entries} == {"admin"}
    assert [instant(e["occurred_at"]) for e in entries] == [
        instant(OPENED),
        instant(MOVED),
        instant(WON),
    ]
    assert all(instant(e["recorded_at"]) >= started for e in entries)
    assert len({e["command_id"] for e in entries}) == 3


def test_history_entries_carry_what_changed(api: TestClient) -> None:
    deal_id, position = backfilled_deal(api)

    opened, moved, won = read(api, f"/deals/{deal_id}/history", position)["entries"]

    assert opened["changes"]["owner_id"] == "maria"
    assert opened["changes"]["value"] == "1000.00"
    assert moved["changes"] == {"from_stage": "lead", "to_stage": "proposal", "probability": 50}
    assert won["changes"] == {"stage": "closed_won", "value": "1000.00", "currency": "EUR"}


def test_a_correlation_id_sent_with_a_command_is_kept_in_the_history(api: TestClient) -> None:
    correlation = "0f0e0d0c-0b0a-4900-8800-000000000042"

    created = accepted(
        api.post("/clients", json={"name": "Acme"}, headers={"X-Correlation-ID": correlation}),
        201,
    )

    (entry,) = read(api, f"/clients/{created['id']}/history", created["position"])["entries"]
    assert entry["correlation_id"] == correlation
    assert entry["command_id"] != correlation


def test_a_correlation_id_that_is_not_a_uuid_is_refused_and_nothing_is_recorded(
    api: TestClient,
) -> None:
    refused = api.post("/clients", json={"name": "Acme"}, headers={"X-Correlation-ID": "abc"})

    assert refused.status_code == 400
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["field"] == "header.X-Correlation-ID"
    assert api.get("/clients").json()["items"] == []


def test_every_command_operation_documents_the_headers_it_reads(api: TestClient) -> None:
    paths = api.get("/openapi.json").json()["paths"]

    stage_change = paths["/deals/{deal_id}/stage"]["post"]
    deal_list = paths["/deals"]["get"]

    headers = {p["name"] for p in stage_change["parameters"] if p["in"] == "header"}
    assert headers == {"if-match", "idempotency-key", "x-correlation-id"}
    assert "400" in stage_change["responses"]
    assert not any(p["in"] == "header" for p in deal_list.get("parameters", []))


def test_a_client_patch_is_recorded_with_the_fields_it_changed(api: TestClient) -> None:
    created = register_client(api, notes="old")

    changed = accepted(api.patch(f"/clients/{created['id']}", json={"notes": "new"}))

    entries = read(api, f"/clients/{created['id']}/history", changed["position"])["entries"]
    assert [e["type"] for e in entries] == ["ClientRegistered", "ClientDetailsChanged"]
    assert entries[1]["changes"] == {"changes": {"notes": "new"}}


@pytest.mark.parametrize(
    ("version", "stage", "status"),
    [(1, "lead", "open"), (2, "proposal", "open"), (3, "closed_won", "won")],
)
def test_a_deal_reads_as_it_stood_at_a_past_version(
    api: TestClient, version: int, stage: str, status: str
) -> None:
    deal_id, _ = backfilled_deal(api)

    state = read(api, f"/deals/{deal_id}/state", 0, version=version)

    assert (state["version"], state["stage"], state["status"]) == (version, stage, status)


@pytest.mark.parametrize(
    ("at", "version", "stage"),
    [
        (OPENED, 1, "lead"),
        ("2025-01-15T08:59:59Z", 1, "lead"),
        ("2025-01-15T10:00:00+01:00", 2, "proposal"),
        ("2025-01-20", 2, "proposal"),
        ("2025-02-02", 3, "closed_won"),
    ],
)
def test_a_deal_reads_as_it_stood_at_a_past_business_time(
    api: TestClient, at: str, version: int, stage: str
) -> None:
    deal_id, _ = backfilled_deal(api)

    state = read(api, f"/deals/{deal_id}/state", 0, at=at)

    assert (state["version"], state["stage"]) == (version, stage)


def test_a_past_state_of_a_client_shows_its_details_then(api: TestClient) -> None:
    created = register_client(api, notes="old", website="https://old.example/")
    accepted(api.patch(f"/clients/{created['id']}", json={"notes": "new"}))

    then = read(api, f"/clients/{created['id']}/state", 0, version=1)

    assert (then["notes"], then["website"], then["version"]) == ("old", "https://old.example/", 1)


def test_a_contact_reads_as_it_stood_before_it_was_linked(api: TestClient) -> None:
    client = register_client(api)
    contact = create_contact(api, client_id=client["id"])

    before_link = read(api, f"/contacts/{contact['id']}/state", 0, version=1)
    now = read(api, f"/contacts/{contact['id']}/state", 0)

    assert before_link["client_id"] is None
    assert now["client_id"] == client["id"]


def test_a_version_beyond_the_last_is_refused_naming_version(api: TestClient) -> None:
    deal_id, _ = backfilled_deal(api)

    response = api.get(f"/deals/{deal_id}/state", params={"version": 4})

    assert invalid_parameters(response) == {"version"}


@pytest.mark.parametrize("version", [0, -1, "two"])
def test_a_version_that_is_not_a_positive_number_is_refused(api: TestClient, version: Any) -> None:
    deal_id, _ = backfilled_deal(api)

    response = api.get(f"/deals/{deal_id}/state", params={"version": version})

    assert invalid_parameters(response) == {"version"}


def test_an_instant_before_the_record_existed_is_refused_naming_at(api: TestClient) -> None:
    deal_id, _ = backfilled_deal(api)

    response = api.get(f"/deals/{deal_id}/state", params={"at": "2024-12-31T23:59:59Z"})

    assert invalid_parameters(response) == {"at"}


@pytest.mark.parametrize("kind", ["clients", "contacts", "deals"])
def test_an_unknown_id_has_no_history_and_no_state(api: TestClient, kind: str) -> None:
    problem(api.get(f"/{kind}/{MISSING_ID}/history"), 404)
    problem(api.get(f"/{kind}/{MISSING_ID}/state"), 404)
    problem(api.get(f"/{kind}/{MISSING_ID}/state", params={"version": 1}), 404)


def test_the_id_of_another_kind_of_record_has_no_history_there(api: TestClient) -> None:
    client = register_client(api)
    contact = create_contact(api, client_id=client["id"])
    deal = open_deal(api, client["id"])

    problem(api.get(f"/deals/{client['id']}/history"), 404)
    problem(api.get(f"/deals/{contact['id']}/state"), 404)
    problem(api.get(f"/clients/{deal['id']}/history"), 404)
    problem(api.get(f"/contacts/{client['id']}/state", params={"version": 1}), 404)


def test_the_id_of_an_email_claim_is_not_a_contact(api: TestClient) -> None:
    create_contact(api, email="ana@acme.example")
    claim_id = EmailClaim.id_for(DEFAULT_ORGANIZATION_ID, "ana@acme.example")

    problem(api.get(f"/contacts/{claim_id}/history"), 404)
    problem(api.get(f"/contacts/{claim_id}/state"), 404)


def test_a_record_id_that_is_not_a_uuid_is_refused_naming_it(api: TestClient) -> None:
    response = api.get("/deals/not-a-uuid/history")

    assert invalid_parameters(response) == {"record_id"}
