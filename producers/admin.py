"""Create the events, predictions, dead-letter and labels topics (idempotent)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from driftline.errors import DriftlineError
from driftline.settings import KafkaSettings
from producers.kafka_clients import create_admin

logger = logging.getLogger(__name__)

#: Kafka's error code for "Topic with this name already exists".
_TOPIC_ALREADY_EXISTS = 36


def driftline_topics(settings: KafkaSettings) -> list[str]:
    """Return the names of the topics driftline uses: events, predictions, dead letters, shadow predictions, labels."""
    return [
        settings.events_topic, settings.predictions_topic, settings.dead_letter_topic,
        settings.shadow_predictions_topic, settings.labels_topic,
    ]


@dataclass(frozen=True)
class TopicOutcome:
    """One driftline topic after :func:`ensure_topics`: created now or already there, and its partitions."""

    name: str
    outcome: Literal["created", "existed"]
    partitions: int
    #: Set when the partition count differs from DRIFTLINE_TOPIC_PARTITIONS (never changed here).
    note: str = ""


def ensure_topics(
    settings: KafkaSettings, replication_factor: int = 1, timeout_s: float = 30.0
) -> list[TopicOutcome]:
    """Create the driftline topics that are missing and wait until metadata shows all of them.

    Existing topics are left alone (their partition count is reported, never changed);
    ``replication_factor`` is 1 for a single broker and must not exceed the broker count.
    """
    from kafka.errors import KafkaError, for_code

    names = driftline_topics(settings)
    timeout_ms = int(timeout_s * 1000)
    admin = create_admin(settings, timeout_s=timeout_s)
    try:
        request = {
            name: {"num_partitions": settings.topic_partitions, "replication_factor": replication_factor}
            for name in names
        }
        try:
            response: dict[str, Any] = admin.create_topics(request, timeout_ms=timeout_ms, raise_errors=False)
        except KafkaError as exc:
            raise DriftlineError(f"creating topics {names} failed: {exc!r}") from exc
        created: set[str] = set()
        for topic in response.get("topics", []):
            name, code = topic["name"], topic["error_code"]
            if code == 0:
                created.add(name)
            elif code != _TOPIC_ALREADY_EXISTS:
                error = for_code(code).__name__
                raise DriftlineError(f"creating topic {name} failed: {error}: {topic.get('error_message')}")
        try:
            admin.wait_for_topics(names, timeout_ms=timeout_ms)
            described = admin.describe_topics(names)
        except KafkaError as exc:
            raise DriftlineError(f"topics {names} did not appear in metadata: {exc!r}") from exc
        partitions = {topic["name"]: len(topic.get("partitions") or []) for topic in described}
    finally:
        admin.close()
    outcomes: list[TopicOutcome] = []
    for name in names:
        count = partitions.get(name, 0)
        note = ""
        if count != settings.topic_partitions:
            note = f"DRIFTLINE_TOPIC_PARTITIONS is {settings.topic_partitions}; left unchanged"
        outcome = TopicOutcome(name, "created" if name in created else "existed", count, note)
        logger.debug("%s", outcome)
        outcomes.append(outcome)
    return outcomes


def reset_topics(settings: KafkaSettings, timeout_s: float = 30.0) -> list[TopicOutcome]:
    """Delete driftline's topics and create them again, empty: every record in them is dropped.

    For long sessions on the embedded broker, whose partitions slow with every batch they hold and
    never apply retention. Stop the workers first: a worker's offsets would point past the new ends.
    """
    from kafka.errors import KafkaError, UnknownTopicOrPartitionError

    names = driftline_topics(settings)
    admin = create_admin(settings, timeout_s=timeout_s)
    try:
        existing = set(admin.list_topics()) & set(names)
        if existing:
            try:
                admin.delete_topics(sorted(existing), timeout_ms=int(timeout_s * 1000))
            except UnknownTopicOrPartitionError:
                pass  # gone meanwhile
            except KafkaError as exc:
                raise DriftlineError(f"deleting topics {sorted(existing)} failed: {exc!r}") from exc
            deadline = time.monotonic() + timeout_s
            while set(admin.list_topics()) & existing:
                if time.monotonic() >= deadline:
                    raise DriftlineError(f"topics {sorted(existing)} still listed {timeout_s:.0f}s after deletion")
                time.sleep(0.2)
    finally:
        admin.close()
    logger.info("deleted %s", sorted(existing) or "nothing")
    return ensure_topics(settings, timeout_s=timeout_s)
