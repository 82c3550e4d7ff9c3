"""The benchmark's caller: the default organization's admin, and the headers the API wants.

Before authentication lands the API takes anyone as that admin and no header is needed. Once
``commands.administration`` exists, the organization is created in-process (with its first
admin and that admin's API token) and every request carries ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import importlib.util

from commands import models
from commands.service import CommandMeta, CrmApplication
from crm.identity import DEFAULT_ADMIN_ID, DEFAULT_ORGANIZATION_ID


def authentication_required() -> bool:
    return (
        hasattr(models, "CreateOrganization")
        and importlib.util.find_spec("commands.administration") is not None
    )


def prepare_caller(app: CrmApplication) -> dict[str, str]:
    """Create what the caller needs in this store; return its HTTP headers."""
    if not authentication_required():
        return {}
    from commands.administration import Administration

    create = getattr(models, "CreateOrganization")  # noqa: B009 - absent before auth lands
    issued = Administration(app).create_organization(
        create(name="Bench Ltd", admin_user_id=DEFAULT_ADMIN_ID),
        CommandMeta(organization_id=DEFAULT_ORGANIZATION_ID, actor_id=DEFAULT_ADMIN_ID),
    )
    return {"Authorization": f"Bearer {issued.secret}"}
