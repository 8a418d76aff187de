"""Stream, HTTP and batch give the same score to the same event when the features are the same.

The same events go through the worker (Kafka), ``driftline serve`` (HTTP) and ``driftline score``
(batch: Feast's historical features as of each event's time). The events are stamped now: the latest
feature snapshot is the same online and as of now offline, so the three scores must be equal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from kafka import KafkaProducer

from driftline.contracts import Prediction
from driftline.kafka import kafka_python_options
from driftline.settings import WorkerSettings
from driftline_tools.runner import WorkerProcess
from producers.collect import collect
from stream_app.batch import score_file
from training.dataset import load_transactions

from .conftest import ServedWorld, TopicSet
from .test_http_serve import start_server, stop

pytestmark = pytest.mark.integration


def test_stream_http_and_batch_agree(
    served_world: ServedWorld, topics: TopicSet, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    latest = load_transactions(served_world.training().data_dir).tail(60)
    now = datetime.now(UTC) - timedelta(seconds=5)
    events = [
        {
            # Distinct times: Feast's offline join keeps one row per (entity, timestamp).
            "event_id": f"mode-{i}", "event_time": (now - timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
            "customer_id": customer, "merchant_id": merchant, "amount": 12.5 + 7 * i,
            "channel": ("online", "pos", "atm")[i % 3], "hour_of_day": i % 24,
        }
        for i, (customer, merchant) in enumerate(zip(latest["customer_id"], latest["merchant_id"], strict=True))
    ]

    worker = start_worker()
    worker.wait_assigned()
    settings = topics.kafka()
    producer = KafkaProducer(**kafka_python_options(settings), acks="all", linger_ms=20)
    for event in events:
        producer.send(settings.events_topic, key=str(event["customer_id"]).encode(), value=orjson.dumps(event))
    producer.flush(timeout=30)
    producer.close()
    got = collect(settings, [settings.predictions_topic], lambda c: len(c.values(settings.predictions_topic)) >= 60, 90)
    stream = {p.event_id: p for p in map(Prediction.model_validate_json, got.values(settings.predictions_topic))}

    server = start_server(served_world.env, tmp_path / "serve.log")
    try:
        status, answer = server.score(events)
    finally:
        stop(server)
    assert status == 200, answer
    http = {item["event_id"]: item for item in answer}

    source = tmp_path / "events.jsonl"
    source.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    result = score_file(WorkerSettings(**served_world.env), source, tmp_path / "scores.parquet")  # type: ignore[arg-type]
    assert result.scored == len(events)
    batch = {row["event_id"]: row for row in pq.read_table(tmp_path / "scores.parquet").to_pylist()}

    assert set(stream) == set(http) == set(batch) == {e["event_id"] for e in events}
    for event_id, prediction in stream.items():
        assert not prediction.missing_features, event_id  # the same, present features in every mode
        assert http[event_id]["score"] == pytest.approx(prediction.score, abs=1e-12), event_id
        assert batch[event_id]["score"] == pytest.approx(prediction.score, abs=1e-12), event_id
        assert http[event_id]["decision"] == prediction.decision == batch[event_id]["decision"]
        assert http[event_id]["prediction_id"] == prediction.prediction_id == batch[event_id]["prediction_id"]
