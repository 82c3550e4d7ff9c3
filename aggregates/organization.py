"""Organization: the tenant, with the settings that switch the CRM on and shape access."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from aggregates.access import AccessSettings, ContributorAccess, Role
from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import InvalidValue


class Organization(CrmAggregate):
    """A tenant. Its id is the ``organization_id`` of every record and event it owns."""

    class OrganizationCreated(CrmAggregate.Created):
        name: str
        base_currency: str
        crm_enabled: bool
        deal_creator_roles: list[str]
        contributor_access: str

    class OrganizationSettingsChanged(CrmAggregate.Event):
        changes: dict[str, Any]

    @staticmethod
    def create_id(context: EventContext, **_: Any) -> Any:
        return context.organization_id

    @event(OrganizationCreated)
    def __init__(
        self,
        name: str,
        base_currency: str,
        crm_enabled: bool,
        deal_creator_roles: list[str],
        contributor_access: str,
        context: EventContext,
    ) -> None:
        self.name = name
        self.base_currency = base_currency
        self.crm_enabled = crm_enabled
        self.deal_creator_roles = deal_creator_roles
        self.contributor_access = contributor_access

    def change_settings(self, changes: dict[str, Any], context: EventContext) -> None:
        """Change name, base currency, CRM enabled, deal creator roles or contributor access."""
        self.check_in_sequence(context)
        if not changes:
            raise InvalidValue("body", "Name at least one setting to change.")
        roles = changes.get("deal_creator_roles")
        if roles is not None and Role.ADMIN.value not in roles:
            raise InvalidValue("deal_creator_roles", "ADMIN always may create deals.")
        self._settings_changed(changes=changes, context=context)

    @property
    def access(self) -> AccessSettings:
        return AccessSettings(
            crm_enabled=self.crm_enabled,
            deal_creator_roles=frozenset(Role(r) for r in self.deal_creator_roles),
            contributor_access=ContributorAccess(self.contributor_access),
        )

    @event(OrganizationSettingsChanged)
    def _settings_changed(self, changes: dict[str, Any], context: EventContext) -> None:
        self.name = changes.get("name", self.name)
        self.base_currency = changes.get("base_currency", self.base_currency)
        self.crm_enabled = changes.get("crm_enabled", self.crm_enabled)
        self.deal_creator_roles = changes.get("deal_creator_roles", self.deal_creator_roles)
        self.contributor_access = changes.get("contributor_access", self.contributor_access)
