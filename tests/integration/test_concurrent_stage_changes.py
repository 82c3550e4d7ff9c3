"""Twenty clients changing one deal's stage at once, over real HTTP to a live ``crm serve``.

With ``If-Match`` exactly one change per version is accepted and the others are told 412; a
client that re-reads the ETag and retries gets through eventually; without ``If-Match`` the
service retries conflicts itself. Never a 5xx, and every 200 is exactly one ``StageChanged``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from aggregates.pipeline import DEFAULT_PIPELINE
from crm.bootstrap import ADMIN_TOKEN_FILE
from tests.integration.processes import crm_environment, free_port, running, wait_until
from tests.stores import STORE_KINDS, settings_for

pytestmark = pytest.mark.slow

CLIENTS = 20
RETRY_ATTEMPTS = 200
HTTP_TIMEOUT = 30.0
OPEN_STAGES = DEFAULT_PIPELINE.open_stage_ids()  # lead, qualified, proposal, negotiation
PROBLEM_JSON = "application/problem+json"
T = TypeVar("T")


@dataclass(frozen=True)
class LiveServer:
    url: str
    headers: dict[str, str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=HTTP_TIMEOUT)


@pytest.fixture(scope="module", params=STORE_KINDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live ``crm serve`` on a loopback port, with its projection worker in-process."""
    folder = tmp_path_factory.mktemp(f"serve-{request.param}")
    port = free_port()
    with settings_for(request.param, folder / "var") as settings:
        env = crm_environment(settings, CRM_HOST="127.0.0.1", CRM_PORT=str(port))
        url = f"http://127.0.0.1:{port}"
        with running(["serve"], env, folder / "crm-serve.log") as process:
            wait_until(lambda: healthy(url), 30, f"{url}/healthz", process, pause=0.1)
            yield LiveServer(url, first_run_credentials(settings.data_dir))
            assert "Traceback" not in process.output(10**7), process.output()


def first_run_credentials(data_dir: Path) -> dict[str, str]:
    """The first-run admin token the service leaves in its data folder."""
    token = (data_dir / ADMIN_TOKEN_FILE).read_text().strip()
    return {"Authorization": f"Bearer {token}"}


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture
def deal_id(http: httpx.Client) -> str:
    """A deal just opened: version 1, stage lead."""
    client = http.post("/clients", json={"name": "Acme Ltd"})
    assert client.status_code == 201, client.text
    deal = http.post(
        "/deals",
        json={
            "name": "Rollout",
            "client_id": client.json()["id"],
            "value": "1000.00",
            "currency": "EUR",
            "expected_close_date": "2027-03-31",
        },
    )
    assert deal.status_code == 201, deal.text
    assert deal.headers["ETag"] == '"1"'
    opened: str = deal.json()["id"]
    return opened


def all_at_once(server: LiveServer, work: Callable[[httpx.Client, int], T]) -> list[T]:
    """Run ``work(client, n)`` for n in 0..19 on 20 threads, released together by a barrier."""
    barrier = threading.Barrier(CLIENTS, timeout=30)

    def one(n: int) -> T:
        with server.client() as client:
            client.get("/healthz")  # connect before the barrier, so the requests race
            barrier.wait()
            return work(client, n)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS), timeout=120))


def history(http: httpx.Client, deal_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/deals/{deal_id}/history")
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def assert_an_unbroken_chain_of_stage_changes(entries: list[dict[str, Any]]) -> None:
    """Versions 1..N without gaps; each StageChanged starts where the one before ended."""
    assert [e["version"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[0]["type"] == "DealOpened"
    assert {e["type"] for e in entries[1:]} <= {"StageChanged"}
    stage = entries[0]["changes"]["stage"]
    for entry in entries[1:]:
        assert entry["changes"]["from_stage"] == stage, entry
        assert entry["changes"]["to_stage"] != stage, entry
        stage = entry["changes"]["to_stage"]


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["status"] == status


@dataclass(frozen=True)
class Attempt:
    target: str
    response: httpx.Response


def unexpected(attempts: list[Attempt], expected: set[int]) -> list[tuple[int, str]]:
    """The answers outside ``expected``, with their bodies, for a failure message."""
    return [
        (a.response.status_code, a.response.text[:300])
        for a in attempts
        if a.response.status_code not in expected
    ]


def test_given_version_1_when_20_clients_change_stage_if_match_1_then_one_wins_19_get_412(
    server: LiveServer, http: httpx.Client, deal_id: str
) -> None:
    targets = [OPEN_STAGES[1 + n % 3] for n in range(CLIENTS)]

    def change(client: httpx.Client, n: int) -> Attempt:
        response = client.post(
            f"/deals/{deal_id}/stage", json={"stage": targets[n]}, headers={"If-Match": '"1"'}
        )
        return Attempt(targets[n], response)

    attempts = all_at_once(server, change)

    statuses = sorted(a.response.status_code for a in attempts)
    assert statuses == [200] + [412] * (CLIENTS - 1), unexpected(attempts, {200, 412})
    (winner,) = [a for a in attempts if a.response.status_code == 200]
    assert winner.response.json()["version"] == 2
    assert winner.response.headers["ETag"] == '"2"'
    for attempt in attempts:
        if attempt is not winner:
            assert_problem(attempt.response, 412)
    entries = history(http, deal_id)
    assert [e["type"] for e in entries] == ["DealOpened", "StageChanged"]
    assert entries[1]["changes"]["to_stage"] == winner.target


def test_given_clients_rereading_the_etag_when_they_retry_then_all_20_are_recorded_in_order(
    server: LiveServer, http: httpx.Client, deal_id: str
) -> None:
    first = http.post(
        f"/deals/{deal_id}/stage", json={"stage": "qualified"}, headers={"If-Match": '"1"'}
    )
    assert first.status_code == 200, first.text
    moved_at = first.json()["position"]

    def change_until_accepted(client: httpx.Client, n: int) -> tuple[Attempt, list[int]]:
        rng = random.Random(n)
        refused: list[int] = []
        for _ in range(RETRY_ATTEMPTS):
            read = client.get(f"/deals/{deal_id}", params={"min_position": moved_at})
            assert read.status_code == 200, read.text
            # alternate between two stages so the change is never to the current stage
            target = "proposal" if read.json()["stage"] != "proposal" else "negotiation"
            response = client.post(
                f"/deals/{deal_id}/stage",
                json={"stage": target},
                headers={"If-Match": read.headers["ETag"]},
            )
            if response.status_code == 200:
                return Attempt(target, response), refused
            assert_problem(response, 412)
            refused.append(response.status_code)
            time.sleep(rng.uniform(0, 0.01))
        raise AssertionError(f"client {n} was refused {RETRY_ATTEMPTS} times: {refused[-5:]}")

    results = all_at_once(server, change_until_accepted)

    accepted = {a.response.json()["version"]: a.target for a, _ in results}
    assert sorted(accepted) == list(range(3, 3 + CLIENTS)), "two 200s share a version"
    entries = history(http, deal_id)
    assert len(entries) == 2 + CLIENTS
    assert_an_unbroken_chain_of_stage_changes(entries)
    for version, target in accepted.items():
        assert entries[version - 1]["changes"]["to_stage"] == target
    print(f"\nretries before acceptance: {sorted(len(r) for _, r in results)}")


def test_given_no_if_match_when_20_clients_change_stage_then_no_5xx_and_each_200_is_one_event(
    server: LiveServer, http: httpx.Client, deal_id: str
) -> None:
    targets = [OPEN_STAGES[1 + n % 3] for n in range(CLIENTS)]

    def change(client: httpx.Client, n: int) -> Attempt:
        response = client.post(f"/deals/{deal_id}/stage", json={"stage": targets[n]})
        return Attempt(targets[n], response)

    attempts = all_at_once(server, change)

    statuses = [a.response.status_code for a in attempts]
    assert set(statuses) <= {200, 409}, unexpected(attempts, {200, 409})
    for attempt in attempts:
        if attempt.response.status_code == 409:
            assert_problem(attempt.response, 409)
            detail = attempt.response.json()["detail"]
            assert (
                f"is already in stage {attempt.target!r}" in detail  # re-decided: nothing to do
                or "kept changing under this command" in detail  # out of internal retries
            ), detail
    accepted = {
        a.response.json()["version"]: a.target for a in attempts if a.response.status_code == 200
    }
    assert len(accepted) == statuses.count(200) >= 1, "two 200s share a version"
    entries = history(http, deal_id)
    assert len(entries) - 1 == statuses.count(200), (statuses, [e["type"] for e in entries])
    assert_an_unbroken_chain_of_stage_changes(entries)
    for version, target in accepted.items():
        assert entries[version - 1]["changes"]["to_stage"] == target
    gave_up = sum("kept changing" in a.response.text for a in attempts)
    print(f"\nwithout If-Match: {sorted(statuses)}; out of internal retries: {gave_up}")
