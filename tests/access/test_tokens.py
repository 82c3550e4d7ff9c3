"""Authentication: API tokens and JWTs. Every bad credential is a 401 problem (never a 5xx), and
a token's secret is shown once and stored nowhere, only its sha256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aggregates.access import Role
from aggregates.api_token import secret_hash
from crm.bootstrap import ADMIN_TOKEN_FILE
from crm.identity import DEFAULT_ORGANIZATION_ID
from crm.settings import Settings
from tests.access.support import (
    PROBLEM_JSON,
    Headers,
    TestClient,
    accepted,
    add_member,
    bearer,
    first_admin,
    first_run_token,
    head_position,
    issue_token,
    member_with_token,
    running,
)

ISSUER = "https://identity.monton.example"
HMAC_KEY = "a-shared-hmac-key-of-more-than-32-bytes"
MISSING = object()


def unauthenticated(response: httpx.Response) -> str:
    """The detail of a 401 problem that asks for a bearer token."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["www-authenticate"].startswith("Bearer")
    detail: str = response.json()["detail"]
    return detail


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the token tests: each makes the members and tokens it changes."""
    data_dir = tmp_path_factory.mktemp("tokens") / "var"
    with running(Settings(data_dir=data_dir, database_url=None)) as started:
        yield started


# --- API tokens --------------------------------------------------------------------------------


def test_a_request_without_an_authorization_header_answers_401(client: TestClient) -> None:
    unauthenticated(client.get("/clients"))


@pytest.mark.parametrize(
    "header",
    [
        "Basic x",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer",
        "Bearer ",
        "garbage",
        "Token {token}",
        "Bearer {token} trailing",
        "Bearer {token}x",
        "Bearer crm_",
        "Bearer crm_" + "A" * 4000,
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30.",
    ],
)
def test_a_malformed_authorization_header_answers_401(client: TestClient, header: str) -> None:
    value = header.format(token=first_run_token(client))

    unauthenticated(client.get("/clients", headers={"Authorization": value}))


def test_a_header_that_is_not_utf8_answers_401(client: TestClient) -> None:
    raw = {"Authorization": b"Bearer crm_\xff\xfe\x00"}  # type: ignore[dict-item]

    unauthenticated(client.get("/clients", headers=raw))


def test_an_unknown_api_token_answers_401_without_echoing_it(client: TestClient) -> None:
    unknown = "crm_" + uuid4().hex

    response = client.get("/clients", headers=bearer(unknown))

    unauthenticated(response)
    assert unknown not in response.text


def test_a_revoked_token_answers_401_from_the_moment_it_is_revoked(client: TestClient) -> None:
    admin = first_admin(client)
    token_id, secret = issue_token(client, admin, "admin", label="to revoke")
    assert client.get("/users", headers=bearer(secret)).status_code == 200

    accepted(client, "DELETE", f"/tokens/{token_id}", admin, None)

    unauthenticated(client.get("/users", headers=bearer(secret)))


def test_a_token_past_its_expiry_answers_401(client: TestClient) -> None:
    expiry = datetime.now(UTC) + timedelta(seconds=1)
    _, secret = issue_token(client, first_admin(client), "admin", expires_at=expiry.isoformat())

    time.sleep(max((expiry - datetime.now(UTC)).total_seconds(), 0) + 0.1)

    unauthenticated(client.get("/users", headers=bearer(secret)))


def test_a_token_cannot_be_issued_already_expired(client: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()

    refused = client.post(
        "/users/admin/tokens", json={"expires_at": past}, headers=first_admin(client)
    )

    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "expires_at"


def test_a_token_before_its_expiry_is_accepted(client: TestClient) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, secret = issue_token(client, first_admin(client), "admin", expires_at=future)

    assert client.get("/users", headers=bearer(secret)).status_code == 200


def test_an_expiry_without_a_time_zone_is_refused_and_no_token_is_issued(
    client: TestClient,
) -> None:
    before = head_position(client)

    response = client.post(
        "/users/admin/tokens",
        json={"expires_at": "2030-01-01T00:00:00"},
        headers=first_admin(client),
    )

    assert response.status_code == 422, response.text
    assert head_position(client) == before


def test_a_removed_members_token_answers_401(client: TestClient) -> None:
    admin = first_admin(client)
    manager = member_with_token(client, admin, "leaver", Role.MANAGER)
    assert client.get("/deals", headers=manager).status_code == 200

    accepted(client, "DELETE", "/users/leaver", admin, None)

    unauthenticated(client.get("/deals", headers=manager))


def test_a_removed_members_old_token_stays_dead_when_the_user_is_added_again(
    client: TestClient,
) -> None:
    admin = first_admin(client)
    old = member_with_token(client, admin, "returner", Role.MANAGER)
    accepted(client, "DELETE", "/users/returner", admin, None)

    add_member(client, admin, "returner", Role.GUEST)

    unauthenticated(client.get("/deals", headers=old))


def test_a_token_acts_with_its_members_current_role(client: TestClient) -> None:
    admin = first_admin(client)
    member = member_with_token(client, admin, "demoted", Role.MANAGER)
    assert client.get("/deals", headers=member).status_code == 200

    accepted(client, "PUT", "/users/demoted/role", admin, {"role": "GUEST"})

    response = client.get("/deals", headers=member)
    assert response.status_code == 403
    assert "GUEST" in response.json()["detail"]


def test_a_command_with_no_credentials_and_a_malformed_json_body_answers_401(
    client: TestClient,
) -> None:
    response = client.post(
        "/clients", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    unauthenticated(response)


# --- JWTs --------------------------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for the default organization's admin; MISSING drops a claim."""
    now = datetime.now(UTC)
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "admin",
        "org": str(DEFAULT_ORGANIZATION_ID),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    merged = {**base, **changes}
    return {name: value for name, value in merged.items() if value is not MISSING}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A JWT built by hand, for what PyJWT refuses to make (alg none, a PEM as HMAC key)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b""
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def jwt_settings(tmp: pytest.TempPathFactory, **overrides: Any) -> Settings:
    data_dir = tmp.mktemp("jwt") / "var"
    return Settings(data_dir=data_dir, database_url=None, jwt_issuer=ISSUER, **overrides)


@pytest.fixture(scope="module")
def hs256(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = jwt_settings(tmp_path_factory, jwt_key=HMAC_KEY, jwt_algorithm="HS256")
    with running(settings) as started:
        yield started


def hs256_jwt(**changes: Any) -> Headers:
    return bearer(jwt.encode(claims(**changes), HMAC_KEY, algorithm="HS256"))


def test_a_valid_jwt_without_a_role_claim_acts_with_the_users_membership(
    hs256: TestClient,
) -> None:
    member_with_token(hs256, first_admin(hs256), "jwt-manager", Role.MANAGER)

    admin = hs256.get("/users", headers=hs256_jwt())
    manager_deals = hs256.get("/deals", headers=hs256_jwt(sub="jwt-manager"))
    manager_users = hs256.get("/users", headers=hs256_jwt(sub="jwt-manager"))

    assert (admin.status_code, manager_deals.status_code) == (200, 200)
    assert manager_users.status_code == 403
    assert "MANAGER" in manager_users.json()["detail"]


def test_a_valid_jwt_acts_with_the_role_its_role_claim_names(hs256: TestClient) -> None:
    guest = hs256.get("/clients", headers=hs256_jwt(sub="service", role="guest"))
    manager = hs256.get("/deals", headers=hs256_jwt(sub="service", role="MANAGER"))

    assert guest.status_code == 403
    assert "GUEST" in guest.json()["detail"]
    assert manager.status_code == 200, manager.text


def now_plus(**delta: float) -> int:
    return int((datetime.now(UTC) + timedelta(**delta)).timestamp())


BAD_HS256_JWTS = {
    "expired": lambda: jwt.encode(claims(exp=now_plus(minutes=-1)), HMAC_KEY, algorithm="HS256"),
    "not yet valid": lambda: jwt.encode(claims(nbf=now_plus(hours=1)), HMAC_KEY, algorithm="HS256"),
    "wrong signature": lambda: jwt.encode(claims(), HMAC_KEY + "x", algorithm="HS256"),
    "tampered claims": lambda: tampered(jwt.encode(claims(), HMAC_KEY, algorithm="HS256")),
    "wrong issuer": lambda: jwt.encode(claims(iss="https://evil.example"), HMAC_KEY, "HS256"),
    "alg none": lambda: hand_made({"alg": "none", "typ": "JWT"}, claims(), None),
    "alg HS512": lambda: jwt.encode(claims(), HMAC_KEY, algorithm="HS512"),
    "missing org": lambda: jwt.encode(claims(org=MISSING), HMAC_KEY, algorithm="HS256"),
    "org not a uuid": lambda: jwt.encode(claims(org="acme"), HMAC_KEY, algorithm="HS256"),
    "org an object": lambda: jwt.encode(claims(org={"id": 1}), HMAC_KEY, algorithm="HS256"),
    "unknown org": lambda: jwt.encode(claims(org=str(uuid4())), HMAC_KEY, algorithm="HS256"),
    "missing exp": lambda: jwt.encode(claims(exp=MISSING), HMAC_KEY, algorithm="HS256"),
    "missing sub": lambda: jwt.encode(claims(sub=MISSING), HMAC_KEY, algorithm="HS256"),
    "missing iss": lambda: jwt.encode(claims(iss=MISSING), HMAC_KEY, algorithm="HS256"),
    "unknown role": lambda: jwt.encode(claims(role="OWNER"), HMAC_KEY, algorithm="HS256"),
    "not a member": lambda: jwt.encode(claims(sub="stranger"), HMAC_KEY, algorithm="HS256"),
    "an audience nobody asked for": lambda: jwt.encode(claims(aud="crm"), HMAC_KEY, "HS256"),
    "three dots of garbage": lambda: "a.b.c",
}


def tampered(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(claims(sub='someone-else')).encode())}.{signature}"


@pytest.mark.parametrize("make", BAD_HS256_JWTS.values(), ids=BAD_HS256_JWTS.keys())
def test_a_bad_jwt_answers_401(hs256: TestClient, make: Any) -> None:
    unauthenticated(hs256.get("/users", headers=bearer(make())))


def test_a_jwt_is_refused_when_no_jwt_key_is_configured(client: TestClient) -> None:
    token = jwt.encode(claims(), HMAC_KEY, algorithm="HS256")

    unauthenticated(client.get("/users", headers=bearer(token)))


@pytest.fixture(scope="module")
def audience(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = jwt_settings(
        tmp_path_factory, jwt_key=HMAC_KEY, jwt_algorithm="HS256", jwt_audience="crm"
    )
    with running(settings) as started:
        yield started


@pytest.mark.parametrize(
    ("aud", "status"),
    [("crm", 200), ("billing", 401), (MISSING, 401)],
    ids=["crm", "other", "none"],
)
def test_a_jwt_must_name_the_configured_audience(
    audience: TestClient, aud: object, status: int
) -> None:
    response = audience.get("/users", headers=hs256_jwt(aud=aud))

    assert response.status_code == status, response.text


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[rsa.RSAPrivateKey, str]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public_pem.decode()


@pytest.fixture(scope="module")
def rs256(
    tmp_path_factory: pytest.TempPathFactory, rsa_keys: tuple[rsa.RSAPrivateKey, str]
) -> Iterator[TestClient]:
    settings = jwt_settings(tmp_path_factory, jwt_key=rsa_keys[1], jwt_algorithm="RS256")
    with running(settings) as started:
        yield started


def test_a_valid_rs256_jwt_signed_by_the_issuers_key_is_accepted(
    rs256: TestClient, rsa_keys: tuple[rsa.RSAPrivateKey, str]
) -> None:
    token = jwt.encode(claims(), rsa_keys[0], algorithm="RS256")

    assert rs256.get("/users", headers=bearer(token)).status_code == 200


def test_an_hs256_jwt_keyed_with_the_public_key_is_refused_when_rs256_is_configured(
    rs256: TestClient, rsa_keys: tuple[rsa.RSAPrivateKey, str]
) -> None:
    confused = hand_made({"alg": "HS256", "typ": "JWT"}, claims(), rsa_keys[1].encode())

    unauthenticated(rs256.get("/users", headers=bearer(confused)))


def test_an_unsigned_jwt_is_refused_when_rs256_is_configured(rs256: TestClient) -> None:
    unsigned = hand_made({"alg": "none", "typ": "JWT"}, claims(), None)

    unauthenticated(rs256.get("/users", headers=bearer(unsigned)))


def test_an_rs256_jwt_signed_by_another_key_is_refused(rs256: TestClient) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    token = jwt.encode(claims(), stranger, algorithm="RS256")

    unauthenticated(rs256.get("/users", headers=bearer(token)))


# --- secrets at rest -------------------------------------------------------------------------


def stored_text(client: TestClient) -> tuple[str, str]:
    """Every stored event's raw state, and every row of every table of the read-model
    database (on PostgreSQL that database holds the event store's tables too)."""
    service: Any = client.app.state.service  # type: ignore[attr-defined]
    notifications = service.commands.recorder.select_notifications(start=1, limit=100_000)
    events = "\n".join(bytes(n.state).decode("latin-1") for n in notifications)
    store = service.read_store
    tables = (
        "SELECT name AS name FROM sqlite_master WHERE type = 'table'"
        if store.dialect == "sqlite"
        else "SELECT table_name AS name FROM information_schema.tables "
        "WHERE table_schema = current_schema()"
    )
    cells: list[str] = []
    with store.transaction(commit=False) as cursor:
        cursor.execute(tables)
        for table in [row["name"] for row in cursor.fetchall()]:
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                # keys(): a sqlite3.Row iterates its values, a psycopg dict row its keys
                cells.extend(as_text(row[column]) for column in row.keys())  # noqa: SIM118
    return events, "\n".join(cells)


def as_text(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def test_a_token_secret_is_stored_nowhere_only_its_sha256(settings: Settings) -> None:
    with running(settings) as client:
        first = first_run_token(client)
        _, issued = issue_token(client, first_admin(client), "admin", label="scanned")
        caught_up = {"min_position": head_position(client)}
        listed = client.get("/tokens", params=caught_up, headers=first_admin(client)).text
        events, read_models = stored_text(client)

    assert "scanned" in read_models
    for secret in (first, issued):
        assert secret_hash(secret) in events
        assert secret not in events
        assert secret.removeprefix("crm_") not in events
        assert secret not in read_models
        assert secret not in listed


def test_no_file_of_the_data_folder_but_the_admin_token_file_holds_a_secret(
    sqlite_settings: Settings,
) -> None:
    with running(sqlite_settings) as client:
        first = first_run_token(client)
        _, issued = issue_token(client, first_admin(client), "admin")
        caught_up = {"min_position": head_position(client)}
        assert client.get("/tokens", params=caught_up, headers=first_admin(client)).is_success
        files = [p for p in sqlite_settings.data_dir.rglob("*") if p.is_file()]
        contents = {p.name: p.read_bytes() for p in files if p.name != ADMIN_TOKEN_FILE}

    holders = [
        name
        for name, content in contents.items()
        for secret in (first, issued)
        if secret.encode() in content
    ]
    assert holders == []
    assert any(secret_hash(issued).encode() in content for content in contents.values())


def test_no_log_record_carries_a_token_secret(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    admin = first_admin(client)
    caplog.set_level(logging.DEBUG)

    _, issued = issue_token(client, admin, "admin")
    client.get("/users", headers=bearer(issued))
    client.get("/users", headers=bearer(issued + "x"))

    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert first_run_token(client) not in logged
    assert issued not in logged


# --- first run ---------------------------------------------------------------------------------


def test_the_first_run_writes_the_admin_token_to_a_file_only_its_owner_may_read(
    sqlite_settings: Settings,
) -> None:
    path = sqlite_settings.data_dir / ADMIN_TOKEN_FILE

    with running(sqlite_settings) as client:
        written = path.read_text().strip()
        assert written == first_run_token(client)
        assert client.get("/users", headers=bearer(written)).status_code == 200

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_first_run_prints_the_admin_token_once(
    sqlite_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with running(sqlite_settings) as client:
        token = first_run_token(client)
    first = capsys.readouterr().out

    with running(sqlite_settings):
        pass
    second = capsys.readouterr().out

    assert token in first
    assert token not in second
    assert "First run" not in second


def test_a_second_start_on_the_same_data_folder_creates_no_organization_and_no_token(
    sqlite_settings: Settings,
) -> None:
    with running(sqlite_settings) as client:
        token = first_run_token(client)
        head = head_position(client)
    written = (sqlite_settings.data_dir / ADMIN_TOKEN_FILE).read_text()

    with running(sqlite_settings) as again:
        second_token = again.app.state.service.first_run_token  # type: ignore[attr-defined]
        second_head = head_position(again)
        tokens = again.get("/tokens", headers=bearer(token)).json()

    assert second_token is None
    assert second_head == head
    assert [t["label"] for t in tokens] == ["first admin token"]
    assert (sqlite_settings.data_dir / ADMIN_TOKEN_FILE).read_text() == written
