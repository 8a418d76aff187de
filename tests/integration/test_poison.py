"""Poison input through a real worker: every message yields exactly one output, and the worker lives on."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaProducer

from driftline.contracts import DeadLetter, Prediction
from driftline.kafka import kafka_python_options
from driftline_tools.runner import WorkerProcess, metric_value
from producers.collect import Collected, collect

from .conftest import TopicSet

pytestmark = pytest.mark.integration

BASE = {
    "event_id": "poison-0", "event_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"), "customer_id": "C00001",
    "merchant_id": "M0001", "amount": 10.0, "channel": "pos", "hour_of_day": 3,
}
leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=20
)


def mutated(field: str, value: object) -> bytes:
    return json.dumps({**BASE, field: value}).encode()


payloads = st.one_of(
    st.binary(max_size=3000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(mutated, st.sampled_from(sorted(BASE)), json_values),
    st.sampled_from([
        b'{"event_id":"dup","event_id":"dup2"}',
        json.dumps({**BASE, "event_time": "2026-01-01T00:00:00"}).encode(),  # naive
        json.dumps({**BASE, "event_time": "1970-01-01T00:00:00Z"}).encode(),  # far past
        json.dumps({**BASE, "event_time": "2999-01-01T00:00:00Z"}).encode(),  # far future
        json.dumps({**BASE, "note": "x" * 70_000}).encode(),  # oversized
        b"[" * 5000 + b"]" * 5000,  # deep nesting
        json.dumps({**BASE, "amount": 1e308}).encode(),
        json.dumps(BASE).encode().replace(b"10.0", b"NaN"),
        json.dumps(BASE).encode(),  # valid
        json.dumps(BASE).encode(),  # valid, duplicate event id
    ]),
)


@settings(max_examples=1, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(batch=st.lists(payloads, min_size=150, max_size=150))
def test_poison_batch_yields_one_output_per_message(
    batch: list[bytes], topics: TopicSet, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    worker.wait_assigned()
    settings_ = topics.kafka()
    producer = KafkaProducer(**kafka_python_options(settings_), acks="all", max_request_size=2_000_000)
    for payload in batch:
        producer.send(settings_.events_topic, value=payload)
    producer.flush(timeout=30)
    producer.close()

    def done(c: Collected) -> bool:
        return len(c.values(settings_.predictions_topic)) + len(c.values(settings_.dead_letter_topic)) >= len(batch)

    got = collect(settings_, [settings_.predictions_topic, settings_.dead_letter_topic], done, 90, settle_s=3)
    predictions = [Prediction.model_validate_json(v) for v in got.values(settings_.predictions_topic)]
    letters = [DeadLetter.model_validate_json(v) for v in got.values(settings_.dead_letter_topic)]
    assert len(predictions) + len(letters) == len(batch)
    assert all(d.reason for d in letters)
    assert Counter(d.error_type for d in letters)  # the mix really contained poison
    oversized = [d for d in letters if d.error_type == "too_large"]
    assert all(len(d.original_value) > 65_536 for d in oversized)
    assert worker.popen is not None and worker.popen.poll() is None, "the worker died"
    assert metric_value(worker.scrape(), "driftline_events_received_total") == len(batch)
