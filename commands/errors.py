"""Refusals of the application service, beside the domain's own (:mod:`aggregates.errors`)."""

from __future__ import annotations

from uuid import UUID

from aggregates.errors import DomainError


class RecordNotFound(DomainError):
    """The record does not exist for the caller. With ``field``, a referenced record is
    missing from the command's input (HTTP 422); without, the addressed record (HTTP 404).
    Records named by a slug (a pipeline, a stage) give it as ``record_id``."""

    def __init__(self, record_type: str, record_id: UUID | str, field: str | None = None) -> None:
        named = repr(record_id) if isinstance(record_id, str) else record_id
        super().__init__(f"There is no {record_type} {named}.")
        self.record_type = record_type
        self.record_id = record_id
        self.field = field


class StageNotFound(RecordNotFound):
    """The stage addressed by the path is not in the pipeline (HTTP 404)."""

    def __init__(self, pipeline_id: str, stage_id: str) -> None:
        super().__init__("stage", stage_id)
        self.args = (f"Pipeline {pipeline_id!r} has no stage {stage_id!r}.",)


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


class ReadModelsBehind(ConcurrentChange):
    """A command that finds records through the read models could not wait for them."""

    def __init__(self) -> None:
        DomainError.__init__(
            self, "The read models are still catching up with the latest changes; send it again."
        )


class Forbidden(DomainError):
    """The caller's role may not do this (HTTP 403); the message names role and capability."""
