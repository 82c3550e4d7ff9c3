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
from crm.identity import DEFAULT_ORGANIZATION_ID
from crm.settings import Settings
from event_store.read_model_store import ReadModelStore
from projections.history import RecordHistory
from projections.worker import ProjectionWorker

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
) -> None:
    """Run the command API, the read API and (by default) the projection worker."""
    import uvicorn

    from crm.app import create_app

    settings = load_settings(data_dir, host=host, port=port)
    configure_logging(settings)
    store = "PostgreSQL" if settings.database_url else f"SQLite in {settings.data_dir}"
    console.print(f"MONTON CRM on http://{settings.host}:{settings.port} — {store}")
    uvicorn.run(
        create_app(settings),
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
def replay(data_dir: DataDir = None) -> None:
    """Rebuild every read model from the whole event log, with progress."""
    settings = load_settings(data_dir)
    location = settings.location()
    events = CrmApplication(location)
    store = ReadModelStore(location)
    worker = ProjectionWorker(events, store, batch_size=settings.projection_batch_size)
    worker.reset()
    head = events.head_position()
    started = time.monotonic()
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
        task = progress.add_task("replay", total=head, rate="-")

        def advance(result: object) -> None:
            position = worker.position
            rate = position / max(time.monotonic() - started, 1e-9)
            progress.update(task, completed=position, rate=f"{rate:,.0f}")

        worker.catch_up(on_batch=advance)
    elapsed = time.monotonic() - started
    console.print(f"rebuilt the read models from {head:,} events in {elapsed:.1f} s")


@cli.command()
def status(data_dir: DataDir = None) -> None:
    """Show the event log's head, the read models' position and the lag."""
    settings = load_settings(data_dir)
    location = settings.location()
    head = CrmApplication(location).head_position()
    read = ReadModelStore(location).position("read_models")
    table = Table("head position", "read-model position", "lag")
    table.add_row(str(head), str(read), str(max(head - read, 0)))
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
