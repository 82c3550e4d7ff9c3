"""EmailClaim: one contact per email address in an organization, by a deterministic id."""

from __future__ import annotations

from uuid import UUID

import pytest

from aggregates.email_claim import EmailClaim
from aggregates.errors import RuleBroken
from tests.unit.builders import ORG, OTHER_ORG, on_day, only_event, recorded, replayed

LUCIA = UUID("00000000-0000-4000-8000-0000000000d1")
PABLO = UUID("00000000-0000-4000-8000-0000000000d2")
EMAIL = "lucia@miramar.example"


def claim_email(email: str = EMAIL, contact_id: UUID = LUCIA) -> EmailClaim:
    """Lucía's claim on her email, its EmailClaimed still pending."""
    return EmailClaim(email=email, contact_id=contact_id, context=on_day(0))


def a_claim() -> EmailClaim:
    return recorded(claim_email())


def a_released_claim() -> EmailClaim:
    claim = claim_email()
    claim.release(LUCIA, on_day(1))
    return recorded(claim)


# --- the deterministic id ------------------------------------------------------------------


def test_a_claim_takes_the_id_derived_from_its_organization_and_email() -> None:
    claim = claim_email()

    assert claim.id == EmailClaim.id_for(ORG, EMAIL)


@pytest.mark.parametrize(
    "spelling", ["Lucia@Miramar.Example", "LUCIA@MIRAMAR.EXAMPLE", "  lucia@miramar.example\n"]
)
def test_the_same_email_in_another_case_or_with_spaces_has_the_same_id(spelling: str) -> None:
    assert EmailClaim.id_for(ORG, spelling) == EmailClaim.id_for(ORG, EMAIL)


def test_the_same_email_in_another_organization_has_another_id() -> None:
    assert EmailClaim.id_for(OTHER_ORG, EMAIL) != EmailClaim.id_for(ORG, EMAIL)


def test_another_email_has_another_id() -> None:
    assert EmailClaim.id_for(ORG, "pablo@miramar.example") != EmailClaim.id_for(ORG, EMAIL)


def test_the_id_does_not_change_between_runs() -> None:
    # Stored claims are found again by this id: changing the derivation orphans them all.
    assert EmailClaim.id_for(ORG, EMAIL) == UUID("f930fa43-6ac8-587d-882f-e092d3896b7d")


# --- claiming ------------------------------------------------------------------------------


def test_claiming_records_the_organization_normalized_email_and_contact() -> None:
    claim = claim_email(email="  Lucia@Miramar.Example ")

    claimed = only_event(claim)

    assert isinstance(claimed, EmailClaim.EmailClaimed)
    assert (claimed.context.organization_id, claimed.contact_id) == (ORG, LUCIA)
    assert (claim.email, claim.contact_id) == (EMAIL, LUCIA)
    assert claim.id == EmailClaim.id_for(ORG, EMAIL)


def test_another_contact_cannot_claim_an_email_while_it_is_claimed() -> None:
    claim = a_claim()

    with pytest.raises(RuleBroken, match="already used by contact"):
        claim.claim_for(PABLO, on_day(2))

    assert claim.collect_events() == []
    assert claim.contact_id == LUCIA


def test_claiming_again_for_the_same_contact_changes_nothing() -> None:
    claim = a_claim()

    claim.claim_for(LUCIA, on_day(2))

    assert claim.collect_events() == []
    assert claim.contact_id == LUCIA


# --- releasing and reclaiming --------------------------------------------------------------


def test_releasing_records_which_contact_let_the_email_go() -> None:
    claim = a_claim()

    claim.release(LUCIA, on_day(1))

    released = only_event(claim)
    assert isinstance(released, EmailClaim.EmailReleased)
    assert released.contact_id == LUCIA
    assert claim.contact_id is None


def test_releasing_a_released_email_changes_nothing() -> None:
    claim = a_released_claim()

    claim.release(LUCIA, on_day(1))

    assert claim.collect_events() == []


def test_a_released_email_can_be_claimed_by_another_contact() -> None:
    claim = a_released_claim()

    claim.claim_for(PABLO, on_day(2))

    reclaimed = only_event(claim)
    assert isinstance(reclaimed, EmailClaim.EmailReclaimed)
    assert reclaimed.contact_id == PABLO
    assert claim.contact_id == PABLO


# --- reconstruction from events ------------------------------------------------------------


def test_a_claim_replayed_from_its_events_has_the_same_state() -> None:
    claim = claim_email()
    claim.release(LUCIA, on_day(1))
    claim.claim_for(PABLO, on_day(2))

    copy = replayed(EmailClaim, claim.collect_events())

    assert (copy.id, copy.email, copy.contact_id) == (claim.id, EMAIL, PABLO)
    assert copy.__dict__ == claim.__dict__


def test_a_replayed_claim_still_refuses_another_contact() -> None:
    copy = replayed(EmailClaim, claim_email().collect_events())

    with pytest.raises(RuleBroken, match="already used by contact"):
        copy.claim_for(PABLO, on_day(2))
    assert copy.collect_events() == []


def test_a_replayed_released_claim_can_be_reclaimed() -> None:
    claim = claim_email()
    claim.release(LUCIA, on_day(1))
    copy = replayed(EmailClaim, claim.collect_events())

    copy.claim_for(PABLO, on_day(2))

    assert only_event(copy).contact_id == PABLO
