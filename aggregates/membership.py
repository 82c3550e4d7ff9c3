"""Membership: a user's one role in one organization, granted and changed by an admin."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event

from aggregates.access import Role
from aggregates.base import CrmAggregate
from aggregates.context import EventContext
from aggregates.errors import RuleBroken


class Membership(CrmAggregate):
    """Who a user is in an organization. Its id derives from (organization, user)."""

    class MemberAdded(CrmAggregate.Created):
        user_id: str
        role: str

    class RoleChanged(CrmAggregate.Event):
        from_role: str
        to_role: str

    class MemberRemoved(CrmAggregate.Event):
        pass

    class MemberReadded(CrmAggregate.Event):
        role: str

    @staticmethod
    def create_id(user_id: str, context: EventContext, **_: Any) -> UUID:
        return Membership.id_for(context.organization_id, user_id)

    @staticmethod
    def id_for(organization_id: UUID, user_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"monton-crm:member:{organization_id}:{user_id}")

    @event(MemberAdded)
    def __init__(self, user_id: str, role: str, context: EventContext) -> None:
        self.user_id = user_id
        self.role = Role(role)
        self.epoch = 1

    @property
    def is_member(self) -> bool:
        return not self.archived

    def holds(self, token_epoch: int) -> bool:
        """Whether a token issued in membership ``token_epoch`` still speaks for the user:
        removing a member ends its epoch, so re-adding them does not revive old tokens."""
        return self.is_member and token_epoch == self.epoch

    def change_role(self, role: Role, context: EventContext) -> None:
        self._check_member(context)
        if role is self.role:
            raise RuleBroken(f"User {self.user_id} already has role {role.value}.")
        self._role_changed(from_role=self.role.value, to_role=role.value, context=context)

    def remove(self, context: EventContext) -> None:
        self._check_member(context)
        self._removed(context=context)

    def readd(self, role: Role, context: EventContext) -> None:
        self.check_in_sequence(context)
        if self.is_member:
            raise RuleBroken(f"User {self.user_id} is already a member.")
        self._readded(role=role.value, context=context)

    def _check_member(self, context: EventContext) -> None:
        self.check_in_sequence(context)
        if not self.is_member:
            raise RuleBroken(f"User {self.user_id} is not a member of this organization.")

    @event(RoleChanged)
    def _role_changed(self, from_role: str, to_role: str, context: EventContext) -> None:
        self.role = Role(to_role)

    @event(MemberRemoved)
    def _removed(self, context: EventContext) -> None:
        self.archived = True

    @event(MemberReadded)
    def _readded(self, role: str, context: EventContext) -> None:
        self.role = Role(role)
        self.archived = False
        self.epoch += 1  # tokens issued before the removal stay dead
