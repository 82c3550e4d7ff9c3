"""The command API: one endpoint per command, with ETag / If-Match and Idempotency-Key.

Every answer names the record, its new version (also the ``ETag``) and the event-log
``position`` of the save (also ``X-Event-Position``): pass it as ``min_position`` to a read
endpoint to read your own write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Body, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from commands import models
from commands.idempotency import request_fingerprint
from commands.service import Accepted, CommandMeta, CrmApplication, IdempotencyKey
from crm.identity import CurrentActor

RECORD_PATHS = {"client": "/clients", "contact": "/contacts", "deal": "/deals", "token": "/tokens"}


class InvalidHeader(Exception):
    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header
        self.message = message


class CommandResult(BaseModel):
    """What every accepted command answers."""

    type: str
    id: UUID
    version: int
    position: int


def parse_if_match(value: str | None) -> int | None:
    if value is None or value.strip() == "*":
        return None
    tag = value.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise InvalidHeader("If-Match", 'If-Match takes the ETag of a read, e.g. "3".')
    return int(tag)


def check_idempotency_key(value: str | None) -> str | None:
    if value is not None and not (1 <= len(value) <= 200 and value.isprintable()):
        raise InvalidHeader("Idempotency-Key", "Idempotency-Key is 1 to 200 printable characters.")
    return value


def parse_correlation_id(value: str | None) -> UUID | None:
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise InvalidHeader(
            "X-Correlation-ID",
            "X-Correlation-ID is a UUID, e.g. 0f0e0d0c-0b0a-4900-8800-00000000002a.",
        ) from None


# Read by command_request from the request's headers, not declared as FastAPI Header()
# parameters: those cost ≈ 4 % of a command's CPU on the server. crm.openapi adds them to the
# OpenAPI document instead (add_command_headers).
COMMAND_HEADERS: list[dict[str, Any]] = [
    {
        "name": "if-match",
        "in": "header",
        "required": False,
        "description": 'ETag of the version read: "3" (a stale one is refused with 412).',
        "schema": {"type": "string"},
    },
    {
        "name": "idempotency-key",
        "in": "header",
        "required": False,
        "description": "Retries with the same key return the first answer.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    },
    {
        "name": "x-correlation-id",
        "in": "header",
        "required": False,
        "description": "Kept with the command's events (default: the command's own id).",
        "schema": {"type": "string", "format": "uuid"},
    },
]


@dataclass(frozen=True)
class CommandRequest:
    """The parts of an HTTP request that every command takes besides its body."""

    app: CrmApplication
    meta: CommandMeta
    idempotency_key: str | None
    method: str
    path: str

    def meta_for(self, cmd: models.Command, *, idempotent: bool = True) -> CommandMeta:
        """The command's metadata: business time from the body, idempotency from the header."""
        idempotency = None
        if self.idempotency_key is not None:
            if not idempotent:
                raise InvalidHeader(
                    "Idempotency-Key", "This command cannot be replayed: send no Idempotency-Key."
                )
            body = cmd.model_dump_json().encode()
            fingerprint = request_fingerprint(self.method, self.path, body)
            idempotency = IdempotencyKey(self.idempotency_key, fingerprint)
        return replace(self.meta, occurred_at=cmd.occurred_at, idempotency=idempotency)

    def run(self, call: Callable[[CommandMeta], Accepted], cmd: models.Command) -> JSONResponse:
        return answer(call(self.meta_for(cmd)))


def answer(accepted: Accepted, **extra: str) -> JSONResponse:
    """201 or 200 with the record, version and position; ETag and X-Event-Position headers."""
    body = CommandResult(
        type=accepted.record_type,
        id=accepted.record_id,
        version=accepted.version,
        position=accepted.position,
    ).model_dump(mode="json")
    headers = {"ETag": f'"{accepted.version}"', "X-Event-Position": str(accepted.position)}
    if accepted.created and accepted.record_type in RECORD_PATHS:
        headers["Location"] = f"{RECORD_PATHS[accepted.record_type]}/{accepted.record_id}"
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        {**body, **extra},
        status_code=201 if accepted.created else 200,
        headers=headers,
    )


async def command_request(  # no I/O: async keeps it off the thread pool
    request: Request, actor: CurrentActor
) -> CommandRequest:
    """The command's actor and preconditions (the :data:`COMMAND_HEADERS`)."""
    headers = request.headers
    command_id = uuid4()
    meta = CommandMeta(
        organization_id=actor.organization_id,
        actor_id=actor.user_id,
        role=actor.role,
        command_id=command_id,
        correlation_id=parse_correlation_id(headers.get("x-correlation-id")) or command_id,
        expected_version=parse_if_match(headers.get("if-match")),
    )
    return CommandRequest(
        app=request.app.state.commands,
        meta=meta,
        idempotency_key=check_idempotency_key(headers.get("idempotency-key")),
        method=request.method,
        path=request.scope["path"],
    )


def takes_command_headers(dependant: Dependant) -> bool:
    """Whether an endpoint (its FastAPI dependency tree) runs :func:`command_request`."""
    return dependant.call is command_request or any(
        takes_command_headers(d) for d in dependant.dependencies
    )


Cmd = Annotated[CommandRequest, Depends(command_request)]
RESPONSES: dict[int | str, dict[str, str]] = {
    404: {"description": "No such record in your organization"},
    409: {"description": "A rule of the record refuses the command"},
    412: {"description": "If-Match names a version that is no longer current"},
    422: {"description": "Invalid input, field by field"},
}

clients = APIRouter(prefix="/clients", tags=["clients: commands"], responses=RESPONSES)
contacts = APIRouter(prefix="/contacts", tags=["contacts: commands"], responses=RESPONSES)
deals = APIRouter(prefix="/deals", tags=["deals: commands"], responses=RESPONSES)


# --- clients ---------------------------------------------------------------------------------


@clients.post("", status_code=201, response_model=CommandResult)
def register_client(cmd: models.RegisterClient, req: Cmd) -> JSONResponse:
    """Register a client (company)."""
    return req.run(lambda meta: req.app.register_client(cmd, meta), cmd)


@clients.patch("/{client_id}", response_model=CommandResult)
def change_client_details(
    client_id: UUID, cmd: models.ChangeClientDetails, req: Cmd
) -> JSONResponse:
    """Change a client's name or details: the fields given."""
    return req.run(lambda meta: req.app.change_client_details(client_id, cmd, meta), cmd)


@clients.post("/{client_id}/status", response_model=CommandResult)
def change_client_status(client_id: UUID, cmd: models.ChangeClientStatus, req: Cmd) -> JSONResponse:
    """Change a client's status and/or category."""
    return req.run(lambda meta: req.app.change_client_status(client_id, cmd, meta), cmd)


@clients.put("/{client_id}/primary-contact", response_model=CommandResult)
def set_primary_contact(client_id: UUID, cmd: models.SetPrimaryContact, req: Cmd) -> JSONResponse:
    """Make a contact linked to this client its primary contact."""
    return req.run(lambda meta: req.app.set_primary_contact(client_id, cmd, meta), cmd)


@clients.post("/{client_id}/archive", response_model=CommandResult)
def archive_client(
    client_id: UUID, req: Cmd, cmd: Annotated[models.ArchiveRecord | None, Body()] = None
) -> JSONResponse:
    """Archive a client."""
    cmd = cmd or models.ArchiveRecord()
    return req.run(lambda meta: req.app.archive_client(client_id, meta), cmd)


@clients.post("/{client_id}/restore", response_model=CommandResult)
def restore_client(
    client_id: UUID, req: Cmd, cmd: Annotated[models.RestoreRecord | None, Body()] = None
) -> JSONResponse:
    """Restore an archived client."""
    cmd = cmd or models.RestoreRecord()
    return req.run(lambda meta: req.app.restore_client(client_id, meta), cmd)


# --- contacts --------------------------------------------------------------------------------


@contacts.post("", status_code=201, response_model=CommandResult)
def create_contact(cmd: models.CreateContact, req: Cmd) -> JSONResponse:
    """Create a contact (a person), optionally linked to a client."""
    return req.run(lambda meta: req.app.create_contact(cmd, meta), cmd)


@contacts.patch("/{contact_id}", response_model=CommandResult)
def change_contact_details(
    contact_id: UUID, cmd: models.ChangeContactDetails, req: Cmd
) -> JSONResponse:
    """Change a contact's name, email or details: the fields given."""
    return req.run(lambda meta: req.app.change_contact_details(contact_id, cmd, meta), cmd)


@contacts.post("/{contact_id}/link", response_model=CommandResult)
def link_contact(contact_id: UUID, cmd: models.LinkContact, req: Cmd) -> JSONResponse:
    """Link a contact to a client."""
    return req.run(lambda meta: req.app.link_contact(contact_id, cmd, meta), cmd)


@contacts.post("/{contact_id}/unlink", response_model=CommandResult)
def unlink_contact(
    contact_id: UUID, req: Cmd, cmd: Annotated[models.UnlinkContact | None, Body()] = None
) -> JSONResponse:
    """Unlink a contact from its client."""
    cmd = cmd or models.UnlinkContact()
    return req.run(lambda meta: req.app.unlink_contact(contact_id, meta), cmd)


@contacts.post("/{contact_id}/archive", response_model=CommandResult)
def archive_contact(
    contact_id: UUID, req: Cmd, cmd: Annotated[models.ArchiveRecord | None, Body()] = None
) -> JSONResponse:
    """Archive a contact."""
    cmd = cmd or models.ArchiveRecord()
    return req.run(lambda meta: req.app.archive_contact(contact_id, meta), cmd)


@contacts.post("/{contact_id}/restore", response_model=CommandResult)
def restore_contact(
    contact_id: UUID, req: Cmd, cmd: Annotated[models.RestoreRecord | None, Body()] = None
) -> JSONResponse:
    """Restore an archived contact."""
    cmd = cmd or models.RestoreRecord()
    return req.run(lambda meta: req.app.restore_contact(contact_id, meta), cmd)


# --- deals -----------------------------------------------------------------------------------


@deals.post("", status_code=201, response_model=CommandResult)
def open_deal(cmd: models.OpenDeal, req: Cmd) -> JSONResponse:
    """Open a deal in the first stage of its pipeline."""
    return req.run(lambda meta: req.app.open_deal(cmd, meta), cmd)


@deals.post("/{deal_id}/stage", response_model=CommandResult)
def change_stage(deal_id: UUID, cmd: models.ChangeStage, req: Cmd) -> JSONResponse:
    """Move an open deal to another open stage (records StageChanged)."""
    return req.run(lambda meta: req.app.change_stage(deal_id, cmd, meta), cmd)


@deals.put("/{deal_id}/value", response_model=CommandResult)
def change_deal_value(deal_id: UUID, cmd: models.ChangeDealValue, req: Cmd) -> JSONResponse:
    """Change an open deal's value and currency."""
    return req.run(lambda meta: req.app.change_deal_value(deal_id, cmd, meta), cmd)


@deals.put("/{deal_id}/expected-close-date", response_model=CommandResult)
def change_expected_close_date(
    deal_id: UUID, cmd: models.ChangeExpectedCloseDate, req: Cmd
) -> JSONResponse:
    """Change an open deal's expected close date."""
    return req.run(lambda meta: req.app.change_expected_close_date(deal_id, cmd, meta), cmd)


@deals.put("/{deal_id}/probability", response_model=CommandResult)
def change_probability(deal_id: UUID, cmd: models.ChangeProbability, req: Cmd) -> JSONResponse:
    """Change an open deal's probability (0–100)."""
    return req.run(lambda meta: req.app.change_probability(deal_id, cmd, meta), cmd)


@deals.put("/{deal_id}/owner", response_model=CommandResult)
def reassign_deal(deal_id: UUID, cmd: models.ReassignDeal, req: Cmd) -> JSONResponse:
    """Assign the deal to another salesperson."""
    return req.run(lambda meta: req.app.reassign_deal(deal_id, cmd, meta), cmd)


@deals.put("/{deal_id}/stakeholders", response_model=CommandResult)
def change_stakeholders(deal_id: UUID, cmd: models.ChangeStakeholders, req: Cmd) -> JSONResponse:
    """Replace the deal's stakeholders (contacts and team members)."""
    return req.run(lambda meta: req.app.change_stakeholders(deal_id, cmd, meta), cmd)


@deals.patch("/{deal_id}", response_model=CommandResult)
def change_deal_details(deal_id: UUID, cmd: models.ChangeDealDetails, req: Cmd) -> JSONResponse:
    """Change a deal's name, source, competitor or notes: the fields given."""
    return req.run(lambda meta: req.app.change_deal_details(deal_id, cmd, meta), cmd)


@deals.post("/{deal_id}/win", response_model=CommandResult)
def win_deal(
    deal_id: UUID, req: Cmd, cmd: Annotated[models.WinDeal | None, Body()] = None
) -> JSONResponse:
    """Mark an open deal won (records DealWon with its value at that moment)."""
    cmd = cmd or models.WinDeal()
    return req.run(lambda meta: req.app.win_deal(deal_id, meta), cmd)


@deals.post("/{deal_id}/lose", response_model=CommandResult)
def lose_deal(deal_id: UUID, cmd: models.LoseDeal, req: Cmd) -> JSONResponse:
    """Mark an open deal lost, with a reason and optionally the competitor that won it."""
    return req.run(lambda meta: req.app.lose_deal(deal_id, cmd, meta), cmd)


@deals.post("/{deal_id}/reopen", response_model=CommandResult)
def reopen_deal(
    deal_id: UUID, req: Cmd, cmd: Annotated[models.ReopenDeal | None, Body()] = None
) -> JSONResponse:
    """Reopen a won or lost deal in an open stage."""
    cmd = cmd or models.ReopenDeal()
    return req.run(lambda meta: req.app.reopen_deal(deal_id, cmd, meta), cmd)


@deals.post("/{deal_id}/archive", response_model=CommandResult)
def archive_deal(
    deal_id: UUID, req: Cmd, cmd: Annotated[models.ArchiveRecord | None, Body()] = None
) -> JSONResponse:
    """Archive a deal: it leaves lists and the open pipeline."""
    cmd = cmd or models.ArchiveRecord()
    return req.run(lambda meta: req.app.archive_deal(deal_id, meta), cmd)


routers = (clients, contacts, deals)
