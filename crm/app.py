"""The FastAPI app: command API + read API + health, assembled around one :class:`Service`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel

from commands import admin_api as admin_command_api
from commands import api as command_api
from commands import pipeline_api as pipeline_command_api
from crm.bootstrap import ADMIN_TOKEN_FILE
from crm.openapi import problem_openapi
from crm.policy import AccessControl
from crm.problems import register_problem_handlers
from crm.service import Service
from crm.settings import Settings
from read_api import administration as administration_api
from read_api import analytics as analytics_api
from read_api import pipelines as pipeline_read_api
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
        app.state.read_sides = service
        app.state.read_wait_seconds = settings.read_wait_seconds
        app.state.authenticator = service.authenticator
        if service.first_run_token is not None:
            announce_first_run(settings, service.first_run_token)
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
    routers = (
        *command_api.routers,
        admin_command_api.router,
        *pipeline_command_api.routers,
        *record_api.routers,
        pipeline_read_api.router,
        analytics_api.router,
        administration_api.router,
    )
    for router in routers:
        app.include_router(router)
    app.add_middleware(AccessControl)
    app.openapi = problem_openapi(app)  # type: ignore[method-assign]

    @app.get("/healthz", tags=["operations"])
    def healthz() -> Health:
        """Ready: the event log's head, the read models' position and the lag between."""
        service: Service = app.state.service
        head, read = service.head_position(), service.read_position()
        return Health(
            status="ok", head_position=head, read_position=read, projection_lag=max(head - read, 0)
        )

    return app


def announce_first_run(settings: Settings, token: str) -> None:
    """Print the first admin token once; it is also in the data folder, mode 0600."""
    print(
        "\nFirst run: created the organization 'Default' and its admin 'admin'.\n"
        f"Admin token (shown once; also in {settings.data_dir / ADMIN_TOKEN_FILE}):\n"
        f"  {token}\n"
        f'  curl -H "Authorization: Bearer {token}" http://{settings.host}:{settings.port}/clients\n',
        flush=True,
    )
