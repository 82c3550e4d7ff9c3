"""Who is calling: bearer API tokens or signed JWTs, resolved to an :class:`Actor`.

API tokens are looked up by the id derived from their hash and compared in constant time;
JWTs are verified with the configured issuer's key and algorithm (PyJWT), and take the role
from their ``role`` claim or, failing that, from the user's membership. Either way the
organization must exist here. Both APIs depend on :data:`CurrentActor`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aggregates.access import AccessSettings, Role
from aggregates.api_token import TOKEN_PREFIX, ApiToken, secret_hash
from aggregates.membership import Membership
from aggregates.organization import Organization
from commands.service import CrmApplication
from crm.settings import DEFAULT_ORGANIZATION_ID as DEFAULT_ORGANIZATION_ID
from crm.settings import Settings

DEFAULT_ADMIN_ID = "admin"


class Unauthenticated(Exception):
    """Missing or bad credentials (HTTP 401). The message never echoes a secret."""


@dataclass(frozen=True)
class Actor:
    organization_id: UUID
    organization_name: str
    user_id: str
    role: Role
    access: AccessSettings


class Authenticator:
    """Resolves a bearer credential to the actor it stands for.

    A resolved API token is remembered for ``CACHE_SECONDS`` (keyed by its hash), and
    forgotten at once when this process changes any token, member or organization; another
    process's revocation takes effect within that time."""

    CACHE_SECONDS = 1.0

    def __init__(self, app: CrmApplication, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._cache: dict[str, tuple[float, Actor]] = {}

    def forget(self) -> None:
        """Drop every remembered actor (identity data changed)."""
        self._cache.clear()

    def remembered(self, credential: str | None) -> Actor | None:
        """The actor of an API token resolved less than ``CACHE_SECONDS`` ago, if any."""
        if not credential or not credential.startswith(TOKEN_PREFIX):
            return None
        cached = self._cache.get(secret_hash(credential))
        if cached is not None and time.monotonic() - cached[0] < self.CACHE_SECONDS:
            return cached[1]
        return None

    def actor_for(self, credential: str | None) -> Actor:
        if not credential:
            raise Unauthenticated("Send a bearer token: Authorization: Bearer <token>.")
        if credential.startswith(TOKEN_PREFIX):
            key = secret_hash(credential)
            cached = self._cache.get(key)
            now = time.monotonic()
            if cached is not None and now - cached[0] < self.CACHE_SECONDS:
                return cached[1]
            actor = self._from_api_token(credential)
            self._cache[key] = (now, actor)
            return actor
        if self.settings.jwt_key and self.settings.jwt_issuer:
            return self._from_jwt(credential)
        raise Unauthenticated("The bearer token is not valid.")

    def _from_api_token(self, secret: str) -> Actor:
        token = self.app.find(ApiToken, ApiToken.id_for_hash(secret_hash(secret)))
        if token is None or not token.matches(secret, datetime.now(UTC)):
            raise Unauthenticated("The bearer token is not valid (unknown, revoked or expired).")
        member = self.app.find(Membership, Membership.id_for(token.organization_id, token.user_id))
        if member is None or not member.holds(token.member_epoch):
            raise Unauthenticated("The token's user is no longer a member of its organization.")
        return self._actor(token.organization_id, token.user_id, member.role)

    def _from_jwt(self, credential: str) -> Actor:
        settings = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                credential,
                key=settings.jwt_key or "",
                algorithms=[settings.jwt_algorithm],
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                options={"require": ["exp", "sub", "iss", settings.jwt_organization_claim]},
            )
            organization_id = UUID(str(claims[settings.jwt_organization_claim]))
        except (jwt.PyJWTError, ValueError) as error:
            raise Unauthenticated(f"The bearer JWT is not valid: {error}.") from None
        user_id = str(claims["sub"])
        role = self._jwt_role(claims, organization_id, user_id)
        return self._actor(organization_id, user_id, role)

    def _jwt_role(self, claims: dict[str, Any], organization_id: UUID, user_id: str) -> Role:
        if "role" in claims:
            try:
                return Role(str(claims["role"]).upper())
            except ValueError:
                raise Unauthenticated("The JWT's role claim is not a known role.") from None
        member = self.app.find(Membership, Membership.id_for(organization_id, user_id))
        if member is None or not member.is_member:
            raise Unauthenticated("The JWT's user is not a member of its organization.")
        return member.role

    def _actor(self, organization_id: UUID, user_id: str, role: Role) -> Actor:
        organization = self.app.find(Organization, organization_id)
        if organization is None:
            raise Unauthenticated(f"There is no organization {organization_id}.")
        return Actor(organization.id, organization.name, user_id, role, organization.access)


bearer = HTTPBearer(auto_error=False, description="An API token (crm_…) or a signed JWT.")


async def current_actor(  # no I/O: async keeps it off the thread pool
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    """The caller of this request, as the access-control middleware authenticated it.

    (``credentials`` is declared so that OpenAPI documents the bearer scheme.)"""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        raise Unauthenticated("Send a bearer token: Authorization: Bearer <token>.")
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]
