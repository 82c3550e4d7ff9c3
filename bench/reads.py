"""Read latency: the list and analytics endpoints over HTTP, one client, after a warm-up —
and the same queries called in-process, to tell the database's share from the HTTP stack's."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from harness import KeepAliveClient, Latency

from crm.identity import DEFAULT_ORGANIZATION_ID
from event_store.read_model_store import ReadModelStore
from projections.analytics import AnalyticsFilter, SalesAnalytics
from projections.queries import ListParams, RecordQueries

OWNER = "owner-03"
MIN_SAMPLES = 10
ORG = DEFAULT_ORGANIZATION_ID


@dataclass(frozen=True)
class ReadCase:
    label: str
    path: str
    params: dict[str, str]
    in_process: Callable[[RecordQueries, SalesAnalytics], object] | None


def _filter(owner: str | None = None) -> AnalyticsFilter:
    return AnalyticsFilter(organization_id=ORG, owner_id=owner)


CASES = (
    ReadCase(
        "GET /deals (first page, default sort)",
        "/deals",
        {},
        lambda q, a: q.deals(ORG, ListParams("-updated_at", None, 50)),
    ),
    ReadCase(
        "GET /deals?status=open&sort=-value",
        "/deals",
        {"status": "open", "sort": "-value"},
        lambda q, a: q.deals(ORG, ListParams("-value", None, 50), status="open"),
    ),
    ReadCase(
        "GET /analytics/pipeline-value",
        "/analytics/pipeline-value",
        {},
        lambda q, a: a.pipeline_value(_filter()),
    ),
    ReadCase(
        f"GET /analytics/pipeline-value?owner={OWNER}",
        "/analytics/pipeline-value",
        {"owner": OWNER},
        lambda q, a: a.pipeline_value(_filter(OWNER)),
    ),
    ReadCase(
        "GET /analytics/win-rate",
        "/analytics/win-rate",
        {},
        lambda q, a: a.win_rate(_filter()),
    ),
    ReadCase(
        f"GET /analytics/win-rate?owner={OWNER}",
        "/analytics/win-rate",
        {"owner": OWNER},
        lambda q, a: a.win_rate(_filter(OWNER)),
    ),
    ReadCase(
        "GET /analytics/sales-cycle",
        "/analytics/sales-cycle",
        {},
        lambda q, a: a.sales_cycle(_filter()),
    ),
    ReadCase(
        f"GET /analytics/sales-cycle?owner={OWNER}",
        "/analytics/sales-cycle",
        {"owner": OWNER},
        lambda q, a: a.sales_cycle(_filter(OWNER)),
    ),
)
HEALTH = ReadCase("GET /healthz (HTTP floor)", "/healthz", {}, None)


def http_latency(
    base_url: str,
    case: ReadCase,
    *,
    requests: int,
    warmup: int,
    headers: Mapping[str, str],
    budget: float | None = None,
) -> Latency:
    """Sequential requests on one keep-alive connection; every answer must be 200. With a
    ``budget`` (seconds), a slow case stops early, after at least ``MIN_SAMPLES`` requests."""
    http = KeepAliveClient(base_url, headers)
    try:
        for _ in range(warmup):
            http.json("GET", case.path, params=case.params, expect=200)
        seconds: list[float] = []
        deadline = time.perf_counter() + budget if budget is not None else None
        for _ in range(requests):
            if deadline and len(seconds) >= MIN_SAMPLES and time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            status, payload = http.request("GET", case.path, params=case.params)
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"{case.label}: {status} {payload[:300]!r}")
            seconds.append(elapsed)
    finally:
        http.close()
    return Latency.of(seconds)


def in_process_latency(
    store: ReadModelStore, case: ReadCase, *, requests: int, warmup: int
) -> Latency:
    assert case.in_process is not None
    queries, analytics = RecordQueries(store), SalesAnalytics(store)
    for _ in range(warmup):
        case.in_process(queries, analytics)
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        case.in_process(queries, analytics)
        seconds.append(time.perf_counter() - started)
    return Latency.of(seconds)
