"""Analytics at scale: a full rebuild of a 1,000,000-event log and every analytic over HTTP.

    python bench/analytics_bench.py --pg-url postgresql://crm@127.0.0.1:PORT/crm [--quick]

Normally started by ``bench/analytics.sh``, which brings up a throwaway PostgreSQL cluster
first. Prints one table — every figure beside a baseline measured in the same run — and writes
it as markdown to ``bench/results/analytics-<timestamp>.md``.

1. A long history recorded in-process (:class:`dataset.HistoryBook`): ≈ 10 events a deal over
   two years, two pipelines, three currencies with monthly rates, reopened and archived deals.
2. ``crm replay`` as a subprocess — the operator's command, start to switch — beside the raw
   ``select_notifications`` + decode rate of the same log; its peak RSS from ``wait4``. Both
   read a settled store (:func:`harness.settle`): vacuumed, analyzed and checkpointed.
3. Each analytic over HTTP against ``crm serve``, now and ``as_of`` a year back, sequential
   after a warm-up, beside ``GET /healthz``.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import harness
from access import prepare_caller
from core import read_whole_log
from dataset import HistoryBook
from harness import CpuMeter, CrmServer, crm_executable
from reads import HEALTH, ReadCase, http_latency
from report import Report, Row, bench_arguments, log, publish, verdict

from commands.service import CrmApplication
from event_store.location import StoreLocation

BENCH = Path(__file__).resolve().parent
REBUILD_TARGET = 20_000.0  # events/s
RSS_TARGET_MB = 500.0
ANALYTICS_P99_TARGET_MS = 50.0
BOOK = "bench_history"
CASE_BUDGET_SECONDS = 20.0  # a slow analytic stops early (after ≥ 10 requests)


@dataclass(frozen=True)
class Sizes:
    events: int
    requests: int
    warmup: int

    @classmethod
    def full(cls) -> Sizes:
        return cls(1_000_000, 100, 3)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(60_000, 15, 3)


def analytics_cases(now: datetime, as_of: datetime | None) -> list[ReadCase]:
    """Every analytic of SPEC §5, as a dashboard asks for it: now, or as it stood ``as_of``."""
    at = {} if as_of is None else {"as_of": as_of.isoformat()}
    when = "now" if as_of is None else "as_of −1 year"
    moment = as_of or now
    month = moment.strftime("%Y-%m")
    quarter = {"from": (moment - timedelta(days=91)).isoformat(), "to": moment.isoformat()}
    paths: list[tuple[str, dict[str, str]]] = [
        ("/analytics/pipeline-value", {}),
        ("/analytics/pipeline-value", {"pipeline": "enterprise", "owner": "owner-03"}),
        ("/analytics/win-rate", {}),
        ("/analytics/average-deal-size", {}),
        ("/analytics/sales-cycle", {}),
        ("/analytics/sales-cycle", {"owner": "owner-03"}),
        ("/analytics/conversion", {}),
        ("/analytics/time-in-stage", {}),
        ("/analytics/time-in-stage/visits", {"limit": "100"}),
        ("/analytics/rotting", {"days": "60"}),
        ("/analytics/forecast", {}),
        ("/analytics/forecast/history", {"month": month, **quarter, "step_days": "7"}),
        ("/analytics/win-loss", {"by": "lost_reason"}),
        ("/analytics/win-loss", {"by": "client_category"}),
        ("/analytics/salespeople", {}),
    ]
    cases = []
    for path, params in paths:
        query = {**params, **({} if "forecast/history" in path else at)}
        shown = "&".join(f"{k}={v}" for k, v in params.items() if k not in ("from", "to"))
        label = f"GET {path}{'?' + shown if shown else ''} ({when})"
        cases.append(ReadCase(label, path, query, None))
    return cases


def record_book(url: str, sizes: Sizes, report: Report, now: datetime) -> dict[str, str]:
    app = CrmApplication(StoreLocation.from_settings(Path("unused"), url))
    try:
        headers = prepare_caller(app)
        recorded = HistoryBook(app, now=now).record_until(sizes.events)
    finally:
        app.close()
    report.add(
        Row(
            "book",
            f"record the history in-process: {recorded.deals:,} deals, "
            f"{recorded.clients:,} clients, 2 pipelines, EUR/USD/GBP",
            f"{recorded.events:,} events",
            "",
            "",
            "",
            "info",
            f"{recorded.events / recorded.deals:.1f} events a deal; "
            f"{recorded.events_per_second:,.0f} events/s recorded, {recorded.seconds:.0f} s",
        )
    )
    return headers


def rebuild(url: str, work: Path, report: Report, postgres_pid: int | None) -> None:
    log.rule("rebuild: crm replay over the whole log")
    harness.settle(url)  # the book was recorded in two minutes; a log is written over years
    app = CrmApplication(StoreLocation.from_settings(work / "unused", url))
    head = app.head_position()
    meter = CpuMeter(postgres_pid=postgres_pid)
    raw = read_whole_log(app, meter)
    app.close()
    report.add(
        Row(
            "rebuild",
            "raw select_notifications(limit=1000) + to_domain_event, whole log",
            f"{raw.per_second:,.0f} events/s",
            "—",
            "1.00",
            "",
            "baseline",
            f"{head:,} events; {raw.cpu_note()}",
        )
    )
    env = {**os.environ, "CRM_DATABASE_URL": url, "CRM_DATA_DIR": str(work / "replay")}
    env["CRM_LOG_LEVEL"] = "warning"
    log_path = work / "replay.log"
    with meter.window() as cpu, log_path.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [crm_executable(), "replay"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = log_path.read_text(errors="replace")[-20000:]  # the work folder goes with the run
        raise RuntimeError(f"crm replay failed ({process.returncode}); its log ends:\n{tail}")
    rate = head / seconds
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    report.add(
        Row(
            "rebuild",
            "`crm replay`: a new generation from the whole log, then the switch (wall clock of "
            "the command, start-up included)",
            f"{rate:,.0f} events/s",
            f"{raw.per_second:,.0f} events/s",
            f"{rate / raw.per_second:.2f} × raw read",
            f"≥ {REBUILD_TARGET:,.0f} events/s",
            verdict(rate >= REBUILD_TARGET),
            f"{head:,} events in {seconds:.1f} s; "
            f"CPU: crm replay {usage.ru_utime + usage.ru_stime:.1f} s, "
            f"PostgreSQL {cpu.postgres or 0:.1f} s",
        )
    )
    report.add(
        Row(
            "rebuild",
            "peak RSS of `crm replay` (wait4 ru_maxrss)",
            f"{peak_mb:,.0f} MB",
            "",
            "",
            f"≤ {RSS_TARGET_MB:,.0f} MB",
            verdict(peak_mb <= RSS_TARGET_MB),
            f"bench process for comparison: "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB",
        )
    )


def analytics_reads(
    url: str, work: Path, sizes: Sizes, report: Report, headers: dict[str, str], now: datetime
) -> None:
    log.rule("analytics over HTTP (one client, sequential, after warm-up)")
    harness.analyze(url)
    env = {"CRM_DATABASE_URL": url, "CRM_DATA_DIR": str(work / "serve")}
    with CrmServer(env=env, log_path=work / "serve.log") as server:
        floor = http_latency(
            server.base_url, HEALTH, requests=sizes.requests, warmup=sizes.warmup, headers=headers
        )
        report.add(
            Row(
                "analytics",
                HEALTH.label,
                floor.short(),
                "—",
                "1.00",
                "",
                "baseline",
                f"{sizes.requests} requests each",
            )
        )
        for as_of in (None, now - timedelta(days=365)):
            for case in analytics_cases(now, as_of):
                latency = http_latency(
                    server.base_url,
                    case,
                    requests=sizes.requests,
                    warmup=sizes.warmup,
                    headers=headers,
                    budget=CASE_BUDGET_SECONDS,
                )
                report.add(
                    Row(
                        "analytics",
                        case.label,
                        latency.short(),
                        f"healthz p99 {floor.p99:.1f} ms",
                        f"{latency.p99 / floor.p99:.1f} × healthz (p99)",
                        f"p99 ≤ {ANALYTICS_P99_TARGET_MS:.0f} ms",
                        verdict(latency.p99 <= ANALYTICS_P99_TARGET_MS),
                        f"{latency.count} requests",
                    )
                )


def main(argv: list[str] | None = None) -> int:
    parser = bench_arguments(__doc__.split("\n\n")[0], BENCH / "results")
    parser.add_argument(
        "--rebuild-only",
        action="store_true",
        help="record the book and time the rebuild; skip the analytic reads",
    )
    args = parser.parse_args(argv)
    if not args.pg_url:
        parser.error("--pg-url or CRM_TEST_POSTGRES_URL is required (bench/analytics.sh has one)")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    title = "MONTON CRM — analytics and rebuild at scale"
    background = harness.wait_for_quiet_machine(args.wait_quiet, log.print)
    header = (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC} · {'quick' if args.quick else 'full'} run · "
        f"{os.cpu_count()} cores · Python {sys.version.split()[0]} · PostgreSQL (fsync on) · "
        f"≥ {sizes.events:,} events · machine {100 * background:.0f}% busy before the start"
    )
    log.print(f"[bold]{title}[/]\n{header}")
    report = Report()
    now = datetime.now(UTC).replace(microsecond=0)
    url = harness.create_database(args.pg_url, BOOK)
    try:
        with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
            work = Path(tmp)
            headers = record_book(url, sizes, report, now)
            rebuild(url, work, report, harness.postmaster_pid(args.pg_url))
            if not args.rebuild_only:
                analytics_reads(url, work, sizes, report, headers, now)
    finally:
        harness.drop_database(args.pg_url, BOOK)

    path = args.results / f"analytics-{datetime.now():%Y%m%d-%H%M%S}.md"
    reproduce = (
        "bench/analytics.sh"
        + (" --quick" if args.quick else "")
        + (" --rebuild-only" if args.rebuild_only else "")
    )
    publish(report, title, header, path, reproduce)
    return 0


if __name__ == "__main__":
    sys.exit(main())
