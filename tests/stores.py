"""Throwaway stores for tests: a SQLite data folder, or a fresh PostgreSQL database.

The PostgreSQL cluster is the one ``scripts/test.sh`` starts (``CRM_TEST_POSTGRES_URL``); each
test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from crm.settings import Settings

POSTGRES_URL_VARIABLE = "CRM_TEST_POSTGRES_URL"
STORE_KINDS = ("sqlite", "postgres")


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_URL_VARIABLE} is not set: run the suite with scripts/test.sh")
        pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set (scripts/test.sh starts PostgreSQL)")
    return url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the test cluster; yields its URL and drops it afterwards."""
    admin_url = postgres_url()
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def settings_for(kind: str, data_dir: Path, **overrides: object) -> Iterator[Settings]:
    """Settings pointing at a fresh store of the given kind."""
    if kind == "sqlite":
        yield Settings(data_dir=data_dir, database_url=None, **overrides)  # type: ignore[arg-type]
        return
    with fresh_postgres_database() as url:
        yield Settings(data_dir=data_dir, database_url=url, pool_size=4, **overrides)  # type: ignore[arg-type]
