"""Roles and what each may do: the access matrix of SPEC §4 ("Niveles de Acceso al CRM")."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    CONTRIBUTOR = "CONTRIBUTOR"
    GUEST = "GUEST"


class ContributorAccess(StrEnum):
    NONE = "none"
    READ = "read"


class Capability(StrEnum):
    """One row of the access matrix; the value reads as a phrase after 'may not'."""

    READ_RECORDS = "read clients and contacts"
    MANAGE_RECORDS = "create, change or archive clients and contacts"
    READ_DEALS = "read deals and sales analytics"
    CREATE_DEALS = "create, reassign or archive deals"
    CHANGE_DEALS = "change deals"
    ADMINISTER = "read history and audit or manage settings, users and tokens"


@dataclass(frozen=True)
class AccessSettings:
    """The organization settings the matrix depends on."""

    crm_enabled: bool = True
    deal_creator_roles: frozenset[Role] = frozenset({Role.ADMIN})
    contributor_access: ContributorAccess = ContributorAccess.READ


def may(role: Role, capability: Capability, settings: AccessSettings) -> bool:
    """Whether a role may use a capability at all (ownership is checked on the deal)."""
    match capability:
        case Capability.READ_RECORDS:
            return role in (Role.ADMIN, Role.MANAGER) or (
                role is Role.CONTRIBUTOR and settings.contributor_access is ContributorAccess.READ
            )
        case Capability.MANAGE_RECORDS | Capability.READ_DEALS:
            return role in (Role.ADMIN, Role.MANAGER)
        case Capability.CREATE_DEALS:
            return role is Role.ADMIN or role in settings.deal_creator_roles
        case Capability.CHANGE_DEALS:
            return role in (Role.ADMIN, Role.MANAGER)
        case Capability.ADMINISTER:
            return role is Role.ADMIN


def may_change_deal(role: Role, user_id: str, owner_id: str | None) -> bool:
    """ADMIN changes every deal; MANAGER only the deals they own."""
    return role is Role.ADMIN or (role is Role.MANAGER and owner_id == user_id)
