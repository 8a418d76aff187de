"""Read a topic as compact JSON lines, without joining a consumer group or committing offsets."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import orjson

from driftline.settings import KafkaSettings
from producers.kafka_clients import open_reader

logger = logging.getLogger(__name__)


def resolve_topic(settings: KafkaSettings, topic: str) -> str:
    """Map ``predictions``, ``dead-letters``, ``events`` or ``labels`` to the configured name; else use it as given."""
    aliases = {
        "predictions": settings.predictions_topic,
        "dead-letters": settings.dead_letter_topic,
        "events": settings.events_topic,
        "labels": settings.labels_topic,
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
    name = resolve_topic(settings, topic)
    with open_reader(settings, [name], from_beginning=from_beginning, client_id="driftline-tail") as reader:
        logger.debug("tailing %s, partitions %s", name, reader.partitions[name])
        for yielded, record in enumerate(reader.records(idle_timeout_s=idle_timeout_s), start=1):
            yield render_value(record.value, record.partition, record.offset)
            if 0 < limit <= yielded:
                return
