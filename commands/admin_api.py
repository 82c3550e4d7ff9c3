"""Administration endpoints (ADMIN): organization settings, members, API tokens."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path
from fastapi.responses import JSONResponse
from pydantic import Field

from commands import models
from commands.administration import Administration
from commands.api import RESPONSES, Cmd, CommandResult, answer

router = APIRouter(tags=["administration"], responses=RESPONSES)
UserIdPath = Annotated[str, Path(min_length=1, max_length=200)]


class TokenIssued(CommandResult):
    token: str = Field(description="The secret: shown once, stored only as a hash.")


def administration(req: Cmd) -> Administration:
    return Administration(req.app)


@router.patch("/organization", response_model=CommandResult)
def change_settings(cmd: models.ChangeOrganizationSettings, req: Cmd) -> JSONResponse:
    """Change the organization's settings: the ones given."""
    return req.run(lambda meta: administration(req).change_settings(cmd, meta), cmd)


@router.post("/users", status_code=201, response_model=CommandResult)
def add_member(cmd: models.AddMember, req: Cmd) -> JSONResponse:
    """Give a user a role in this organization."""
    return req.run(lambda meta: administration(req).add_member(cmd, meta), cmd)


@router.put("/users/{user_id}/role", response_model=CommandResult)
def change_role(user_id: UserIdPath, cmd: models.ChangeRole, req: Cmd) -> JSONResponse:
    """Change a member's role."""
    return req.run(lambda meta: administration(req).change_role(user_id, cmd, meta), cmd)


@router.delete("/users/{user_id}", response_model=CommandResult)
def remove_member(
    user_id: UserIdPath, req: Cmd, cmd: Annotated[models.RemoveMember | None, Body()] = None
) -> JSONResponse:
    """Remove a member from this organization; their tokens stop working."""
    cmd = cmd or models.RemoveMember()
    return req.run(lambda meta: administration(req).remove_member(user_id, meta), cmd)


@router.post("/users/{user_id}/tokens", status_code=201, response_model=TokenIssued)
def issue_token(
    user_id: UserIdPath, req: Cmd, cmd: Annotated[models.IssueToken | None, Body()] = None
) -> JSONResponse:
    """Issue an API token for a member. The secret is in this answer only."""
    cmd = cmd or models.IssueToken()
    issued = administration(req).issue_token(user_id, cmd, req.meta_for(cmd, idempotent=False))
    response = answer(issued.accepted, token=issued.secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.delete("/tokens/{token_id}", response_model=CommandResult)
def revoke_token(
    token_id: UUID, req: Cmd, cmd: Annotated[models.RevokeToken | None, Body()] = None
) -> JSONResponse:
    """Revoke an API token at once."""
    cmd = cmd or models.RevokeToken()
    return req.run(lambda meta: administration(req).revoke_token(token_id, meta), cmd)
