"""``crm admin …``: organizations, members and tokens from the operator's shell."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID, uuid4

import typer
from rich.console import Console
from rich.table import Table

from aggregates.access import ContributorAccess, Role
from commands import models
from commands.administration import Administration
from commands.service import CommandMeta, CrmApplication
from crm.settings import DEFAULT_ORGANIZATION_ID, Settings

admin = typer.Typer(help="Manage organizations, members and API tokens.", no_args_is_help=True)
console = Console()
OPERATOR = "crm-admin-cli"

Organization = Annotated[
    UUID, typer.Option("--organization", "-o", help="Organization id (default: the first-run one)")
]


def administration() -> Administration:
    return Administration(CrmApplication(Settings().location()))


def meta(organization: UUID) -> CommandMeta:
    return CommandMeta(organization_id=organization, actor_id=OPERATOR)


@admin.command("create-organization")
def create_organization(
    name: str,
    admin_user: Annotated[str, typer.Option(help="User id of its first ADMIN")],
    base_currency: Annotated[str, typer.Option(help="ISO 4217 code")] = "EUR",
) -> None:
    """Create an organization and its first admin; print that admin's token once."""
    command = models.CreateOrganization(
        name=name,
        base_currency=base_currency,
        admin_user_id=admin_user,
    )
    organization_id = uuid4()
    issued = administration().create_organization(command, meta(organization_id))
    console.print(f"organization {organization_id} created; admin {admin_user}'s token:")
    console.print(issued.secret, soft_wrap=True)


@admin.command("add-user")
def add_user(user: str, role: Role, organization: Organization = DEFAULT_ORGANIZATION_ID) -> None:
    """Give a user a role in an organization."""
    administration().add_member(models.AddMember(user_id=user, role=role), meta(organization))
    console.print(f"{user} is {role.value} in {organization}")


@admin.command("set-role")
def set_role(user: str, role: Role, organization: Organization = DEFAULT_ORGANIZATION_ID) -> None:
    """Change a member's role."""
    administration().change_role(user, models.ChangeRole(role=role), meta(organization))
    console.print(f"{user} is now {role.value}")


@admin.command("remove-user")
def remove_user(user: str, organization: Organization = DEFAULT_ORGANIZATION_ID) -> None:
    """Remove a member; their tokens stop working."""
    administration().remove_member(user, meta(organization))
    console.print(f"{user} removed")


@admin.command("issue-token")
def issue_token(
    user: str,
    label: Annotated[str, typer.Option()] = "cli",
    organization: Organization = DEFAULT_ORGANIZATION_ID,
) -> None:
    """Issue an API token for a member and print it once."""
    issued = administration().issue_token(user, models.IssueToken(label=label), meta(organization))
    console.print(f"token {issued.accepted.record_id} for {user} (shown once):")
    console.print(issued.secret, soft_wrap=True)


@admin.command("revoke-token")
def revoke_token(token_id: UUID, organization: Organization = DEFAULT_ORGANIZATION_ID) -> None:
    """Revoke an API token at once."""
    administration().revoke_token(token_id, meta(organization))
    console.print(f"token {token_id} revoked")


@admin.command("settings")
def settings(
    organization: Organization = DEFAULT_ORGANIZATION_ID,
    crm_enabled: Annotated[bool | None, typer.Option("--crm-enabled/--crm-disabled")] = None,
    deal_creators: Annotated[
        list[Role] | None, typer.Option("--deal-creator", help="Repeat; ADMIN always included")
    ] = None,
    contributor_access: Annotated[ContributorAccess | None, typer.Option()] = None,
) -> None:
    """Change an organization's settings."""
    changes: dict[str, object] = {}
    if crm_enabled is not None:
        changes["crm_enabled"] = crm_enabled
    if deal_creators is not None:
        changes["deal_creator_roles"] = sorted({Role.ADMIN, *deal_creators})
    if contributor_access is not None:
        changes["contributor_access"] = contributor_access
    command = models.ChangeOrganizationSettings.model_validate(changes)
    administration().change_settings(command, meta(organization))
    table = Table("setting", "new value")
    for key, value in command.changes().items():
        table.add_row(key, str(value))
    console.print(table)
