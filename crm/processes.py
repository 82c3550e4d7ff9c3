"""`crm serve --workers N`: several web worker processes beside one projection process.

One Python process serves commands on one core at most (the GIL); with PostgreSQL, several
processes share the event store safely — each has its own group commit, and the store orders
every save. The read models have one writer: a projection process of its own, which the web
workers follow through the database (``min_position`` waits poll the tracked position).
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from multiprocessing.process import BaseProcess
from typing import Any

from crm.settings import Settings

STOP_SECONDS = 10.0


YOUNG_COLLECTION_THRESHOLD = 20_000  # objects allocated between young collections (700)


def tune_garbage_collection() -> None:
    """A long-running process (a web worker, a projection worker) allocates many short-lived
    objects per request or batch: collect the young generation less often, and never scan
    what was loaded at start-up again (about 5 % of a command's CPU here, see
    bench/README.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, 10, 10)


def create_worker_app() -> Any:
    """A web worker's app (``uvicorn --workers``), built in the worker process, which then
    tunes its garbage collection like a single server does."""
    from crm.app import create_app

    app = create_app()
    tune_garbage_collection()
    return app


class SeveralWorkersNeedPostgres(ValueError):
    pass


def serve_in_processes(settings: Settings) -> None:
    """Run ``settings.workers`` uvicorn workers (and the projection process) until stopped."""
    import uvicorn

    if settings.database_url is None:
        raise SeveralWorkersNeedPostgres(
            "several workers need PostgreSQL: set CRM_DATABASE_URL (SQLite takes one writer)"
        )
    prepare_store(settings)
    projector = start_projector(settings) if settings.projections_in_process else None
    # The workers build their settings from the environment: hand them what the command
    # line set, and keep the projections out of them.
    os.environ.update(
        CRM_HOST=settings.host,
        CRM_PORT=str(settings.port),
        CRM_DATA_DIR=str(settings.data_dir),
        CRM_PROJECTIONS_IN_PROCESS="false",
        CRM_WORKERS="1",
    )
    try:
        uvicorn.run(
            "crm.processes:create_worker_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level.lower(),
        )
    finally:
        if projector is not None:
            stop_process(projector)


def prepare_store(settings: Settings) -> None:
    """The read-model tables and the first run, once, before the workers start together."""
    from crm.app import announce_first_run
    from crm.service import Service

    service = Service(settings.model_copy(update={"projections_in_process": False}))
    try:
        if service.first_run_token is not None:
            announce_first_run(settings, service.first_run_token)
    finally:
        service.stop()


def start_projector(settings: Settings) -> BaseProcess:
    process = multiprocessing.get_context("spawn").Process(
        target=run_projector, args=(settings,), name="crm-projections"
    )
    process.start()
    return process


def run_projector(settings: Settings) -> None:
    """The projection process's main: follow the event store until SIGTERM or SIGINT."""
    from crm.service import follow_store

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    tune_garbage_collection()
    follow_store(settings, stop)


def stop_process(process: BaseProcess) -> None:
    process.terminate()
    process.join(STOP_SECONDS)
    if process.is_alive():
        process.kill()
        process.join(STOP_SECONDS)
