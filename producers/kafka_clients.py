"""The kafka-python clients of driftline: producer, topic reader and admin client, with their defaults.

Every producer, reader and admin client outside the worker is made here, from the kernel's one
translation of settings into connection options (:func:`driftline.kafka.kafka_python_options`).
kafka-python's connection errors become :class:`DriftlineError` naming the bootstrap servers, and
a topic that never appears becomes one naming the topic. The worker keeps Faust/aiokafka.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from driftline.errors import DriftlineError
from driftline.kafka import kafka_python_options
from driftline.settings import KafkaSettings

logger = logging.getLogger(__name__)

#: Seconds a reader waits for its topics to have partitions before giving up.
TOPIC_WAIT_S = 15.0


class Record(Protocol):
    """The part of kafka-python's ``ConsumerRecord`` driftline reads."""

    @property
    def topic(self) -> str:
        """Topic of the record."""

    @property
    def partition(self) -> int:
        """Partition of the record."""

    @property
    def offset(self) -> int:
        """Offset of the record in its partition."""

    @property
    def key(self) -> bytes | None:
        """Key bytes, if any."""

    @property
    def value(self) -> bytes | None:
        """Value bytes (None for a tombstone)."""

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch: the producer's create time, or the broker's append time."""


def _unreachable(settings: KafkaSettings, exc: Exception) -> DriftlineError:
    return DriftlineError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc!r}")


def create_producer(settings: KafkaSettings, *, client_id: str = "driftline-producer", **overrides: Any) -> Any:
    """Build a kafka-python producer with driftline's defaults; ``overrides`` are kafka-python options.

    acks=all, batching (``DRIFTLINE_PRODUCER_LINGER_MS`` and ``DRIFTLINE_PRODUCER_BATCH_BYTES``: the
    embedded broker slows with every batch a partition holds, so one record per batch would stall it)
    and no idempotence or transactions, which the embedded broker refuses; with one request in flight
    per connection, retries cannot reorder a customer's events all the same.
    """
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    options: dict[str, Any] = {
        "client_id": client_id,
        "acks": "all",
        "enable_idempotence": False,
        "linger_ms": settings.producer_linger_ms,
        "batch_size": settings.producer_batch_bytes,
        "max_in_flight_requests_per_connection": 1,
        **overrides,
    }
    try:
        return KafkaProducer(**kafka_python_options(settings), **options)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc


def create_admin(
    settings: KafkaSettings, *, timeout_s: float = 30.0, client_id: str = "driftline-admin", **overrides: Any
) -> Any:
    """Build a kafka-python admin client that waits at most ``timeout_s`` to connect (30 s per request)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    timeout_ms = int(timeout_s * 1000)
    options: dict[str, Any] = {
        "client_id": client_id,
        "request_timeout_ms": min(timeout_ms, 30_000),
        "bootstrap_timeout_ms": timeout_ms,
        **overrides,
    }
    try:
        return KafkaAdminClient(**kafka_python_options(settings), **options)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc


class TopicReader:
    """Every partition of some topics, assigned directly: no consumer group, nothing committed.

    Reading never disturbs the workers' consumer group. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, consumer: Any, partitions: dict[str, list[int]]) -> None:
        self._consumer = consumer
        self.partitions = partitions

    def poll(self, timeout_s: float = 0.5, max_records: int | None = None) -> list[Record]:
        """Return the records that arrive within ``timeout_s`` (in partition order; may be empty)."""
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        return [record for records in batches.values() for record in records]

    def records(self, idle_timeout_s: float | None = None, poll_timeout_s: float = 0.5) -> Iterator[Record]:
        """Yield records as they come; stop once none has come for ``idle_timeout_s`` (None: never)."""
        last = time.monotonic()
        while True:
            batch = self.poll(poll_timeout_s)
            if batch:
                yield from batch
                last = time.monotonic()
            elif idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                return

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_reader(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    from_beginning: bool = True,
    wait_s: float | None = None,
    client_id: str = "driftline-reader",
    **overrides: Any,
) -> TopicReader:
    """Wait until each of ``topics`` has partitions, assign them all and seek to the beginning (or end).

    Raises :class:`DriftlineError` naming the topic if it has no partitions within ``wait_s``
    (default :data:`TOPIC_WAIT_S`). ``overrides`` are kafka-python consumer options.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    wait_s = TOPIC_WAIT_S if wait_s is None else wait_s
    options: dict[str, Any] = {
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest" if from_beginning else "latest",
        **overrides,
    }
    try:
        consumer = KafkaConsumer(**kafka_python_options(settings), **options)
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc
    try:
        deadline = time.monotonic() + wait_s
        partitions: dict[str, list[int]] = {}
        for topic in topics:
            while not (found := consumer.partitions_for_topic(topic)):
                if time.monotonic() >= deadline:
                    raise DriftlineError(f"topic {topic} does not exist (waited {wait_s:.0f}s)")
                time.sleep(0.2)
            partitions[topic] = sorted(found)
        assigned = [TopicPartition(topic, p) for topic, numbers in partitions.items() for p in numbers]
        consumer.assign(assigned)
        if from_beginning:
            consumer.seek_to_beginning(*assigned)
        else:
            consumer.seek_to_end(*assigned)
    except BaseException:
        consumer.close()
        raise
    logger.debug("reading %s from the %s", partitions, "beginning" if from_beginning else "end")
    return TopicReader(consumer, partitions)


@dataclass(frozen=True, slots=True)
class PartitionBatches:
    """What one partition holds, counted batch by batch."""

    topic: str
    partition: int
    batches: int
    records: int
    stored_bytes: int  # the batches' size on the wire; the embedded broker keeps more per batch


#: Wait of the census's own fetches: long enough to list millions of batches on the embedded broker.
_CENSUS_WAIT_MS = 5_000
_CENSUS_FETCH_BYTES = 8 * 1024 * 1024


def count_batches(
    settings: KafkaSettings, topics: Sequence[str] | None = None, timeout_s: float = 30.0
) -> list[PartitionBatches]:
    """Read every partition of ``topics`` (default: every topic but the internal ones) and count its batches.

    The consumer API hides batches, so this sends Fetch requests itself and walks the batch headers.
    It reads whole partitions: seconds for a few hundred MB, meant for an operator's status check.
    Topics that do not exist are left out.
    """
    from kafka.errors import KafkaError
    from kafka.protocol.consumer import FetchRequest
    from kafka.record import MemoryRecords

    admin = create_admin(settings, timeout_s=timeout_s, client_id="driftline-census")
    manager = admin._manager  # kafka-python's connection manager: the one way to send a raw request
    counted: list[PartitionBatches] = []
    try:
        if topics is None:
            topics = sorted(t for t in admin.list_topics() if not t.startswith("__"))
        described = {t["name"]: t for t in admin.describe_topics(list(topics))} if topics else {}
        for topic in topics:
            info = described.get(topic)
            if info is None or info.get("error_code"):
                continue
            for partition in sorted(p["partition_index"] for p in info.get("partitions") or []):
                offset = batches = records = stored = 0
                while True:
                    request = FetchRequest(
                        replica_id=-1, max_wait_ms=_CENSUS_WAIT_MS, min_bytes=1, max_bytes=_CENSUS_FETCH_BYTES,
                        isolation_level=0, max_version=11,
                        topics=[FetchRequest.FetchTopic(topic=topic, partitions=[FetchRequest.FetchTopic.FetchPartition(
                            partition=partition, fetch_offset=offset, partition_max_bytes=_CENSUS_FETCH_BYTES,
                            log_start_offset=-1, current_leader_epoch=-1)])],
                    )
                    response = manager.run(manager.send, request)
                    data = response.responses[0].partitions[0]
                    if data.error_code:
                        raise DriftlineError(f"reading {topic}[{partition}]@{offset} failed: error {data.error_code}")
                    memory = MemoryRecords(data.records or b"")
                    before = batches
                    while (batch := memory.next_batch()) is not None:
                        batches += 1
                        records += batch.last_offset_delta + 1
                        stored += batch.size_in_bytes
                        offset = batch.next_offset
                    if batches == before or offset >= data.high_watermark:
                        break
                counted.append(PartitionBatches(topic, partition, batches, records, stored))
    except KafkaError as exc:
        raise _unreachable(settings, exc) from exc
    finally:
        admin.close()
    return counted
