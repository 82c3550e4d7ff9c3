"""The deal commands and reads over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.helpers import open_deal, read, register_client


def test_opening_a_deal_answers_201_with_location_etag_and_position(api: TestClient) -> None:
    client = register_client(api)

    response = api.post(
        "/deals",
        json={
            "name": "Rollout",
            "client_id": client["id"],
            "value": "2500.50",
            "currency": "USD",
            "expected_close_date": "2027-01-15",
        },
    )

    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"] == f"/deals/{body['id']}"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers["X-Event-Position"]) == body["position"] > client["position"]
    deal = read(api, f"/deals/{body['id']}", body["position"])
    assert (deal["stage"], deal["probability"], deal["value"]) == ("lead", 10, "2500.5000")
    assert deal["weighted_value"] == "250.0500"


def test_a_stage_change_with_a_stale_if_match_is_refused_with_412(api: TestClient) -> None:
    deal = open_deal(api, register_client(api)["id"])
    moved = api.post(
        f"/deals/{deal['id']}/stage", json={"stage": "qualified"}, headers={"If-Match": '"1"'}
    )
    assert moved.status_code == 200

    stale = api.post(
        f"/deals/{deal['id']}/stage", json={"stage": "proposal"}, headers={"If-Match": '"1"'}
    )

    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    history = read(api, f"/deals/{deal['id']}/history", moved.json()["position"])
    assert [e["type"] for e in history["entries"]] == ["DealOpened", "StageChanged"]


def test_a_won_deal_cannot_change_stage(api: TestClient) -> None:
    deal = open_deal(api, register_client(api)["id"])
    assert api.post(f"/deals/{deal['id']}/win").status_code == 200

    refused = api.post(f"/deals/{deal['id']}/stage", json={"stage": "proposal"})

    assert refused.status_code == 409
    assert "won and cannot change stage" in refused.json()["detail"]


def test_a_retried_command_with_the_same_idempotency_key_records_nothing_new(
    api: TestClient,
) -> None:
    deal = open_deal(api, register_client(api)["id"])
    headers = {"Idempotency-Key": "win-once"}

    first = api.post(f"/deals/{deal['id']}/win", headers=headers)
    retry = api.post(f"/deals/{deal['id']}/win", headers=headers)

    assert first.status_code == retry.status_code == 200
    assert first.json() == retry.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    history = read(api, f"/deals/{deal['id']}/history", first.json()["position"])
    assert [e["type"] for e in history["entries"]] == ["DealOpened", "DealWon"]


def test_an_idempotency_key_reused_for_another_request_is_refused(api: TestClient) -> None:
    client = register_client(api)
    headers = {"Idempotency-Key": "same-key"}
    api.post(
        "/deals",
        json={
            "name": "A",
            "client_id": client["id"],
            "value": "1",
            "currency": "EUR",
            "expected_close_date": "2027-01-01",
        },
        headers=headers,
    )

    reused = api.post(
        "/deals",
        json={
            "name": "B",
            "client_id": client["id"],
            "value": "1",
            "currency": "EUR",
            "expected_close_date": "2027-01-01",
        },
        headers=headers,
    )

    assert reused.status_code == 422
    assert reused.json()["errors"][0]["field"] == "header.Idempotency-Key"


def test_invalid_deal_fields_are_refused_field_by_field_and_nothing_is_recorded(
    api: TestClient,
) -> None:
    client = register_client(api)
    before = api.get("/healthz").json()["head_position"]

    response = api.post(
        "/deals",
        json={
            "name": "",
            "client_id": client["id"],
            "value": "-5",
            "currency": "EURO",
            "expected_close_date": "someday",
            "probability": 101,
        },
    )

    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"name", "value", "currency", "expected_close_date", "probability"}
    assert api.get("/healthz").json()["head_position"] == before


def test_a_deal_for_an_unknown_client_is_refused_naming_the_field(api: TestClient) -> None:
    response = api.post(
        "/deals",
        json={
            "name": "X",
            "client_id": "5b0e4a5e-0000-4000-8000-000000000000",
            "value": "1",
            "currency": "EUR",
            "expected_close_date": "2027-01-01",
        },
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "client_id"


def test_an_unknown_deal_answers_404(api: TestClient) -> None:
    missing = "5b0e4a5e-0000-4000-8000-000000000000"

    assert api.get(f"/deals/{missing}").status_code == 404
    assert api.post(f"/deals/{missing}/win").status_code == 404
    assert api.get(f"/deals/{missing}/history").status_code == 404
