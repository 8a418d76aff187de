"""docker-compose.yml and prometheus.yml agree with driftline's settings (no Docker needed)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from driftline import settings as settings_module

ROOT = Path(__file__).resolve().parents[2]
DRIFTLINE_SERVICES = ("setup", "worker", "producer")


def _settings_env_names() -> set[str]:
    names: set[str] = set()
    for _, cls in inspect.getmembers(settings_module, inspect.isclass):
        if not issubclass(cls, BaseSettings) or cls.__module__ != settings_module.__name__:
            continue
        for field in cls.model_fields.values():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names.update(choice for choice in alias.choices if isinstance(choice, str))
            elif isinstance(alias, str):
                names.add(alias)
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...] form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_settings_env_names_are_collected() -> None:
    names = _settings_env_names()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DRIFTLINE_HOME", "DRIFTLINE_METRICS_PORT"} <= names


def test_all_services_exist(services: dict[str, Any]) -> None:
    assert {"kafka", "redis", "setup", "worker", "producer", "prometheus", "grafana"} <= set(services)


@pytest.mark.parametrize("name", DRIFTLINE_SERVICES)
def test_driftline_services_set_only_real_settings(services: dict[str, Any], name: str) -> None:
    known = _settings_env_names()
    env = _env(services[name])
    assert env, f"{name} sets no environment"
    unknown = sorted(set(env) - known)
    assert not unknown, f"{name} sets env vars that no settings class reads: {unknown}"


@pytest.mark.parametrize("name", DRIFTLINE_SERVICES)
def test_driftline_services_share_home_volume(services: dict[str, Any], name: str) -> None:
    service = services[name]
    home = _env(service)["DRIFTLINE_HOME"]
    targets = [str(v).split(":")[1] for v in service.get("volumes", []) if isinstance(v, str)]
    assert home in targets
    assert "build" in service


def test_worker_is_scalable(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    for port in worker.get("ports", []):
        # Only a bare container port (random host port) would be compatible with --scale.
        assert ":" not in str(port), f"worker publishes a fixed host port: {port}"
    assert _env(worker).get("DRIFTLINE_METRICS_HOST") == "0.0.0.0"


@pytest.mark.parametrize("name", DRIFTLINE_SERVICES)
def test_bootstrap_points_at_internal_listener(services: dict[str, Any], name: str) -> None:
    kafka_env = _env(services["kafka"])
    advertised = [entry.split("://", 1)[1] for entry in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")]
    internal = [address for address in advertised if address.split(":")[0] in {"kafka", "kafka.internal"}]
    assert internal, "kafka advertises no listener under its service name"
    assert _env(services[name])["KAFKA_BOOTSTRAP_SERVERS"] in internal
    listeners = kafka_env["KAFKA_LISTENERS"]
    port = internal[0].rsplit(":", 1)[1]
    assert f":{port}" in listeners


def test_kafka_reachable_from_host_on_9092(services: dict[str, Any]) -> None:
    kafka = services["kafka"]
    advertised = _env(kafka)["KAFKA_ADVERTISED_LISTENERS"]
    assert "localhost:9092" in advertised
    assert any(str(port).startswith("9092:") for port in kafka.get("ports", []))


def test_prometheus_scrapes_worker_metrics_port(services: dict[str, Any]) -> None:
    metrics_port = int(_env(services["worker"]).get("DRIFTLINE_METRICS_PORT", "9108"))
    mounts = [str(v) for v in services["prometheus"].get("volumes", [])]
    assert any(m.startswith("./prometheus/prometheus.yml:") for m in mounts)
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    found = False
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            if "worker" in sd.get("names", []):
                assert sd.get("type", "SRV") == "A"
                assert int(sd["port"]) == metrics_port
                found = True
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                if target.startswith("worker:"):
                    assert int(target.split(":")[1]) == metrics_port
                    found = True
    assert found, "no scrape job targets the worker service"


def test_grafana_mounts_provisioning_and_dashboards(services: dict[str, Any]) -> None:
    mounts = [str(v) for v in services["grafana"].get("volumes", [])]
    assert any(m.startswith("./grafana/provisioning:") for m in mounts)
    assert any(m.startswith("./grafana/dashboards:") for m in mounts)


def test_dockerfile_installs_project() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "pip install" in text
    assert 'ENTRYPOINT ["driftline"]' in text


def _protected(ctx: Any) -> list[str]:
    """Return the subcommand words a group context holds back (the attribute moved across versions)."""
    return list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", None) or [])


def _parse_cli(args: list[str]) -> None:
    """Parse a driftline command line the way the CLI would, without running it."""
    import typer

    from driftline_tools.cli import app

    # typer vendors its own click, so the objects are handled by duck typing.
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("driftline", list(args))
    rest = [*_protected(ctx), *ctx.args]
    while hasattr(command, "get_command") and rest:
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"unknown driftline command {rest[0]!r} in {args}"
        ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
        rest = [*_protected(ctx), *ctx.args] if hasattr(sub, "get_command") else []
        command = sub
    assert not hasattr(command, "get_command"), f"{args} names a command group, not a command"


def test_service_commands_are_valid_cli_invocations(services: dict[str, Any]) -> None:
    _parse_cli(services["worker"]["command"])
    _parse_cli(services["producer"]["command"])
    script = services["setup"]["command"][0]
    lines = [line.strip() for line in script.splitlines()]
    invocations = [line.split("|")[0].replace("if ", "").replace("; then", "").split() for line in lines]
    commands = [words[1:] for words in invocations if words[:1] == ["driftline"]]
    assert len(commands) >= 5
    for words in commands:
        _parse_cli(words)


def test_prometheus_mounts_every_rule_file(services: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    rule_files = config.get("rule_files", [])
    assert "alerts.yml" in rule_files
    mounts = dict(str(v).split(":")[:2] for v in services["prometheus"]["volumes"] if str(v).startswith("./"))
    config_target = mounts["./prometheus/prometheus.yml"]
    config_dir = config_target.rsplit("/", 1)[0]
    for name in rule_files:
        source = f"./prometheus/{name}"
        assert (ROOT / "prometheus" / name).exists(), source
        assert mounts.get(source) == f"{config_dir}/{name}", f"{source} is not mounted next to prometheus.yml"


def test_grafana_env_points_provisioning_at_prometheus_and_webhook(services: dict[str, Any]) -> None:
    env = _env(services["grafana"])
    ports = [str(p) for p in services["prometheus"].get("ports", [])]
    container_port = ports[0].rsplit(":", 1)[1] if ports else "9090"
    assert env["PROMETHEUS_URL"] == f"http://prometheus:{container_port}"
    assert env["DRIFTLINE_ALERT_WEBHOOK_URL"].startswith("${DRIFTLINE_ALERT_WEBHOOK_URL")
    # Every ${VAR} the provisioning files read is set on the grafana service.
    wanted = set()
    for path in (ROOT / "grafana" / "provisioning").rglob("*.yaml"):
        wanted.update(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", path.read_text()))
    assert wanted, "provisioning reads no environment variable"
    assert wanted <= set(env), f"grafana provisioning reads unset variables: {sorted(wanted - set(env))}"
