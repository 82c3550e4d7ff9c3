"""Tenant isolation: two organizations with the same client name, contact email, deal names and
admin user id; neither ever sees the other's ids, names, counts or sums — on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import uuid4

import httpx
import pytest

from aggregates.access import Role
from aggregates.api_token import ApiToken, secret_hash
from crm.policy import POLICY, PUBLIC
from tests.access.samples import QUERIES, Records
from tests.access.support import (
    APP_ENDPOINTS,
    Headers,
    TestClient,
    accepted,
    add_member,
    bearer,
    create_organization,
    created,
    deal_body,
    first_admin,
    first_run_token,
    head_position,
    issue_token,
    running,
)
from tests.stores import STORE_KINDS, settings_for

SAME_EMAIL = "ana@example.com"
SHARED_ADMIN = "admin"
SHARED_PIPELINE = "enterprise"


@dataclass(frozen=True)
class Tenant:
    """One organization as its admin sees it, and what only it has."""

    label: str
    admin: Headers
    organization_id: str
    manager_id: str
    clients: dict[str, str]
    contacts: dict[str, str]
    deals: dict[str, str]
    token_ids: frozenset[str]
    markers: tuple[str, ...]
    open_value: Decimal
    won: int
    lost: int
    usd_rate: Decimal

    @property
    def records(self) -> Records:
        """The records a sample read names: the shared names, the shared pipeline id."""
        return Records(
            client=self.clients["Acme Ltd"],
            contact=self.contacts[SAME_EMAIL],
            deal=self.deals["Website redesign"],
            pipeline=SHARED_PIPELINE,
        )

    @property
    def own_pipeline(self) -> str:
        return f"{self.label.lower()}-only"

    @property
    def record_ids(self) -> set[str]:
        return {*self.clients.values(), *self.contacts.values(), *self.deals.values()}

    @property
    def every_id(self) -> set[str]:
        return {*self.record_ids, *self.token_ids, self.organization_id}


def populate(
    client: TestClient,
    label: str,
    admin_secret: str,
    organization_id: str,
    values: dict[str, str],
    usd_rate: str,
) -> Tenant:
    """The same names in every organization; values, notes and reasons of its own."""
    admin = bearer(admin_secret)
    prefix = label.lower()
    pipeline_name = f"{label}-only pipeline"
    for pipeline_id in (SHARED_PIPELINE, f"{prefix}-only"):
        created(client, "/pipelines", admin, {"id": pipeline_id, "name": pipeline_name})
    rate = {"rate_to_base": usd_rate, "effective_from": "2024-01-01"}
    accepted(client, "PUT", "/exchange-rates/USD", admin, rate)
    manager_id = f"{prefix}-manager"
    add_member(client, admin, manager_id, Role.MANAGER)
    manager_token_id, manager_secret = issue_token(client, admin, manager_id)
    manager = bearer(manager_secret)
    note = f"{label}-only note"
    acme = created(client, "/clients", admin, {"name": "Acme Ltd", "notes": note})
    contact = {"first_name": "Ana", "last_name": "Ruiz", "email": SAME_EMAIL, "client_id": acme}
    ana = created(client, "/contacts", admin, contact)
    deals = {
        name: created(client, "/deals", admin, deal_body(acme, name=name, value=value))
        for name, value in values.items()
    }
    for deal_id in deals.values():
        accepted(client, "PUT", f"/deals/{deal_id}/owner", admin, {"owner_id": manager_id})
    reason = f"{label}-only reason"
    accepted(client, "POST", f"/deals/{deals['Hosting']}/lose", manager, {"reason": reason})
    if "Support" in deals:
        accepted(client, "POST", f"/deals/{deals['Support']}/win", manager, None)
    open_value = Decimal(values["Website redesign"])
    return Tenant(
        label=label,
        admin=admin,
        organization_id=organization_id,
        manager_id=manager_id,
        clients={"Acme Ltd": acme},
        contacts={SAME_EMAIL: ana},
        deals=deals,
        token_ids=frozenset(
            {str(ApiToken.id_for_hash(secret_hash(admin_secret))), manager_token_id}
        ),
        markers=(note, reason, manager_id, pipeline_name),
        open_value=open_value,
        won=int("Support" in deals),
        lost=1,
        usd_rate=Decimal(usd_rate),
    )


@dataclass(frozen=True)
class Tenants:
    client: TestClient
    a: Tenant
    b: Tenant


@pytest.fixture(scope="module", params=STORE_KINDS)
def tenants(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    data_dir = tmp_path_factory.mktemp("isolation") / "var"
    with settings_for(request.param, data_dir) as settings, running(settings) as client:
        first_secret = first_run_token(client)
        a_id = client.get("/organization", headers=first_admin(client)).json()["id"]
        b_id, b_secret = create_organization(client, "Organization B", SHARED_ADMIN)
        a_values = {"Website redesign": "2500.00", "Hosting": "400.00", "Support": "1000.00"}
        b_values = {"Website redesign": "300.00", "Hosting": "50.00"}
        a = populate(client, "A", first_secret, a_id, a_values, usd_rate="0.91")
        b = populate(client, "B", b_secret, str(b_id), b_values, usd_rate="0.77")
        yield Tenants(client, a, b)


@dataclass(frozen=True)
class Viewpoint:
    """The caller's organization, and the other one whose data it must never see."""

    client: TestClient
    caller: Tenant
    other: Tenant

    def get(self, path: str, **params: Any) -> httpx.Response:
        params = {"min_position": head_position(self.client), **params}
        return self.client.get(path, params=params, headers=self.caller.admin)

    def items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        response = self.get(path, **{"limit": 200, **params})
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    def leaks(self, text: str) -> list[str]:
        """The other organization's ids and markers found in ``text``."""
        found = [value for value in self.other.every_id if value in text]
        return found + [marker for marker in self.other.markers if marker in text]


@pytest.fixture(params=["A", "B"], ids=lambda label: f"{label} calls")
def view(tenants: Tenants, request: pytest.FixtureRequest) -> Viewpoint:
    caller, other = (tenants.a, tenants.b) if request.param == "A" else (tenants.b, tenants.a)
    return Viewpoint(tenants.client, caller, other)


def ids(items: list[dict[str, Any]]) -> set[str]:
    return {item["id"] for item in items}


def test_the_same_client_name_contact_email_and_deal_name_each_find_the_callers_own_record(
    view: Viewpoint,
) -> None:
    clients = view.items("/clients", name="Acme")
    contacts = view.items("/contacts", email=SAME_EMAIL)
    deals = [d for d in view.items("/deals") if d["name"] == "Website redesign"]

    assert ids(clients) == {view.caller.clients["Acme Ltd"]}
    assert ids(contacts) == {view.caller.contacts[SAME_EMAIL]}
    assert ids(deals) == {view.caller.deals["Website redesign"]}


@pytest.mark.parametrize("path", ["/clients", "/contacts", "/deals"])
def test_a_list_shows_the_callers_records_and_none_of_the_other_organizations(
    view: Viewpoint, path: str
) -> None:
    listed = ids(view.items(path, include_archived="true"))

    assert listed & view.other.record_ids == set()
    assert listed & view.caller.record_ids


@pytest.mark.parametrize("path", ["/contacts", "/deals"])
def test_a_list_filtered_by_the_other_organizations_client_is_empty(
    view: Viewpoint, path: str
) -> None:
    assert view.items(path, client_id=view.other.clients["Acme Ltd"]) == []


def test_filters_naming_the_other_organizations_deal_or_salesperson_find_nothing(
    view: Viewpoint,
) -> None:
    their_deal, their_manager = view.other.deals["Website redesign"], view.other.manager_id

    visits = view.get("/analytics/time-in-stage/visits", deal_id=their_deal).json()
    deals = view.items("/deals", owner=their_manager)
    pipeline = view.get("/analytics/pipeline-value", owner=their_manager).json()
    win_rate = view.get("/analytics/win-rate", owner=their_manager).json()

    assert visits["visits"] == []
    assert deals == []
    assert [t for s in pipeline["stages"] for t in s["by_currency"] if t["deals"]] == []
    assert (win_rate["won"], win_rate["lost"]) == (0, 0)


@pytest.mark.parametrize("suffix", ["", "/history", "/state"], ids=["detail", "history", "state"])
@pytest.mark.parametrize("kind", ["clients", "contacts", "deals"])
def test_the_other_organizations_record_answers_404(
    view: Viewpoint, kind: str, suffix: str
) -> None:
    records = {"clients": view.other.clients, "contacts": view.other.contacts}
    record_id = next(iter(records.get(kind, view.other.deals).values()))

    response = view.get(f"/{kind}/{record_id}{suffix}")

    assert response.status_code == 404, response.text
    assert not [m for m in view.other.markers if m in response.text]


def test_pipeline_value_counts_and_sums_only_the_callers_open_deals(view: Viewpoint) -> None:
    response = view.get("/analytics/pipeline-value")

    totals = [t for stage in response.json()["stages"] for t in stage["by_currency"]]
    assert sum(t["deals"] for t in totals) == 1
    assert sum(Decimal(t["value"]) for t in totals) == view.caller.open_value


def test_win_rate_and_sales_cycle_count_only_the_callers_closed_deals(view: Viewpoint) -> None:
    win_rate = view.get("/analytics/win-rate").json()
    cycle = view.get("/analytics/sales-cycle").json()

    assert (win_rate["won"], win_rate["lost"]) == (view.caller.won, view.caller.lost)
    assert (cycle["won"]["deals"], cycle["lost"]["deals"]) == (view.caller.won, view.caller.lost)


def test_the_audit_trail_shows_only_the_callers_organization(view: Viewpoint) -> None:
    audited = {item["record_id"] for item in view.items("/audit", limit=500)}
    about_theirs = view.items("/audit", record=view.other.clients["Acme Ltd"])
    by_their_manager = view.items("/audit", actor=view.other.manager_id)

    assert audited & view.other.every_id == set()
    assert view.caller.record_ids <= audited
    assert about_theirs == []
    assert by_their_manager == []


def test_users_and_tokens_list_only_the_callers_members_and_tokens(view: Viewpoint) -> None:
    users = view.get("/users").json()
    tokens = view.get("/tokens").json()

    assert {user["user_id"] for user in users} == {SHARED_ADMIN, view.caller.manager_id}
    assert {token["id"] for token in tokens} == view.caller.token_ids


def test_the_organization_endpoint_shows_the_callers_own(view: Viewpoint) -> None:
    assert view.get("/organization").json()["id"] == view.caller.organization_id


def test_the_same_pipeline_id_shows_the_callers_own_pipeline(view: Viewpoint) -> None:
    shared = view.get(f"/pipelines/{SHARED_PIPELINE}").json()
    listed = view.get("/pipelines").json()

    assert shared["name"] == f"{view.caller.label}-only pipeline"
    assert {p["id"] for p in listed} == {"default", SHARED_PIPELINE, view.caller.own_pipeline}
    assert view.leaks(str(listed)) == []


def test_the_other_organizations_pipeline_answers_404(view: Viewpoint) -> None:
    response = view.get(f"/pipelines/{view.other.own_pipeline}")

    assert response.status_code == 404, response.text


def test_exchange_rates_list_only_the_callers_rates(view: Viewpoint) -> None:
    items = view.get("/exchange-rates").json()["items"]

    assert [(i["currency"], Decimal(i["rate_to_base"])) for i in items] == [
        ("USD", view.caller.usd_rate)
    ]


GUARDED_READS = [
    path
    for method, path in APP_ENDPOINTS
    if method == "GET" and POLICY.get((method, path), PUBLIC) is not PUBLIC
]


@pytest.mark.parametrize("template", GUARDED_READS)
def test_no_read_answer_mentions_the_other_organizations_ids_or_markers(
    view: Viewpoint, template: str
) -> None:
    endpoint = ("GET", template)
    response = view.get(view.caller.records.path(endpoint), **QUERIES.get(endpoint, {}))

    assert response.status_code == 200, response.text
    assert view.leaks(response.text) == []


def test_commands_on_the_other_organizations_records_answer_404_and_change_nothing(
    view: Viewpoint,
) -> None:
    theirs = view.other
    client_id, contact_id = theirs.clients["Acme Ltd"], theirs.contacts[SAME_EMAIL]
    deal_id = theirs.deals["Website redesign"]
    before = head_position(view.client)
    commands = [
        ("PATCH", f"/clients/{client_id}", {"notes": "overwritten"}),
        ("PATCH", f"/contacts/{contact_id}", {"job_title": "Spy"}),
        ("POST", f"/deals/{deal_id}/stage", {"stage": "proposal"}),
        ("POST", f"/deals/{deal_id}/archive", None),
    ]

    statuses = [
        view.client.request(method, path, json=body, headers=view.caller.admin).status_code
        for method, path, body in commands
    ]

    assert statuses == [404] * len(commands)
    assert head_position(view.client) == before


def test_a_command_naming_the_other_organizations_record_in_its_body_is_refused(
    view: Viewpoint,
) -> None:
    mine, theirs = view.caller, view.other
    their_client, their_contact = theirs.clients["Acme Ltd"], theirs.contacts[SAME_EMAIL]
    contact = {"first_name": "Eve", "last_name": "Doe", "email": "eve@example.com"}
    before = head_position(view.client)
    commands = [
        ("POST", "/deals", deal_body(their_client)),
        ("POST", "/contacts", {**contact, "client_id": their_client}),
        ("POST", f"/contacts/{mine.contacts[SAME_EMAIL]}/link", {"client_id": their_client}),
        (
            "PUT",
            f"/clients/{mine.clients['Acme Ltd']}/primary-contact",
            {"contact_id": their_contact},
        ),
        (
            "PUT",
            f"/deals/{mine.deals['Website redesign']}/stakeholders",
            {"contact_ids": [their_contact]},
        ),
    ]

    responses = [
        view.client.request(method, path, json=body, headers=mine.admin)
        for method, path, body in commands
    ]

    assert [r.status_code for r in responses] == [422] * len(commands)
    assert head_position(view.client) == before


def test_the_same_idempotency_key_in_two_organizations_makes_two_records(
    view: Viewpoint,
) -> None:
    key = {"Idempotency-Key": f"same-key-{uuid4()}"}
    body = {"name": "Idempotent Co"}

    mine = view.client.post("/clients", json=body, headers={**view.caller.admin, **key})
    theirs = view.client.post("/clients", json=body, headers={**view.other.admin, **key})

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert "Idempotent-Replayed" not in theirs.headers
