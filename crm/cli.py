"""The ``crm`` command: serve, project, replay, status and history."""

from __future__ import annotations

import logging
import signal
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aggregates.errors import DomainError
from commands.service import CrmApplication
from crm.admin_cli import admin
from crm.processes import tune_garbage_collection
from crm.settings import DEFAULT_ORGANIZATION_ID, Settings
from event_store.read_model_store import ReadModelStore
from projections.generations import PROJECTION_VERSION, Generations
from projections.history import RecordHistory
from projections.partitions import prepare_fork_server
from projections.worker import TRACKING_NAME, BatchResult, ProjectionWorker

cli = typer.Typer(help="MONTON CRM: the event-sourced CRM service.", no_args_is_help=True)
cli.add_typer(admin, name="admin")
console = Console()

DataDir = Annotated[
    Path | None, typer.Option(help="Folder of the SQLite files [env: CRM_DATA_DIR]")
]


def load_settings(data_dir: Path | None = None, **overrides: object) -> Settings:
    settings = Settings()
    changes = {key: value for key, value in overrides.items() if value is not None}
    if data_dir is not None:
        changes["data_dir"] = data_dir
    return settings.model_copy(update=changes)


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="[env: CRM_HOST, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="[env: CRM_PORT, default 8000]")] = None,
    data_dir: DataDir = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Web worker processes [env: CRM_WORKERS, default 1]"),
    ] = None,
) -> None:
    """Run the command API, the read API and (by default) the projection worker."""
    import uvicorn

    from crm.app import create_app
    from crm.processes import SeveralWorkersNeedPostgres, serve_in_processes

    settings = load_settings(data_dir, host=host, port=port, workers=workers)
    configure_logging(settings)
    store = "PostgreSQL" if settings.database_url else f"SQLite in {settings.data_dir}"
    console.print(f"MONTON CRM on http://{settings.host}:{settings.port} — {store}")
    if settings.workers > 1:
        try:
            serve_in_processes(settings)
        except SeveralWorkersNeedPostgres as refused:
            console.print(f"[red]{refused}[/]")
            raise typer.Exit(2) from None
        return
    app = create_app(settings)
    tune_garbage_collection()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


class Source(StrEnum):
    STORE = "store"
    KAFKA = "kafka"


def stop_on_signals() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


@cli.command()
def project(
    source: Annotated[Source, typer.Option(help="Follow the event store or the Kafka stream")] = (
        Source.STORE
    ),
    group: Annotated[str, typer.Option(help="Kafka consumer group (with --source kafka)")] = (
        "crm-projections"
    ),
    data_dir: DataDir = None,
) -> None:
    """Run the projection worker as its own process."""
    settings = load_settings(data_dir)
    configure_logging(settings)
    stop = stop_on_signals()
    tune_garbage_collection()
    if source is Source.KAFKA:
        from crm.kafka_wiring import follow_kafka

        console.print(f"projection worker: consuming {settings.kafka_topic} as group {group}")
        follow_kafka(settings, group, stop)
        return
    from crm.service import follow_store

    console.print("projection worker: following the event store (Ctrl-C stops)")
    follow_store(settings, stop)


@cli.command()
def relay(data_dir: DataDir = None) -> None:
    """Publish every stored event to Kafka, in order, at least once."""
    from crm.kafka_wiring import run_relay

    settings = load_settings(data_dir)
    configure_logging(settings)
    console.print(f"relay: publishing the event log to {settings.kafka_topic}")
    run_relay(settings, stop_on_signals())


@cli.command()
def replay(
    data_dir: DataDir = None,
    in_place: Annotated[
        bool, typer.Option(help="Empty and refill the live read models instead (reads see gaps)")
    ] = False,
) -> None:
    """Rebuild every read model from the whole event log, without downtime: a new generation
    fills up beside the live one, then reads switch to it at once. Resumes if interrupted."""
    settings = load_settings(data_dir)
    location = settings.location()
    if location.is_postgres:  # a bulk load there runs in partitions: their server starts now
        prepare_fork_server()
    events = CrmApplication(location)
    generations = Generations(location)
    target = generations.live() if in_place else generations.start_building()
    store = ReadModelStore(location, target.number)
    worker = ProjectionWorker(events, store, batch_size=settings.projection_batch_size)
    if in_place:
        worker.reset()
    head = events.head_position()
    console.print(
        f"rebuilding generation {target.number} "
        f"({'in place' if in_place else 'beside the live one'}) from {head:,} events"
    )
    started, first = time.monotonic(), worker.position
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} events/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("replay", total=head, completed=first, rate="-")

        def advance(result: BatchResult) -> None:
            rate = (result.position - first) / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=result.position, rate=f"{rate:,.0f}")

        worker.catch_up(on_batch=advance)
    elapsed = time.monotonic() - started
    if not in_place:
        generations.make_live(target.number)
        dropped = generations.drop_retired(keep=1)
        console.print(
            f"generation {target.number} is live"
            + (f"; dropped generations {dropped}" if dropped else "")
        )
    console.print(f"rebuilt the read models from {head:,} events in {elapsed:.1f} s")


@cli.command()
def status(data_dir: DataDir = None) -> None:
    """Show the event log's head, each read-model generation's position and lag, and whether
    the projection code changed since a generation was built (then run `crm replay`)."""
    settings = load_settings(data_dir)
    location = settings.location()
    head = CrmApplication(location).head_position()
    table = Table("generation", "state", "position", "lag", "projection version", "head")
    for generation in Generations(location).all():
        read = ReadModelStore(location, generation.number).position(TRACKING_NAME)
        version = str(generation.projection_version)
        if generation.needs_rebuild:
            version += f" (code: {PROJECTION_VERSION}; rebuild needed)"
        table.add_row(
            str(generation.number), generation.state.value, str(read),
            str(max(head - read, 0)), version, str(head),
        )  # fmt: skip
    console.print(table)


@cli.command()
def history(
    kind: Annotated[str, typer.Argument(help="client, contact or deal")],
    record_id: UUID,
    organization: Annotated[UUID, typer.Option()] = DEFAULT_ORGANIZATION_ID,
    data_dir: DataDir = None,
) -> None:
    """Show a record's history: every event, who, business time and recorded time."""
    if kind not in ("client", "contact", "deal"):
        raise typer.BadParameter("kind is client, contact or deal", param_hint="KIND")
    settings = load_settings(data_dir)
    entries = RecordHistory(CrmApplication(settings.location())).entries(
        kind, organization, record_id
    )
    if entries is None:
        console.print(f"There is no {kind} {record_id}.")
        raise typer.Exit(1)
    table = Table("v", "event", "who", "occurred (business)", "recorded", "changes")
    for entry in entries:
        table.add_row(
            str(entry.version),
            entry.type,
            entry.actor_id,
            entry.occurred_at.isoformat(),
            entry.recorded_at.isoformat(),
            ", ".join(f"{k}={v}" for k, v in entry.changes.items()),
        )
    console.print(table)


def main() -> None:
    try:
        cli()
    except DomainError as refusal:
        console.print(f"[red]refused:[/red] {refusal}")
        raise SystemExit(1) from None
