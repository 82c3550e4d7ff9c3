"""Fixtures shared by the integration and API suites: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.settings import Settings
from tests.stores import STORE_KINDS, settings_for


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def settings(store_kind: str, tmp_path: Path) -> Iterator[Settings]:
    with settings_for(store_kind, tmp_path / "var") as configured:
        yield configured
