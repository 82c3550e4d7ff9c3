"""The FastAPI app: command API + read API + health, assembled around one :class:`Service`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from commands import api as command_api
from crm.problems import register_problem_handlers
from crm.service import Service
from crm.settings import Settings
from read_api import analytics as analytics_api
from read_api import records as record_api


class Health(BaseModel):
    status: str
    head_position: int
    read_position: int
    projection_lag: int


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = Service(settings)
        service.start()
        app.state.service = service
        app.state.commands = service.commands
        app.state.read_side = service.read_side
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="MONTON CRM",
        version="0.1.0",
        summary="Clients, contacts and deals, event-sourced: commands, reads, analytics, history.",
        lifespan=lifespan,
    )
    register_problem_handlers(app)
    for router in (*command_api.routers, *record_api.routers, analytics_api.router):
        app.include_router(router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> Health:
        """Ready: the event log's head, the read models' position and the lag between."""
        service: Service = app.state.service
        head, read = service.head_position(), service.read_position()
        return Health(
            status="ok", head_position=head, read_position=read, projection_lag=max(head - read, 0)
        )

    return app
