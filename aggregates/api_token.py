"""API tokens: random secrets shown once, kept only as a hash, revocable.

The token aggregate's id derives from the secret's hash, so authenticating a bearer token is
one lookup by id; the stored hash is then compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import RuleBroken

TOKEN_PREFIX = "crm_"


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(CrmAggregate):
    """A bearer token of one user in one organization."""

    class TokenIssued(CrmAggregate.Created):
        user_id: str
        label: str
        token_hash: str
        expires_at: datetime | None
        member_epoch: int

    class TokenRevoked(CrmAggregate.Event):
        pass

    @staticmethod
    def create_id(token_hash: str, **_: Any) -> UUID:
        return ApiToken.id_for_hash(token_hash)

    @staticmethod
    def id_for_hash(token_hash: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:token:{token_hash}")

    @event(TokenIssued)
    def __init__(
        self,
        user_id: str,
        label: str,
        token_hash: str,
        expires_at: datetime | None,
        member_epoch: int,
        context: EventContext,
    ) -> None:
        self.user_id = user_id
        self.token_hash = token_hash
        self.expires_at = expires_at
        self.member_epoch = member_epoch

    def matches(self, secret: str, now: datetime) -> bool:
        """Whether ``secret`` is this token, unrevoked and unexpired (constant-time compare)."""
        same = hmac.compare_digest(self.token_hash, secret_hash(secret))
        live = not self.archived and (self.expires_at is None or now < self.expires_at)
        return same and live

    def revoke(self, context: EventContext) -> None:
        self.check_in_sequence(context)
        if self.archived:
            raise RuleBroken(f"Token {self.id} is already revoked.")
        self._revoked(context=context)

    @event(TokenRevoked)
    def _revoked(self, context: EventContext) -> None:
        self.archived = True
