"""Refusals of the application service, beside the domain's own (:mod:`aggregates.errors`)."""

from __future__ import annotations

from uuid import UUID

from aggregates.errors import DomainError


class RecordNotFound(DomainError):
    """The record does not exist for the caller. With ``field``, a referenced record is
    missing from the command's input (HTTP 422); without, the addressed record (HTTP 404)."""

    def __init__(self, record_type: str, record_id: UUID, field: str | None = None) -> None:
        super().__init__(f"There is no {record_type} {record_id}.")
        self.record_type = record_type
        self.record_id = record_id
        self.field = field


class StaleVersion(DomainError):
    def __init__(self, record_type: str, expected: int, actual: int | None) -> None:
        now = "has changed since" if actual is None else f"is at version {actual}, not"
        super().__init__(
            f"The {record_type} {now} the version {expected} named in If-Match; "
            "read it again and retry."
        )
        self.expected = expected
        self.actual = actual


class IdempotencyKeyReused(DomainError):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency-Key {key!r} was first used with a different request; "
            "use a new key for a new command."
        )


class ConcurrentChange(DomainError):
    def __init__(self, record_type: str) -> None:
        super().__init__(f"The {record_type} kept changing under this command; send it again.")


class Forbidden(DomainError):
    """The caller's role may not do this (HTTP 403); the message names role and capability."""
