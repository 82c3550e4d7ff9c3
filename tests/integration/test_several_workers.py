"""``crm serve --workers 2``: two web processes and one projection process on PostgreSQL.

Every write is read back through ``min_position`` over fresh connections (so both processes
answer), the projection process — the only writer of the read models — counts every deal
once, and a stop leaves no process behind. SQLite is refused with a sentence.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import CrmProcess, crm_environment, free_port, running, wait_until
from tests.integration.test_concurrent_stage_changes import first_run_credentials, healthy
from tests.stores import settings_for

pytestmark = pytest.mark.slow

DEALS = 60
HTTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Served:
    url: str
    headers: dict[str, str]
    process: CrmProcess


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    with settings_for("postgres", tmp_path / "var") as settings:
        env = crm_environment(settings, CRM_HOST="127.0.0.1", CRM_PORT=str(port))
        url = f"http://127.0.0.1:{port}"
        with running(["serve", "--workers", "2"], env, tmp_path / "serve.log") as process:
            wait_until(lambda: healthy(url), 60, f"{url}/healthz", process, pause=0.1)
            yield Served(url, first_run_credentials(settings.data_dir), process)
            assert "Traceback" not in process.output(10**7), process.output()


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def open_and_read_back(served: Served, n: int, client_id: str) -> tuple[int, int]:
    """Open a deal on one connection, read it on another at its position: (status, read
    position)."""
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=HTTP_TIMEOUT) as http:
        opened = http.post(
            "/deals",
            json={"name": f"Deal {n}", "client_id": client_id, "value": "100.00", "currency": "EUR",
                  "expected_close_date": "2030-01-31"},
        )  # fmt: skip
        assert opened.status_code == 201, opened.text
        position = opened.json()["position"]
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=HTTP_TIMEOUT) as http:
        read = http.get(opened.headers["Location"], params={"min_position": position})
        return read.status_code, int(read.headers["X-Read-Position"])


def test_given_two_workers_when_deals_are_opened_then_each_is_read_back_and_projected_once(
    served: Served,
) -> None:
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=HTTP_TIMEOUT) as http:
        client_id = http.post("/clients", json={"name": "Acme"}).json()["id"]
    workers = descendants(served.process.pid)
    assert len(workers) >= 3, f"expected 2 web workers and a projection process: {workers}"

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: open_and_read_back(served, n, client_id), range(DEALS)))

    assert all(status == 200 for status, _ in answers), answers
    with httpx.Client(base_url=served.url, headers=served.headers, timeout=HTTP_TIMEOUT) as http:
        head = http.get("/healthz").json()["head_position"]
        listed = http.get("/deals", params={"min_position": head, "limit": 200}).json()
    assert len(listed["items"]) == DEALS


def test_given_two_workers_when_stopped_then_no_process_is_left(tmp_path: Path) -> None:
    port = free_port()
    with settings_for("postgres", tmp_path / "var") as settings:
        env = crm_environment(settings, CRM_HOST="127.0.0.1", CRM_PORT=str(port))
        url = f"http://127.0.0.1:{port}"
        process = CrmProcess(["serve", "--workers", "2"], env, tmp_path / "serve.log")
        try:
            wait_until(lambda: healthy(url), 60, f"{url}/healthz", process, pause=0.1)
            children = descendants(process.pid)
            assert children
        finally:
            code = process.stop()

    assert code == 0, process.output()
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 10,
               "the workers to exit")  # fmt: skip


def test_given_sqlite_when_serving_with_two_workers_then_it_is_refused_with_a_sentence(
    tmp_path: Path,
) -> None:
    with settings_for("sqlite", tmp_path / "var") as settings:
        env = crm_environment(settings, CRM_PORT=str(free_port()))
        process = CrmProcess(["serve", "--workers", "2"], env, tmp_path / "serve.log")
        code = process.popen.wait(timeout=30)

    assert code == 2
    assert "several workers need PostgreSQL" in process.output()
    assert not os.path.exists(tmp_path / "var" / "events.sqlite")
