"""docker-compose.yml and prometheus.yml agree with driftline's settings (no Docker needed)."""

from __future__ import annotations

import ast
import graphlib
import importlib
import inspect
import json
import re
import sys
import tomllib
import types
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from pydantic import AliasChoices, SecretStr
from pydantic_settings import BaseSettings

from driftline import settings as settings_module
from driftline.settings import ProducerSettings, TrainingSettings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DRIFTLINE_SERVICES = ("setup", "worker", "producer")


def _settings_readers() -> dict[str, list[tuple[type[BaseSettings], str]]]:
    """Environment variable name -> the (settings class, field) pairs that read it."""
    readers: dict[str, list[tuple[type[BaseSettings], str]]] = {}
    for _, cls in inspect.getmembers(settings_module, inspect.isclass):
        if not issubclass(cls, BaseSettings) or cls.__module__ != settings_module.__name__:
            continue
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names = [choice for choice in alias.choices if isinstance(choice, str)]
            else:
                names = [alias] if isinstance(alias, str) else []
            for name in names:
                readers.setdefault(name, []).append((cls, field_name))
    return readers


def _settings_env_names() -> set[str]:
    return set(_settings_readers())


def _only_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Make ``env`` the whole driftline environment, as inside the container."""
    for name in _settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def _as_env_text(value: object) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


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


@pytest.mark.parametrize("name", DRIFTLINE_SERVICES)
def test_each_compose_setting_reaches_a_settings_field(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built from the service's environment alone, every settings class that reads a variable the
    # service sets holds exactly the value compose gives it: the name is real and the value parses.
    env = _env(services[name])
    _only_env(monkeypatch, env)
    readers = _settings_readers()
    for variable, value in env.items():
        assert readers.get(variable), f"{name} sets {variable}, which no settings class reads"
        for cls, field in readers[variable]:
            assert _as_env_text(getattr(cls(), field)) == value, (name, variable, cls.__name__)


def _run_cli(monkeypatch: pytest.MonkeyPatch, args: list[Any], expected_command: str) -> Any:
    """Run the driftline CLI in-process with ``args`` (logging left to pytest).

    ``args`` must name ``expected_command``, whose implementation the caller has replaced: any
    other command would run for real (and try to reach the compose network).
    """
    import typer
    from typer.testing import CliRunner

    from driftline_tools.cli import app

    words = [str(arg) for arg in args]
    ctx = typer.main.get_command(app).make_context("driftline", list(words))
    named = [*_protected(ctx), *ctx.args][:1]
    assert named == [expected_command], f"{words} does not run `driftline {expected_command}`"
    monkeypatch.setattr("driftline.logs.configure_logging", lambda level="INFO": None)
    return CliRunner().invoke(app, words)


def test_worker_service_runs_the_stream_worker_where_it_is_probed(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = services["worker"]
    assert "entrypoint" not in worker and _dockerfile_entrypoint() == ["driftline"]
    _only_env(monkeypatch, _env(worker))
    started: list[WorkerSettings] = []
    # The real stream_app.worker imports Faust and Feast (seconds); its main() starts by building
    # WorkerSettings from the environment, which is what this stand-in records.
    stand_in = types.ModuleType("stream_app.worker")
    stand_in.main = lambda: started.append(WorkerSettings())  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stream_app.worker", stand_in)
    result = _run_cli(monkeypatch, worker["command"], "worker")
    assert result.exit_code == 0, result.output
    (settings,) = started
    # Metrics listen on every interface of the container, on the port it exposes and its healthcheck probes.
    assert settings.metrics_host == "0.0.0.0"
    assert [int(port) for port in worker["expose"]] == [settings.metrics_port]
    (probe,) = re.findall(r"urlopen\('([^']+)'", " ".join(worker["healthcheck"]["test"]))
    url = urlparse(probe)
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", settings.metrics_port, "/metrics")


def test_producer_service_publishes_a_paced_stream_with_some_bad_events(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import producers.publish
    from producers.publish import PublishSummary

    producer = services["producer"]
    assert "entrypoint" not in producer
    _only_env(monkeypatch, _env(producer))
    calls: list[tuple[ProducerSettings, dict[str, Any]]] = []

    def publish_generated(settings: ProducerSettings, **options: Any) -> Any:
        calls.append((settings, options))
        return PublishSummary("transactions", 1, 1, 0, 0, 0.1)

    monkeypatch.setattr(producers.publish, "publish_generated", publish_generated)
    result = _run_cli(monkeypatch, producer["command"], "produce")
    assert result.exit_code == 0, result.output
    ((settings, options),) = calls
    assert options["count"] > 0 and options["rate"] > 0  # a long, paced stream, not a burst
    assert 0 < options["invalid_fraction"] < 0.5  # dead letters to look at, mostly scored events
    assert options["drift"] == "none" and options["progress"] is False  # no progress bar in container logs
    assert settings.bootstrap_servers == _env(producer)["KAFKA_BOOTSTRAP_SERVERS"]


def test_services_agree_on_broker_topics_store_and_home(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def build(name: str, cls: type[BaseSettings]) -> Any:
        _only_env(monkeypatch, _env(services[name]))
        return cls()

    topics = build("setup", ProducerSettings)  # `driftline topics` in the setup job creates them
    trained = build("setup", TrainingSettings)
    worker = build("worker", WorkerSettings)
    producer = build("producer", ProducerSettings)
    for kafka in (topics, producer):
        assert kafka.bootstrap_servers == worker.bootstrap_servers
        assert (kafka.events_topic, kafka.predictions_topic, kafka.dead_letter_topic) == (
            worker.events_topic, worker.predictions_topic, worker.dead_letter_topic
        )
    assert topics.topic_partitions >= 2  # room for `--scale worker=N`
    assert trained.redis_url == worker.redis_url and trained.feast_project == worker.feast_project
    # Training registers into the MLflow server the worker polls (not an embedded store in either container).
    assert trained.mlflow_tracking_uri is not None
    assert trained.tracking_uri == worker.tracking_uri and trained.model_name == worker.model_name
    assert trained.mlflow_artifact_root is None and worker.mlflow_artifact_root is None
    assert trained.home == worker.home == producer.home


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition (the short list form means service_started)."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def test_services_start_in_order_behind_real_readiness(services: dict[str, Any]) -> None:
    graph = {name: set(_depends_on(service)) for name, service in services.items()}
    order = list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle
    for name, service in services.items():
        for dependency, condition in _depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
            if condition == "service_completed_successfully":
                assert services[dependency].get("restart", "no") == "no", f"{dependency} must be a one-shot job"
    # The setup job talks to the broker, Redis and MLflow: it starts once all three answer; the worker
    # and the producer need its topics, features and model: they start once it has finished successfully.
    assert _depends_on(services["setup"]) == {
        "kafka": "service_healthy", "redis": "service_healthy", "mlflow": "service_healthy",
    }
    for name in ("worker", "producer"):
        assert _depends_on(services[name])["setup"] == "service_completed_successfully"
    assert _depends_on(services["worker"])["mlflow"] == "service_healthy"  # it polls the aliases
    assert order.index("kafka") < order.index("setup") < order.index("worker") < order.index("producer")
    assert order.index("mlflow") < order.index("setup")
    # The broker's healthcheck asks the listener the driftline services use.
    probe = services["kafka"]["healthcheck"]["test"][-1].split()
    assert probe[probe.index("--bootstrap-server") + 1] == _env(services["worker"])["KAFKA_BOOTSTRAP_SERVERS"]


def _mlflow_server_options(service: dict[str, Any]) -> dict[str, Any]:
    """The options of the service's ``mlflow server`` command, parsed by the installed MLflow's own CLI."""
    from mlflow.cli import cli

    words = [str(word) for word in service["command"]]
    assert words[:2] == ["mlflow", "server"], words
    server = cli.get_command(cli.make_context("mlflow", ["server"]), "server")
    assert server is not None
    params: dict[str, Any] = server.make_context("server", words[2:]).params
    return params


def _volume_targets(service: dict[str, Any]) -> dict[str, str]:
    """Mount target -> named volume of the service's ``name:/path`` volumes."""
    pairs = (str(v).split(":")[:2] for v in service.get("volumes", []) if not str(v).startswith(("./", "/")))
    return {target: name for name, target in pairs}


def test_mlflow_service_is_the_registry_training_and_workers_use(
    compose: dict[str, Any], services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.server.security_utils import is_allowed_host_header

    mlflow = services["mlflow"]
    options = _mlflow_server_options(mlflow)
    assert options["host"] == "0.0.0.0"
    # ModelSettings reads MLFLOW_TRACKING_URI; setup and worker point it at this service's port.
    assert (settings_module.ModelSettings, "mlflow_tracking_uri") in _settings_readers()["MLFLOW_TRACKING_URI"]
    for name in ("setup", "worker"):
        _only_env(monkeypatch, _env(services[name]))
        url = urlparse(WorkerSettings().tracking_uri)
        assert (url.scheme, url.hostname, url.port) == ("http", "mlflow", options["port"]), name
        # MLflow refuses requests whose Host header it does not allow (DNS rebinding protection).
        assert is_allowed_host_header(options["allowed_hosts"].split(","), url.netloc), name
    assert "MLFLOW_TRACKING_URI" not in _env(services["producer"])  # it never reads a model
    # Reached from the host on the same port, by a Host header the server allows too.
    assert _published(mlflow) == {options["port"]: options["port"]}
    assert is_allowed_host_header(options["allowed_hosts"].split(","), f"localhost:{options['port']}")
    # Runs, versions and aliases (SQLite) and the artifacts both live on a named volume, and the server
    # proxies artifacts, so the other services share no folder with it.
    store = urlparse(options["backend_store_uri"])
    assert store.scheme == "sqlite"
    volumes = _volume_targets(mlflow)
    for path in (store.path.removeprefix("/"), options["artifacts_destination"]):
        assert any(path.startswith(f"{target}/") for target in volumes), path
    assert set(volumes.values()) <= set(compose["volumes"])
    assert options["serve_artifacts"] is True
    (probe,) = re.findall(r"urlopen\('([^']+)'", " ".join(mlflow["healthcheck"]["test"]))
    assert urlparse(probe)[1:3] == (f"127.0.0.1:{options['port']}", "/health")
    # The server is the MLflow the project depends on, at the minor version the tests run against.
    from importlib.metadata import version

    from packaging.requirements import Requirement

    image, tag = mlflow["image"].rsplit(":", 1)
    assert image == "ghcr.io/mlflow/mlflow" and tag.startswith("v")
    (requirement,) = [
        Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if Requirement(r).name == "mlflow"
    ]
    assert requirement.specifier.contains(tag[1:]), (tag, requirement)
    assert tag[1:].split(".")[:2] == version("mlflow").split(".")[:2], "the image and the client MLflow differ"


def test_setup_trains_only_when_no_version_is_in_production(
    services: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The setup script decides with `driftline model list --json | grep -q '<pattern>'`: run the command
    # on a registry with and without a production alias and apply the pattern to what it prints.
    from datetime import UTC, datetime

    import driftline.registry
    from driftline.registry import VersionInfo

    script = services["setup"]["command"][0]
    (command, pattern) = re.findall(r"if driftline (model list --json) \| grep -q '([^']+)'; then", script)[0]
    listed: list[VersionInfo] = []

    class Registry:
        def __init__(self, settings: object) -> None:
            pass

        def versions(self, name: str) -> list[VersionInfo]:
            return listed

    monkeypatch.setattr(driftline.registry, "ModelRegistry", Registry)

    def production_exists() -> bool:
        result = _run_cli(monkeypatch, command.split(), "model")
        assert result.exit_code == 0, result.output
        return re.search(pattern, result.stdout) is not None

    assert not production_exists()  # empty registry: train
    created = datetime(2026, 1, 1, tzinfo=UTC)
    for aliases in ([], ["canary"], ["shadow"]):
        listed[:] = [VersionInfo(model="fraud", version="1", run_id="r", created_at=created, aliases=aliases,
                                 metrics={}, feature_service="fraud_v1", task="binary")]
        assert not production_exists(), aliases  # versions but none in production: train
    listed.append(listed[0].model_copy(update={"version": "2", "aliases": ["canary", "production"]}))
    assert production_exists()


def test_all_services_exist(services: dict[str, Any]) -> None:
    assert {"kafka", "redis", "mlflow", "setup", "worker", "producer", "prometheus", "grafana"} <= set(services)


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


def _published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port of each ``host:container`` mapping."""
    pairs = (str(port).rsplit(":", 1) for port in service.get("ports", []))
    return {int(container): int(host.rsplit(":", 1)[-1]) for host, container in pairs}


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """Kafka listener name -> (host, port) of a ``NAME://host:port,...`` setting."""
    out = {}
    for entry in value.split(","):
        name, address = entry.split("://", 1)
        host, port = address.rsplit(":", 1)
        out[name] = (host, int(port))
    return out


def test_published_ports_reach_what_listens_behind_them(services: dict[str, Any]) -> None:
    kafka_env = _env(services["kafka"])
    listeners = _listeners(kafka_env["KAFKA_LISTENERS"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    # Kafka on the host: the mapped container port is a listener that advertises localhost and the
    # host port, so a client on the host is sent back to an address it can reach.
    ((container_port, host_port),) = _published(services["kafka"]).items()
    (host_listener,) = [name for name, (_, port) in listeners.items() if port == container_port]
    assert advertised[host_listener] == ("localhost", host_port) and host_port == 9092
    assert host_listener != kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    # Redis listens on its default port (no --port), the port of every service's REDIS_URL.
    assert "--port" not in services["redis"]["command"]
    assert set(_published(services["redis"])) == {6379}
    for name in DRIFTLINE_SERVICES:
        assert urlparse(_env(services[name])["REDIS_URL"]).port == 6379
    # Prometheus and Grafana on their own defaults (no listen address or port setting overrides them).
    assert not any(str(flag).startswith("--web.listen-address") for flag in services["prometheus"]["command"])
    assert set(_published(services["prometheus"])) == {9090}
    assert "GF_SERVER_HTTP_PORT" not in _env(services["grafana"])
    assert set(_published(services["grafana"])) == {3000}


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


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = (line.strip() for line in text.splitlines())
    return [
        (instruction.upper(), arguments.strip())
        for instruction, _, arguments in (line.partition(" ") for line in lines if line and not line.startswith("#"))
    ]


def _dockerfile_entrypoint() -> list[str]:
    (entrypoint,) = [json.loads(args) for instruction, args in _dockerfile() if instruction == "ENTRYPOINT"]
    return list(entrypoint)


def _project_imports(package: str) -> set[str]:
    """Project packages (top-level folders with ``__init__.py``) imported anywhere in ``package``, lazily or not."""
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if (ROOT / name / "__init__.py").is_file()}


def test_docker_image_holds_everything_its_entrypoint_runs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    steps = _dockerfile()
    # The base image's Python satisfies requires-python.
    base = next(args for instruction, args in steps if instruction == "FROM").split()[0]
    python = re.fullmatch(r"python:(\d+\.\d+)(?:[.-].*)?", base)
    assert python, base
    assert SpecifierSet(project["project"]["requires-python"]).contains(f"{python[1]}.0"), base
    # The entrypoint is the project's console script, and it resolves to a function.
    (script,) = _dockerfile_entrypoint()
    module, function = project["project"]["scripts"][script].split(":")
    assert callable(getattr(importlib.import_module(module), function))
    # Every project package the script's commands import, transitively, is copied in before the last
    # `pip install .` and matched by the packages that install picks up.
    needed, pending = set(), [module.split(".")[0]]
    while pending:
        package = pending.pop()
        needed.add(package)
        pending.extend(_project_imports(package) - needed)
    installs = [i for i, (instruction, args) in enumerate(steps) if instruction == "RUN" and "pip install" in args]
    last_install = max(installs)
    copied = {
        Path(source).parts[0]
        for instruction, args in steps[:last_install]
        if instruction == "COPY"
        for source in args.split()[:-1]
        if not source.startswith("--")
    }
    assert not needed - copied, f"the image runs {script} but never copies {sorted(needed - copied)}"
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    assert all(any(re.fullmatch(p.replace("*", ".*"), package) for p in include) for package in needed), include


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
    runs_alone = getattr(command, "invoke_without_command", False)  # a group that acts without a subcommand
    assert runs_alone or not hasattr(command, "get_command"), f"{args} names a command group, not a command"


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
