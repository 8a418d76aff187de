"""The spine on real parts: kafka-python -> broker -> Faust worker -> Feast/Redis -> model -> topics."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from driftline.contracts import DeadLetter, Prediction, prediction_id
from driftline.kafka import kafka_python_options
from driftline.registry import ARTIFACT_FILE, FeatureSpec, ModelRegistry
from driftline_tools.runner import WorkerProcess, metric_value
from producers.collect import Collected, collect
from producers.generator import build_world, event_stream, invalid_events
from tests.support import artifact_folder

from .conftest import ServedWorld, TopicSet

pytestmark = pytest.mark.integration


def publish(topics: TopicSet, valid: int, invalid: int, seed: int = 5) -> tuple[list[dict[str, object]], list[bytes]]:
    settings = topics.kafka()
    world_env = topics.env
    world = build_world(int(world_env["DRIFTLINE_SEED"]), int(world_env["DRIFTLINE_N_CUSTOMERS"]),
                        int(world_env["DRIFTLINE_N_MERCHANTS"]))
    rng = np.random.default_rng(seed)
    events = list(event_stream(world, valid, rng, start_time=datetime.now(UTC), rate=10_000))
    for event in events:  # stamp with the publish time so nothing is "in the future"
        event["event_time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    bad = [item.payload for item in invalid_events(rng, invalid)]
    producer = KafkaProducer(**kafka_python_options(settings), acks="all", linger_ms=5)
    try:
        for event in events:
            producer.send(settings.events_topic, key=str(event["customer_id"]).encode(), value=orjson.dumps(event))
        for payload in bad:
            producer.send(settings.events_topic, key=b"bad", value=payload)
        producer.flush(timeout=30)
    finally:
        producer.close()
    return events, bad


def read_outputs(topics: TopicSet, expected_predictions: int, expected_dead: int, timeout_s: float = 90) -> Collected:
    settings = topics.kafka()

    def done(c: Collected) -> bool:
        return (len(c.values(settings.predictions_topic)) >= expected_predictions
                and len(c.values(settings.dead_letter_topic)) >= expected_dead)

    return collect(settings, [settings.predictions_topic, settings.dead_letter_topic], done, timeout_s, settle_s=3)


def test_every_event_yields_exactly_one_prediction_or_dead_letter(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess], served_world: ServedWorld
) -> None:
    worker = start_worker()
    worker.wait_assigned()
    events, bad = publish(topics, valid=400, invalid=40)
    got = read_outputs(topics, len(events), len(bad))
    settings = topics.kafka()

    predictions = [Prediction.model_validate_json(v) for v in got.values(settings.predictions_topic)]
    letters = [DeadLetter.model_validate_json(v) for v in got.values(settings.dead_letter_topic)]
    by_event = Counter(p.event_id for p in predictions)
    assert set(by_event) == {str(e["event_id"]) for e in events}
    assert max(by_event.values()) == 1, "a valid event was scored twice"
    assert sorted(d.original_value for d in letters) == sorted(bad)
    assert all(d.reason and d.source_topic == settings.events_topic for d in letters)

    version = served_world.registry().production_version("fraud")
    assert version is not None
    for p in predictions:
        assert p.model_version == version
        assert p.prediction_id == prediction_id(p.event_id, p.model_name, p.model_version)
        assert 0.0 <= p.score <= 1.0 and p.decision == (p.score >= p.threshold)
        assert not p.degraded

    page = worker.scrape()
    assert metric_value(page, "driftline_events_processed_total", {"outcome": "scored"}) == len(events)
    assert metric_value(page, "driftline_events_processed_total", {"outcome": "dead_lettered"}) == len(bad)
    assert metric_value(page, "driftline_model_info", {"model_version": version}) == 1


def test_unknown_entities_are_scored_with_missing_features_named(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    worker.wait_assigned()
    event = {
        "event_id": "stranger-1", "event_time": datetime.now(UTC).isoformat(), "customer_id": "C-NEW",
        "merchant_id": "M-NEW", "amount": 42.0, "channel": "online", "hour_of_day": 3,
    }
    settings = topics.kafka()
    producer = KafkaProducer(**kafka_python_options(settings), acks="all")
    producer.send(settings.events_topic, value=orjson.dumps(event))
    producer.flush(timeout=30)
    producer.close()
    got = read_outputs(topics, 1, 0)
    (raw,) = got.values(settings.predictions_topic)
    prediction = Prediction.model_validate_json(raw)
    assert prediction.event_id == "stranger-1"
    assert prediction.missing_features, "features of an unknown entity must be named as missing"
    assert not prediction.degraded


def _tamper(registry: ModelRegistry, name: str, version: str) -> None:
    """Cut the end off a version's model.pkl in the store's artifact folder: its SHA-256 no longer matches."""
    artifact = artifact_folder(registry, name, version) / ARTIFACT_FILE
    artifact.write_bytes(artifact.read_bytes()[:-10])


def _wanting_a_feature(served_world: ServedWorld) -> dict[str, object]:
    """Metadata changes that make a version read a feature its feature service does not have."""
    meta = served_world.registry().read_metadata("fraud", "1")
    shoe_size = FeatureSpec(name="customer_stats__shoe_size", source="feast", ref="customer_stats:shoe_size")
    return {"features": [*meta.features, shoe_size]}


def test_worker_refuses_an_artifact_with_a_wrong_checksum(
    served_world: ServedWorld, start_worker: Callable[..., WorkerProcess], unique: str
) -> None:
    name = f"fraud-{unique}"
    registry = served_world.registry()
    saved = served_world.register_copy(name)
    registry.set_alias(name, "production", saved.version, "test: a tampered artifact")
    _tamper(registry, name, saved.version)

    worker = start_worker(DRIFTLINE_MODEL_NAME=name)
    assert worker.popen is not None
    code = worker.popen.wait(timeout=120)
    assert code == 2
    log = worker.log_tail(50)
    assert "worker cannot start" in log and "SHA-256" in log and "refusing to load it" in log
    assert f"model {name} version {saved.version}" in log


def test_streamed_score_equals_the_offline_score(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess], served_world: ServedWorld
) -> None:
    """Training/serving parity: online path (Feast async read on Redis) vs offline path (Feast point-in-time join)."""
    import pandas as pd

    from driftline.features import build_matrix_from_columns
    from feature_repo.store import feature_store
    from training.dataset import raw_columns, training_set

    worker = start_worker()
    worker.wait_assigned()
    events, _ = publish(topics, valid=60, invalid=0, seed=9)
    got = read_outputs(topics, len(events), 0)
    outputs = got.values(topics.kafka().predictions_topic)
    streamed = {p.event_id: p for p in map(Prediction.model_validate_json, outputs)}

    settings = served_world.training()
    loaded = ModelRegistry(settings).load(settings.model_name)
    entity_df = pd.DataFrame(events).rename(columns={"event_time": "event_timestamp"})
    entity_df["event_timestamp"] = pd.to_datetime(entity_df["event_timestamp"], utc=True)
    frame = training_set(feature_store(settings), entity_df)
    specs = loaded.metadata.features
    matrix = build_matrix_from_columns(specs, raw_columns(frame, specs), len(frame))
    offline = loaded.estimator.predict_proba(matrix)[:, 1]

    assert len(frame) == len(events)
    for event_id, score in zip(frame["event_id"], offline, strict=True):
        assert streamed[event_id].score == pytest.approx(float(score), rel=0, abs=1e-12), event_id
        assert streamed[event_id].missing_features == []


def test_promoting_a_new_version_swaps_the_model_without_a_restart(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess], served_world: ServedWorld, unique: str
) -> None:
    name = f"fraud-{unique}"
    registry = served_world.registry()
    old = served_world.register_copy(name)
    registry.set_alias(name, "production", old.version, "test: first version")
    worker = start_worker(DRIFTLINE_MODEL_NAME=name, DRIFTLINE_MODEL_POLL_S="0.5")
    worker.wait_assigned()
    events, _ = publish(topics, valid=50, invalid=0, seed=1)
    read_outputs(topics, len(events), 0)

    new = served_world.register_copy(name)
    assert (old.version, new.version) == ("1", "2")
    registry.set_alias(name, "production", new.version, "test: promote")
    promoted = time.monotonic()
    while metric_value(worker.scrape(), "driftline_model_info", {"model_version": new.version}) != 1:
        assert time.monotonic() - promoted < 10, "the worker did not pick up the promoted version"
        time.sleep(0.2)
    page = worker.scrape()
    assert metric_value(page, "driftline_model_reloads_total", {"result": "swapped"}) == 1
    assert metric_value(page, "driftline_model_info", {"model_version": old.version}) == 0

    more, _ = publish(topics, valid=50, invalid=0, seed=2)
    got = read_outputs(topics, len(events) + len(more), 0)
    predictions = [Prediction.model_validate_json(v) for v in got.values(topics.kafka().predictions_topic)]
    assert {p.model_name for p in predictions} == {name}
    versions = {p.event_id: p.model_version for p in predictions}
    assert {versions[str(e["event_id"])] for e in events} == {old.version}
    assert {versions[str(e["event_id"])] for e in more} == {new.version}
    assert worker.popen is not None and worker.popen.poll() is None, "the worker restarted"


def test_worker_refuses_a_model_its_feature_service_cannot_supply(
    served_world: ServedWorld, start_worker: Callable[..., WorkerProcess], unique: str
) -> None:
    name = f"fraud-{unique}"
    saved = served_world.register_copy(name, **_wanting_a_feature(served_world))
    served_world.registry().set_alias(name, "production", saved.version, "test: a feature the store lacks")

    worker = start_worker(DRIFTLINE_MODEL_NAME=name)
    assert worker.popen is not None
    assert worker.popen.wait(timeout=120) == 2
    log = worker.log_tail(50)
    assert "worker cannot start" in log and "does not supply: customer_stats:shoe_size" in log


@pytest.mark.parametrize("reason", ["checksum", "feature_service"])
def test_a_refused_swap_keeps_the_old_version_serving(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess], served_world: ServedWorld, unique: str,
    reason: str,
) -> None:
    name = f"fraud-{unique}"
    registry = served_world.registry()
    old = served_world.register_copy(name)
    registry.set_alias(name, "production", old.version, "test: first version")
    worker = start_worker(DRIFTLINE_MODEL_NAME=name, DRIFTLINE_MODEL_POLL_S="0.5")
    worker.wait_assigned()

    if reason == "checksum":
        bad = served_world.register_copy(name)
        _tamper(registry, name, bad.version)
        expected_log = "refusing to load it"
    else:
        bad = served_world.register_copy(name, **_wanting_a_feature(served_world))
        expected_log = "does not supply: customer_stats:shoe_size"
    registry.set_alias(name, "production", bad.version, f"test: a version refused for its {reason}")
    failures = {"version": bad.version, "reason": reason}
    promoted = time.monotonic()
    while metric_value(worker.scrape(), "driftline_model_load_failures_total", failures) < 1:
        assert time.monotonic() - promoted < 10, f"version {bad.version} was not refused:\n{worker.log_tail(50)}"
        time.sleep(0.2)
    time.sleep(2)  # four more polls: a refused version is not retried while production still names it
    page = worker.scrape()
    assert metric_value(page, "driftline_model_load_failures_total", failures) == 1
    assert metric_value(page, "driftline_model_load_failures_total") == 1
    assert metric_value(page, "driftline_model_reloads_total", {"result": "refused"}) == 1
    assert metric_value(page, "driftline_model_info", {"model_version": old.version}) == 1

    events, _ = publish(topics, valid=20, invalid=0, seed=4)
    got = read_outputs(topics, len(events), 0)
    versions = {Prediction.model_validate_json(v).model_version for v in got.values(topics.kafka().predictions_topic)}
    assert versions == {old.version}
    log = worker.log_tail(200)
    refusals = [line for line in log.splitlines() if f"{name} version {bad.version}" in line and expected_log in line]
    assert refusals, log
    assert worker.popen is not None and worker.popen.poll() is None, "the worker restarted"
