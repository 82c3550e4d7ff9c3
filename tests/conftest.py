"""Fixtures shared by the integration and API suites: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from crm.app import create_app
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


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """Real HTTP through the ASGI app, with the projection worker running in-process."""
    with TestClient(create_app(settings)) as client:
        yield client
