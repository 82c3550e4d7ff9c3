"""``as_of`` at many business instants equals the facts replayed only up to that instant — the
instants spread over eighteen months, several exactly at an event's business time, and the
history including deals and tails of deals imported after the live log with past times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.analytics.history import TWO_PIPELINES
from tests.analytics.matching import mismatch
from tests.analytics.oracle import Oracle, Query
from tests.analytics.suite import ANALYTICS, GeneratedHistory, difference, instants, oracle_of

INSTANTS = instants()
at_instants = pytest.mark.parametrize("as_of", list(INSTANTS.values()), ids=list(INSTANTS))


@at_instants
def test_every_analytic_as_of_an_instant_equals_the_log_replayed_up_to_it(
    history: GeneratedHistory, as_of: datetime
) -> None:
    problems = [difference(history, name, Query(as_of=as_of)) for name in ANALYTICS]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


@pytest.mark.parametrize(
    "query",
    [
        Query(owner="eve", as_of=INSTANTS["at a win"]),
        Query(
            pipeline="enterprise" if TWO_PIPELINES else "default",
            owner="dmitri",
            as_of=INSTANTS["at a reopen"],
        ),
        Query(
            period_from=datetime(2025, 3, 1, tzinfo=UTC),
            period_to=INSTANTS["at a loss, asked at UTC-5"],
            as_of=INSTANTS["at a loss, asked at UTC-5"],
        ),
        Query(
            owner="ben",
            period_from=INSTANTS["at an archive"],
            period_to=datetime(2026, 9, 1, tzinfo=UTC),
            as_of=INSTANTS["at an imported event"],
        ),
    ],
    ids=[
        "owner at a win",
        "pipeline and owner at a reopen",
        "period ending at as_of",
        "owner and period",
    ],
)
def test_filtered_analytics_as_of_an_instant_equal_the_log_replayed_up_to_it(
    history: GeneratedHistory, query: Query
) -> None:
    problems = [difference(history, name, query) for name in ANALYTICS]
    assert not [p for p in problems if p], "\n".join(p for p in problems if p)


def test_figures_read_before_the_import_equal_the_live_log_alone_replayed(
    history: GeneratedHistory,
) -> None:
    live = oracle_of([fact for fact in history.facts if fact.phase == 1])
    for probe, answer in history.before_import:
        expected = expected_answer(live, probe.path, probe.query)
        problem = mismatch(answer, expected, probe.path, 1e-9)
        assert problem is None, f"{probe.query}: {problem}"


def test_history_imported_later_with_past_times_changes_those_figures_where_it_belongs(
    history: GeneratedHistory,
) -> None:
    live = oracle_of([fact for fact in history.facts if fact.phase == 1])
    changed = 0
    for probe, _ in history.before_import:
        before = expected_answer(live, probe.path, probe.query)
        after = expected_answer(history.oracle, probe.path, probe.query)
        changed += after != before
        problem = mismatch(history.read(probe), after, probe.path, 1e-9)
        assert problem is None, f"{probe.query}: {problem}"
    assert changed >= len(history.before_import) // 2, "the import barely reaches the past"


def expected_answer(oracle: Oracle, path: str, query: Query) -> object:
    analytic = next(a for a in ANALYTICS.values() if a.path == path and not a.extra)
    assert query.as_of is not None
    return analytic.expected(oracle, query, query.as_of)
