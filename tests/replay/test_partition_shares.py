"""A bulk load's partition reads its share of the log filtered by PostgreSQL: the share the
database picks must be exactly the one Python's rule picks (a record's events all in one
partition, the other events in the first), or a partition would fold another's records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from aggregates.client import Client
from aggregates.contact import Contact
from aggregates.deal import Deal
from aggregates.organization import Organization
from commands.service import CrmApplication
from projections.partitions import Partition
from tests.stores import settings_for
from tests.unit.builders import at, day

CLIENTS = 60


@pytest.fixture
def app_with_a_log(tmp_path: Path) -> Iterator[CrmApplication]:
    """On PostgreSQL: an organization, clients, their contacts and deals, each record with a
    few events."""
    with settings_for("postgres", tmp_path / "var") as settings:
        app = CrmApplication(settings.location())
        organization = Organization(
            name="Acme", base_currency="EUR", crm_enabled=True, deal_creator_roles=["ADMIN"],
            contributor_access="own", context=at(day(0)),
        )  # fmt: skip
        organization.change_settings({"name": "Acme Ltd"}, at(day(1)))
        records: list[Client | Contact | Deal | Organization] = [organization]
        for n in range(CLIENTS):
            client = Client(name=f"Client {n}", category="prospect", status="active",
                            details={}, context=at(day(1)))  # fmt: skip
            contact = Contact(first_name="Ana", last_name=f"N{n}", email=f"ana{n}@example.com",
                              details={}, context=at(day(1)))  # fmt: skip
            contact.link_to(client.id, at(day(2)))
            deal = Deal.open(
                name=f"Deal {n}", client_id=client.id, value=Decimal(1000 + n), currency="EUR",
                expected_close_date=date(2026, 6, 30), context=at(day(2)),
            )  # fmt: skip
            deal.change_stage("qualified", None, at(day(3)))
            records += [client, contact, deal]
        app.save(*records)
        try:
            yield app
        finally:
            app.close()


@pytest.mark.parametrize("count", [2, 3, 7])
def test_given_a_log_of_every_kind_of_record_when_postgresql_picks_each_partitions_share_then_python_agrees(  # noqa: E501
    app_with_a_log: CrmApplication, count: int
) -> None:
    head = app_with_a_log.head_position()
    every = app_with_a_log.recorder.select_notifications(start=1, limit=head)

    shares = {
        number: [
            n.id
            for n in app_with_a_log.select_notifications_where(
                0, head, Partition(number, count).condition_sql()
            )
        ]
        for number in range(count)
    }

    assert shares == {
        number: [n.id for n in every if Partition(number, count).holds(n)]
        for number in range(count)
    }
    assert sorted(i for share in shares.values() for i in share) == [n.id for n in every]
    # no share is empty (records' ids are random: a bound on each share's size failed about
    # once in 25 runs with seven shares of ≈ 180 records; one empty: (6/7)^180 ≈ 1e-12)
    assert all(shares.values())
