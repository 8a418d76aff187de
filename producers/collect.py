"""Read output topics from the beginning until a condition holds: for the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from driftline.settings import KafkaSettings


@dataclass(slots=True)
class Collected:
    """Records read per topic, each with the wall time it was received."""

    records: dict[str, list[tuple[bytes, float]]] = field(default_factory=dict)

    def values(self, topic: str) -> list[bytes]:
        """Raw values read from ``topic``."""
        return [value for value, _ in self.records.get(topic, [])]


def collect(
    settings: KafkaSettings,
    topics: Sequence[str],
    done: Callable[[Collected], bool],
    timeout_s: float,
    settle_s: float = 0.0,
) -> Collected:
    """Consume every partition of ``topics`` from the start until ``done`` or ``timeout_s``.

    ``settle_s`` keeps reading that long after ``done`` first holds, so a test can see
    duplicates that would arrive late. No consumer group: nothing is committed.
    """
    consumer = KafkaConsumer(
        **settings.kafka_python_config(), group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", consumer_timeout_ms=500,
    )
    try:
        partitions: list[TopicPartition] = []
        deadline = time.monotonic() + timeout_s
        for topic in topics:
            while not (found := consumer.partitions_for_topic(topic)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {topic} has no partitions")
                time.sleep(0.2)
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        out = Collected(records={topic: [] for topic in topics})
        settle_until: float | None = None
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200, max_records=5000)
            now = time.time()
            for tp, messages in batch.items():
                out.records[tp.topic].extend((m.value, now) for m in messages)
            if settle_until is None and done(out):
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
        return out
    finally:
        consumer.close()
