"""Read a topic as compact JSON lines, without joining a consumer group or committing offsets."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from typing import Any

import orjson

from driftline.errors import DriftlineError
from driftline.settings import KafkaSettings

logger = logging.getLogger(__name__)

#: Seconds to wait for a topic to appear in metadata before giving up.
TOPIC_WAIT_S = 15.0


def resolve_topic(settings: KafkaSettings, topic: str) -> str:
    """Map ``predictions``, ``dead-letters`` or ``events`` to the configured name; else use it as given."""
    aliases = {
        "predictions": settings.predictions_topic,
        "dead-letters": settings.dead_letter_topic,
        "events": settings.events_topic,
    }
    return aliases.get(topic, topic)


def render_value(value: bytes | None, partition: int, offset: int) -> str:
    """Return a record value as one compact JSON line; non-JSON values are shown base64-encoded."""
    if value is not None:
        try:
            return orjson.dumps(orjson.loads(value)).decode()
        except orjson.JSONDecodeError:
            pass
    raw = None if value is None else base64.b64encode(value).decode("ascii")
    return orjson.dumps({"partition": partition, "offset": offset, "undecodable_value_b64": raw}).decode()


def tail(
    settings: KafkaSettings,
    topic: str,
    limit: int = 0,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
) -> Iterator[str]:
    """Yield the records of ``topic`` as JSON lines; stop after ``limit`` (> 0) records.

    Every partition is assigned directly (no group, no commits), so tailing never disturbs the
    workers' consumer group. ``idle_timeout_s`` stops after that long without a record.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    name = resolve_topic(settings, topic)
    try:
        consumer: Any = KafkaConsumer(
            **settings.kafka_python_config(),
            client_id="driftline-tail",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
    except KafkaError as exc:
        raise DriftlineError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc!r}") from exc
    try:
        deadline = time.monotonic() + TOPIC_WAIT_S
        partitions = consumer.partitions_for_topic(name)
        while not partitions:
            if time.monotonic() >= deadline:
                raise DriftlineError(f"topic {name} does not exist (waited {TOPIC_WAIT_S:.0f}s)")
            time.sleep(0.2)
            partitions = consumer.partitions_for_topic(name)
        assigned = [TopicPartition(name, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning(*assigned)
        else:
            consumer.seek_to_end(*assigned)
        logger.debug("tailing %s, partitions %s", name, sorted(partitions))
        yielded = 0
        last_record = time.monotonic()
        while True:
            batches = consumer.poll(timeout_ms=500)
            if not batches:
                if idle_timeout_s is not None and time.monotonic() - last_record >= idle_timeout_s:
                    return
                continue
            last_record = time.monotonic()
            for records in batches.values():
                for record in records:
                    yield render_value(record.value, record.partition, record.offset)
                    yielded += 1
                    if 0 < limit <= yielded:
                        return
    finally:
        consumer.close()
