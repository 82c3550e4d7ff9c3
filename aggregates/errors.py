"""Domain errors: a command the rules refuse. Each message is a sentence for the caller."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every refusal by the write model."""


class RuleBroken(DomainError):
    """The command contradicts the record's current state (HTTP 409)."""


class InvalidValue(DomainError):
    """A value the domain cannot hold (HTTP 422), named by its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
