"""Read output topics from the beginning until a condition holds: for the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from driftline.settings import KafkaSettings
from producers.kafka_clients import open_reader


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
    duplicates that would arrive late. No consumer group: nothing is committed. A topic that has
    no partitions within ``timeout_s`` raises :class:`DriftlineError`.
    """
    deadline = time.monotonic() + timeout_s
    with open_reader(settings, topics, wait_s=timeout_s) as reader:
        out = Collected(records={topic: [] for topic in topics})
        settle_until: float | None = None
        while time.monotonic() < deadline:
            batch = reader.poll(timeout_s=0.2, max_records=5000)
            now = time.time()
            for record in batch:
                if record.value is not None:
                    out.records[record.topic].append((record.value, now))
            if settle_until is None and done(out):
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
        return out
