"""Where commands connect: the environment, else the dev stack's record, else the default; no services."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from driftline.kafka import kafka_python_options
from driftline.settings import (
    EMBEDDED_KAFKA_PORT,
    EMBEDDED_REDIS_PORT,
    KafkaSettings,
    ProducerSettings,
    RedisSettings,
    StackEndpoints,
    StackSettings,
    TrainingSettings,
    WorkerSettings,
    mask_url,
)
from driftline_tools.stack import BrokerProcess, RedisProcess, down, record_endpoints

RECORDED_KAFKA = "127.0.0.1:29092"
RECORDED_REDIS = "redis://127.0.0.1:26379/0"
DEFAULT_KAFKA = f"127.0.0.1:{EMBEDDED_KAFKA_PORT}"
DEFAULT_REDIS = f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No address or home from the machine running the tests; cwd in a fresh folder."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "DRIFTLINE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _record(home: Path, kafka: str = RECORDED_KAFKA, redis_url: str = RECORDED_REDIS) -> Path:
    path = home / "stack" / "endpoints.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(StackEndpoints(kafka_bootstrap_servers=kafka, redis_url=redis_url).model_dump_json())
    return path


def test_no_record_and_no_env_gives_the_defaults(tmp_path: Path) -> None:
    settings = WorkerSettings(DRIFTLINE_HOME=str(tmp_path))
    assert (settings.bootstrap_servers, settings.redis_url.get_secret_value()) == (DEFAULT_KAFKA, DEFAULT_REDIS)
    assert (settings.kafka_source, settings.redis_source) == ("default", "default")
    described = settings.describe_connections()
    assert f"Kafka {DEFAULT_KAFKA} (default" in described and f"Redis {DEFAULT_REDIS} (default" in described


def test_the_record_is_used_when_the_environment_names_no_address(tmp_path: Path) -> None:
    path = _record(tmp_path)
    settings = WorkerSettings(DRIFTLINE_HOME=str(tmp_path))
    assert settings.bootstrap_servers == RECORDED_KAFKA
    assert settings.redis_url.get_secret_value() == RECORDED_REDIS
    assert (settings.kafka_source, settings.redis_source) == ("dev stack", "dev stack")
    assert settings.describe_connections() == (
        f"Kafka {RECORDED_KAFKA} (from the dev stack's record {path}); "
        f"Redis {RECORDED_REDIS} (from the dev stack's record {path})"
    )
    # The resolved address is what clients get.
    assert kafka_python_options(settings)["bootstrap_servers"] == [RECORDED_KAFKA]
    assert settings.feast_connection_string() == "127.0.0.1:26379"


def test_the_environment_always_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(tmp_path)
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.internal:9092")
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/1")
    settings = WorkerSettings()
    assert settings.bootstrap_servers == "kafka.internal:9092"
    assert settings.redis_url.get_secret_value() == "redis://cache.internal:6379/1"
    assert (settings.kafka_source, settings.redis_source) == ("environment", "environment")
    assert settings.describe_connections() == (
        "Kafka kafka.internal:9092 (from KAFKA_BOOTSTRAP_SERVERS); "
        "Redis redis://cache.internal:6379/1 (from REDIS_URL)"
    )


def test_each_address_resolves_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(tmp_path)
    monkeypatch.setenv("REDIS_URL", "redis://cache.internal:6379/1")
    settings = WorkerSettings(DRIFTLINE_HOME=str(tmp_path))
    assert (settings.kafka_source, settings.redis_source) == ("dev stack", "environment")
    assert settings.bootstrap_servers == RECORDED_KAFKA


def test_an_argument_counts_as_set(tmp_path: Path) -> None:
    _record(tmp_path)
    settings = ProducerSettings(DRIFTLINE_HOME=str(tmp_path), KAFKA_BOOTSTRAP_SERVERS="b:1")
    assert (settings.bootstrap_servers, settings.kafka_source) == ("b:1", "environment")


def test_an_empty_variable_counts_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(tmp_path)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "")
    monkeypatch.setenv("REDIS_URL", " ")
    settings = WorkerSettings(DRIFTLINE_HOME=str(tmp_path))
    assert (settings.bootstrap_servers, settings.redis_url.get_secret_value()) == (RECORDED_KAFKA, RECORDED_REDIS)


def test_driftline_home_decides_which_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(tmp_path / "var", kafka="127.0.0.1:1111")  # the default home, relative to cwd
    _record(tmp_path / "elsewhere", kafka="127.0.0.1:2222")
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:1111"
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path / "elsewhere"))
    assert KafkaSettings().bootstrap_servers == "127.0.0.1:2222"
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path / "empty"))
    assert (KafkaSettings().bootstrap_servers, KafkaSettings().kafka_source) == (DEFAULT_KAFKA, "default")


def test_every_connecting_settings_class_follows_the_record(tmp_path: Path) -> None:
    _record(tmp_path)
    home = str(tmp_path)
    assert ProducerSettings(DRIFTLINE_HOME=home).bootstrap_servers == RECORDED_KAFKA
    assert TrainingSettings(DRIFTLINE_HOME=home).redis_url.get_secret_value() == RECORDED_REDIS
    assert RedisSettings(DRIFTLINE_HOME=home).redis_source == "dev stack"
    assert ProducerSettings(DRIFTLINE_HOME=home).describe_connections().startswith("Kafka ")
    assert "Kafka" not in TrainingSettings(DRIFTLINE_HOME=home).describe_connections()


def test_an_unreadable_record_is_ignored_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "stack" / "endpoints.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"kafka_bootstrap_servers": ')
    with caplog.at_level(logging.WARNING, logger="driftline.settings"):
        settings = KafkaSettings(DRIFTLINE_HOME=str(tmp_path))
    assert (settings.bootstrap_servers, settings.kafka_source) == (DEFAULT_KAFKA, "default")
    assert f"ignoring the dev stack record {path}" in caplog.text


def test_the_redis_password_never_shows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "pw-sentinel-93c1"
    monkeypatch.setenv("REDIS_URL", f"rediss://svc:{secret}@cache.internal:6380/2")
    settings = WorkerSettings(DRIFTLINE_HOME=str(tmp_path))
    described = settings.describe_connections()
    assert secret not in described and "svc" not in described
    assert "Redis rediss://**********@cache.internal:6380/2 (from REDIS_URL)" in described
    assert secret not in repr(settings)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:16379/0", "redis://127.0.0.1:16379/0"),
        ("redis://:pw@h:1/0", "redis://**********@h:1/0"),
        ("redis://pw@h/0", "redis://**********@h/0"),  # some clients read a lone userinfo as the password
        ("redis://h:1/0?password=pw", "redis://h:1/0?**********"),  # redis-py reads query arguments too
        ("unix:///tmp/redis.sock", "**********"),
        ("not a url with pw", "**********"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_the_stack_writes_what_settings_read_and_down_removes_it(tmp_path: Path) -> None:
    # No process is started: the services are only addresses here, and `down` finds none running.
    stack = StackSettings(
        DRIFTLINE_HOME=str(tmp_path), DRIFTLINE_STACK_KAFKA_PORT=23001, DRIFTLINE_STACK_REDIS_PORT=23002
    )
    stack.stack_dir.mkdir(parents=True)
    path = record_endpoints(
        stack, BrokerProcess(stack.stack_dir, stack.kafka_port), RedisProcess(stack.stack_dir, stack.redis_port)
    )
    assert path == stack.stack_endpoints_path == tmp_path / "stack" / "endpoints.json"
    assert [p.name for p in path.parent.iterdir()] == ["endpoints.json"]  # no temporary file left
    settings = WorkerSettings(DRIFTLINE_HOME=str(tmp_path))
    assert settings.bootstrap_servers == "127.0.0.1:23001"
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:23002/0"
    assert [(s.name, s.state) for s in down(stack)] == [("redis", "not running"), ("broker", "not running")]
    assert not path.exists()
    assert KafkaSettings(DRIFTLINE_HOME=str(tmp_path)).kafka_source == "default"
