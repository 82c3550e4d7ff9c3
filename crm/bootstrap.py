"""First run: an empty store gets a default organization and its admin, whose token is
printed once and written to a file only its owner can read, so the service is usable at once."""

from __future__ import annotations

import os
from pathlib import Path

from aggregates.organization import Organization
from commands import models
from commands.administration import Administration
from commands.service import CommandMeta, CrmApplication
from crm.identity import DEFAULT_ADMIN_ID, DEFAULT_ORGANIZATION_ID

ADMIN_TOKEN_FILE = "admin-token"


def first_run(app: CrmApplication, data_dir: Path) -> str | None:
    """Create the default organization if it is missing; return its admin token if created."""
    if app.find(Organization, DEFAULT_ORGANIZATION_ID) is not None:
        return None
    issued = Administration(app).create_organization(
        models.CreateOrganization(name="Default", admin_user_id=DEFAULT_ADMIN_ID),
        CommandMeta(organization_id=DEFAULT_ORGANIZATION_ID, actor_id="crm-first-run"),
    )
    write_secret(data_dir / ADMIN_TOKEN_FILE, issued.secret)
    return issued.secret


def write_secret(path: Path, secret: str) -> None:
    """Write a secret readable and writable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    path.chmod(0o600)
