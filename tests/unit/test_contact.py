"""Contact: given these events, when this command, then these events or this error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from aggregates.contact import Contact
from aggregates.context import EventContext
from aggregates.errors import InvalidValue, RuleBroken
from tests.unit.builders import ORG, day, on_day, only_event, recorded, replayed

ContactCommand = Callable[[Contact, EventContext], object]

MIRAMAR = UUID("00000000-0000-4000-8000-0000000000c1")
OTHER_CLIENT = UUID("00000000-0000-4000-8000-0000000000c2")


def create_contact(**overrides: Any) -> Contact:
    """A contact created on day 0, its ContactCreated still pending."""
    fields: dict[str, Any] = {
        "first_name": "Lucía",
        "last_name": "Pérez",
        "email": "lucia@miramar.example",
        "details": {"job_title": "Director", "category": "decision_maker"},
        "context": on_day(0),
    }
    return Contact(**(fields | overrides))


def a_contact() -> Contact:
    return recorded(create_contact())


def a_contact_linked_to(client_id: UUID) -> Contact:
    contact = create_contact()
    contact.link_to(client_id, on_day(1))
    return recorded(contact)


def an_archived_contact() -> Contact:
    contact = create_contact()
    contact.link_to(MIRAMAR, on_day(1))
    contact.archive(on_day(2))
    return recorded(contact)


CHANGES: dict[str, ContactCommand] = {
    "change details": lambda contact, ctx: contact.change_details({"notes": "x"}, ctx),
    "link": lambda contact, ctx: contact.link_to(OTHER_CLIENT, ctx),
    "unlink": lambda contact, ctx: contact.unlink(ctx),
    "archive": lambda contact, ctx: contact.archive(ctx),
}


# --- creating ------------------------------------------------------------------------------


def test_creating_a_contact_records_its_names_email_and_details() -> None:
    contact = create_contact()

    created = only_event(contact)

    assert isinstance(created, Contact.ContactCreated)
    assert (created.first_name, created.last_name, created.email) == (
        "Lucía",
        "Pérez",
        "lucia@miramar.example",
    )
    assert created.details == {"job_title": "Director", "category": "decision_maker"}


def test_a_new_contact_belongs_to_its_organization_and_to_no_client() -> None:
    contact = create_contact()

    assert contact.organization_id == ORG
    assert contact.email == "lucia@miramar.example"
    assert contact.client_id is None
    assert not contact.archived


# --- linking and unlinking -----------------------------------------------------------------


def test_linking_a_contact_records_the_client() -> None:
    contact = a_contact()

    contact.link_to(MIRAMAR, on_day(1))

    linked = only_event(contact)
    assert isinstance(linked, Contact.ContactLinked)
    assert linked.client_id == MIRAMAR
    assert contact.client_id == MIRAMAR


def test_a_contact_cannot_be_linked_again_to_its_client() -> None:
    contact = a_contact_linked_to(MIRAMAR)

    with pytest.raises(RuleBroken, match="already linked"):
        contact.link_to(MIRAMAR, on_day(2))

    assert contact.collect_events() == []


def test_a_contact_linked_to_a_client_cannot_be_linked_to_another() -> None:
    contact = a_contact_linked_to(MIRAMAR)

    with pytest.raises(RuleBroken, match="unlink it first"):
        contact.link_to(OTHER_CLIENT, on_day(2))

    assert contact.collect_events() == []
    assert contact.client_id == MIRAMAR


def test_unlinking_records_and_returns_the_former_client() -> None:
    contact = a_contact_linked_to(MIRAMAR)

    former_client = contact.unlink(on_day(2))

    unlinked = only_event(contact)
    assert isinstance(unlinked, Contact.ContactUnlinked)
    assert unlinked.client_id == former_client == MIRAMAR
    assert contact.client_id is None


def test_a_contact_that_is_not_linked_cannot_be_unlinked() -> None:
    contact = a_contact()

    with pytest.raises(RuleBroken, match="not linked"):
        contact.unlink(on_day(1))

    assert contact.collect_events() == []


def test_an_unlinked_contact_can_be_linked_to_another_client() -> None:
    contact = a_contact_linked_to(MIRAMAR)
    contact.unlink(on_day(2))
    recorded(contact)

    contact.link_to(OTHER_CLIENT, on_day(3))

    assert only_event(contact).client_id == OTHER_CLIENT


# --- details -------------------------------------------------------------------------------


def test_changing_details_records_only_the_changes_given() -> None:
    contact = a_contact()

    contact.change_details({"department": "Sales"}, on_day(1))

    changed = only_event(contact)
    assert isinstance(changed, Contact.ContactDetailsChanged)
    assert changed.changes == {"department": "Sales"}
    assert contact.email == "lucia@miramar.example"


def test_changing_the_email_updates_the_contact_email() -> None:
    contact = a_contact()

    contact.change_details({"email": "lucia.perez@miramar.example"}, on_day(1))

    assert only_event(contact).changes == {"email": "lucia.perez@miramar.example"}
    assert contact.email == "lucia.perez@miramar.example"


def test_changing_details_with_no_changes_is_refused() -> None:
    contact = a_contact()

    with pytest.raises(InvalidValue) as refused:
        contact.change_details({}, on_day(1))

    assert refused.value.field == "body"
    assert contact.collect_events() == []


# --- archiving and restoring ---------------------------------------------------------------


def test_archiving_records_contact_archived() -> None:
    contact = a_contact()

    contact.archive(on_day(1))

    assert isinstance(only_event(contact), Contact.ContactArchived)
    assert contact.archived


@pytest.mark.parametrize("command", CHANGES.values(), ids=CHANGES.keys())
def test_an_archived_contact_refuses_changes(command: ContactCommand) -> None:
    contact = an_archived_contact()

    with pytest.raises(RuleBroken, match="is archived"):
        command(contact, on_day(3))

    assert contact.collect_events() == []


def test_restoring_an_archived_contact_records_contact_restored() -> None:
    contact = an_archived_contact()

    contact.restore(on_day(3))

    assert isinstance(only_event(contact), Contact.ContactRestored)
    assert not contact.archived


def test_a_restored_contact_keeps_its_client() -> None:
    contact = an_archived_contact()

    contact.restore(on_day(3))

    assert contact.client_id == MIRAMAR


def test_a_contact_that_is_not_archived_cannot_be_restored() -> None:
    contact = a_contact()

    with pytest.raises(RuleBroken, match="is not archived"):
        contact.restore(on_day(1))

    assert contact.collect_events() == []


# --- business time -------------------------------------------------------------------------


@pytest.mark.parametrize("command", CHANGES.values(), ids=CHANGES.keys())
def test_a_command_dated_before_the_previous_event_is_refused(command: ContactCommand) -> None:
    contact = a_contact_linked_to(MIRAMAR)  # linked on day 1

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        command(contact, on_day(0))

    assert contact.collect_events() == []


def test_restoring_dated_before_the_archiving_is_refused() -> None:
    contact = an_archived_contact()  # archived on day 2

    with pytest.raises(RuleBroken, match="before this record's previous event"):
        contact.restore(on_day(1))

    assert contact.collect_events() == []


def test_a_command_dated_at_the_same_time_as_the_previous_event_is_accepted() -> None:
    contact = a_contact_linked_to(MIRAMAR)

    contact.unlink(on_day(1))

    assert only_event(contact).context.occurred_at == day(1)


# --- reconstruction from events ------------------------------------------------------------


def test_a_contact_replayed_from_its_events_has_the_same_state() -> None:
    contact = create_contact()
    contact.link_to(MIRAMAR, on_day(1))
    contact.change_details({"email": "lp@miramar.example"}, on_day(2))

    copy = replayed(Contact, contact.collect_events())

    assert (copy.email, copy.client_id) == ("lp@miramar.example", MIRAMAR)
    assert copy.__dict__ == contact.__dict__


def test_a_replayed_linked_contact_still_refuses_another_client() -> None:
    contact = create_contact()
    contact.link_to(MIRAMAR, on_day(1))

    copy = replayed(Contact, contact.collect_events())

    with pytest.raises(RuleBroken, match="unlink it first"):
        copy.link_to(OTHER_CLIENT, on_day(2))
    assert copy.collect_events() == []
