"""Benchmarks of the event-sourced core, on PostgreSQL (and SQLite for reads).

    python bench/core.py --pg-url postgresql://crm@127.0.0.1:PORT/crm [--quick]

Normally started by ``bench/run.sh``, which brings up a throwaway PostgreSQL cluster first.
Prints one table — every figure beside a baseline measured in the same run, and the ratio —
and writes it as markdown to ``bench/results/core-<timestamp>.md``.

1. Commands over HTTP: 16 clients drive a mixed load (open deal → change stage ×2 → win/lose)
   against ``crm serve``; beside it pgbench's single-row INSERT transactions (the ceiling of a
   durable write), ``Application.save`` of one aggregate (the library's floor) and the
   application service without HTTP, each with where the CPU went.
2. Projection catch-up from a cold start over the whole log: raw ``select_notifications`` +
   decode (baseline) against ``ProjectionWorker.catch_up()`` at several batch sizes.
3. Read latency of the list and analytics endpoints with a realistic book of deals, sequential
   over HTTP after a warm-up, against ``GET /healthz`` (the HTTP floor) and the same query
   called in-process.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import harness
from access import prepare_caller
from dataset import DealBook
from harness import CpuMeter, CpuSplit, CrmServer
from loadgen import (
    LibraryApplication,
    LoadResult,
    create_clients_http,
    create_clients_service,
    http_lifecycle,
    raw_save_lifecycle,
    run_load,
    service_lifecycle,
)
from pgbaseline import run_pgbench
from reads import CASES, HEALTH, http_latency, in_process_latency
from report import Report, Row, bench_arguments, log, publish, verdict

from commands.service import CrmApplication
from event_store.location import StoreLocation
from event_store.read_model_store import ReadModelStore
from projections.worker import BULK_LOAD_BATCH_SIZE, BULK_LOAD_PROCESSES, ProjectionWorker

BENCH = Path(__file__).resolve().parent
COMMANDS_TARGET = 500.0  # commands/s at 16 clients
CATCH_UP_TARGET = 10_000.0  # events/s
READ_P99_TARGET_MS = 20.0
WORKERS_2 = {"CRM_WORKERS": "2"}


@dataclass(frozen=True)
class Sizes:
    duration: float
    workers: int
    deals: int
    min_events: int
    read_requests: int
    read_warmup: int
    bulk_load_processes: tuple[int, ...]
    clients: int
    warmup_seconds: float

    @classmethod
    def full(cls) -> Sizes:
        return cls(20.0, 16, 100_000, 200_000, 300, 30, (2, 1), 50, 2.0)

    @classmethod
    def quick(cls) -> Sizes:
        return cls(1.5, 16, 10_000, 20_000, 25, 3, (2, 1), 16, 0.0)


@dataclass
class Bench:
    admin_url: str
    work: Path
    sizes: Sizes
    report: Report
    postgres_pid: int | None = None

    def location(self, url: str | None, data_dir: Path | None = None) -> StoreLocation:
        return StoreLocation.from_settings(data_dir or self.work / "unused", url, pool_size=8)

    def caller(self, location: StoreLocation) -> dict[str, str]:
        """The HTTP headers of the benchmark's caller, prepared in this store."""
        app = CrmApplication(location)
        try:
            return prepare_caller(app)
        finally:
            app.close()

    @contextmanager
    def database(self, name: str, *, keep: bool = False) -> Iterator[str]:
        url = harness.create_database(self.admin_url, name)
        try:
            yield url
        finally:
            if not keep:
                harness.drop_database(self.admin_url, name)

    # --- 1. commands -----------------------------------------------------------------------

    def commands(self) -> None:
        s = self.sizes
        log.rule("1. command throughput (16 concurrent clients)")
        dur = int(max(1, round(s.duration)))
        with self.database("bench_pgbench") as url:
            pg = run_pgbench(
                url, clients=s.workers, threads=2, seconds=dur, postgres_pid=self.postgres_pid
            )
        base = pg.tps
        self.report.add(
            Row(
                "commands",
                f"pgbench: 1-row INSERT transactions, -c {s.workers} -j 2, fsync on",
                f"{pg.tps:,.0f} tx/s",
                "—",
                "1.00",
                "",
                "baseline",
                f"avg latency {pg.latency_ms:.1f} ms; {pg.cpu.describe()}",
            )
        )

        def ratio(rate: float) -> str:
            return f"{rate / base:.2f} × pgbench"

        # One aggregate (one event) per save, 16 threads, no HTTP: the library's own
        # Application (one transaction per save), then ours (saves share transactions).
        for label, make in (
            ("library Application.save (one transaction per save)", LibraryApplication),
            ("CrmApplication.save (group commit)", CrmApplication),
        ):
            with self.database("bench_save") as url:
                app = make(self.location(url))
                meter = CpuMeter(postgres_pid=self.postgres_pid)
                with meter.window() as cpu:
                    result = run_load(
                        raw_save_lifecycle(app),
                        workers=s.workers,
                        duration=s.duration,
                        max_ops=self.max_ops,
                    )
                app.close()
            self.report.add(
                Row(
                    "commands",
                    f"{label}, 1 aggregate per save, {s.workers} threads in-process",
                    f"{result.rate:,.0f} saves/s",
                    f"{base:,.0f} tx/s",
                    ratio(result.rate),
                    "",
                    "",
                    f"{result.latency.short()}; {self._failures(result)}"
                    f"{cpu.describe('bench process')}",
                )
            )

        # The application service (load → decide → save) without HTTP.
        with self.database("bench_service") as url:
            app = CrmApplication(self.location(url))
            prepare_caller(app)
            client_ids = create_clients_service(app, s.clients)
            meter = CpuMeter(postgres_pid=self.postgres_pid)
            with meter.window() as cpu:
                result = run_load(
                    service_lifecycle(app, client_ids),
                    workers=s.workers,
                    duration=s.duration,
                    max_ops=self.max_ops,
                )
            app.close()
        self.report.add(
            Row(
                "commands",
                f"application service, mixed commands, {s.workers} threads in-process (no HTTP)",
                f"{result.rate:,.0f} commands/s",
                f"{base:,.0f} tx/s",
                ratio(result.rate),
                "",
                "",
                f"{result.latency.short()}; mix {result.mix()}; {self._failures(result)}"
                f"{self._per_command(result, cpu).replace('load gen', 'bench process')}; "
                f"{cpu.describe('bench process')}",
            )
        )

        for label, env, separate in (
            ("projections off", {"CRM_PROJECTIONS_IN_PROCESS": "false"}, False),
            ("projection worker in-process (default)", {}, False),
            ("+ separate `crm project` process", {"CRM_PROJECTIONS_IN_PROCESS": "false"}, True),
            (
                "`crm serve --workers 2` (2 web processes + its projection process)",
                WORKERS_2,
                False,
            ),
        ):
            self._http_commands(label, env, separate, base)

    @property
    def max_ops(self) -> int:
        return int(5_000 * self.sizes.duration)

    def _failures(self, result: LoadResult) -> str:
        if not result.failed:
            return ""
        return f"{result.failed} FAILED (first: {result.first_error}); "

    def _http_commands(self, label: str, env: dict[str, str], separate: bool, base: float) -> None:
        s = self.sizes
        name = "bench_http_" + "".join(c if c.isalnum() else "_" for c in label)[:30]
        sequential: tuple[LoadResult, CpuSplit] | None = None
        with self.database(name) as url:
            env = {"CRM_DATABASE_URL": url, **env}
            headers = self.caller(self.location(url))
            with CrmServer(env=env, log_path=self.work / f"{name}.log") as server:
                project = None
                if separate:
                    project = CrmServer(
                        env=env, command="project", log_path=self.work / f"{name}-project.log"
                    ).start()
                try:
                    client_ids = create_clients_http(server.base_url, s.clients, headers)
                    lifecycle = http_lifecycle(server.base_url, client_ids, headers)
                    if s.warmup_seconds:
                        run_load(
                            lifecycle,
                            workers=s.workers,
                            duration=s.warmup_seconds,
                            max_ops=self.max_ops,
                            seed=99,
                        )
                    meter = CpuMeter(
                        server_pid=server.pid,
                        postgres_pid=self.postgres_pid,
                        other=("crm project", project.pid) if project else None,
                    )
                    if not env.get("CRM_PROJECTIONS_IN_PROCESS") and env.get("CRM_WORKERS") is None:
                        # The default shape, one client at a time: the latency and CPU floor
                        # of a command, without queueing or GIL contention.
                        with meter.window() as cpu:
                            result = run_load(
                                lifecycle,
                                workers=1,
                                duration=s.duration / 2,
                                max_ops=self.max_ops,
                                seed=5,
                            )
                        sequential = (result, cpu)
                    with meter.window() as cpu:
                        result = run_load(
                            lifecycle, workers=s.workers, duration=s.duration, max_ops=self.max_ops
                        )
                    lag_note = self._projection_lag(server, following=label != "projections off")
                finally:
                    if project is not None:
                        project.stop()
        if sequential is not None:
            one, one_cpu = sequential
            self.report.add(
                Row(
                    "commands",
                    f"HTTP, 1 client, sequential, mixed, {label}",
                    f"{one.rate:,.0f} commands/s\n{one.latency.short()}",
                    f"{base:,.0f} tx/s",
                    f"{one.rate / base:.2f} × pgbench",
                    "",
                    "info",
                    f"{one.ok:,} commands; {self._failures(one)}{self._per_command(one, one_cpu)}; "
                    f"{one_cpu.describe()}",
                )
            )
        lat = result.latency
        self.report.add(
            Row(
                "commands",
                f"HTTP, {s.workers} clients, mixed (open → stage ×2 → win/lose), {label}",
                f"{result.rate:,.0f} commands/s\np50 {lat.p50:.1f} · p99 {lat.p99:.1f} ms",
                f"{base:,.0f} tx/s",
                f"{result.rate / base:.2f} × pgbench",
                f"≥ {COMMANDS_TARGET:,.0f} commands/s",
                verdict(result.rate >= COMMANDS_TARGET),
                f"{result.ok:,} commands in {result.seconds:.1f} s; mix {result.mix()}; "
                f"{self._failures(result)}{self._per_command(result, cpu)}; "
                f"{cpu.describe()}{lag_note}",
            )
        )

    @staticmethod
    def _per_command(result: LoadResult, cpu: CpuSplit) -> str:
        """CPU milliseconds per command, by process: what caps the rate on 2 cores."""
        if not result.ok:
            return "no command succeeded"
        parts = [
            f"{label} {1000 * value / result.ok:.2f}"
            for label, value in (
                ("server", cpu.server),
                ("postgres", cpu.postgres),
                (cpu.other_label, cpu.other),
                ("load gen", cpu.loadgen),
            )
            if label is not None and value is not None
        ]
        return "CPU ms per command: " + ", ".join(parts)

    def _projection_lag(self, server: CrmServer, *, following: bool) -> str:
        health = server.health()
        lag = health["projection_lag"]
        if not following:
            return ""
        started = time.monotonic()
        while lag > 0 and time.monotonic() - started < 120:
            time.sleep(0.1)
            lag = server.health()["projection_lag"]
        drained = time.monotonic() - started
        if lag:
            return f"; projection lag {health['projection_lag']:,} events at the end, NOT drained"
        return (
            f"; projection lag {health['projection_lag']:,} events at the end, "
            f"drained in {drained:.1f} s"
        )

    # --- 2. catch-up -----------------------------------------------------------------------

    def catch_up(self, book_url: str) -> None:
        s = self.sizes
        log.rule("2. projection catch-up (cold start)")
        app = CrmApplication(self.location(book_url))
        recorded = DealBook(app).record(s.deals, per_save=100)
        head = app.head_position()
        self.report.add(
            Row(
                "catch-up",
                f"record the book in-process: {recorded.deals:,} deals + "
                f"{recorded.clients:,} clients, 100 deals per save",
                f"{recorded.events_per_second:,.0f} events/s",
                "",
                "",
                "",
                "info",
                f"{recorded.events:,} events in {recorded.saves:,} saves, {recorded.seconds:.1f} s "
                f"(one save ≈ {recorded.events / max(recorded.saves, 1):.0f} events)",
            )
        )
        if head < s.min_events:
            raise RuntimeError(f"the book has {head} events, fewer than {s.min_events}")

        meter = CpuMeter(postgres_pid=self.postgres_pid)
        first = read_whole_log(app, meter)
        runs: list[tuple[str, Rate]] = []
        for processes in s.bulk_load_processes:
            # The default settings write into the book's own database, so `crm serve` on it
            # starts caught up for the read benchmarks; the others into scratch databases.
            default = processes == BULK_LOAD_PROCESSES
            name = None if default else f"bench_rm_{processes}"
            with self.database(name) if name else _given(book_url) as url:
                store = ReadModelStore(self.location(url))
                label = (
                    f"PostgreSQL, bulk load in {processes} process{'es' if processes > 1 else ''}"
                    f"{' (default)' if default else ''}, batches of {BULK_LOAD_BATCH_SIZE:,}"
                )
                runs.append((label, timed_catch_up(app, store, head, meter, processes)))
                store.close()
        store = ReadModelStore(self.location(None, self.work / "sqlite"))
        runs.append(
            (
                f"SQLite read models (events from PostgreSQL), batches of {BULK_LOAD_BATCH_SIZE:,}",
                timed_catch_up(app, store, head, meter),
            )
        )
        store.close()
        second = read_whole_log(app, meter)
        app.close()

        best = max(first, second, key=lambda r: r.per_second)
        baseline = best.per_second
        self.report.add(
            Row(
                "catch-up",
                "raw select_notifications(limit=1000) + to_domain_event, whole log",
                f"{baseline:,.0f} events/s",
                "—",
                "1.00",
                "",
                "baseline",
                f"{head:,} events; best of two passes ({first.per_second:,.0f} before, "
                f"{second.per_second:,.0f} after the catch-ups); {best.cpu_note()}",
            )
        )
        for label, rate in runs:
            informative = "(default)" not in label
            self.report.add(
                Row(
                    "catch-up",
                    f"ProjectionWorker.catch_up() from cold, {label}",
                    f"{rate.per_second:,.0f} events/s",
                    f"{baseline:,.0f} events/s",
                    f"{rate.per_second / baseline:.2f} × raw read",
                    "" if informative else f"≥ {CATCH_UP_TARGET:,.0f} events/s",
                    "info" if informative else verdict(rate.per_second >= CATCH_UP_TARGET),
                    f"{head:,} events; {rate.cpu_note()}",
                )
            )

    # --- 3. reads --------------------------------------------------------------------------

    def reads(self, book_url: str) -> None:
        log.rule("3. read latency (one client, sequential, after warm-up)")
        harness.analyze(book_url)
        self._reads_on("PostgreSQL", {"CRM_DATABASE_URL": book_url}, self.location(book_url))
        sqlite_dir = self.work / "sqlite"
        if (sqlite_dir / "read_models.sqlite").exists():
            self._reads_on(
                "SQLite", {"CRM_DATA_DIR": str(sqlite_dir)}, self.location(None, sqlite_dir)
            )

    def _reads_on(self, store_name: str, env: dict[str, str], location: StoreLocation) -> None:
        s = self.sizes
        area = f"reads · {store_name}"
        headers = self.caller(location)
        with CrmServer(env=env, log_path=self.work / f"reads-{store_name}.log") as server:
            meter = CpuMeter(server_pid=server.pid, postgres_pid=self.postgres_pid)
            with meter.window() as cpu:
                floor = http_latency(
                    server.base_url,
                    HEALTH,
                    requests=s.read_requests,
                    warmup=s.read_warmup,
                    headers=headers,
                )
            self.report.add(
                Row(
                    area,
                    HEALTH.label,
                    floor.short(),
                    "—",
                    "1.00",
                    "",
                    "baseline",
                    f"{s.deals:,} deals in the read model; {s.read_requests} requests each"
                    + _also(cpu.interference()),
                )
            )
            store = ReadModelStore(location)
            for case in CASES:
                with meter.window() as cpu:
                    over_http = http_latency(
                        server.base_url,
                        case,
                        requests=s.read_requests,
                        warmup=s.read_warmup,
                        headers=headers,
                    )
                direct = in_process_latency(
                    store, case, requests=s.read_requests, warmup=s.read_warmup
                )
                self.report.add(
                    Row(
                        area,
                        case.label,
                        over_http.short(),
                        f"healthz p99 {floor.p99:.1f} ms",
                        f"{over_http.p99 / floor.p99:.1f} × healthz (p99)",
                        f"p99 ≤ {READ_P99_TARGET_MS:.0f} ms",
                        verdict(over_http.p99 <= READ_P99_TARGET_MS),
                        f"same query in-process: {direct.short()}" + _also(cpu.interference()),
                    )
                )
            store.close()


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _also(note: str) -> str:
    return f"; {note}" if note else ""


@dataclass(frozen=True)
class Rate:
    per_second: float
    cpu: CpuSplit

    def cpu_note(self) -> str:
        return self.cpu.describe("bench process")


def read_whole_log(app: CrmApplication, meter: CpuMeter) -> Rate:
    """events/s of reading and decoding the whole log in pages of 1,000."""
    to_event = app.mapper.to_domain_event
    position = count = 0
    with meter.window() as cpu:
        started = time.perf_counter()
        while True:
            page = app.recorder.select_notifications(position, limit=1000, inclusive_of_start=False)
            if not page:
                break
            for notification in page:
                to_event(notification)
            count += len(page)
            position = page[-1].id
        seconds = time.perf_counter() - started
    return Rate(count / seconds, cpu)


def timed_catch_up(
    app: CrmApplication,
    store: ReadModelStore,
    head: int,
    meter: CpuMeter,
    processes: int = BULK_LOAD_PROCESSES,
) -> Rate:
    """A cold catch-up at the default settings (a bulk load), in ``processes`` processes."""
    worker = ProjectionWorker(app, store, partitions=processes)
    if worker.position:
        raise RuntimeError("the read-model store is not empty: not a cold start")
    with meter.window() as cpu:
        started = time.perf_counter()
        seen = worker.catch_up()
        seconds = time.perf_counter() - started
    if seen != head or worker.position != head:
        raise RuntimeError(f"caught up {seen} of {head} events (position {worker.position})")
    return Rate(seen / seconds, cpu)


def describe_run(sizes: Sizes, quick: bool, admin_url: str) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(BENCH.parent), *args], capture_output=True, text=True
        )
        return done.stdout.strip()

    rev = os.environ.get("CRM_BENCH_REV")
    if rev:
        code = f"commit {git('rev-parse', '--short', rev) or rev} (exported)"
    else:
        dirty = git("status", "--porcelain", "--", ".", ":!bench")
        code = f"commit {git('rev-parse', '--short', 'HEAD') or '?'}"
        code += " + uncommitted changes" if dirty else ""
    import psycopg

    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    version = row[0] if row else "?"
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC} · {code}"
        f" · {'quick' if quick else 'full'} run · {os.cpu_count()} cores · PostgreSQL {version} "
        f"(fsync on) · Python {sys.version.split()[0]} · loads {sizes.duration:g} s, "
        f"{sizes.workers} clients · book {sizes.deals:,} deals"
    )


def main(argv: list[str] | None = None) -> int:
    parser = bench_arguments(__doc__.split("\n\n")[0], BENCH / "results")
    parser.add_argument(
        "--only",
        choices=("commands", "catch-up", "reads"),
        action="append",
        help="run only these parts (reads need catch-up)",
    )
    parser.add_argument("--duration", type=float, help="seconds per command load")
    args = parser.parse_args(argv)
    if not args.pg_url:
        parser.error("--pg-url or CRM_TEST_POSTGRES_URL is required (bench/run.sh starts one)")
    sizes = Sizes.quick() if args.quick else Sizes.full()
    if args.duration:
        sizes = dataclasses.replace(sizes, duration=args.duration)
    parts = set(args.only or ("commands", "catch-up", "reads"))
    if "reads" in parts:
        parts.add("catch-up")

    title = "MONTON CRM — event-sourced core benchmarks"
    background = harness.wait_for_quiet_machine(args.wait_quiet, log.print)
    header = describe_run(sizes, args.quick, args.pg_url) + (
        f" · machine {100 * background:.0f}% busy before the start"
    )
    log.print(f"[bold]{title}[/]\n{header}")
    report = Report()
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as work:
        bench = Bench(
            args.pg_url, Path(work), sizes, report, postgres_pid=harness.postmaster_pid(args.pg_url)
        )
        steps: list[tuple[str, Callable[[], None]]] = []
        book = "bench_book"
        if "commands" in parts:
            steps.append(("commands", bench.commands))
        if "catch-up" in parts:
            steps.append(("catch-up", lambda: bench.catch_up(bench_db(bench, book))))
        if "reads" in parts:
            steps.append(("reads", lambda: bench.reads(harness.database_url(args.pg_url, book))))
        try:
            for name, step in steps:
                started = time.monotonic()
                step()
                log.print(f"[dim]{name}: {time.monotonic() - started:.0f} s[/]")
        finally:
            harness.drop_database(args.pg_url, book)

    path = args.results / f"core-{datetime.now():%Y%m%d-%H%M%S}.md"
    reproduce = "bench/run.sh" + (" --quick" if args.quick else "")
    if os.environ.get("CRM_BENCH_REV"):
        reproduce += f" --rev {os.environ['CRM_BENCH_REV'][:12]}"
    publish(report, title, header, path, reproduce)
    return 0


def bench_db(bench: Bench, name: str) -> str:
    return harness.create_database(bench.admin_url, name)


if __name__ == "__main__":
    sys.exit(main())
