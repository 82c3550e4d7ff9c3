"""Idempotent commands: the first answer to a key, recorded in the same save as the command.

The record's id is derived from (organization, key), so a retry — or a concurrent duplicate —
finds the first answer instead of deciding again, and two racing first attempts cannot both be
recorded: the store lets only one of them write version 1.
"""

from __future__ import annotations

import hashlib
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(b"\0".join((method.encode(), path.encode(), body))).hexdigest()


class IdempotentCommand(Aggregate):
    """The answer given to the first command sent with an idempotency key."""

    class CommandAnswered(Aggregate.Created):
        organization_id: UUID
        key: str
        fingerprint: str
        status_code: int
        record_type: str
        record_id: UUID
        record_version: int

    @staticmethod
    def create_id(organization_id: UUID, key: str, **_: object) -> UUID:
        return IdempotentCommand.id_for(organization_id, key)

    @staticmethod
    def id_for(organization_id: UUID, key: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:idempotency:{organization_id}:{key}")

    @event(CommandAnswered)
    def __init__(
        self,
        organization_id: UUID,
        key: str,
        fingerprint: str,
        status_code: int,
        record_type: str,
        record_id: UUID,
        record_version: int,
    ) -> None:
        self.organization_id = organization_id
        self.key = key
        self.fingerprint = fingerprint
        self.status_code = status_code
        self.record_type = record_type
        self.record_id = record_id
        self.record_version = record_version
