"""Events and their labels published through the one Kafka client module, read back from the real broker."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from driftline.contracts import Label, TransactionEvent
from driftline.settings import ProducerSettings
from producers.admin import ensure_topics
from producers.kafka_clients import open_reader
from producers.labels import LabelDelays, publish_with_labels

pytestmark = pytest.mark.integration


def test_labels_reach_the_labels_topic_as_valid_label_records(bootstrap: str, unique: str, tmp_path: Path) -> None:
    settings = ProducerSettings(  # type: ignore[call-arg]
        DRIFTLINE_HOME=str(tmp_path), KAFKA_BOOTSTRAP_SERVERS=bootstrap, DRIFTLINE_N_CUSTOMERS=100,
        DRIFTLINE_N_MERCHANTS=20, DRIFTLINE_EVENTS_TOPIC=f"events-{unique}", DRIFTLINE_LABELS_TOPIC=f"labels-{unique}",
        DRIFTLINE_PREDICTIONS_TOPIC=f"predictions-{unique}", DRIFTLINE_DEAD_LETTER_TOPIC=f"dead-letters-{unique}",
        DRIFTLINE_TOPIC_PARTITIONS=2,
    )
    events_topic, labels_topic = settings.events_topic, settings.labels_topic
    assert labels_topic == f"labels-{unique}"
    ensure_topics(settings)
    # Sub-second delays: every label is due within the run, and the run drains them all.
    delays = LabelDelays(median_s=0.3, sigma=0.5, negative_after_s=0.5, unlabelled_share=0.2)
    summary = publish_with_labels(settings, 40, rate=40, delays=delays, drift="fraud_pattern", seed=5)
    assert summary.events.sent == 40 and summary.pending == 0 and not summary.aborted
    assert summary.labels.sent == summary.scheduled > 0
    assert summary.scheduled + summary.unlabelled == 40

    with open_reader(settings, [events_topic, labels_topic]) as reader:
        records = list(reader.records(idle_timeout_s=3))
    events = [
        TransactionEvent.model_validate_json(r.value) for r in records if r.topic == events_topic and r.value
    ]
    label_records = [r for r in records if r.topic == labels_topic]
    labels = [Label.model_validate_json(r.value) for r in label_records if r.value]
    assert len(events) == 40
    assert all("is_fraud" not in orjson.loads(r.value) for r in records if r.topic == events_topic and r.value)
    assert len(labels) == summary.scheduled
    assert all(r.key == (label.event_id or "").encode() for r, label in zip(label_records, labels, strict=True))
    by_id = {event.event_id: event for event in events}
    assert len({label.event_id for label in labels}) == len(labels)
    for label in labels:
        assert label.event_id in by_id
        assert isinstance(label.label, bool)
        assert label.label_time > by_id[label.event_id].event_time
        assert label.source in {"chargebacks", "chargeback_window"}
