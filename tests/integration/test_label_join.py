"""The label join against a real redis-server: remember, join by either id, mark once, TTL, restart, cost.

Each test keys its records under its own prefix on the session's Redis. The figures the join store is
planned with (bytes per pending prediction, the time to remember a batch) are measured here and printed
(run with ``-s`` to see them); the memory bound is asserted, the time is not.

The last tests run the worker itself on the session's broker: events scored, their labels published late
(``producers.labels``), joined, and shown on /metrics; bad labels dead-lettered; join state kept across a
restart and through a join store that refuses writes for a while.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
import redis.asyncio
from prometheus_client import CollectorRegistry

from driftline.contracts import DeadLetter, Label, Prediction, StageTimings, prediction_id, utc_now
from driftline.settings import ProducerSettings, WorkerSettings
from driftline_tools.runner import WorkerProcess, metric_value
from driftline_tools.stack import free_port
from producers.admin import ensure_topics
from producers.collect import collect
from producers.kafka_clients import create_producer
from producers.labels import LabelDelays, LabelSchedule, labelled_messages, publish_due, publish_with_labels
from producers.publish import OutgoingMessage, encode_event, send_messages
from stream_app.adapters.join_store import JoinStoreError, RedisJoinStore
from stream_app.adapters.labels import LabelJoiner
from stream_app.adapters.metrics import WorkerMetrics
from stream_app.core.labels import JoinedPrediction, JoinWindow
from stream_app.core.pipeline import Clock, RawRecord

from .conftest import ServedWorld, TopicSet

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).replace(microsecond=0)
WINDOW_S = 3600.0
GRACE_S = 600.0

#: Measured on redis-server 7.0.15 (jemalloc, 64-bit, default config) for the fraud example's shape, one
#: model version, default prefix: hash key 456 B + index key 150 B (see test_bytes_per_pending_prediction).
#: The record (~134 B) is longer than hash-max-listpack-value (64 by default), so each event hash is a
#: hashtable; with that setting at 256 the same hash measured 296 B.
BYTES_PER_PREDICTION_BOUND = 650


class FakeClock:
    """The worker's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, perf=time.perf_counter)


def prediction(event_id: str, version: str = "1", score: float = 0.8, scored_at: datetime = T0) -> Prediction:
    return Prediction(
        event_id=event_id,
        prediction_id=prediction_id(event_id, "fraud", version),
        entities={"customer_id": "c-1", "merchant_id": "m-1"},
        model_name="fraud",
        model_version=version,
        score=score,
        threshold=0.5,
        decision=score >= 0.5,
        missing_features=[],
        degraded=False,
        event_time=scored_at,
        scored_at=scored_at,
        timings=StageTimings(decode_s=0, features_s=0, predict_s=0),
    )


def label_record(offset: int = 0, **fields: object) -> RawRecord:
    doc: dict[str, object] = {"label": True, "label_time": (T0 + timedelta(minutes=5)).isoformat()}
    doc.update(fields)
    return RawRecord(key=None, value=orjson.dumps(doc), topic="labels", partition=0, offset=offset)


MakeJoiner = Callable[[FakeClock], tuple[LabelJoiner, RedisJoinStore, WorkerMetrics]]


@pytest.fixture
def prefix(unique: str) -> str:
    return f"test-{unique}:join:"


@pytest.fixture
def settings(redis_url: str, prefix: str, tmp_path: Path) -> WorkerSettings:
    return WorkerSettings(  # type: ignore[call-arg]
        REDIS_URL=redis_url, DRIFTLINE_HOME=str(tmp_path), DRIFTLINE_JOIN_PREFIX=prefix,
        DRIFTLINE_LABEL_WINDOW_S=WINDOW_S, DRIFTLINE_LABEL_GRACE_S=GRACE_S, DRIFTLINE_PERFORMANCE_MIN_LABELS=1,
    )


@pytest.fixture
async def raw_redis(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_joiner(
    settings: WorkerSettings,
) -> AsyncIterator[MakeJoiner]:
    """A joiner on its own client and registry: what one worker process has."""
    stores: list[RedisJoinStore] = []

    def make(clock: FakeClock) -> tuple[LabelJoiner, RedisJoinStore, WorkerMetrics]:
        store = RedisJoinStore.from_settings(settings)
        stores.append(store)
        metrics = WorkerMetrics(CollectorRegistry())
        return LabelJoiner(store, metrics, settings, clock.clock()), store, metrics

    yield make
    for store in stores:
        await store.aclose()


def outcome_count(metrics: WorkerMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("driftline_labels_total", {"outcome": outcome})
    assert value is not None
    return value


async def test_label_by_event_id_joins_every_version(make_joiner: MakeJoiner) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    joiner, _, metrics = make_joiner(clock)
    event_id = str(uuid.uuid4())
    await joiner.remember([prediction(event_id, "1", 0.8)], "binary")
    await joiner.remember([prediction(event_id, "2", 0.3)], "binary")

    result = await joiner.process([label_record(event_id=event_id)])

    assert result.dead_letters == []
    assert result.outcomes == {"joined": 1}
    assert sorted(lp.prediction.model_version for lp in result.labelled) == ["1", "2"]
    assert all(lp.label == 1.0 and lp.label_delay_s == 300.0 for lp in result.labelled)
    assert sorted(joiner.performance.versions()) == ["1", "2"]
    assert outcome_count(metrics, "joined") == 1
    assert metrics.registry.get_sample_value("driftline_label_delay_seconds_count") == 2
    for op in ("remember", "lookup", "mark"):
        assert metrics.registry.get_sample_value("driftline_join_store_seconds_count", {"op": op}) >= 1  # type: ignore[operator]


async def test_label_by_prediction_id_alone(make_joiner: MakeJoiner) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    joiner, _, _ = make_joiner(clock)
    event_id = str(uuid.uuid4())
    await joiner.remember([prediction(event_id, "1"), prediction(event_id, "2")], "binary")

    wanted = prediction_id(event_id, "fraud", "2")
    result = await joiner.process([label_record(prediction_id=wanted, label=False)])

    assert result.outcomes == {"joined": 1}
    assert [lp.prediction.prediction_id for lp in result.labelled] == [wanted]
    # Version 1 of the event is still unlabelled: a label naming the event takes it (and only it).
    again = await joiner.process([label_record(offset=1, event_id=event_id, label=False)])
    assert [lp.prediction.model_version for lp in again.labelled] == ["1"]


async def test_both_ids_of_different_events_are_a_mismatch(make_joiner: MakeJoiner) -> None:
    joiner, _, _ = make_joiner(FakeClock(T0 + timedelta(minutes=10)))
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    await joiner.remember([prediction(first), prediction(second)], "binary")
    result = await joiner.process(
        [label_record(event_id=second, prediction_id=prediction_id(first, "fraud", "1"))]
    )
    assert [d.error_type for d in result.dead_letters] == ["id_mismatch"]


async def test_a_duplicate_label_is_counted_once(make_joiner: MakeJoiner) -> None:
    joiner, _, metrics = make_joiner(FakeClock(T0 + timedelta(minutes=10)))
    event_id = str(uuid.uuid4())
    await joiner.remember([prediction(event_id)], "binary")

    # Twice in one batch, then redelivered in the next.
    first = await joiner.process([label_record(0, event_id=event_id), label_record(1, event_id=event_id)])
    second = await joiner.process([label_record(0, event_id=event_id)])

    assert first.outcomes == {"joined": 1, "duplicate": 1}
    assert second.outcomes == {"duplicate": 1}
    assert [d.error_type for d in [*first.dead_letters, *second.dead_letters]] == ["duplicate", "duplicate"]
    assert first.dead_letters[0].source_offset == 1
    assert joiner.performance.evaluate("1", T0 + timedelta(minutes=10)).labels == 1
    assert outcome_count(metrics, "joined") == 1
    assert outcome_count(metrics, "duplicate") == 2


async def test_two_workers_with_the_same_label_count_it_once(make_joiner: MakeJoiner) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    workers = [make_joiner(clock) for _ in range(2)]
    event_ids = [str(uuid.uuid4()) for _ in range(50)]
    await workers[0][0].remember([prediction(e, v) for e in event_ids for v in ("1", "2")], "binary")
    batch = [label_record(i, event_id=e) for i, e in enumerate(event_ids)]

    results = await asyncio.gather(*(joiner.process(batch) for joiner, _, _ in workers))

    joined = [lp.prediction.prediction_id for result in results for lp in result.labelled]
    assert len(joined) == len(set(joined)) == 100  # every prediction counted, none twice
    assert sum(r.outcomes.get("joined", 0) for r in results) == 50
    assert sum(r.outcomes.get("duplicate", 0) for r in results) == 50
    window_labels = sum(
        joiner.performance.evaluate(v, clock.now).labels
        for joiner, _, _ in workers
        for v in joiner.performance.versions()
    )
    assert window_labels == 100


async def test_unknown_and_expired_predictions_are_dead_lettered(make_joiner: MakeJoiner) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    joiner, _, metrics = make_joiner(clock)
    event_id = str(uuid.uuid4())
    await joiner.remember([prediction(event_id)], "binary")

    unknown = await joiner.process([label_record(event_id=str(uuid.uuid4()))])
    clock.now = T0 + timedelta(seconds=WINDOW_S + 60)  # past the window, within the grace: still stored
    expired = await joiner.process([label_record(1, event_id=event_id)])

    assert [(d.error_type, d.source_offset) for d in unknown.dead_letters] == [("unknown_prediction", 0)]
    assert [d.error_type for d in expired.dead_letters] == ["expired"]
    assert "beyond the join window" in expired.dead_letters[0].reason
    assert outcome_count(metrics, "unknown_prediction") == outcome_count(metrics, "expired") == 1


async def test_a_prediction_past_its_ttl_is_unknown(redis_url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(redis_url)
    store = RedisJoinStore(client, JoinWindow(accept_s=0.5, grace_s=0.5), prefix)  # TTL: 1 s
    record = _joined(str(uuid.uuid4()))
    await store.remember([record])
    assert len((await store.pending([_label(event_id=record.event_id)]))[0]) == 1
    await asyncio.sleep(1.2)
    assert await store.pending([_label(event_id=record.event_id), _label(prediction_id=record.prediction_id)]) == [
        [], []
    ]
    await store.aclose()


async def test_bad_labels_are_dead_lettered_with_their_reason(make_joiner: MakeJoiner) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    joiner, _, metrics = make_joiner(clock)
    event_id = str(uuid.uuid4())
    await joiner.remember([prediction(event_id)], "binary")
    records = [
        RawRecord(key=b"k", value=b"{not json", topic="labels", partition=2, offset=7),
        label_record(8),  # no id at all
        label_record(9, event_id=event_id, label_time=(clock.now + timedelta(hours=1)).isoformat()),
        label_record(10, event_id=event_id, label=2),  # not a binary label: refused at the join
        label_record(11, event_id=event_id),  # the good one, after all the bad
    ]

    result = await joiner.process(records)

    letters = {d.source_offset: d for d in result.dead_letters}
    assert {o: d.error_type for o, d in letters.items()} == {
        7: "malformed", 8: "missing_id", 9: "from_the_future", 10: "bad_label"
    }
    assert letters[7].original_value == b"{not json" and letters[7].original_key == b"k"
    assert letters[7].source_topic == "labels" and letters[7].source_partition == 2
    assert "not valid UTF-8 JSON" in letters[7].reason
    assert letters[9].event_id == event_id
    assert result.outcomes == {"joined": 1, "malformed": 1, "missing_id": 1, "from_the_future": 1, "bad_label": 1}
    assert outcome_count(metrics, "malformed") == 1


async def test_every_key_has_the_ttl_and_keeps_it_when_marked(
    make_joiner: MakeJoiner, raw_redis: redis.asyncio.Redis
) -> None:
    joiner, store, _ = make_joiner(FakeClock(T0 + timedelta(minutes=10)))
    event_id = str(uuid.uuid4())
    pred = prediction(event_id)
    await joiner.remember([pred], "binary")
    keys = [store.event_key(event_id), store.prediction_key(pred.prediction_id)]
    ttl = int(WINDOW_S + GRACE_S)
    assert store.ttl_s == ttl
    for key in keys:
        assert ttl - 5 <= await raw_redis.ttl(key) <= ttl

    await joiner.process([label_record(event_id=event_id)])

    for key in keys:
        assert ttl - 5 <= await raw_redis.ttl(key) <= ttl  # marking kept the TTL (never -1: no expiry)
    stored = JoinedPrediction.from_bytes(await raw_redis.hget(store.event_key(event_id), pred.prediction_id))  # type: ignore[arg-type]
    assert stored.labelled_at == T0 + timedelta(minutes=10)


async def test_remembering_again_keeps_a_label(make_joiner: MakeJoiner) -> None:
    joiner, _, _ = make_joiner(FakeClock(T0 + timedelta(minutes=10)))
    event_id = str(uuid.uuid4())
    await joiner.remember([prediction(event_id)], "binary")
    await joiner.process([label_record(event_id=event_id)])
    await joiner.remember([prediction(event_id, scored_at=T0 + timedelta(minutes=1))], "binary")  # redelivered
    again = await joiner.process([label_record(1, event_id=event_id)])
    assert [d.error_type for d in again.dead_letters] == ["duplicate"]


async def test_records_survive_a_new_store(make_joiner: MakeJoiner) -> None:
    clock = FakeClock(T0 + timedelta(minutes=10))
    before, store, _ = make_joiner(clock)
    event_id = str(uuid.uuid4())
    await before.remember([prediction(event_id)], "binary")
    await store.aclose()  # the worker restarts: a new client, a new joiner with empty windows

    after, _, _ = make_joiner(clock)
    result = await after.process([label_record(event_id=event_id)])

    assert result.outcomes == {"joined": 1}


async def test_redis_failures_are_join_store_errors(
    make_joiner: MakeJoiner, raw_redis: redis.asyncio.Redis, prefix: str
) -> None:
    down = RedisJoinStore(
        redis.asyncio.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0"), JoinWindow(60.0), prefix
    )
    with pytest.raises(JoinStoreError, match=rf"join store \({prefix}\*\): remembering 1 predictions failed"):
        await down.remember([_joined("e-1")])
    await down.aclose()

    joiner, store, metrics = make_joiner(FakeClock(T0 + timedelta(minutes=10)))
    await raw_redis.set(store.event_key("e-wrong-type"), b"not a hash")
    with pytest.raises(JoinStoreError, match="looking up the predictions of 1 labels failed: ResponseError"):
        await joiner.process([label_record(event_id="e-wrong-type")])
    assert outcome_count(metrics, "joined") == 0  # a failed batch counts nothing


async def test_bytes_per_pending_prediction(raw_redis: redis.asyncio.Redis, redis_url: str) -> None:
    """What the store holds per prediction of the fraud example (uuid event ids, one version), measured."""
    n = 2000
    client = redis.asyncio.Redis.from_url(redis_url)
    # The default prefix, as a deployment has it (the keys are fresh uuids, deleted at the end).
    store = RedisJoinStore(client, JoinWindow(accept_s=7 * 86_400.0))
    event_ids = [str(uuid.uuid4()) for _ in range(n)]
    records = [
        _joined(event_id, version="3", score=0.0123456789 + i / 3 / n, decision=False)
        for i, event_id in enumerate(event_ids)
    ]
    used_before = (await raw_redis.info("memory"))["used_memory"]
    await store.remember(records)
    used_after = (await raw_redis.info("memory"))["used_memory"]

    sample = records[:: n // 100]
    hash_bytes = [await raw_redis.memory_usage(store.event_key(r.event_id), samples=0) for r in sample]
    index_bytes = [await raw_redis.memory_usage(store.prediction_key(r.prediction_id), samples=0) for r in sample]
    per_prediction = statistics.mean(hash_bytes) + statistics.mean(index_bytes)
    per_prediction_used = (used_after - used_before) / n
    print(
        f"\njoin store, fraud shape, one version: MEMORY USAGE hash {statistics.mean(hash_bytes):.0f} B + index "
        f"{statistics.mean(index_bytes):.0f} B = {per_prediction:.0f} B per prediction; used_memory grew "
        f"{per_prediction_used:.0f} B per prediction (with the expires table); record "
        f"{len(records[0].to_bytes())} B"
    )
    assert per_prediction <= BYTES_PER_PREDICTION_BOUND
    await raw_redis.delete(*(store.event_key(e) for e in event_ids), *(store.prediction_key(r.prediction_id)
                                                                        for r in records))
    await store.aclose()


async def test_time_to_remember_a_batch_of_200(redis_url: str, prefix: str) -> None:
    store = RedisJoinStore(redis.asyncio.Redis.from_url(redis_url), JoinWindow(accept_s=3600.0), prefix)
    batches = [[_joined(str(uuid.uuid4())) for _ in range(200)] for _ in range(31)]
    await store.remember(batches[0])  # connect and warm up
    times = []
    for batch in batches[1:]:
        started = time.perf_counter()
        await store.remember(batch)
        times.append(time.perf_counter() - started)
    labels = [_label(event_id=r.event_id) for r in batches[1]]
    started = time.perf_counter()
    found = await store.pending(labels)
    lookup_s = time.perf_counter() - started
    assert all(len(f) == 1 for f in found)
    times.sort()
    print(
        f"\nremember 200 predictions: median {statistics.median(times) * 1000:.2f} ms, "
        f"max {times[-1] * 1000:.2f} ms over {len(times)} batches; lookup of 200 labels {lookup_s * 1000:.2f} ms"
    )
    await store.aclose()


def _joined(event_id: str, version: str = "1", score: float = 0.8, decision: bool = True) -> JoinedPrediction:
    return JoinedPrediction(
        prediction_id=prediction_id(event_id, "fraud", version),
        event_id=event_id,
        model_version=version,
        score=score,
        decision=decision,
        scored_at=T0,
        threshold=0.5,
        task="binary",
    )


def _label(**ids: str) -> Label:
    return Label(label=True, label_time=T0, **ids)  # type: ignore[arg-type]


# --- the worker: labels topic -> join -> /metrics and dead letters ---------------------------------------


def label_world(topics: TopicSet, unique: str) -> dict[str, str]:
    """The test's topics plus its own labels topic (created) and join prefix, with small windows' minimums."""
    env = {
        **topics.env,
        "DRIFTLINE_LABELS_TOPIC": f"labels-{unique}",
        "DRIFTLINE_JOIN_PREFIX": f"test-{unique}:join:",
        "DRIFTLINE_PERFORMANCE_MIN_LABELS": "1",
        "DRIFTLINE_CBPE_MIN_SCORES": "10",
    }
    list(ensure_topics(ProducerSettings(**env)))  # type: ignore[arg-type]
    return env


def wait_for_metric(
    worker: WorkerProcess, name: str, labels: dict[str, str], wanted: float, timeout_s: float = 60.0
) -> str:
    """The worker's metrics page once ``name{labels}`` reaches ``wanted``; fails with the log if it never does."""
    deadline = time.monotonic() + timeout_s
    page = worker.scrape()
    while metric_value(page, name, labels) < wanted:
        assert time.monotonic() < deadline, (
            f"{name}{labels} = {metric_value(page, name, labels)}, wanted {wanted}\n{worker.log_tail(40)}"
        )
        time.sleep(0.3)
        page = worker.scrape()
    return page


def send_labels(settings: ProducerSettings, values: list[bytes]) -> None:
    producer = create_producer(settings)
    try:
        for value in values:
            producer.send(settings.labels_topic, key=b"test", value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=10)


def test_worker_joins_labels_and_exports_live_and_estimated_performance(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess], served_world: ServedWorld, unique: str
) -> None:
    env = label_world(topics, unique)
    settings = ProducerSettings(**env)  # type: ignore[arg-type]
    worker = start_worker(**env)
    worker.wait_assigned()

    # Labels come 0.6-2 s after their events: well after the worker scored them.
    delays = LabelDelays(median_s=1.0, sigma=0.3, negative_after_s=1.5, unlabelled_share=0.1)
    summary = publish_with_labels(settings, 300, rate=300, delays=delays, seed=7)
    assert summary.events.sent == 300 and summary.labels.sent == summary.scheduled and summary.pending == 0
    assert summary.positive_labels > 0  # seeded: both classes are labelled, so every metric is defined

    version = served_world.registry().production_version("fraud")
    assert version is not None
    ours = {"model_version": version}
    wait_for_metric(worker, "driftline_labels_total", {"outcome": "joined"}, summary.scheduled)
    page = wait_for_metric(worker, "driftline_live_labelled", ours, summary.scheduled)  # exported every 5 s

    assert metric_value(page, "driftline_labels_total") == summary.scheduled  # nothing refused
    assert metric_value(page, "driftline_label_delay_seconds_count") == summary.scheduled
    assert metric_value(page, "driftline_label_coverage", ours) == pytest.approx(summary.scheduled / 300)
    for metric in ("roc_auc", "pr_auc", "precision", "recall", "brier", "accuracy"):
        for gauge in ("driftline_live_performance", "driftline_cbpe_estimate"):
            value = metric_value(page, gauge, {**ours, "metric": metric})
            if metric == "precision" and math.isnan(value):
                continue  # undefined, exported as NaN: no score of the 300 reached the threshold
            assert 0.0 <= value <= 1.0, (gauge, metric, value)
    test_pr_auc = metric_value(page, "driftline_model_test_performance", {**ours, "metric": "pr_auc"})
    assert test_pr_auc == pytest.approx(served_world.registry().read_metadata("fraud", version).metrics["pr_auc"])
    assert metric_value(page, "driftline_join_store_seconds_count", {"op": "remember"}) >= 1
    assert metric_value(page, "driftline_join_store_failures_total") == 0

    # Bad labels: each becomes one dead letter with its reason, counted by outcome; none stops the worker.
    joined_event = next(
        str(orjson.loads(value)["event_id"])
        for value in collect(settings, [settings.labels_topic], lambda c: True, 30).values(settings.labels_topic)
    )
    now = utc_now()
    bad = {
        "unknown_prediction": orjson.dumps({"event_id": f"never-scored-{unique}", "label": True,
                                            "label_time": now.isoformat()}),
        "duplicate": orjson.dumps({"event_id": joined_event, "label": False, "label_time": now.isoformat()}),
        "malformed": b"{not json",
        "from_the_future": orjson.dumps({"event_id": joined_event, "label": True,
                                          "label_time": (now + timedelta(days=1)).isoformat()}),
    }
    send_labels(settings, list(bad.values()))
    got = collect(settings, [settings.dead_letter_topic], lambda c: len(c.values(settings.dead_letter_topic)) >= 4, 60,
                  settle_s=1)
    letters = {d.error_type: d for d in map(DeadLetter.model_validate_json, got.values(settings.dead_letter_topic))}
    assert sorted(letters) == sorted(bad)
    for error_type, letter in letters.items():
        assert letter.original_value == bad[error_type] and letter.source_topic == settings.labels_topic
        assert letter.reason
    assert "no pending prediction" in letters["unknown_prediction"].reason
    assert "was labelled at" in letters["duplicate"].reason
    assert "in the future" in letters["from_the_future"].reason
    page = wait_for_metric(worker, "driftline_dead_letters_total", {"error_type": "from_the_future"}, 1)
    for outcome in bad:
        assert metric_value(page, "driftline_labels_total", {"outcome": outcome}) == 1, outcome
        assert metric_value(page, "driftline_dead_letters_total", {"error_type": outcome}) == 1, outcome
    assert metric_value(page, "driftline_labels_total", {"outcome": "joined"}) == summary.scheduled
    assert worker.popen is not None and worker.popen.poll() is None


def test_join_state_survives_a_restart_and_a_store_that_refuses_writes(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess], redis_url: str, unique: str
) -> None:
    env = label_world(topics, unique)
    settings = ProducerSettings(**env)  # type: ignore[arg-type]
    first = start_worker(**env)
    first.wait_assigned()

    # The join store refuses to remember one event's prediction (its key holds a string, not a hash): the
    # worker retries that batch, holding it unacknowledged, and finishes it once the store takes it.
    held_event = f"held-{unique}"
    client = redis.Redis.from_url(redis_url)
    held_key = f"{env['DRIFTLINE_JOIN_PREFIX']}e:{held_event}"
    client.set(held_key, b"not a hash")
    # No label is due before the restart: every one is published to the second worker.
    schedule = LabelSchedule(LabelDelays(median_s=3.0, sigma=0.1, negative_after_s=3.0, unlabelled_share=0.0), seed=3)
    messages = [*labelled_messages(settings, 100, schedule), held_message(held_event)]
    schedule.add(held_event, utc_now(), True)
    producer = create_producer(settings)
    try:
        assert send_messages(producer, settings.events_topic, messages).sent == 101
        page = wait_for_metric(first, "driftline_join_store_failures_total", {"op": "remember"}, 3)
        # Scored and published, but not finished: a batch is counted once it is acknowledged and remembered.
        assert metric_value(page, "driftline_events_processed_total") < 101
        client.delete(held_key)
        wait_for_metric(first, "driftline_events_processed_total", {"outcome": "scored"}, 101)
        log = first.log_tail(300)
        assert log.count("(uncommitted) and retrying") == 1 and "the join store answers again" in log  # once each
        assert first.stop() == 0

        second = start_worker(**env)
        second.wait_assigned()
        while len(schedule):
            publish_due(producer, settings.labels_topic, schedule)
            time.sleep(0.2)
    finally:
        producer.close(timeout=10)
        client.close()

    page = wait_for_metric(second, "driftline_labels_total", {"outcome": "joined"}, 101)
    assert metric_value(page, "driftline_labels_total") == 101  # none unknown: the state outlived the worker
    # The first worker committed every event it had remembered: the second scored nothing again.
    assert metric_value(page, "driftline_events_processed_total") == 0


def held_message(event_id: str) -> OutgoingMessage:
    return encode_event({
        "event_id": event_id, "event_time": utc_now().isoformat().replace("+00:00", "Z"), "customer_id": "C-HELD",
        "merchant_id": "M-HELD", "amount": 12.5, "channel": "online", "hour_of_day": 3,
    })
