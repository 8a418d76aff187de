"""The embedded stack's building blocks against real processes: Tansu broker and Redis on free ports."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from driftline.contracts import TransactionEvent
from driftline.errors import StackError
from driftline.settings import ProducerSettings, StackSettings
from driftline_tools.stack import (
    BrokerProcess,
    RedisProcess,
    down,
    env_vars,
    free_port,
    kafka_answers,
    redis_answers,
    status,
    up,
    wait_for_kafka,
    wait_for_redis,
)
from producers.admin import TopicOutcome, ensure_topics
from producers.publish import publish_file, publish_generated
from producers.tail import tail

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    service = BrokerProcess(tmp_path_factory.mktemp("broker"), free_port()).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    service = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield service
    service.stop()


@pytest.fixture()
def settings(broker: BrokerProcess, tmp_path: Path) -> ProducerSettings:
    """Producer settings with topic names unique to the test."""
    suffix = uuid.uuid4().hex[:8]
    return ProducerSettings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DRIFTLINE_HOME=str(tmp_path),
        DRIFTLINE_EVENTS_TOPIC=f"events-{suffix}",
        DRIFTLINE_PREDICTIONS_TOPIC=f"predictions-{suffix}",
        DRIFTLINE_DEAD_LETTER_TOPIC=f"dead-letters-{suffix}",
        DRIFTLINE_LABELS_TOPIC=f"labels-{suffix}",
        DRIFTLINE_TOPIC_PARTITIONS=3,
        DRIFTLINE_N_CUSTOMERS=50,
        DRIFTLINE_N_MERCHANTS=20,
    )


def _events_file(path: Path, n: int) -> Path:
    lines = [
        orjson.dumps(
            {
                "event_id": f"file-{i}",
                "event_time": "2026-01-01T12:00:00Z",
                "customer_id": f"C{i % 7:05d}",
                "merchant_id": "M0001",
                "amount": 10.0 + i,
                "channel": "online",
                "hour_of_day": 12,
            }
        )
        for i in range(n)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


# --- services ---------------------------------------------------------------------------------------


def test_services_answer(broker: BrokerProcess, redis_service: RedisProcess) -> None:
    assert kafka_answers(broker.bootstrap) is None
    assert redis_answers(redis_service.url) is None
    assert broker.pid_file.read_text().split() == [str(broker.running_pid()), str(broker.port)]
    client = redis.Redis.from_url(redis_service.url)
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    client.close()


def test_ensure_topics_is_idempotent(settings: ProducerSettings) -> None:
    first = ensure_topics(settings)
    assert first == [
        TopicOutcome(settings.events_topic, "created", 3),
        TopicOutcome(settings.predictions_topic, "created", 3),
        TopicOutcome(settings.dead_letter_topic, "created", 3),
        TopicOutcome(settings.shadow_predictions_topic, "created", 3),
        TopicOutcome(settings.labels_topic, "created", 3),
    ]
    second = ensure_topics(settings)
    assert [(t.outcome, t.partitions, t.note) for t in second] == [("existed", 3, "")] * 5


def test_publish_generated_and_tail_round_trip(settings: ProducerSettings) -> None:
    pytest.importorskip("producers.generator")
    list(ensure_topics(settings))
    summary = publish_generated(settings, count=200, rate=0, invalid_fraction=0.05, progress=False)
    assert (summary.attempted, summary.sent, summary.invalid_sent, summary.failed) == (200, 200, 10, 0)
    lines = list(tail(settings, "events", limit=200, from_beginning=True, idle_timeout_s=15))
    assert len(lines) == 200
    valid = []
    for line in lines:
        try:
            valid.append(TransactionEvent.model_validate_json(line))
        except ValueError:
            continue
    assert len(valid) == 190
    assert len({event.event_id for event in valid}) == 190
    assert summary.first_event_id in {event.event_id for event in valid}


def test_publish_file_and_stdin(settings: ProducerSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    list(ensure_topics(settings))
    path = _events_file(tmp_path / "events.jsonl", 50)
    from_file = publish_file(settings, path, rate=0, progress=False)
    assert (from_file.sent, from_file.failed, from_file.first_event_id) == (50, 0, "file-0")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(path.read_bytes())))
    from_stdin = publish_file(settings, Path("-"), rate=500, progress=False)
    assert from_stdin.sent == 50
    assert from_stdin.seconds >= 49 / 500
    lines = list(tail(settings, settings.events_topic, limit=100, from_beginning=True, idle_timeout_s=15))
    assert sorted(lines) == sorted(path.read_text().splitlines() * 2)


def test_pause_and_resume_broker(broker: BrokerProcess, settings: ProducerSettings, tmp_path: Path) -> None:
    list(ensure_topics(settings))
    broker.pause()
    try:
        assert kafka_answers(broker.bootstrap, timeout=1.0) is not None
        with pytest.raises(StackError, match="not ready"):
            wait_for_kafka(broker.bootstrap, timeout=1.5)
    finally:
        broker.resume()
    wait_for_kafka(broker.bootstrap, timeout=15)
    summary = publish_file(settings, _events_file(tmp_path / "e.jsonl", 10), rate=0, progress=False)
    assert summary.sent == 10


def test_pause_and_resume_redis(redis_service: RedisProcess) -> None:
    redis_service.pause()
    try:
        assert redis_answers(redis_service.url, timeout=0.5) is not None
    finally:
        redis_service.resume()
    wait_for_redis(redis_service.url, timeout=10)


def test_start_failure_reports_log_tail(tmp_path: Path) -> None:
    script = tmp_path / "fake-tansu"
    script.write_text("#!/bin/sh\necho 'tansu: cannot bind, giving up' >&2\nexit 3\n")
    script.chmod(0o755)
    service = BrokerProcess(tmp_path, free_port(), binary=str(script))
    with pytest.raises(StackError, match="exited during start-up") as info:
        service.start(timeout=5)
    assert "cannot bind, giving up" in str(info.value)
    assert not service.pid_file.exists()


def test_start_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        with pytest.raises(StackError, match="in use"):
            RedisProcess(tmp_path, sock.getsockname()[1]).start(timeout=2)


# --- driftline stack up / status / down -------------------------------------------------------------


@pytest.fixture()
def stack_settings(tmp_path: Path) -> Iterator[StackSettings]:
    settings = StackSettings(
        DRIFTLINE_HOME=str(tmp_path),
        DRIFTLINE_STACK_KAFKA_PORT=free_port(),
        DRIFTLINE_STACK_REDIS_PORT=free_port(),
    )
    yield settings
    list(down(settings))  # never leave processes behind, whatever the test did


def test_up_status_down(stack_settings: StackSettings) -> None:
    started = time.monotonic()
    result = up(stack_settings)
    elapsed = time.monotonic() - started
    assert [(s.name, s.state, s.answering) for s in result.services] == [
        ("broker", "started", True),
        ("redis", "started", True),
    ]
    assert elapsed < 15
    assert result.endpoints_file == stack_settings.stack_endpoints_path
    assert stack_settings.stack_endpoints_path.exists()
    kafka_port, redis_port = stack_settings.kafka_port, stack_settings.redis_port
    assert env_vars(stack_settings) == {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }
    again = up(stack_settings)
    assert [(s.name, s.state) for s in again.services] == [("broker", "already running"), ("redis", "already running")]
    state = status(stack_settings)
    assert [(s.state, s.answering, s.problem) for s in state] == [("running", True, None)] * 2
    assert [s.address for s in state] == [f"127.0.0.1:{kafka_port}", f"127.0.0.1:{redis_port}"]
    pids = [int((stack_settings.stack_dir / f"{name}.pid").read_text().split()[0]) for name in ("broker", "redis")]
    assert [s.pid for s in state] == pids

    stopped = down(stack_settings)
    assert [(s.name, s.state) for s in stopped] == [("redis", "stopped"), ("broker", "stopped")]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert [(s.name, s.state, s.problem) for s in status(stack_settings)] == [
        ("broker", "stopped", None),
        ("redis", "stopped", None),
    ]
    assert [(s.name, s.state) for s in down(stack_settings)] == [("redis", "not running"), ("broker", "not running")]
    assert not list(stack_settings.stack_dir.glob("*.pid"))
    assert not stack_settings.stack_endpoints_path.exists()


def test_cli_up_detaches_and_down_stops(stack_settings: StackSettings) -> None:
    env = {
        **os.environ,
        "DRIFTLINE_HOME": str(stack_settings.home),
        "DRIFTLINE_STACK_KAFKA_PORT": str(stack_settings.kafka_port),
        "DRIFTLINE_STACK_REDIS_PORT": str(stack_settings.redis_port),
    }
    cli = [sys.executable, "-c", "from driftline_tools.cli import main; main()", "stack"]
    result = subprocess.run([*cli, "up"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    # The command has exited; the services must still be up.
    assert kafka_answers(f"127.0.0.1:{stack_settings.kafka_port}") is None
    assert redis_answers(f"redis://127.0.0.1:{stack_settings.redis_port}/0") is None
    result = subprocess.run(
        [*cli, "down", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert [(s["name"], s["state"]) for s in orjson.loads(result.stdout)] == [
        ("redis", "stopped"),
        ("broker", "stopped"),
    ]
    assert kafka_answers(f"127.0.0.1:{stack_settings.kafka_port}", timeout=0.5) is not None


@pytest.mark.parametrize("impostor", [False, True], ids=["unrelated", "named-tansu-other-port"])
def test_down_never_signals_a_foreign_pid(stack_settings: StackSettings, tmp_path: Path, impostor: bool) -> None:
    stack_settings.stack_dir.mkdir(parents=True)
    argv = ["sleep", "60"]
    if impostor:  # its command line names tansu, but not our port
        link = tmp_path / "tansu-impostor"
        link.symlink_to(shutil.which("sleep") or "/bin/sleep")
        argv = [str(link), "60"]
    stranger = subprocess.Popen(argv)
    try:
        time.sleep(0.1)  # let exec() settle so /proc shows the final command line
        (stack_settings.stack_dir / "broker.pid").write_text(f"{stranger.pid} {stack_settings.kafka_port}\n")
        broker = {s.name: s for s in down(stack_settings)}["broker"]
        assert (broker.state, broker.problem) == ("not running", f"removed stale pid file for pid {stranger.pid}")
        assert stranger.poll() is None
        assert not (stack_settings.stack_dir / "broker.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_up_refuses_a_port_taken_by_someone_else(stack_settings: StackSettings) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", stack_settings.kafka_port))
        sock.listen()
        with pytest.raises(StackError, match=f"port {stack_settings.kafka_port} is already in use"):
            up(stack_settings)


def test_commands_find_the_stack_up_recorded(stack_settings: StackSettings) -> None:
    # Ports away from the defaults, and no address in the environment: `topics` must still find
    # the broker, through the record `stack up` leaves in DRIFTLINE_HOME.
    env = {
        key: value for key, value in os.environ.items() if key not in {"KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"}
    }
    env.update(
        DRIFTLINE_HOME=str(stack_settings.home),
        DRIFTLINE_STACK_KAFKA_PORT=str(stack_settings.kafka_port),
        DRIFTLINE_STACK_REDIS_PORT=str(stack_settings.redis_port),
    )
    cli = [sys.executable, "-c", "from driftline_tools.cli import main; main()"]
    bootstrap = f"127.0.0.1:{stack_settings.kafka_port}"
    record = stack_settings.stack_endpoints_path

    result = subprocess.run([*cli, "stack", "up"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert f"addresses recorded in {record}" in result.stdout
    assert orjson.loads(record.read_bytes()) == {
        "kafka_bootstrap_servers": bootstrap,
        "redis_url": f"redis://127.0.0.1:{stack_settings.redis_port}/0",
    }

    suffix = uuid.uuid4().hex[:8]
    env.update(
        DRIFTLINE_EVENTS_TOPIC=f"events-{suffix}",
        DRIFTLINE_PREDICTIONS_TOPIC=f"predictions-{suffix}",
        DRIFTLINE_DEAD_LETTER_TOPIC=f"dead-letters-{suffix}",
        DRIFTLINE_LABELS_TOPIC=f"labels-{suffix}",
        DRIFTLINE_TOPIC_PARTITIONS="2",
    )
    result = subprocess.run(
        [*cli, "topics", "--json"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"using Kafka {bootstrap} (from the dev stack's record {record})" in result.stderr
    assert {"name": f"events-{suffix}", "outcome": "created", "partitions": 2, "note": ""} in orjson.loads(
        result.stdout
    )
    # The topics are on the recorded broker: asked directly, it already has them.
    on_broker = ProducerSettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DRIFTLINE_HOME=str(stack_settings.home),
        DRIFTLINE_EVENTS_TOPIC=f"events-{suffix}",
        DRIFTLINE_PREDICTIONS_TOPIC=f"predictions-{suffix}",
        DRIFTLINE_DEAD_LETTER_TOPIC=f"dead-letters-{suffix}",
        DRIFTLINE_LABELS_TOPIC=f"labels-{suffix}",
        DRIFTLINE_TOPIC_PARTITIONS=2,
    )
    assert [(t.outcome, t.partitions) for t in ensure_topics(on_broker)] == [("existed", 2)] * 5

    # An address set in the environment is used as given, and named as such.
    result = subprocess.run(
        [*cli, "topics"], env={**env, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"using Kafka {bootstrap} (from KAFKA_BOOTSTRAP_SERVERS)" in result.stderr

    result = subprocess.run([*cli, "stack", "down"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert not record.exists()
    assert ProducerSettings(DRIFTLINE_HOME=str(stack_settings.home)).kafka_source == "default"


# --- the embedded broker's batch census and topic reset ------------------------------------------------


def test_census_counts_every_batch_and_reset_empties_the_topics(
    broker: BrokerProcess, settings: ProducerSettings
) -> None:
    from kafka import KafkaProducer

    from driftline_tools.stack import broker_load
    from producers.admin import reset_topics
    from producers.kafka_clients import count_batches

    list(ensure_topics(settings))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0, acks="all")
    topic = settings.events_topic
    for i in range(30):  # one record per batch, each awaited
        producer.send(topic, b"x" * 100, partition=i % 2).get(timeout=10)
    for _ in range(5):  # five batches of 20 records on partition 2
        for _ in range(20):
            producer.send(topic, b"y" * 100, partition=2)
        producer.flush(timeout=10)
    producer.close()

    counted = {c.partition: c for c in count_batches(settings, [topic, "no-such-topic"])}
    assert {p: (c.batches, c.records) for p, c in counted.items()} == {0: (15, 15), 1: (15, 15), 2: (5, 100)}
    assert all(c.topic == topic and c.stored_bytes > 100 * c.records for c in counted.values())

    load = broker_load(settings, fetch_max_wait_ms=1, pid=broker.running_pid())
    mine = [p for p in load.partitions if p.topic == topic]
    assert [p.batches for p in mine] == [15, 15, 5]
    assert load.limit_batches == 1_000 and load.rss_bytes and load.rss_bytes > 0
    assert mine[0].share_of_limit == pytest.approx(0.015) and not [w for w in load.warnings if topic in w]

    reset_topics(settings)
    assert [(c.batches, c.records) for c in count_batches(settings, [topic])] == [(0, 0)] * 3
