"""The access matrix of SPEC §4, generated from the app's own route table.

Every endpoint × every role × the caller's own or another organization's record ids × three
organization settings (the defaults; MANAGER creating deals and CONTRIBUTOR shut out; the CRM
disabled). Each expected answer comes from one declared table, ``crm.policy.POLICY``, read with
``aggregates.access.may`` under the organization's settings. Authorization does not depend on
the store, so the matrix runs on SQLite only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from aggregates.access import AccessSettings, Capability, ContributorAccess, Role, may
from crm.app import create_app
from crm.policy import OUTSIDE_CRM, POLICY, PUBLIC
from crm.settings import Settings
from tests.access.samples import QUERIES, Records, missing_samples, names_records, sample_body
from tests.access.support import (
    APP_ENDPOINTS,
    PROBLEM_JSON,
    Endpoint,
    Headers,
    TestClient,
    accepted,
    add_member,
    bearer,
    create_organization,
    created,
    deal_body,
    endpoints,
    first_admin,
    head_position,
    issue_token,
    member_with_token,
    running,
)


def without_policy(app: FastAPI) -> list[Endpoint]:
    """The endpoints of ``app`` that the policy table does not name."""
    return [endpoint for endpoint in endpoints(app) if endpoint not in POLICY]


ORGANIZATION_A = "Organization A"
USER_OF = {
    Role.ADMIN: "a-admin",
    Role.MANAGER: "a-manager",
    Role.CONTRIBUTOR: "a-contributor",
    Role.GUEST: "a-guest",
}
MANAGER_ID = USER_OF[Role.MANAGER]
# Each member endpoint acts on a member of its own, so no actor loses its role or token.
USER_TARGETS: dict[Endpoint, str] = {
    ("PUT", "/users/{user_id}/role"): "a-role-victim",
    ("DELETE", "/users/{user_id}"): "a-removal-victim",
    ("POST", "/users/{user_id}/tokens"): "a-token-holder",
}
OTHER_MARKERS = ("Beta-only client", "beta.only@example.com", "Beta-only deal")


@dataclass(frozen=True)
class Variant:
    name: str
    access: AccessSettings

    def settings_body(self) -> dict[str, Any]:
        return {
            "crm_enabled": self.access.crm_enabled,
            "deal_creator_roles": sorted(role.value for role in self.access.deal_creator_roles),
            "contributor_access": self.access.contributor_access.value,
        }


VARIANTS = (
    Variant("default settings", AccessSettings()),
    Variant(
        "MANAGER creates deals and CONTRIBUTOR sees nothing",
        AccessSettings(
            deal_creator_roles=frozenset({Role.ADMIN, Role.MANAGER}),
            contributor_access=ContributorAccess.NONE,
        ),
    ),
    Variant("CRM disabled", AccessSettings(crm_enabled=False)),
)
OWN, OTHER = "own", "another organization's"


@dataclass(frozen=True)
class Case:
    """One cell of the matrix, and what the policy table says it must answer."""

    endpoint: Endpoint
    role: Role
    records: str
    variant: Variant

    @property
    def capability(self) -> Capability:
        capability = POLICY[self.endpoint]
        assert capability is not PUBLIC
        return capability

    @property
    def crm_refused(self) -> bool:
        return not self.variant.access.crm_enabled and self.endpoint not in OUTSIDE_CRM

    @property
    def role_refused(self) -> bool:
        return not self.crm_refused and not may(self.role, self.capability, self.variant.access)

    @property
    def allowed(self) -> bool:
        return not (self.crm_refused or self.role_refused)

    def __str__(self) -> str:
        method, path = self.endpoint
        return (
            f"{method} {path} as {self.role.value} on {self.records} records, {self.variant.name}"
        )


GUARDED = [e for e in APP_ENDPOINTS if e in POLICY and POLICY[e] is not PUBLIC]
PUBLIC_ENDPOINTS = [e for e in APP_ENDPOINTS if e in POLICY and POLICY[e] is PUBLIC]
CASES = [
    Case(endpoint, role, records, variant)
    for variant in VARIANTS
    for endpoint in GUARDED
    for role in Role
    for records in ((OWN, OTHER) if names_records(endpoint) else (OWN,))
]


@dataclass
class World:
    """Organization A with a member of every role and records for each variant of its
    settings (so one variant's archive does not turn the next one's calls into conflicts),
    and organization B's records."""

    client: TestClient
    actors: dict[Role, Headers]
    own: dict[Variant, Records]
    other: Records
    variant: Variant | None = None

    def under(self, variant: Variant) -> None:
        """Put organization A's settings as the variant has them."""
        if self.variant != variant:
            body = variant.settings_body()
            accepted(self.client, "PATCH", "/organization", self.actors[Role.ADMIN], body)
            self.variant = variant

    def call(self, case: Case) -> httpx.Response:
        self.under(case.variant)
        own = self.own[case.variant]
        records = own if case.records == OWN else self.other
        method = case.endpoint[0]
        path = records.path(case.endpoint)
        body = sample_body(case.endpoint, own)
        params = QUERIES.get(case.endpoint)
        headers = self.actors[case.role]
        return self.client.request(method, path, params=params, json=body, headers=headers)


def organization_records(
    client: TestClient, admin: Headers, names: tuple[str, str, str]
) -> dict[str, str]:
    client_name, email, deal_name = names
    client_id = created(client, "/clients", admin, {"name": client_name})
    contact = {"first_name": "Ana", "last_name": "Ruiz", "email": email, "client_id": client_id}
    contact_id = created(client, "/contacts", admin, contact)
    deal = deal_body(client_id, name=deal_name, owner_id=MANAGER_ID)
    return {
        "client": client_id,
        "contact": contact_id,
        "deal": created(client, "/deals", admin, deal),
    }


def own_records(client: TestClient, admin: Headers, index: int) -> Records:
    users = {endpoint: f"{user_id}-{index}" for endpoint, user_id in USER_TARGETS.items()}
    for user_id in users.values():
        add_member(client, admin, user_id, Role.GUEST)
    token_id, _ = issue_token(client, admin, users[("POST", "/users/{user_id}/tokens")])
    names = ("Acme Ltd", f"ana.{index}@example.com", "Website redesign")
    records = organization_records(client, admin, names)
    created(client, "/pipelines", admin, {"id": f"matrix-{index}", "name": "Matrix"})
    return Records(
        **records,
        token=token_id,
        users=users,
        pipeline=f"matrix-{index}",
        new_user=f"a-added-{index}",
        new_pipeline=f"matrix-new-{index}",
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("matrix") / "var", database_url=None)
    with running(settings) as client:
        first = first_admin(client)
        accepted(client, "PATCH", "/organization", first, {"name": ORGANIZATION_A})
        actors = {role: member_with_token(client, first, USER_OF[role], role) for role in Role}
        own = {variant: own_records(client, first, i) for i, variant in enumerate(VARIANTS)}
        _, b_secret = create_organization(client, "Organization B", "b-admin")
        b_admin = bearer(b_secret)
        add_member(client, b_admin, "b-member", Role.MANAGER)
        b_token_id, _ = issue_token(client, b_admin, "b-member")
        other = organization_records(client, b_admin, OTHER_MARKERS)
        created(client, "/pipelines", b_admin, {"id": "beta-only", "name": OTHER_MARKERS[0]})
        yield World(
            client=client,
            actors=actors,
            own=own,
            other=Records(
                **other,
                token=b_token_id,
                users=dict.fromkeys(USER_TARGETS, "b-member"),
                pipeline="beta-only",
            ),
        )


# --- the policy table covers the route table ---------------------------------------------------


def test_every_route_of_the_app_has_an_entry_in_the_policy_table() -> None:
    app = create_app(Settings(data_dir=Path("never-started"), database_url=None))

    assert without_policy(app) == []


def test_every_required_body_and_query_parameter_of_the_app_has_a_sample_request() -> None:
    app = create_app(Settings(data_dir=Path("never-started"), database_url=None))

    assert missing_samples(app) == []


def test_every_entry_of_the_policy_table_names_a_route_of_the_app() -> None:
    assert set(POLICY) - set(APP_ENDPOINTS) == set()


def test_the_coverage_check_reports_a_route_the_policy_table_does_not_name() -> None:
    app = FastAPI()
    reports = APIRouter(prefix="/reports")

    @reports.get("/secret")
    def secret() -> dict[str, str]:
        return {}

    @app.get("/clients")
    def listed() -> dict[str, str]:
        return {}

    app.include_router(reports, prefix="/v2")

    assert without_policy(app) == [("GET", "/v2/reports/secret")]


def unlisted_router(path: str) -> APIRouter:
    router = APIRouter()

    @router.get(path)
    def unlisted() -> dict[str, str]:
        return {"secret": "data"}

    return router


def test_a_route_with_no_policy_entry_is_refused_at_run_time_even_to_an_admin(
    sqlite_settings: Settings,
) -> None:
    app = create_app(sqlite_settings)
    app.include_router(unlisted_router("/reports"))

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/reports", headers=first_admin(client))

    assert response.status_code == 403
    assert "GET /reports has no access policy" in response.json()["detail"]


def test_a_route_included_under_a_prefix_with_no_policy_entry_is_refused_at_run_time(
    sqlite_settings: Settings,
) -> None:
    app = create_app(sqlite_settings)
    app.include_router(unlisted_router("/clients"), prefix="/v2")
    assert ("GET", "/v2/clients") in without_policy(app)

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v2/clients", headers=first_admin(client))

    assert response.status_code == 403, response.text


# --- the matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c for c in CASES if c.role_refused], ids=str)
def test_a_role_the_policy_refuses_gets_403_naming_role_and_capability_and_nothing_is_recorded(
    world: World, case: Case
) -> None:
    world.under(case.variant)
    before = head_position(world.client)

    response = world.call(case)

    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    detail = response.json()["detail"]
    assert case.role.value in detail
    assert case.capability.value in detail
    assert head_position(world.client) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.crm_refused], ids=str)
def test_a_crm_endpoint_answers_403_crm_not_enabled_to_every_role_while_the_crm_is_disabled(
    world: World, case: Case
) -> None:
    world.under(case.variant)
    before = head_position(world.client)

    response = world.call(case)

    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    detail = response.json()["detail"]
    assert detail.startswith(f"CRM is not enabled for organization {ORGANIZATION_A}")
    assert head_position(world.client) == before


@pytest.mark.parametrize("case", [c for c in CASES if c.allowed and c.records == OWN], ids=str)
def test_a_role_the_policy_allows_is_never_refused_on_its_own_organizations_records(
    world: World, case: Case
) -> None:
    response = world.call(case)

    assert response.status_code not in (401, 403), response.text
    assert response.status_code < 500, response.text


@pytest.mark.parametrize("case", [c for c in CASES if c.allowed and c.records == OTHER], ids=str)
def test_another_organizations_record_answers_404_to_a_role_the_policy_allows(
    world: World, case: Case
) -> None:
    world.under(case.variant)
    before = head_position(world.client)

    response = world.call(case)

    assert response.status_code == 404, response.text
    assert not [marker for marker in OTHER_MARKERS if marker in response.text]
    assert head_position(world.client) == before


@pytest.mark.parametrize("endpoint", PUBLIC_ENDPOINTS, ids=" ".join)
@pytest.mark.parametrize("role", [None, *Role], ids=lambda role: f"as {role or 'nobody'}")
def test_a_public_endpoint_answers_without_credentials_and_to_every_role(
    world: World, endpoint: Endpoint, role: Role | None
) -> None:
    headers = {} if role is None else world.actors[role]

    response = world.client.request(*endpoint, headers=headers)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("endpoint", GUARDED, ids=" ".join)
def test_every_other_endpoint_answers_401_without_credentials(
    world: World, endpoint: Endpoint
) -> None:
    own = world.own[VARIANTS[0]]

    response = world.client.request(
        endpoint[0],
        own.path(endpoint),
        params=QUERIES.get(endpoint),
        json=sample_body(endpoint, own),
    )

    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- the organization's settings --------------------------------------------------------------


@dataclass(frozen=True)
class Organization:
    client: TestClient
    admin: Headers
    manager: Headers
    contributor: Headers
    records: Records


@contextmanager
def started_organization(settings: Settings) -> Iterator[Organization]:
    """The default organization with a MANAGER, a CONTRIBUTOR and a deal the MANAGER owns."""
    with running(settings) as client:
        admin = first_admin(client)
        manager = member_with_token(client, admin, MANAGER_ID, Role.MANAGER)
        contributor = member_with_token(client, admin, "a-contributor", Role.CONTRIBUTOR)
        records = organization_records(
            client, admin, ("Acme Ltd", "ana@example.com", "Website redesign")
        )
        yield Organization(client, admin, manager, contributor, Records(**records))


@pytest.fixture
def organization(sqlite_settings: Settings) -> Iterator[Organization]:
    """One for each test that changes the organization's settings."""
    with started_organization(sqlite_settings) as org:
        yield org


@pytest.fixture(scope="module")
def default_organization(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Organization]:
    """One for the tests that leave the settings as they are."""
    data_dir = tmp_path_factory.mktemp("default-organization") / "var"
    with started_organization(Settings(data_dir=data_dir, database_url=None)) as org:
        yield org


def refusal(response: httpx.Response) -> str:
    assert response.status_code == 403, response.text
    detail: str = response.json()["detail"]
    return detail


def test_a_manager_may_not_open_deals_while_only_admin_creates_them(
    default_organization: Organization,
) -> None:
    org = default_organization
    before = head_position(org.client)

    response = org.client.post("/deals", json=deal_body(org.records.client), headers=org.manager)

    detail = refusal(response)
    assert "MANAGER" in detail
    assert Capability.CREATE_DEALS.value in detail
    assert head_position(org.client) == before


def test_a_manager_opens_deals_once_the_organization_lets_managers_create_them(
    organization: Organization,
) -> None:
    org = organization
    creators = {"deal_creator_roles": ["ADMIN", "MANAGER"]}
    accepted(org.client, "PATCH", "/organization", org.admin, creators)

    response = org.client.post("/deals", json=deal_body(org.records.client), headers=org.manager)

    assert response.status_code == 201, response.text


def contributor_reads(org: Organization) -> list[httpx.Response]:
    paths = ("/clients", f"/clients/{org.records.client}")
    paths += ("/contacts", f"/contacts/{org.records.contact}")
    position = head_position(org.client)
    params = {"min_position": position}
    return [org.client.get(path, params=params, headers=org.contributor) for path in paths]


def test_a_contributor_reads_clients_and_contacts_while_contributor_access_is_read(
    default_organization: Organization,
) -> None:
    organization = default_organization
    clients, client, contacts, contact = contributor_reads(organization)

    assert [r.status_code for r in (clients, client, contacts, contact)] == [200] * 4
    assert [item["id"] for item in clients.json()["items"]] == [organization.records.client]
    assert [item["id"] for item in contacts.json()["items"]] == [organization.records.contact]
    assert client.json()["name"] == "Acme Ltd"
    assert contact.json()["email"] == "ana@example.com"


def test_a_contributor_gets_403_on_clients_and_contacts_once_contributor_access_is_none(
    organization: Organization,
) -> None:
    org = organization
    accepted(org.client, "PATCH", "/organization", org.admin, {"contributor_access": "none"})

    details = [refusal(response) for response in contributor_reads(org)]

    for detail in details:
        assert "CONTRIBUTOR" in detail
        assert Capability.READ_RECORDS.value in detail
    assert not [d for d in details if "Acme" in d or "ana@example.com" in d]


def test_a_manager_changes_a_deal_they_own(default_organization: Organization) -> None:
    org = default_organization
    path = f"/deals/{org.records.deal}/stage"

    response = org.client.post(path, json={"stage": "qualified"}, headers=org.manager)

    assert response.status_code == 200, response.text


DEAL_CHANGES = [e for e in GUARDED if POLICY[e] is Capability.CHANGE_DEALS]


@pytest.mark.parametrize("owner", ["another-manager", None], ids=["owned by another", "unowned"])
@pytest.mark.parametrize("endpoint", DEAL_CHANGES, ids=" ".join)
def test_a_manager_gets_403_naming_the_role_on_a_deal_they_do_not_own_and_nothing_is_recorded(
    default_organization: Organization, endpoint: Endpoint, owner: str | None
) -> None:
    org = default_organization
    deal = deal_body(org.records.client, name="Someone else's", owner_id=owner)
    theirs = created(org.client, "/deals", org.admin, deal)
    records = Records(org.records.client, org.records.contact, theirs)
    before = head_position(org.client)

    response = org.client.request(
        endpoint[0],
        records.path(endpoint),
        json=sample_body(endpoint, org.records),
        headers=org.manager,
    )

    detail = refusal(response)
    assert "MANAGER" in detail
    assert "change deal" in detail
    assert head_position(org.client) == before
