"""The model lifecycle on a running worker: promote, shadow, canary at 20%, roll back — nothing lost.

While events stream through one worker, the aliases of a model in the embedded MLflow store move.
Every event comes out exactly once; each prediction names the version its alias routed it to at the
time; the shadow's predictions go to the shadow topic only; the canary takes 20% ± 3 points of the
entity keys, exactly the keys the routing hash names.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from kafka import KafkaProducer

from driftline.contracts import Prediction
from driftline.kafka import kafka_python_options
from driftline.registry import ModelRegistry
from driftline_tools.runner import WorkerProcess, metric_value
from producers.collect import collect
from producers.generator import build_world, event_stream
from stream_app.core.routing import to_canary

from .conftest import ServedWorld, TopicSet

pytestmark = pytest.mark.integration

EVENTS = 6_000
RATE = 300.0


def copy_versions(served_world: ServedWorld, name: str) -> ModelRegistry:
    """Two versions of the served fraud model under a model name of this test's own (v2 flags more)."""
    registry = ModelRegistry(served_world.training())
    model = registry.load("fraud")
    experiment = registry.experiment_id(name)
    for threshold in (model.metadata.threshold, 0.05):
        run = registry.client.create_run(experiment, run_name="copy for the lifecycle test")
        meta = model.metadata.model_copy(update={"name": name, "threshold": threshold})
        registry.register(model.estimator, meta, run.info.run_id)
        registry.client.set_terminated(run.info.run_id)
    registry.set_alias(name, "production", "1", "lifecycle test: start")
    return registry


def wait_for(worker: WorkerProcess, alias: str, version: str, timeout_s: float = 30.0) -> float:
    """Wait until the worker serves ``version`` as ``alias``; return the time it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if metric_value(worker.scrape(), "driftline_model_info", {"alias": alias, "model_version": version}) == 1:
            return time.time()
        time.sleep(0.1)
    raise AssertionError(f"worker never served {version} as {alias}:\n{worker.log_tail(40)}")


def test_promote_shadow_canary_and_rollback_while_streaming(
    served_world: ServedWorld, topics: TopicSet, start_worker: Callable[..., WorkerProcess], unique: str
) -> None:
    name = f"fraud-life-{unique}"
    registry = copy_versions(served_world, name)
    worker = start_worker(
        DRIFTLINE_MODEL_NAME=name, DRIFTLINE_MODEL_POLL_S="0.5", DRIFTLINE_CANARY_PERCENT="20",
        DRIFTLINE_CANARY_GUARD="false",
    )
    worker.wait_assigned()
    settings = topics.kafka()
    env = topics.env
    sizes = (int(env["DRIFTLINE_SEED"]), int(env["DRIFTLINE_N_CUSTOMERS"]), int(env["DRIFTLINE_N_MERCHANTS"]))
    world = build_world(*sizes)
    events = list(event_stream(world, EVENTS, np.random.default_rng(11), start_time=datetime.now(UTC), rate=10_000))

    def publish() -> None:
        producer = KafkaProducer(**kafka_python_options(settings), acks="all", linger_ms=50)
        started = time.monotonic()
        for i, event in enumerate(events):
            time.sleep(max(0.0, i / RATE - (time.monotonic() - started)))
            event["event_time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            producer.send(settings.events_topic, key=str(event["customer_id"]).encode(), value=orjson.dumps(event))
        producer.flush(timeout=60)
        producer.close()

    publisher = threading.Thread(target=publish)
    publisher.start()
    time.sleep(3)
    promoted_at = time.time()
    registry.set_alias(name, "production", "2", "lifecycle test: promote")
    wait_for(worker, "production", "2")
    time.sleep(2)
    registry.set_alias(name, "shadow", "1", "lifecycle test: shadow")
    wait_for(worker, "shadow", "1")
    time.sleep(2)
    registry.set_alias(name, "canary", "1", "lifecycle test: canary")
    canary_at = wait_for(worker, "canary", "1")
    time.sleep(6)
    registry.rollback(name, "lifecycle test: roll back")
    rolled_back_at = wait_for(worker, "production", "1")
    publisher.join()

    shadow_topic = settings.shadow_predictions_topic
    got = collect(
        settings, [settings.predictions_topic, shadow_topic],
        lambda c: len(c.values(settings.predictions_topic)) >= EVENTS, 120, settle_s=3,
    )
    predictions = [Prediction.model_validate_json(v) for v in got.values(settings.predictions_topic)]
    counts = Counter(p.event_id for p in predictions)
    assert set(counts) == {e["event_id"] for e in events}, "an event was lost"
    assert max(counts.values()) == 1, "an event was scored twice"

    # The predictions topic holds only versions production or canary named; the shadow's go elsewhere.
    shadow = [Prediction.model_validate_json(v) for v in got.values(shadow_topic)]
    assert {p.model_version for p in shadow} == {"1"}
    # The shadow scored these events too; had one of its records reached the predictions topic, that
    # event would be there twice (checked above).
    assert len({p.event_id for p in shadow}) > 1_000, len(shadow)

    # While the canary was on and production was 2, exactly the hashed 20% of keys met version 1.
    window = [p for p in predictions if canary_at + 1 < p.scored_at.timestamp() < rolled_back_at - 1]
    assert len(window) > 500, len(window)
    for p in window:
        key = str(p.entities["customer_id"]).encode()
        assert p.model_version == ("1" if to_canary(key, 20.0) else "2"), p
    share = sum(p.model_version == "1" for p in window) / len(window)
    assert abs(share - 0.20) <= 0.03, share

    history = [(m.alias, m.from_version, m.to_version) for m in registry.history(name)]
    assert history == [
        ("production", None, "1"), ("production", "1", "2"), ("shadow", None, "1"), ("canary", None, "1"),
        ("production", "2", "1"),
    ]
    # Alias move -> first prediction by the new version: the poll interval plus a load.
    first_v2 = min(p.scored_at.timestamp() for p in predictions if p.model_version == "2")
    swap_s = first_v2 - promoted_at
    print(f"alias move to first prediction by the new version: {swap_s:.2f} s")
    assert 0 < swap_s < 5.0, swap_s
    page = worker.scrape()
    assert metric_value(page, "driftline_shadow_decisions_total") > 0


def test_the_guard_moves_a_failing_canary_back_and_says_why(
    served_world: ServedWorld, topics: TopicSet, start_worker: Callable[..., WorkerProcess], unique: str
) -> None:
    name = f"fraud-guard-{unique}"
    good = served_world.register_copy(name)
    # The canary refuses every amount above 10 EUR: most of its events become dead letters.
    strict = [s.model_copy(update={"maximum": 10.0}) if s.name == "amount" else s for s in good.features]
    bad = served_world.register_copy(name, features=strict)
    registry = served_world.registry()
    registry.set_alias(name, "production", good.version, "guard test")
    registry.set_alias(name, "canary", bad.version, "guard test: a canary that refuses most events")
    worker = start_worker(
        DRIFTLINE_MODEL_NAME=name, DRIFTLINE_MODEL_POLL_S="0.5", DRIFTLINE_CANARY_PERCENT="50",
        DRIFTLINE_CANARY_MIN_EVENTS="100",
    )
    worker.wait_assigned()
    settings = topics.kafka()
    env = topics.env
    sizes = (int(env["DRIFTLINE_SEED"]), int(env["DRIFTLINE_N_CUSTOMERS"]), int(env["DRIFTLINE_N_MERCHANTS"]))
    world = build_world(*sizes)
    producer = KafkaProducer(**kafka_python_options(settings), acks="all", linger_ms=20)
    for event in event_stream(world, 1_000, np.random.default_rng(5), start_time=datetime.now(UTC), rate=10_000):
        event["event_time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        producer.send(settings.events_topic, key=str(event["customer_id"]).encode(), value=orjson.dumps(event))
    producer.flush(timeout=30)
    producer.close()

    deadline = time.monotonic() + 60
    while registry.aliases(name).get("canary") is not None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert registry.aliases(name) == {"production": good.version}, worker.log_tail(30)
    last = registry.history(name)[-1]
    assert (last.alias, last.from_version, last.to_version) == ("canary", bad.version, None)
    assert last.reason.startswith(f"guard: canary {bad.version} dead-letters "), last.reason
    assert metric_value(worker.scrape(), "driftline_canary_rollbacks_total", {"version": bad.version}) == 1
