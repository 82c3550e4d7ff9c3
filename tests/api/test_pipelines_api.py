"""Pipelines, moving deals between them, and exchange rates over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from fastapi.testclient import TestClient

from aggregates.access import Role
from aggregates.organization import Organization
from commands import models
from commands.administration import Administration
from commands.service import CommandMeta
from tests.api.builders import accepted, head_position, invalid_fields, problem
from tests.api.helpers import open_deal, read, register_client

ENTERPRISE: dict[str, Any] = {
    "id": "enterprise",
    "name": "Enterprise",
    "stages": [
        {"id": "discovery", "name": "Discovery", "probability": 5},
        {"id": "pilot", "name": "Pilot", "probability": 40},
        {"id": "security", "name": "Security review", "probability": 60},
        {"id": "signed", "name": "Signed", "kind": "won"},
        {"id": "dropped", "name": "Dropped", "kind": "lost"},
    ],
}


def define_enterprise(api: TestClient) -> dict[str, Any]:
    return accepted(api.post("/pipelines", json=ENTERPRISE), 201)


def stage_ids(pipeline: dict[str, Any]) -> list[str]:
    return [stage["id"] for stage in pipeline["stages"]]


def history_types(api: TestClient, deal_id: str, position: int) -> list[str]:
    entries = read(api, f"/deals/{deal_id}/history", position)["entries"]
    return [entry["type"] for entry in entries]


# --- reading and defining ------------------------------------------------------------------


def test_every_organization_has_the_default_pipeline_from_its_creation(api: TestClient) -> None:
    (default,) = read(api, "/pipelines", head_position(api))

    assert default["id"] == "default"
    assert default["version"] == 1
    assert [(s["id"], s["probability"], s["kind"]) for s in default["stages"]] == [
        ("lead", 10, "open"),
        ("qualified", 25, "open"),
        ("proposal", 50, "open"),
        ("negotiation", 75, "open"),
        ("closed_won", 100, "won"),
        ("closed_lost", 0, "lost"),
    ]


def test_a_second_pipeline_is_defined_and_read_back(api: TestClient) -> None:
    response = api.post("/pipelines", json=ENTERPRISE)

    created = accepted(response, 201)
    assert response.headers["Location"] == "/pipelines/enterprise"
    assert response.headers["ETag"] == '"1"'
    pipeline = read(api, "/pipelines/enterprise", created["position"])
    assert (pipeline["record_id"], pipeline["name"]) == (created["id"], "Enterprise")
    assert stage_ids(pipeline) == ["discovery", "pilot", "security", "signed", "dropped"]
    assert [s["probability"] for s in pipeline["stages"]] == [5, 40, 60, 100, 0]
    listed = read(api, "/pipelines", created["position"])
    assert [p["id"] for p in listed] == ["default", "enterprise"]


def test_a_pipeline_defined_without_stages_gets_the_default_stages(api: TestClient) -> None:
    created = accepted(api.post("/pipelines", json={"id": "renewals", "name": "Renewals"}), 201)

    pipeline = read(api, "/pipelines/renewals", created["position"])

    assert stage_ids(pipeline) == [
        "lead",
        "qualified",
        "proposal",
        "negotiation",
        "closed_won",
        "closed_lost",
    ]


def test_a_pipeline_id_is_defined_once(api: TestClient) -> None:
    define_enterprise(api)
    before = head_position(api)

    again = api.post("/pipelines", json=ENTERPRISE)
    default = api.post("/pipelines", json={"id": "default", "name": "Another default"})

    assert "already exists" in problem(again, 409)["detail"]
    assert "already exists" in problem(default, 409)["detail"]
    assert head_position(api) == before


def test_an_invalid_pipeline_names_its_fields(api: TestClient) -> None:
    no_won = {**ENTERPRISE, "stages": [s for s in ENTERPRISE["stages"] if s["id"] != "signed"]}
    open_without_probability = {
        **ENTERPRISE,
        "stages": [{"id": "x", "name": "X"}, *ENTERPRISE["stages"]],
    }

    assert invalid_fields(api.post("/pipelines", json={**ENTERPRISE, "id": "Big Deals"})) == {"id"}
    assert invalid_fields(api.post("/pipelines", json=no_won)) == {"stages"}
    assert invalid_fields(api.post("/pipelines", json=open_without_probability)) == {"stages.0"}


def test_an_unknown_pipeline_is_404(api: TestClient) -> None:
    problem(api.get("/pipelines/nowhere"), 404)
    problem(api.patch("/pipelines/nowhere", json={"name": "X"}), 404)
    problem(
        api.post("/pipelines/nowhere/stages", json={"id": "a", "name": "A", "probability": 1}), 404
    )


# --- changing a pipeline -------------------------------------------------------------------


def test_a_pipeline_is_renamed_with_if_match(api: TestClient) -> None:
    define_enterprise(api)

    renamed = accepted(
        api.patch(
            "/pipelines/enterprise", json={"name": "Big accounts"}, headers={"If-Match": '"1"'}
        )
    )
    stale = api.patch("/pipelines/enterprise", json={"name": "Huge"}, headers={"If-Match": '"1"'})

    assert renamed["version"] == 2
    problem(stale, 412)
    pipeline = read(api, "/pipelines/enterprise", renamed["position"])
    assert (pipeline["name"], pipeline["version"]) == ("Big accounts", 2)


def test_stages_are_added_changed_and_reordered(api: TestClient) -> None:
    define_enterprise(api)

    accepted(
        api.post(
            "/pipelines/enterprise/stages", json={"id": "legal", "name": "Legal", "probability": 70}
        )
    )
    accepted(
        api.post(
            "/pipelines/enterprise/stages",
            json={"id": "intro", "name": "Intro", "probability": 1, "position": 0},
        )
    )
    accepted(
        api.patch(
            "/pipelines/enterprise/stages/pilot", json={"name": "Paid pilot", "probability": 45}
        )
    )
    order = ["intro", "pilot", "discovery", "security", "legal", "signed", "dropped"]
    last = accepted(api.put("/pipelines/enterprise/stage-order", json={"stage_ids": order}))

    pipeline = read(api, "/pipelines/enterprise", last["position"])
    assert stage_ids(pipeline) == order
    assert pipeline["stages"][1] == {
        "id": "pilot",
        "name": "Paid pilot",
        "probability": 45,
        "kind": "open",
    }
    assert pipeline["version"] == 6  # defined, 2 added, renamed, repriced, reordered


def test_refused_stage_changes_say_why_and_record_nothing(api: TestClient) -> None:
    define_enterprise(api)
    before = head_position(api)

    duplicate = api.post(
        "/pipelines/enterprise/stages", json={"id": "pilot", "name": "P", "probability": 3}
    )
    won_probability = api.patch("/pipelines/enterprise/stages/signed", json={"probability": 90})
    unknown_stage = api.patch("/pipelines/enterprise/stages/legal", json={"name": "Legal"})
    partial_order = api.put("/pipelines/enterprise/stage-order", json={"stage_ids": ["pilot"]})
    remove_won = api.delete("/pipelines/enterprise/stages/signed")
    remove_unknown = api.delete("/pipelines/enterprise/stages/legal")

    assert "already has a stage 'pilot'" in problem(duplicate, 409)["detail"]
    assert "stays 100" in problem(won_probability, 409)["detail"]
    assert "has no stage 'legal'" in problem(unknown_stage, 404)["detail"]
    assert invalid_fields(partial_order) == {"stage_ids"}
    assert "exactly one won and one lost" in problem(remove_won, 409)["detail"]
    problem(remove_unknown, 404)
    assert head_position(api) == before


# --- deals in pipelines --------------------------------------------------------------------


def test_a_deal_opens_in_the_first_stage_of_the_pipeline_it_names(api: TestClient) -> None:
    define_enterprise(api)
    client = register_client(api)

    deal = open_deal(api, client["id"], pipeline_id="enterprise")

    row = read(api, f"/deals/{deal['id']}", deal["position"])
    assert (row["pipeline_id"], row["stage"], row["probability"]) == ("enterprise", "discovery", 5)
    moved = accepted(api.post(f"/deals/{deal['id']}/stage", json={"stage": "pilot"}))
    won = accepted(api.post(f"/deals/{deal['id']}/win"))
    row = read(api, f"/deals/{deal['id']}", won["position"])
    assert (row["status"], row["stage"]) == ("won", "signed")
    assert moved["version"] == 2


def test_a_deal_cannot_open_in_an_unknown_pipeline(api: TestClient) -> None:
    client = register_client(api)

    response = api.post(
        "/deals",
        json={
            "name": "X",
            "client_id": client["id"],
            "value": "1",
            "currency": "EUR",
            "expected_close_date": "2027-01-01",
            "pipeline_id": "nowhere",
        },
    )

    assert invalid_fields(response) == {"pipeline_id"}


def test_removing_a_stage_moves_its_open_deals_in_the_same_save(api: TestClient) -> None:
    define_enterprise(api)
    client = register_client(api)["id"]
    in_pilot = [
        open_deal(api, client, pipeline_id="enterprise", name=f"Pilot {n}") for n in range(2)
    ]
    for deal in in_pilot:
        accepted(api.post(f"/deals/{deal['id']}/stage", json={"stage": "pilot"}))
    elsewhere = open_deal(api, client, pipeline_id="enterprise", name="Still discovering")
    won = open_deal(api, client, pipeline_id="enterprise", name="Won from pilot")
    accepted(api.post(f"/deals/{won['id']}/stage", json={"stage": "pilot"}))
    accepted(api.post(f"/deals/{won['id']}/win"))
    before = head_position(api)

    refused = api.delete("/pipelines/enterprise/stages/pilot")
    assert "holds 2 open deal(s)" in problem(refused, 409)["detail"]
    assert head_position(api) == before

    removed = accepted(api.delete("/pipelines/enterprise/stages/pilot?move_open_deals_to=security"))

    assert removed["position"] == before + 3  # the StageRemoved and two StageChanged, one save
    pipeline = read(api, "/pipelines/enterprise", removed["position"])
    assert stage_ids(pipeline) == ["discovery", "security", "signed", "dropped"]
    for deal in in_pilot:
        row = read(api, f"/deals/{deal['id']}", removed["position"])
        assert (row["stage"], row["probability"]) == ("security", 60)
        entries = read(api, f"/deals/{deal['id']}/history", removed["position"])["entries"]
        assert entries[-1]["type"] == "StageChanged"
        assert entries[-1]["changes"] == {
            "from_stage": "pilot",
            "to_stage": "security",
            "probability": 60,
        }
        assert entries[-1]["correlation_id"] == removed_correlation(api, removed["position"])
    assert read(api, f"/deals/{elsewhere['id']}", removed["position"])["stage"] == "discovery"
    assert read(api, f"/deals/{won['id']}", removed["position"])["stage"] == "signed"


def removed_correlation(api: TestClient, position: int) -> str:
    entries = read(api, "/audit", position, type="StageRemoved")["items"]
    correlation: str = entries[-1]["correlation_id"]
    return correlation


def test_a_stage_target_in_the_body_works_like_the_query(api: TestClient) -> None:
    define_enterprise(api)
    deal = open_deal(api, register_client(api)["id"], pipeline_id="enterprise")

    removed = accepted(
        api.request(
            "DELETE",
            "/pipelines/enterprise/stages/discovery",
            json={"move_open_deals_to": "pilot"},
        )
    )

    assert read(api, f"/deals/{deal['id']}", removed["position"])["stage"] == "pilot"


def test_an_empty_stage_is_removed_without_a_target(api: TestClient) -> None:
    removed = accepted(api.delete("/pipelines/default/stages/negotiation"))

    pipeline = read(api, "/pipelines/default", removed["position"])
    assert "negotiation" not in stage_ids(pipeline)


def test_a_deal_moves_between_pipelines_and_its_history_shows_it(api: TestClient) -> None:
    define_enterprise(api)
    deal = open_deal(api, register_client(api)["id"])
    accepted(api.post(f"/deals/{deal['id']}/stage", json={"stage": "proposal"}))

    moved = accepted(
        api.post(
            f"/deals/{deal['id']}/pipeline", json={"pipeline_id": "enterprise", "stage": "pilot"}
        )
    )

    entries = read(api, f"/deals/{deal['id']}/history", moved["position"])["entries"]
    assert entries[-1]["type"] == "DealMovedToPipeline"
    assert entries[-1]["changes"] == {
        "from_pipeline": "default",
        "to_pipeline": "enterprise",
        "from_stage": "proposal",
        "to_stage": "pilot",
        "probability": 40,
    }
    won = accepted(api.post(f"/deals/{deal['id']}/win"))
    entries = read(api, f"/deals/{deal['id']}/history", won["position"])["entries"]
    assert entries[-1]["changes"]["stage"] == "signed"


def test_a_deal_moves_to_the_first_open_stage_by_default(api: TestClient) -> None:
    define_enterprise(api)
    deal = open_deal(api, register_client(api)["id"])

    moved = accepted(api.post(f"/deals/{deal['id']}/pipeline", json={"pipeline_id": "enterprise"}))

    entries = read(api, f"/deals/{deal['id']}/history", moved["position"])["entries"]
    assert (entries[-1]["changes"]["to_stage"], entries[-1]["changes"]["probability"]) == (
        "discovery",
        5,
    )


def test_refused_moves_between_pipelines_say_why(api: TestClient) -> None:
    define_enterprise(api)
    deal = open_deal(api, register_client(api)["id"])
    closed = open_deal(api, register_client(api)["id"])
    accepted(api.post(f"/deals/{closed['id']}/lose", json={"reason": "price"}))
    before = head_position(api)
    path = f"/deals/{deal['id']}/pipeline"

    same = api.post(path, json={"pipeline_id": "default"})
    unknown = api.post(path, json={"pipeline_id": "nowhere"})
    closing_stage = api.post(path, json={"pipeline_id": "enterprise", "stage": "signed"})
    unknown_stage = api.post(path, json={"pipeline_id": "enterprise", "stage": "lead"})
    lost = api.post(f"/deals/{closed['id']}/pipeline", json={"pipeline_id": "enterprise"})

    assert "already in pipeline default" in problem(same, 409)["detail"]
    assert invalid_fields(unknown) == {"pipeline_id"}
    assert "closes the deal" in problem(closing_stage, 409)["detail"]
    assert invalid_fields(unknown_stage) == {"stage"}
    assert "lost and cannot move" in problem(lost, 409)["detail"]
    assert head_position(api) == before


# --- exchange rates ------------------------------------------------------------------------


def test_exchange_rates_are_set_and_read_back(api: TestClient) -> None:
    accepted(
        api.put(
            "/exchange-rates/USD", json={"rate_to_base": "0.90", "effective_from": "2025-01-01"}
        )
    )
    accepted(
        api.put(
            "/exchange-rates/USD", json={"rate_to_base": "0.95", "effective_from": "2025-03-01"}
        )
    )
    last = accepted(
        api.put(
            "/exchange-rates/GBP", json={"rate_to_base": "1.17", "effective_from": "2025-02-01"}
        )
    )

    rates = read(api, "/exchange-rates", last["position"])

    assert rates["base_currency"] == "EUR"
    assert [
        (r["currency"], r["rate_to_base"], r["effective_from"], r["base_currency"])
        for r in rates["items"]
    ] == [
        ("GBP", "1.17", "2025-02-01", "EUR"),
        ("USD", "0.90", "2025-01-01", "EUR"),
        ("USD", "0.95", "2025-03-01", "EUR"),
    ]
    usd = read(api, "/exchange-rates", last["position"], currency="USD")["items"]
    assert [r["rate_to_base"] for r in usd] == ["0.90", "0.95"]


def test_a_rate_set_again_for_the_same_day_replaces_it(api: TestClient) -> None:
    accepted(
        api.put(
            "/exchange-rates/USD", json={"rate_to_base": "0.90", "effective_from": "2025-01-01"}
        )
    )
    corrected = accepted(
        api.put(
            "/exchange-rates/USD", json={"rate_to_base": "0.91", "effective_from": "2025-01-01"}
        )
    )

    items = read(api, "/exchange-rates", corrected["position"])["items"]

    assert [(r["rate_to_base"], r["effective_from"]) for r in items] == [("0.91", "2025-01-01")]


def test_invalid_exchange_rates_are_refused_field_by_field(api: TestClient) -> None:
    before = head_position(api)
    body = {"rate_to_base": "1.1", "effective_from": "2025-01-01"}

    base = api.put("/exchange-rates/EUR", json=body)
    zero = api.put("/exchange-rates/USD", json={**body, "rate_to_base": "0"})
    not_a_currency = api.put("/exchange-rates/XXQ", json=body)
    no_date = api.put("/exchange-rates/USD", json={"rate_to_base": "1.1"})

    assert invalid_fields(base) == {"currency"}
    assert "EUR is the base currency" in problem(base, 422)["detail"]
    assert invalid_fields(zero) == {"rate_to_base"}
    assert invalid_fields(not_a_currency) == {"currency"}
    assert invalid_fields(no_date) == {"effective_from"}
    assert head_position(api) == before


def test_a_manager_reads_pipelines_and_rates_but_does_not_change_them(api: TestClient) -> None:
    accepted(api.post("/users", json={"user_id": "maria", "role": "MANAGER"}), 201)
    token = accepted(api.post("/users/maria/tokens", json={"label": "t"}), 201)["token"]
    maria = {"Authorization": f"Bearer {token}"}

    assert api.get("/pipelines", headers=maria).status_code == 200
    assert api.get("/exchange-rates", headers=maria).status_code == 200
    refused = api.post("/pipelines", json=ENTERPRISE, headers=maria)
    assert "MANAGER" in problem(refused, 403)["detail"]
    problem(
        api.put(
            "/exchange-rates/USD",
            json={"rate_to_base": "1", "effective_from": "2025-01-01"},
            headers=maria,
        ),
        403,
    )


# --- organizations created before pipelines were records ------------------------------------


def an_organization_from_before_pipelines(api: TestClient) -> dict[str, str]:
    """An organization with no pipeline record, as organizations created before pipelines
    were records are: the organization saved alone, its admin and token added after."""
    app = api.app.state.commands  # type: ignore[attr-defined]
    meta = CommandMeta(organization_id=uuid4(), actor_id="old-release")
    organization = Organization(
        name="Old Ltd",
        base_currency="EUR",
        crm_enabled=True,
        deal_creator_roles=["ADMIN"],
        contributor_access="read",
        context=meta.context(),
    )
    app.save(organization)
    administration = Administration(app)
    administration.add_member(models.AddMember(user_id="old-admin", role=Role.ADMIN), meta)
    issued = administration.issue_token("old-admin", models.IssueToken(), meta)
    return {"Authorization": f"Bearer {issued.secret}"}


def read_as(headers: dict[str, str], api: TestClient, path: str, position: int) -> Any:
    response = api.get(path, params={"min_position": position}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_older_organization_gets_its_default_pipeline_on_first_use(api: TestClient) -> None:
    old = an_organization_from_before_pipelines(api)
    (before,) = read_as(old, api, "/pipelines", head_position(api))
    client = accepted(api.post("/clients", json={"name": "Acme"}, headers=old), 201)
    deal_body = {
        "name": "X",
        "client_id": client["id"],
        "value": "1",
        "currency": "EUR",
        "expected_close_date": "2027-01-01",
    }

    deal = accepted(api.post("/deals", json=deal_body, headers=old), 201)
    moved = accepted(
        api.post(f"/deals/{deal['id']}/stage", json={"stage": "qualified"}, headers=old)
    )

    assert (before["id"], before["version"]) == ("default", 0)
    (after,) = read_as(old, api, "/pipelines", moved["position"])
    assert (after["id"], after["version"], after["record_id"]) == (
        "default",
        1,
        before["record_id"],
    )
    assert stage_ids(after) == stage_ids(before)


def conversion_by_stage(api: TestClient, position: int) -> dict[str, tuple[int, int]]:
    figures = read(api, "/analytics/conversion", position, pipeline="enterprise")
    return {row["stage"]: (row["entered"], row["converted"]) for row in figures["stages"]}


def test_given_deals_walked_through_stages_when_the_stages_are_reordered_then_conversion_counts_by_the_new_order(  # noqa: E501
    api: TestClient,
) -> None:
    define_enterprise(api)
    client = register_client(api)["id"]
    forward = open_deal(api, client, pipeline_id="enterprise", name="Forward")
    accepted(api.post(f"/deals/{forward['id']}/stage", json={"stage": "pilot"}))
    back = open_deal(api, client, pipeline_id="enterprise", name="Security, then pilot")
    accepted(api.post(f"/deals/{back['id']}/stage", json={"stage": "security"}))
    walked = accepted(api.post(f"/deals/{back['id']}/stage", json={"stage": "pilot"}))
    assert conversion_by_stage(api, walked["position"]) == {
        "discovery": (2, 2),
        "pilot": (2, 0),
        "security": (1, 0),  # pilot came after it, but pilot was the earlier stage
    }

    order = ["discovery", "security", "pilot", "signed", "dropped"]
    reordered = accepted(api.put("/pipelines/enterprise/stage-order", json={"stage_ids": order}))

    assert conversion_by_stage(api, reordered["position"]) == {
        "discovery": (2, 2),
        "security": (1, 1),  # now pilot is the later stage
        "pilot": (2, 0),
    }
    won = accepted(api.post(f"/deals/{forward['id']}/win"))
    assert conversion_by_stage(api, won["position"])["pilot"] == (2, 1)
