"""Fixtures of the access suite: an app on SQLite (authorization does not depend on the store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm.settings import Settings


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "var", database_url=None)
