"""The scaled shape end to end: API without in-process projections, the relay, a Kafka worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crm.app import create_app
from crm.kafka_wiring import run_relay
from crm.settings import Settings
from tests.kafka.stream import kafka_workers


@pytest.fixture
def scaled_api(kafka_settings: Settings) -> Iterator[TestClient]:
    """The API as `crm serve` with CRM_PROJECTIONS_IN_PROCESS=false, the admin's token set.

    A read waits up to 30 s (not the default 5) for its position: in two CI runs kafka-python
    stalled its event loop for 6.4 s ("Task … ran for 6.35 s") in the middle of this test,
    once after a first record had already gone through. The claim here is that the read waits
    for its own write, not how long the stream takes under a loaded machine."""
    settings = kafka_settings.model_copy(
        update={"projections_in_process": False, "read_wait_seconds": 30.0}
    )
    with TestClient(create_app(settings)) as client:
        token = client.app.state.service.first_run_token  # type: ignore[attr-defined]
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@pytest.fixture
def relay_running(kafka_settings: Settings) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=run_relay, args=(kafka_settings, stop), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the relay did not stop"


def test_a_read_with_min_position_waits_for_the_read_models_fed_through_kafka(
    kafka_settings: Settings, scaled_api: TestClient, relay_running: None
) -> None:
    with kafka_workers(kafka_settings, "read-your-writes", count=1):
        for n in range(5):
            created = scaled_api.post("/clients", json={"name": f"Acme {n}"})
            assert created.status_code == 201, created.text
            position = created.json()["position"]

            response = scaled_api.get(
                f"/clients/{created.json()['id']}", params={"min_position": position}
            )

            assert response.status_code == 200, response.text
            assert response.json()["name"] == f"Acme {n}"
            assert int(response.headers["X-Read-Position"]) >= position
        health = scaled_api.get("/healthz").json()
        assert health["read_position"] == health["head_position"]
