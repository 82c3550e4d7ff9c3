"""Client: given these events, when this command, then these events or this error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from aggregates.client import Client, ClientCategory, ClientStatus
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken
from tests.unit.builders import ORG, day, on_day, only_event, recorded, replayed

ClientCommand = Callable[[Client, EventContext], None]

PROSPECT = (ClientStatus.PROSPECT.value, ClientCategory.PROSPECT.value)
ACTIVE_CLIENT = (ClientStatus.ACTIVE.value, ClientCategory.ACTIVE_CLIENT.value)


def register_client(**overrides: Any) -> Client:
    """A client registered on day 0 as a prospect, its ClientRegistered still pending."""
    status, category = PROSPECT
    fields: dict[str, Any] = {
        "name": "Hotel Miramar",
        "category": category,
        "status": status,
        "details": {"website": "https://miramar.example", "address": {"city": "Valencia"}},
        "context": on_day(0),
    }
    return Client(**(fields | overrides))


def a_client() -> Client:
    return recorded(register_client())


def an_archived_client() -> Client:
    client = register_client()
    client.archive(on_day(1))
    return recorded(client)


CHANGES: dict[str, ClientCommand] = {
    "change details": lambda client, ctx: client.change_details({"name": "Miramar SL"}, ctx),
    "change status": lambda client, ctx: client.change_status(*ACTIVE_CLIENT, context=ctx),
    "set primary contact": lambda client, ctx: client.set_primary_contact(uuid4(), ctx),
    "archive": lambda client, ctx: client.archive(ctx),
}


# --- registering ---------------------------------------------------------------------------


def test_registering_a_client_records_its_name_category_status_and_details() -> None:
    client = register_client()

    registered = only_event(client)

    assert isinstance(registered, Client.ClientRegistered)
    assert (registered.name, registered.status, registered.category) == (
        "Hotel Miramar",
        "prospect",
        "prospect",
    )
    assert registered.details["address"] == {"city": "Valencia"}


def test_a_new_client_belongs_to_its_organization_and_has_no_primary_contact() -> None:
    client = register_client()

    assert client.organization_id == ORG
    assert client.primary_contact_id is None
    assert not client.archived
    assert client.last_occurred_at == day(0)


# --- details and status --------------------------------------------------------------------


def test_changing_details_records_only_the_changes_given() -> None:
    client = a_client()

    client.change_details({"phone": "+34 600 000 000"}, on_day(1))

    changed = only_event(client)
    assert isinstance(changed, Client.ClientDetailsChanged)
    assert changed.changes == {"phone": "+34 600 000 000"}


def test_changing_details_with_no_changes_is_refused() -> None:
    client = a_client()

    with pytest.raises(InvalidValue) as refused:
        client.change_details({}, on_day(1))

    assert refused.value.field == "body"
    assert client.collect_events() == []


def test_changing_status_records_the_new_status_and_category() -> None:
    client = a_client()

    client.change_status(*ACTIVE_CLIENT, context=on_day(1))

    changed = only_event(client)
    assert isinstance(changed, Client.ClientStatusChanged)
    assert (changed.status, changed.category) == ACTIVE_CLIENT
    assert (client.status, client.category) == ACTIVE_CLIENT


def test_changing_only_the_category_is_a_change() -> None:
    client = a_client()

    client.change_status("prospect", "partner", on_day(1))

    assert only_event(client).category == "partner"


def test_changing_status_to_the_current_status_and_category_is_refused() -> None:
    client = a_client()

    with pytest.raises(RuleBroken, match="already has status"):
        client.change_status(*PROSPECT, context=on_day(1))

    assert client.collect_events() == []


# --- primary contact -----------------------------------------------------------------------


def test_setting_the_primary_contact_records_it() -> None:
    client = a_client()
    contact_id = uuid4()

    client.set_primary_contact(contact_id, on_day(1))

    changed = only_event(client)
    assert isinstance(changed, Client.PrimaryContactSet)
    assert changed.contact_id == contact_id
    assert client.primary_contact_id == contact_id


# --- archiving and restoring ---------------------------------------------------------------


def test_archiving_records_client_archived() -> None:
    client = a_client()

    client.archive(on_day(1))

    assert isinstance(only_event(client), Client.ClientArchived)
    assert client.archived


@pytest.mark.parametrize("command", CHANGES.values(), ids=CHANGES.keys())
def test_an_archived_client_refuses_changes(command: ClientCommand) -> None:
    client = an_archived_client()

    with pytest.raises(RuleBroken, match="is archived"):
        command(client, on_day(2))

    assert client.collect_events() == []


def test_restoring_an_archived_client_records_client_restored() -> None:
    client = an_archived_client()

    client.restore(on_day(2))

    assert isinstance(only_event(client), Client.ClientRestored)
    assert not client.archived


def test_a_restored_client_accepts_changes_again() -> None:
    client = an_archived_client()
    client.restore(on_day(2))
    recorded(client)

    client.change_details({"notes": "Back in business"}, on_day(3))

    assert isinstance(only_event(client), Client.ClientDetailsChanged)


def test_a_client_that_is_not_archived_cannot_be_restored() -> None:
    client = a_client()

    with pytest.raises(RuleBroken, match="is not archived"):
        client.restore(on_day(1))

    assert client.collect_events() == []


# --- business time -------------------------------------------------------------------------


@pytest.mark.parametrize("command", CHANGES.values(), ids=CHANGES.keys())
def test_a_command_dated_before_the_previous_event_is_refused(command: ClientCommand) -> None:
    client = a_client()
    client.change_details({"notes": "Met at the fair"}, on_day(5))
    recorded(client)

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        command(client, on_day(4))

    assert client.collect_events() == []


def test_restoring_dated_before_the_archiving_is_refused() -> None:
    client = an_archived_client()  # archived on day 1

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        client.restore(on_day(0))

    assert client.collect_events() == []
    assert client.archived


def test_a_command_dated_at_the_same_time_as_the_previous_event_is_accepted() -> None:
    client = a_client()

    client.change_details({"notes": "Same morning"}, on_day(0))

    assert only_event(client).context.occurred_at == day(0)


# --- reconstruction from events ------------------------------------------------------------


def test_a_client_replayed_from_its_events_has_the_same_state() -> None:
    client = register_client()
    client.change_status(*ACTIVE_CLIENT, context=on_day(1))
    client.set_primary_contact(uuid4(), on_day(2))

    copy = replayed(Client, client.collect_events())

    assert copy.version == client.version
    assert copy.__dict__ == client.__dict__


def test_a_replayed_client_still_refuses_a_no_op_status_change() -> None:
    client = register_client()
    client.change_status(*ACTIVE_CLIENT, context=on_day(1))

    copy = replayed(Client, client.collect_events())

    with pytest.raises(RuleBroken, match="already has status"):
        copy.change_status(*ACTIVE_CLIENT, context=on_day(2))
    assert copy.collect_events() == []


def test_a_replayed_archived_client_refuses_changes() -> None:
    client = register_client()
    client.archive(on_day(1))

    copy = replayed(Client, client.collect_events())

    with pytest.raises(RuleBroken, match="is archived"):
        copy.change_details({"notes": "x"}, on_day(2))
    assert copy.collect_events() == []


def test_a_replayed_archived_client_can_be_restored() -> None:
    client = register_client()
    client.archive(on_day(1))
    copy = replayed(Client, client.collect_events())

    copy.restore(on_day(2))

    assert isinstance(only_event(copy), Client.ClientRestored)
