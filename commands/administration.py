"""Administration commands: organizations, their settings, members and API tokens.

They run through the same load → decide → save cycle as the CRM's records, so who granted
what, and when, is in the event log like every other change.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aggregates.access import ContributorAccess, Role
from aggregates.api_token import ApiToken, new_secret, secret_hash
from aggregates.errors import RuleBroken
from aggregates.membership import Membership
from aggregates.organization import Organization
from aggregates.pipeline import Pipeline
from commands import models
from commands.errors import RecordNotFound
from commands.service import Accepted, CommandMeta, CrmApplication, Decision


@dataclass(frozen=True)
class IssuedToken:
    accepted: Accepted
    secret: str


class Administration:
    """Organization settings, members and tokens, decided and saved by the CRM application."""

    def __init__(self, app: CrmApplication) -> None:
        self.app = app

    def create_organization(self, cmd: models.CreateOrganization, meta: CommandMeta) -> IssuedToken:
        """A new organization with its default pipeline, its first admin and that admin's
        first token."""
        secret = new_secret()

        def decide() -> Decision:
            if self.app.find(Organization, meta.organization_id) is not None:
                raise RuleBroken(f"Organization {meta.organization_id} already exists.")
            context = meta.context()
            organization = Organization(
                name=cmd.name,
                base_currency=cmd.base_currency,
                crm_enabled=True,
                deal_creator_roles=[Role.ADMIN.value],
                contributor_access=ContributorAccess.READ.value,
                context=context,
            )
            admin = Membership(user_id=cmd.admin_user_id, role=Role.ADMIN.value, context=context)
            token = ApiToken(
                user_id=cmd.admin_user_id,
                label="first admin token",
                token_hash=secret_hash(secret),
                expires_at=None,
                member_epoch=admin.epoch,
                context=context,
            )
            pipeline = Pipeline.default(context)
            return Decision(organization, [organization, pipeline, admin, token], created=True)

        return IssuedToken(self.app.execute(meta, decide), secret)

    def change_settings(
        self, cmd: models.ChangeOrganizationSettings, meta: CommandMeta
    ) -> Accepted:
        return self.app.on_record(
            Organization,
            meta.organization_id,
            meta,
            lambda organization: organization.change_settings(cmd.changes(), meta.context()),
        )

    def add_member(self, cmd: models.AddMember, meta: CommandMeta) -> Accepted:
        def decide() -> Decision:
            if self.app.find(Organization, meta.organization_id) is None:
                raise RecordNotFound("organization", meta.organization_id)
            member = self.app.find(Membership, Membership.id_for(meta.organization_id, cmd.user_id))
            if member is None:
                member = Membership(
                    user_id=cmd.user_id, role=cmd.role.value, context=meta.context()
                )
                return Decision(member, [member], created=True)
            member.readd(cmd.role, meta.context())
            return Decision(member, [member], created=True)  # a membership again: 201

        return self.app.execute(meta, decide)

    def change_role(self, user_id: str, cmd: models.ChangeRole, meta: CommandMeta) -> Accepted:
        self._check_not_self(user_id, meta, "change their own role")
        return self.app.on_record(
            Membership,
            self.member_id(user_id, meta),
            meta,
            lambda member: member.change_role(cmd.role, meta.context()),
        )

    def remove_member(self, user_id: str, meta: CommandMeta) -> Accepted:
        self._check_not_self(user_id, meta, "remove themself")
        return self.app.on_record(
            Membership,
            self.member_id(user_id, meta),
            meta,
            lambda member: member.remove(meta.context()),
        )

    def issue_token(self, user_id: str, cmd: models.IssueToken, meta: CommandMeta) -> IssuedToken:
        secret = new_secret()

        def decide() -> Decision:
            member = self.app.find(Membership, self.member_id(user_id, meta))
            if member is None or not member.is_member:
                raise RecordNotFound("member", self.member_id(user_id, meta))
            token = ApiToken(
                user_id=user_id,
                label=cmd.label,
                token_hash=secret_hash(secret),
                expires_at=cmd.expires_at,
                member_epoch=member.epoch,
                context=meta.context(),
            )
            return Decision(token, [token], created=True)

        return IssuedToken(self.app.execute(meta, decide), secret)

    def revoke_token(self, token_id: UUID, meta: CommandMeta) -> Accepted:
        return self.app.on_record(
            ApiToken, token_id, meta, lambda token: token.revoke(meta.context())
        )

    @staticmethod
    def member_id(user_id: str, meta: CommandMeta) -> UUID:
        return Membership.id_for(meta.organization_id, user_id)

    @staticmethod
    def _check_not_self(user_id: str, meta: CommandMeta, doing: str) -> None:
        if user_id == meta.actor_id:
            raise RuleBroken(f"An admin cannot {doing}; ask another admin.")
