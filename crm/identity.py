"""Who is calling: the one place every request's actor is resolved.

Until organizations and users land, every request runs as the administrator of one default
organization. Both APIs depend on :data:`CurrentActor`, so real identity replaces only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from fastapi import Depends

DEFAULT_ORGANIZATION_ID = UUID("00000000-0000-4000-8000-000000000001")
DEFAULT_ADMIN_ID = "admin"


class Role(StrEnum):
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    CONTRIBUTOR = "CONTRIBUTOR"
    GUEST = "GUEST"


@dataclass(frozen=True)
class Actor:
    organization_id: UUID
    user_id: str
    role: Role


def current_actor() -> Actor:
    """The caller of this request."""
    return Actor(DEFAULT_ORGANIZATION_ID, DEFAULT_ADMIN_ID, Role.ADMIN)


CurrentActor = Annotated[Actor, Depends(current_actor)]
