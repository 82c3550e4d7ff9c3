"""Rebuilding the read models without downtime: reads keep answering, from complete data."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from crm.app import create_app
from crm.settings import Settings
from projections.generations import Generations, State

CLIENTS = 300
pytestmark = pytest.mark.slow


def crm_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["CRM_DATABASE_URL"] = settings.database_url
    return env


def test_given_a_live_service_when_crm_replay_switches_generations_then_every_read_is_complete(
    settings: Settings,
) -> None:
    with TestClient(create_app(settings)) as api:
        api.headers["Authorization"] = f"Bearer {api.app.state.service.first_run_token}"  # type: ignore[attr-defined]
        for number in range(CLIENTS):
            last = api.post("/clients", json={"name": f"Client {number:04d}"}).json()
        done = threading.Event()
        failures: list[str] = []
        reads = 0

        def keep_reading() -> None:
            nonlocal reads
            while not done.is_set():
                response = api.get(
                    "/clients", params={"limit": 200, "min_position": last["position"]}
                )
                page = response.json() if response.status_code == 200 else {}
                if response.status_code != 200 or len(page.get("items", [])) != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                reads += 1

        reader = threading.Thread(target=keep_reading)
        reader.start()
        try:
            replay = subprocess.run(
                [str(Path(sys.executable).with_name("crm")), "replay"],
                env=crm_env(settings), capture_output=True, text=True, timeout=300,
            )  # fmt: skip
        finally:
            done.set()
            reader.join(timeout=30)

        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert "generation 2 is live" in replay.stdout
        assert reads > 0
        assert failures == []
        live = Generations(settings.location()).live()
        assert (live.number, live.state) == (2, State.LIVE)
        after = api.post("/clients", json={"name": "After the switch"}).json()
        found = api.get(
            "/clients", params={"name": "After", "min_position": after["position"]}
        ).json()["items"]
        assert [client["name"] for client in found] == ["After the switch"]
