"""Read models of administration: organizations, members and API tokens (never their secrets)."""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol

from aggregates.api_token import ApiToken
from aggregates.membership import Membership
from aggregates.organization import Organization
from event_store.read_model_store import ReadModelStore
from projections.row_projection import ChangesProjection, RowDict, RowProjection, common_columns
from projections.units import micros

BOOKKEEPING_TYPES: dict[str, str] = {
    "version": "INTEGER",
    "updated_at_us": "BIGINT",
    "recorded_at_us": "BIGINT",
}


class OrganizationsProjection(ChangesProjection):
    created_by = Organization.OrganizationCreated
    table = "rm_organizations"
    columns = (
        "id",
        "organization_id",
        "name",
        "base_currency",
        "crm_enabled",
        "deal_creator_roles",
        "contributor_access",
        "created_at_us",
        "version",
        "updated_at_us",
        "recorded_at_us",
    )
    json_columns = frozenset({"deal_creator_roles"})
    column_types: ClassVar[dict[str, str]] = {
        "crm_enabled": "INTEGER",
        "created_at_us": "BIGINT",
        **BOOKKEEPING_TYPES,
    }

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, Organization.Event)

    @singledispatchmethod
    def changes(self, event: Any, row: RowDict) -> RowDict:
        return {}

    @changes.register
    def _(self, event: Organization.OrganizationCreated, row: RowDict) -> RowDict:
        return {
            "id": str(event.originator_id),
            "organization_id": str(event.context.organization_id),
            "name": event.name,
            "base_currency": event.base_currency,
            "crm_enabled": int(event.crm_enabled),
            "deal_creator_roles": list(event.deal_creator_roles),
            "contributor_access": event.contributor_access,
            "created_at_us": micros(event.context.occurred_at),
        }

    @changes.register
    def _(self, event: Organization.OrganizationSettingsChanged, row: RowDict) -> RowDict:
        changes = dict(event.changes)
        if "crm_enabled" in changes:
            changes["crm_enabled"] = int(changes["crm_enabled"])
        return changes


class MembersProjection(ChangesProjection):
    created_by = Membership.MemberAdded
    table = "rm_members"
    columns = (
        "id",
        "organization_id",
        "user_id",
        "role",
        "removed",
        "added_at_us",
        "added_by",
        "version",
        "updated_at_us",
        "recorded_at_us",
    )
    column_types: ClassVar[dict[str, str]] = {
        "removed": "INTEGER",
        "added_at_us": "BIGINT",
        **BOOKKEEPING_TYPES,
    }
    indexes = (
        "CREATE INDEX IF NOT EXISTS rm_members_by_org ON rm_members (organization_id, user_id)",
    )

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, Membership.Event)

    @singledispatchmethod
    def changes(self, event: Any, row: RowDict) -> RowDict:
        return {}

    @changes.register
    def _(self, event: Membership.MemberAdded, row: RowDict) -> RowDict:
        return {
            "id": str(event.originator_id),
            "organization_id": str(event.context.organization_id),
            "user_id": event.user_id,
            "role": event.role,
            "removed": 0,
            "added_at_us": micros(event.context.occurred_at),
            "added_by": event.context.actor_id,
        }

    @changes.register
    def _(self, event: Membership.RoleChanged, row: RowDict) -> RowDict:
        return {"role": event.to_role}

    @changes.register
    def _(self, event: Membership.MemberRemoved, row: RowDict) -> RowDict:
        return {"removed": 1}

    @changes.register
    def _(self, event: Membership.MemberReadded, row: RowDict) -> RowDict:
        return {"role": event.role, "removed": 0}


class TokensProjection(RowProjection):
    table = "rm_tokens"
    columns = (
        "id",
        "organization_id",
        "user_id",
        "label",
        "expires_at_us",
        "revoked",
        "issued_at_us",
        "issued_by",
        "version",
        "updated_at_us",
        "recorded_at_us",
    )
    column_types: ClassVar[dict[str, str]] = {
        "expires_at_us": "BIGINT",
        "revoked": "INTEGER",
        "issued_at_us": "BIGINT",
        **BOOKKEEPING_TYPES,
    }
    indexes = (
        "CREATE INDEX IF NOT EXISTS rm_tokens_by_org ON rm_tokens (organization_id, user_id)",
    )

    def handles(self, event: DomainEventProtocol[UUID]) -> bool:
        return isinstance(event, ApiToken.Event)

    def fold(self, row: RowDict | None, event: DomainEventProtocol[UUID]) -> RowDict | None:
        if isinstance(event, ApiToken.TokenIssued):
            return {
                "id": str(event.originator_id),
                "organization_id": str(event.context.organization_id),
                "user_id": event.user_id,
                "label": event.label,
                "expires_at_us": None if event.expires_at is None else micros(event.expires_at),
                "revoked": 0,
                "issued_at_us": micros(event.context.occurred_at),
                "issued_by": event.context.actor_id,
                **common_columns(event),
            }
        if row is None:
            return None
        revoked = {"revoked": 1} if isinstance(event, ApiToken.TokenRevoked) else {}
        return {**row, **revoked, **common_columns(event)}


class AdministrationQueries:
    """Reads an organization's settings, members and tokens."""

    def __init__(self, store: ReadModelStore) -> None:
        self.store = store
        self.organizations = OrganizationsProjection()
        self.members_model = MembersProjection()
        self.tokens_model = TokensProjection()

    def organization(self, organization_id: UUID) -> RowDict | None:
        rows = self._rows(self.organizations, organization_id, "id")
        return rows[0] if rows else None

    def members(self, organization_id: UUID) -> list[RowDict]:
        return self._rows(self.members_model, organization_id, "user_id")

    def tokens(self, organization_id: UUID) -> list[RowDict]:
        return self._rows(self.tokens_model, organization_id, "issued_at_us")

    def _rows(self, model: RowProjection, organization_id: UUID, order: str) -> list[RowDict]:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT * FROM {model.table} WHERE organization_id = ? ORDER BY {order}, id",
                [str(organization_id)],
            )
            return [model.decode(row) for row in cursor.fetchall()]
