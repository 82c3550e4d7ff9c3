"""Who did what, when and why: the context every event carries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(frozen=True)
class EventContext:
    """The organization, acting user, business time and causation of one command."""

    organization_id: UUID
    actor_id: str
    occurred_at: datetime
    command_id: UUID
    correlation_id: UUID
