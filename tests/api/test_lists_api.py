"""Lists over HTTP: filters, sort, cursor pagination, archived records, read-your-writes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.builders import accepted, all_pages, invalid_parameters
from tests.api.helpers import create_contact, open_deal, read, register_client

OWNERS = ("maria", "jon", "li")


def ids(body: dict[str, Any]) -> list[str]:
    return [item["id"] for item in body["items"]]


def encoded(parts: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def open_deals(api: TestClient, count: int) -> tuple[str, list[dict[str, Any]], int]:
    """``count`` deals of one client, with repeated values, owners and stages; last position."""
    client = register_client(api)
    deals = []
    for number in range(count):
        deal = open_deal(
            api,
            client["id"],
            name=f"Deal {number:02d}",
            value=f"{(number % 5) * 100}.00",
            owner_id=OWNERS[number % 3],
        )
        deals.append(deal)
    return client["id"], deals, deals[-1]["position"]


# --- filters -----------------------------------------------------------------------------


def test_deals_are_filtered_by_status_stage_owner_and_client(api: TestClient) -> None:
    acme, bolt = register_client(api)["id"], register_client(api, name="Bolt SA")["id"]
    lead = open_deal(api, acme, owner_id="maria")
    proposal = open_deal(api, acme, owner_id="jon")
    accepted(api.post(f"/deals/{proposal['id']}/stage", json={"stage": "proposal"}))
    won = open_deal(api, bolt, owner_id="maria")
    position = accepted(api.post(f"/deals/{won['id']}/win"))["position"]

    def listed(**filters: Any) -> set[str]:
        return set(ids(read(api, "/deals", position, **filters)))

    assert listed(status="open") == {lead["id"], proposal["id"]}
    assert listed(status="won") == {won["id"]}
    assert listed(stage="proposal") == {proposal["id"]}
    assert listed(owner="maria") == {lead["id"], won["id"]}
    assert listed(client_id=bolt) == {won["id"]}
    assert listed(owner="maria", status="open") == {lead["id"]}
    assert listed(owner="nobody") == set()


def test_clients_are_filtered_by_status_category_and_name_prefix(api: TestClient) -> None:
    acme = register_client(api, name="Acme Ltd", status="active", category="active_client")
    acorn = register_client(api, name="acorn farms", status="prospect", category="prospect")
    bolt = register_client(api, name="Bolt SA", status="active", category="partner")
    position = bolt["position"]

    def listed(**filters: Any) -> set[str]:
        return set(ids(read(api, "/clients", position, **filters)))

    assert listed(status="active") == {acme["id"], bolt["id"]}
    assert listed(category="prospect") == {acorn["id"]}
    assert listed(name="ac") == {acme["id"], acorn["id"]}
    assert listed(name="ACM") == {acme["id"]}
    assert listed(name="Acme Ltd and more") == set()
    assert listed(name="%") == set()


def test_contacts_are_filtered_by_client_email_and_last_name_prefix(api: TestClient) -> None:
    client = register_client(api)
    ana = create_contact(api, last_name="Ruiz", email="ana@acme.example", client_id=client["id"])
    bea = create_contact(api, last_name="Rubio", email="bea@acme.example")
    position = create_contact(api, last_name="Soto", email="cai@acme.example")["position"]

    def listed(**filters: Any) -> set[str]:
        return set(ids(read(api, "/contacts", position, **filters)))

    assert listed(client_id=client["id"]) == {ana["id"]}
    assert listed(email="BEA@acme.example") == {bea["id"]}
    assert listed(name="ru") == {ana["id"], bea["id"]}


# --- sort --------------------------------------------------------------------------------


def test_clients_are_sorted_by_name_ascending_by_default_and_descending_with_a_minus(
    api: TestClient,
) -> None:
    for name in ("Charlie", "Alpha", "Bravo"):
        position = register_client(api, name=name)["position"]

    ascending = [c["name"] for c in read(api, "/clients", position)["items"]]
    descending = [c["name"] for c in read(api, "/clients", position, sort="-name")["items"]]

    assert ascending == ["Alpha", "Bravo", "Charlie"]
    assert descending == ["Charlie", "Bravo", "Alpha"]


def test_deals_are_sorted_by_value_in_either_direction(api: TestClient) -> None:
    _, _, position = open_deals(api, 6)

    ascending = [d["value"] for d in read(api, "/deals", position, sort="value")["items"]]
    descending = [d["value"] for d in read(api, "/deals", position, sort="-value")["items"]]

    assert ascending == sorted(ascending, key=float)
    assert descending == sorted(ascending, key=float, reverse=True)
    assert ascending[0] != ascending[-1]


def test_deals_are_listed_most_recently_updated_first_by_default(api: TestClient) -> None:
    client = register_client(api)
    first = open_deal(api, client["id"])
    second = open_deal(api, client["id"])
    position = accepted(api.post(f"/deals/{first['id']}/stage", json={"stage": "qualified"}))[
        "position"
    ]

    assert ids(read(api, "/deals", position)) == [first["id"], second["id"]]


# --- pagination --------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["value", "-value", "name", "-updated_at", "expected_close_date"])
def test_cursor_pages_walk_every_deal_exactly_once_in_order(api: TestClient, sort: str) -> None:
    _, deals, position = open_deals(api, 25)

    pages = all_pages(api, "/deals", position, sort=sort, limit=7)

    assert [len(page) for page in pages] == [7, 7, 7, 4]
    walked = [deal_id for page in pages for deal_id in page]
    assert len(walked) == len(set(walked)) == 25
    assert set(walked) == {deal["id"] for deal in deals}
    assert walked == ids(read(api, "/deals", position, sort=sort, limit=200))


def test_cursor_pages_of_clients_walk_every_client_exactly_once(api: TestClient) -> None:
    created = [register_client(api, name=f"Client {n % 4}") for n in range(25)]

    pages = all_pages(api, "/clients", created[-1]["position"], sort="-name", limit=7)

    walked = [client_id for page in pages for client_id in page]
    assert len(walked) == len(set(walked)) == 25
    assert set(walked) == {client["id"] for client in created}


def test_a_page_that_ends_the_list_has_no_next_cursor(api: TestClient) -> None:
    _, _, position = open_deals(api, 3)

    exact = read(api, "/deals", position, limit=3)
    short = read(api, "/deals", position, limit=2)

    assert exact["next_cursor"] is None
    assert short["next_cursor"] is not None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "colour"}, "sort"),
        ({"sort": "-"}, "sort"),
        ({"sort": "--value"}, "sort"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": encoded(["x", "y"])[:-3]}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"[1]").decode()}, "cursor"),
        ({"cursor": encoded([None, "y"])}, "cursor"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"status": "pending"}, "status"),
        ({"client_id": "acme"}, "client_id"),
    ],
)
def test_an_invalid_list_parameter_is_refused_naming_it(
    api: TestClient, params: dict[str, Any], field: str
) -> None:
    response = api.get("/deals", params=params)

    assert invalid_parameters(response) == {field}


def test_a_cursor_from_another_sort_is_refused_naming_cursor(api: TestClient) -> None:
    _, _, position = open_deals(api, 3)
    by_name = read(api, "/deals", position, sort="name", limit=1)["next_cursor"]

    response = api.get("/deals", params={"sort": "value", "cursor": by_name})

    assert invalid_parameters(response) == {"cursor"}


def test_a_cursor_tampered_with_a_number_beyond_64_bits_is_refused_naming_cursor(
    api: TestClient,
) -> None:
    _, _, position = open_deals(api, 3)
    cursor = read(api, "/deals", position, sort="value", limit=1)["next_cursor"]
    parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    tampered = [2**70 if isinstance(part, int) else part for part in parts]
    assert tampered != parts, "the cursor carries no number to tamper with"

    response = api.get("/deals", params={"sort": "value", "cursor": encoded(tampered)})

    assert invalid_parameters(response) == {"cursor"}


# --- archived records --------------------------------------------------------------------


def test_archived_records_are_hidden_unless_asked_for(api: TestClient) -> None:
    client = register_client(api)
    kept_client = register_client(api, name="Kept")
    contact = create_contact(api)
    deal = open_deal(api, kept_client["id"])
    accepted(api.post(f"/clients/{client['id']}/archive"))
    accepted(api.post(f"/contacts/{contact['id']}/archive"))
    position = accepted(api.post(f"/deals/{deal['id']}/archive"))["position"]

    assert ids(read(api, "/clients", position)) == [kept_client["id"]]
    assert ids(read(api, "/contacts", position)) == []
    assert ids(read(api, "/deals", position)) == []
    everything = {"include_archived": "true"}
    assert len(ids(read(api, "/clients", position, **everything))) == 2
    assert ids(read(api, "/contacts", position, **everything)) == [contact["id"]]
    assert ids(read(api, "/deals", position, **everything)) == [deal["id"]]


def test_a_restored_client_is_listed_again(api: TestClient) -> None:
    client = register_client(api)
    accepted(api.post(f"/clients/{client['id']}/archive"))

    position = accepted(api.post(f"/clients/{client['id']}/restore"))["position"]

    assert ids(read(api, "/clients", position)) == [client["id"]]


# --- read your writes --------------------------------------------------------------------


def test_a_read_with_the_position_a_command_returned_sees_the_write(api: TestClient) -> None:
    client = register_client(api)
    deal = open_deal(api, client["id"])

    moved = accepted(api.post(f"/deals/{deal['id']}/stage", json={"stage": "negotiation"}))
    response = api.get("/deals", params={"min_position": moved["position"], "stage": "negotiation"})

    assert response.status_code == 200
    assert ids(response.json()) == [deal["id"]]
    assert int(response.headers["X-Read-Position"]) >= moved["position"]


@pytest.mark.parametrize("path", ["/clients", "/contacts", "/deals", "/analytics/win-rate"])
def test_every_read_says_which_position_it_includes(api: TestClient, path: str) -> None:
    position = register_client(api)["position"]

    response = api.get(path, params={"min_position": position})

    assert response.status_code == 200
    assert int(response.headers["X-Read-Position"]) >= position


def test_a_detail_read_with_min_position_sees_the_new_version(api: TestClient) -> None:
    created = register_client(api)

    changed = accepted(api.patch(f"/clients/{created['id']}", json={"notes": "now"}))
    response = api.get(f"/clients/{created['id']}", params={"min_position": changed["position"]})

    assert response.json()["notes"] == "now"
    assert response.headers["ETag"] == '"2"'
    assert int(response.headers["X-Read-Position"]) >= changed["position"]


def test_a_negative_min_position_is_refused_naming_it(api: TestClient) -> None:
    assert invalid_parameters(api.get("/deals", params={"min_position": -1})) == {"min_position"}
