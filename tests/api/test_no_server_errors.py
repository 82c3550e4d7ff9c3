"""No input yields a server error: every operation of the OpenAPI schema, fuzzed by schemathesis.

For each operation, schemathesis' coverage cases (boundary values, nulls, missing and
unexpected fields, wrong types — valid and invalid) and then a bounded number of Hypothesis
examples are generated from ``app.openapi()`` and sent, authenticated, through the same ASGI
app and HTTP client as the rest of the API suite, on SQLite only. Each operation is its own
pytest item: schemathesis' own ``parametrize`` gives every item the same node id under
pytest 9. Reads never wait for a ``min_position`` here (``read_wait_seconds=0``): the fuzzer
asks for far-away positions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crm.app import create_app
from crm.settings import Settings
from tests.stores import settings_for

FUZZED_EXAMPLES_PER_OPERATION = 10
CASES_PER_SCENARIO = 3
CONFORMANCE_CASES_PER_OPERATION = 10
PRECONDITIONS = {"if-match", "idempotency-key"}
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
SCHEMA = schemathesis.openapi.from_dict(create_app().openapi())
CANARY_READS = ("/healthz", "/clients", "/deals", "/analytics/pipeline-value")
KNOWN_SERVER_ERRORS: dict[str, str] = {}


def operations() -> list[Any]:
    """One pytest parameter per operation; the known 5xx ones marked xfail."""
    params = []
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        known = KNOWN_SERVER_ERRORS.get(operation.label)
        marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
        params.append(pytest.param(operation, id=operation.label, marks=marks))
    return params


@pytest.fixture
def fuzzer(api: TestClient) -> Iterator[TestClient]:
    """The suite's client, answering a server error as the 500 it sends instead of raising.

    Not entered as a context manager: the app's lifespan is already running under ``api``.
    """
    client = TestClient(api.app, raise_server_exceptions=False, headers=dict(api.headers))
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """SQLite only, and reads answer at once instead of waiting for the position asked."""
    with settings_for("sqlite", tmp_path / "var", read_wait_seconds=0) as configured:
        yield configured


def send(client: TestClient, case: schemathesis.Case) -> Any:
    """The generated request, sent with the client's credentials."""
    request = case.as_transport_kwargs(base_url=str(client.base_url))
    generated = request.get("headers", {}).items()
    headers = {k: v for k, v in generated if k.lower() != "authorization"}
    headers["Authorization"] = client.headers["Authorization"]
    body = {"json": request["json"]} if "json" in request else {}
    if "data" in request:
        body = {"content": request["data"]}
    return client.request(
        request["method"],
        request["url"],
        params=request.get("params"),
        # Header values travel as latin-1 octets, as a real server would receive them.
        headers={name: str(value).encode("latin-1") for name, value in headers.items()},
        **body,
    )


def server_error(client: TestClient, case: schemathesis.Case) -> str | None:
    """What went wrong, with a curl line to reproduce it; None when the answer is not 5xx."""
    response = send(client, case)
    if response.status_code < 500:
        return None
    return f"{response.status_code} {response.text[:300]}\n{case.as_curl_command()}"


def coverage_cases(operation: schemathesis.APIOperation) -> list[schemathesis.Case]:
    """Schemathesis' coverage cases for the operation, with two adjustments.

    At most a few cases per scenario: a field with a large enum (currency codes) would
    otherwise take one request per member. And without the empty If-Match / Idempotency-Key
    they nearly all carry, which would stop each at the header check (400) before its body
    is read.
    """
    generation = SCHEMA.config.generation_for(operation=operation)
    scenarios: Counter[str] = Counter()
    kept = []
    for case in SCHEMA.iter_coverage_cases(
        operation, generation_modes=MODES, generation_config=generation
    ):
        scenarios[scenario := str(getattr(case.meta.phase.data, "description", id(case)))] += 1
        if scenarios[scenario] <= CASES_PER_SCENARIO:
            headers = {
                name: value
                for name, value in case.headers.items()
                if value != "" or name.lower() not in PRECONDITIONS
            }
            kept.append(case.derive(headers=CaseInsensitiveDict(headers)))
    return kept


@pytest.mark.parametrize("operation", operations())
def test_no_generated_request_yields_a_server_error_nor_breaks_the_service(
    operation: schemathesis.APIOperation, fuzzer: TestClient
) -> None:
    errors = [error for case in coverage_cases(operation) if (error := server_error(fuzzer, case))]
    assert not errors, f"{len(errors)} server errors; the first:\n{errors[0]}"

    @given(case=st.one_of(*(operation.as_strategy(mode) for mode in MODES)))
    @hypothesis_settings(
        max_examples=FUZZED_EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def answers_without_a_server_error(case: schemathesis.Case) -> None:
        assert (error := server_error(fuzzer, case)) is None, error

    answers_without_a_server_error()
    still_served = {path: fuzzer.get(path).status_code for path in CANARY_READS}
    assert all(status < 500 for status in still_served.values()), still_served


def test_answers_conform_to_the_documented_status_codes_and_content_types(
    fuzzer: TestClient,
) -> None:
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    failures: Counter[str] = Counter()
    for result in SCHEMA.get_all_operations():
        operation = result.ok()
        if operation.label in KNOWN_SERVER_ERRORS:
            continue
        for case in coverage_cases(operation)[:CONFORMANCE_CASES_PER_OPERATION]:
            try:
                case.validate_response(send(fuzzer, case), checks=checks)
            except FailureGroup as group:
                failures.update(
                    f"{operation.label}: {failure.title}" for failure in group.exceptions
                )

    assert not failures, "\n".join(f"{n} × {what}" for what, n in failures.most_common())
