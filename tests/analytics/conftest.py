"""The histories the analytics tests read: told once per store for the whole folder."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from crm.app import create_app
from crm.settings import Settings
from tests.analytics.history import Told
from tests.analytics.suite import (
    GeneratedHistory,
    crowded,
    import_probes,
    planned,
    signed_in,
    told,
)
from tests.stores import STORE_KINDS


@pytest.fixture(scope="package", params=STORE_KINDS)
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GeneratedHistory]:
    """The seeded history of several hundred deals on a fresh store of each kind."""
    data_dir = tmp_path_factory.mktemp(f"analytics-{request.param}")
    with told(request.param, data_dir, list(planned()), import_probes()) as generated:
        yield generated


@pytest.fixture(scope="package", params=STORE_KINDS)
def crowded_history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GeneratedHistory]:
    """A smaller history where a third of the deals' steps share the previous step's instant."""
    data_dir = tmp_path_factory.mktemp(f"crowded-{request.param}")
    with told(request.param, data_dir, list(crowded()), []) as generated:
        yield generated


@pytest.fixture
def empty_store(settings: Settings) -> Iterator[GeneratedHistory]:
    """A fresh store of each kind (the ``settings`` fixture of tests/conftest.py), no history."""
    with TestClient(create_app(settings)) as api:
        signed_in(api)
        yield GeneratedHistory(api, [], Told())
