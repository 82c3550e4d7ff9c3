"""The API suite's client: real HTTP through the ASGI app, authenticated as the first admin."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from crm.app import create_app
from crm.settings import Settings


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The default organization's admin, with the projection worker running in-process."""
    with TestClient(create_app(settings)) as client:
        token = client.app.state.service.first_run_token  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client
