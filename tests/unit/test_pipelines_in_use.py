"""The hints of which pipelines to read beside a deal stay few, per organization and in all."""

from __future__ import annotations

from uuid import uuid4

from commands.loading import PipelinesInUse


def test_a_pipeline_used_is_remembered_for_its_organization_only() -> None:
    hints = PipelinesInUse()
    organization, other, pipeline = uuid4(), uuid4(), uuid4()

    hints.used(organization, pipeline)
    hints.used(organization, pipeline)

    assert hints.of(organization) == {pipeline}
    assert hints.of(other) == frozenset()


def test_when_an_organization_uses_more_pipelines_than_kept_then_it_starts_again() -> None:
    hints = PipelinesInUse()
    organization = uuid4()
    pipelines = [uuid4() for _ in range(PipelinesInUse.MAX_PER_ORGANIZATION + 1)]

    for pipeline in pipelines:
        hints.used(organization, pipeline)

    assert hints.of(organization) == {pipelines[-1]}


def test_when_more_organizations_than_kept_use_pipelines_then_the_hints_start_again() -> None:
    hints = PipelinesInUse()
    organizations = [uuid4() for _ in range(PipelinesInUse.MAX_ORGANIZATIONS + 1)]

    for organization in organizations:
        hints.used(organization, uuid4())

    assert hints.of(organizations[0]) == frozenset()
    assert len(hints.of(organizations[-1])) == 1
