"""Builders and probes for API tests, beside the create-command builders of ``helpers``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from tests.api.helpers import open_deal

PROBLEM_JSON = "application/problem+json"
MISSING_ID = "5b0e4a5e-0000-4000-8000-000000000000"
DEFAULT_PROBABILITIES = {"lead": 10, "qualified": 25, "proposal": 50, "negotiation": 75}


def head_position(api: TestClient) -> int:
    """The event log's head: unchanged by a refused command."""
    response = api.get("/healthz")
    assert response.status_code == 200, response.text
    position: int = response.json()["head_position"]
    return position


def problem(response: Any, status: int) -> dict[str, Any]:
    """The problem+json body of a refusal with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["detail"]
    return body


def invalid_fields(response: Any) -> set[str]:
    """The fields a 422 problem names."""
    return {error["field"] for error in problem(response, 422)["errors"]}


def invalid_parameters(response: Any) -> set[str]:
    """The query parameters a 422 problem names, whether or not it prefixes them ``query.``."""
    return {field.removeprefix("query.") for field in invalid_fields(response)}


def accepted(response: Any, status: int = 200) -> dict[str, Any]:
    """The answer of an accepted command."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def link_contact(api: TestClient, contact_id: str, client_id: str) -> dict[str, Any]:
    return accepted(api.post(f"/contacts/{contact_id}/link", json={"client_id": client_id}))


def all_pages(api: TestClient, path: str, position: int, **params: Any) -> list[list[str]]:
    """The ids of every page of a list, following ``next_cursor`` to the end."""
    pages: list[list[str]] = []
    cursor = None
    while True:
        query = {"min_position": position, **params, **({"cursor": cursor} if cursor else {})}
        response = api.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 100, "the cursor never ends"


@dataclass(frozen=True)
class DealStory:
    """A deal backfilled in business time: opened, maybe moved, maybe closed."""

    value: str
    opened_at: datetime
    currency: str = "EUR"
    owner: str | None = None
    stage: str | None = None
    probability: int | None = None
    outcome: str | None = None  # "won" or "lost"
    closed_at: datetime | None = None
    archived: bool = False
    expected_close_date: str = "2027-03-31"

    @property
    def cycle_days(self) -> float:
        assert self.closed_at is not None
        return (self.closed_at - self.opened_at) / timedelta(days=1)

    @property
    def open_stage(self) -> str:
        return self.stage or "lead"

    @property
    def weighted(self) -> Decimal:
        """value × probability / 100, the probability defaulting to the stage's (SPEC §3)."""
        probability = self.probability or DEFAULT_PROBABILITIES[self.open_stage]
        return Decimal(self.value) * probability / 100


def tell(api: TestClient, client_id: str, story: DealStory) -> int:
    """Record the deal's story through the command API; the position of its last event."""
    fields: dict[str, Any] = {
        "value": story.value,
        "currency": story.currency,
        "expected_close_date": story.expected_close_date,
    }
    if story.owner is not None:
        fields["owner_id"] = story.owner
    deal = open_deal(api, client_id, occurred_at=story.opened_at.isoformat(), **fields)
    path, position = f"/deals/{deal['id']}", deal["position"]
    moved_at = story.opened_at + timedelta(hours=1)
    if story.stage is not None:
        body: dict[str, Any] = {"stage": story.stage, "occurred_at": moved_at.isoformat()}
        if story.probability is not None:
            body["probability"] = story.probability
        position = accepted(api.post(f"{path}/stage", json=body))["position"]
    if story.outcome is not None:
        assert story.closed_at is not None
        body = {"occurred_at": story.closed_at.isoformat()}
        if story.outcome == "lost":
            body["reason"] = "price"
        command = {"won": "win", "lost": "lose"}[story.outcome]
        position = accepted(api.post(f"{path}/{command}", json=body))["position"]
    if story.archived:
        position = accepted(api.post(f"{path}/archive"))["position"]
    return position
