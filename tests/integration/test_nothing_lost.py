"""Nothing lost on the real broker: huge inputs, and outputs that fail, still give every input a verdict."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer

from driftline.contracts import DeadLetter, Prediction
from driftline.kafka import kafka_python_options
from driftline_tools.runner import WorkerProcess, metric_value
from producers.admin import ensure_topics
from producers.collect import Collected, collect
from producers.generator import build_world, event_stream

from .conftest import TopicSet

pytestmark = pytest.mark.integration

HUGE_SIZES = (900_000, 2_000_000, 5_000_000)


def valid_events(topics: TopicSet, n: int, seed: int) -> list[dict[str, object]]:
    env = topics.env
    world = build_world(
        int(env["DRIFTLINE_SEED"]), int(env["DRIFTLINE_N_CUSTOMERS"]), int(env["DRIFTLINE_N_MERCHANTS"])
    )
    events = list(event_stream(world, n, np.random.default_rng(seed), start_time=datetime.now(UTC), rate=10_000))
    for i, event in enumerate(events):
        event["event_id"] = f"seed{seed}-{i}"
        event["event_time"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return events


def send(topics: TopicSet, messages: list[tuple[bytes | None, bytes]]) -> None:
    settings = topics.kafka()
    producer = KafkaProducer(**kafka_python_options(settings), acks="all", linger_ms=5, max_request_size=6_000_000)
    try:
        for key, value in messages:
            producer.send(settings.events_topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def outputs(topics: TopicSet, done: Callable[[list[Prediction], list[DeadLetter]], bool],
            timeout_s: float = 120) -> tuple[list[Prediction], list[DeadLetter]]:
    settings = topics.kafka()

    def parsed(c: Collected) -> tuple[list[Prediction], list[DeadLetter]]:
        return ([Prediction.model_validate_json(v) for v in c.values(settings.predictions_topic)],
                [DeadLetter.model_validate_json(v) for v in c.values(settings.dead_letter_topic)])

    got = collect(settings, [settings.predictions_topic, settings.dead_letter_topic],
                  lambda c: done(*parsed(c)), timeout_s, settle_s=3)
    return parsed(got)


def test_huge_inputs_between_valid_events_each_get_one_verdict(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    worker.wait_assigned()
    events = valid_events(topics, 60, seed=11)
    huge = {size: b'{"event_id":"huge-%d","pad":"' % size + b"x" * size + b'"}' for size in HUGE_SIZES}
    messages: list[tuple[bytes | None, bytes]] = []
    for i, event in enumerate(events):
        messages.append((str(event["customer_id"]).encode(), orjson.dumps(event)))
        if i % 20 == 10:  # each huge input sits among valid events of the same batch
            size = HUGE_SIZES[i // 20]
            messages.append((b"huge", huge[size]))
    send(topics, messages)

    predictions, letters = outputs(topics, lambda p, d: len(p) + len(d) >= len(messages))
    assert Counter(p.event_id for p in predictions) == Counter(str(e["event_id"]) for e in events)
    assert len(letters) == len(HUGE_SIZES)
    for letter in letters:
        whole = next(v for v in huge.values() if len(v) == letter.original_length)
        assert letter.error_type == "too_large", letter.reason
        assert letter.original_truncated
        assert whole.startswith(letter.original_value) and 0 < len(letter.original_value) <= 4096
        assert letter.original_sha256 == hashlib.sha256(whole).hexdigest()
        assert str(len(whole)) in letter.reason
    assert worker.popen is not None and worker.popen.poll() is None, "the worker died"
    log = worker.log_path.read_text()
    assert "Traceback" not in log and "crashed" not in log.lower(), worker.log_tail()
    page = worker.scrape()
    assert metric_value(page, "driftline_events_received_total") == len(messages)
    assert metric_value(page, "driftline_dead_letters_total", {"error_type": "too_large"}) == len(HUGE_SIZES)


def test_outputs_to_a_deleted_topic_are_retried_until_it_is_back(
    topics: TopicSet, start_worker: Callable[..., WorkerProcess]
) -> None:
    settings = topics.kafka()
    worker = start_worker()
    worker.wait_assigned()
    first = valid_events(topics, 50, seed=21)
    send(topics, [(str(e["customer_id"]).encode(), orjson.dumps(e)) for e in first])
    outputs(topics, lambda p, d: len(p) >= len(first))

    admin = KafkaAdminClient(**kafka_python_options(settings))
    try:
        admin.delete_topics([settings.predictions_topic, settings.dead_letter_topic])
        # The embedded broker acknowledges writes to a topic deleted since the producer's last metadata
        # refresh and drops them (real Kafka refuses them); the worker refreshes every second.
        time.sleep(2.5)
        second = valid_events(topics, 80, seed=22)
        poison = [(b"bad", b"not json %d" % i) for i in range(10)]
        send(topics, [(str(e["customer_id"]).encode(), orjson.dumps(e)) for e in second] + poison)
        time.sleep(4)  # the worker scores and sends while its output topics are gone
    finally:
        list(ensure_topics(settings))
        admin.close()

    expected = {str(e["event_id"]) for e in second}
    predictions, letters = outputs(
        topics, lambda p, d: expected <= {x.event_id for x in p} and len(d) >= len(poison), timeout_s=150
    )
    assert expected <= {p.event_id for p in predictions}
    assert sorted(d.original_value for d in letters) == sorted(v for _, v in poison)
    assert worker.popen is not None and worker.popen.poll() is None, "the worker died"
    assert "Traceback" not in worker.log_path.read_text(), worker.log_tail()
