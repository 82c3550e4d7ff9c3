"""compose.yaml describes the scaled shape with real settings and real `crm` commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml  # type: ignore[import-untyped]

from crm.cli import cli
from crm.settings import Settings

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
CRM_IMAGE = "monton-crm:latest"


def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE.read_text())
    found: dict[str, dict[str, Any]] = document["services"]
    return found


def crm_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services().items() if s.get("image") == CRM_IMAGE}


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.partition("=")[::2] for item in raw)
    return {key: str(value) for key, value in raw.items()}


def setting_variables() -> set[str]:
    return {f"CRM_{name.upper()}" for name in Settings.model_fields}


def test_the_scaled_shape_has_its_services_from_official_images() -> None:
    found = services()

    assert {"postgres", "kafka", "api", "relay", "projector"} <= found.keys()
    assert found["postgres"]["image"].startswith("postgres:")
    assert found["kafka"]["image"].startswith("apache/kafka:")
    assert found["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("postgres", "kafka", "api"):
        assert found[name]["healthcheck"]["test"], f"{name} has no health check"
    assert set(crm_services()) == {"api", "relay", "projector"}


def test_every_variable_of_a_crm_service_is_a_setting_with_a_valid_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    known = setting_variables()
    for name, service in crm_services().items():
        variables = environment(service)
        assert variables, f"{name} sets no environment"
        unknown = set(variables) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which no setting reads"
        for key in [k for k in os.environ if k.startswith("CRM_")]:
            monkeypatch.delenv(key)
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        Settings()  # refuses a value its field does not accept


def test_every_crm_service_runs_a_real_crm_command_with_real_options() -> None:
    group: Any = typer.main.get_command(cli)  # typer's own click: a group of commands
    for name, service in crm_services().items():
        program, *args = service["command"]
        assert program == "crm", f"{name} does not run the crm CLI"
        with group.make_context("crm", list(args)) as context:
            command_name, command, rest = group.resolve_command(context, list(args))
            assert command is not None, f"{name}: no command {command_name}"
            command.make_context(command_name or "", rest, parent=context)


def test_the_api_leaves_projections_to_kafka_fed_workers_of_one_group() -> None:
    found = crm_services()

    assert environment(found["api"])["CRM_PROJECTIONS_IN_PROCESS"] == "false"
    projector = found["projector"]
    command = projector["command"]
    assert command[command.index("--source") + 1] == "kafka"
    assert "--group" in command
    assert projector["deploy"]["replicas"] >= 2
    assert found["relay"]["command"] == ["crm", "relay"]
    for service in found.values():
        depends = service["depends_on"]
        assert (
            depends["kafka"]["condition"] == depends["postgres"]["condition"] == ("service_healthy")
        )
