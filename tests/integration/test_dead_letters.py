"""Dead letters can be inspected and replayed byte for byte onto the events topic."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaProducer

from driftline.contracts import DeadLetter
from driftline.errors import DriftlineError
from driftline.kafka import kafka_python_options
from driftline.settings import ProducerSettings
from driftline_tools.runner import WorkerProcess
from producers import kafka_clients
from producers.collect import Collected, collect
from producers.deadletters import ReplayResult, Selection, inspect, replay

from .conftest import TopicSet

pytestmark = pytest.mark.integration

# Recent enough for DRIFTLINE_MAX_EVENT_AGE_S, so each is refused for its amount alone.
RECENT = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z").encode()
BAD = [b'{"event_id": "neg-%d", "event_time": "%s", "customer_id": "C1", "merchant_id": "M1", '
       b'"amount": -%d, "channel": "pos", "hour_of_day": 1}' % (i, RECENT, i + 1) for i in range(5)] + [b"garbage"]


def letters(settings: ProducerSettings, n: int) -> list[DeadLetter]:
    def done(c: Collected) -> bool:
        return len(c.values(settings.dead_letter_topic)) >= n

    got = collect(settings, [settings.dead_letter_topic], done, 60, settle_s=2)
    return [DeadLetter.model_validate_json(v) for v in got.values(settings.dead_letter_topic)]


def test_inspect_and_replay(topics: TopicSet, start_worker: Callable[..., WorkerProcess]) -> None:
    worker = start_worker()
    worker.wait_assigned()
    settings = ProducerSettings(**topics.env)  # type: ignore[arg-type]
    producer = KafkaProducer(**kafka_python_options(settings), acks="all")
    for i, payload in enumerate(BAD):
        producer.send(settings.events_topic, key=b"k%d" % i, value=payload)
    producer.flush(timeout=30)
    producer.close()
    first = letters(settings, len(BAD))
    assert len(first) == len(BAD)

    report = inspect(settings, Selection(error_type="invalid_field"))
    assert (report.topic, report.total, report.by_error_type) == (settings.dead_letter_topic, 5, {"invalid_field": 5})
    assert sum(report.by_reason.values()) == 5
    assert any("amount must be >= 0.01" in reason for reason in report.by_reason)
    assert len(report.sample) == 5 and all(d.error_type == "invalid_field" for d in report.sample)

    assert replay(settings, Selection(error_type="invalid_field", limit=3)) == ReplayResult(
        topic=settings.events_topic, sent=3, skipped_truncated=0
    )
    after = letters(settings, len(BAD) + 3)
    assert len(after) == len(BAD) + 3
    originals = {d.original_value: d.original_key for d in first}
    for letter in after:
        assert originals[letter.original_value] == letter.original_key  # same bytes, same key
    copies = Counter(d.original_value for d in after)
    assert sorted(copies.values()) == [1, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("command", [inspect, replay])
def test_a_missing_dead_letter_topic_is_named_not_read_as_empty(
    command: Callable[[ProducerSettings, Selection], object],
    bootstrap: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_clients, "TOPIC_WAIT_S", 1.0)
    settings = ProducerSettings(  # type: ignore[call-arg]
        DRIFTLINE_HOME=str(tmp_path), KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DRIFTLINE_DEAD_LETTER_TOPIC=f"missing-{unique}", DRIFTLINE_EVENTS_TOPIC=f"events-{unique}",
    )
    with pytest.raises(DriftlineError, match=f"topic missing-{unique} does not exist"):
        command(settings, Selection())
