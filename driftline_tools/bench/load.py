"""Offered load and what comes out: a paced event publisher and a predictions collector thread.

Latency is measured from the moment an event is handed to the producer (its ``event_time`` is
stamped then) to the moment the collector reads its prediction; both clocks are this process's
``time.time()``, so no clock skew enters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from driftline.contracts import utc_now
from driftline.settings import ProducerSettings

logger = logging.getLogger(__name__)

#: Fetch wait of the collector: the embedded broker holds a fetch for the full wait, which would be
#: added to every contender's latency alike; 5 ms keeps that small at the cost of idle fetches.
COLLECTOR_FETCH_WAIT_MS = 5
#: The bench creates its topics first; a predictions topic still missing after this is an error.
COLLECTOR_TOPIC_WAIT_S = 60.0


def event_pool(settings: ProducerSettings, size: int, seed: int = 2024) -> list[dict[str, Any]]:
    """The benchmark's event stream content: ``size`` generated events, the same for every contender."""
    from producers.generator import build_world, event_stream

    world = build_world(settings.seed, settings.n_customers, settings.n_merchants)
    rng = np.random.default_rng(seed)
    return list(event_stream(world, size, rng, start_time=utc_now(), rate=1000.0))


class Publisher:
    """Sends events from the pool with fresh ids, stamping ``event_time`` at send; remembers send times."""

    def __init__(self, settings: ProducerSettings, pool: list[dict[str, Any]]) -> None:
        from producers.kafka_clients import create_producer

        self.settings = settings
        self.pool = pool
        self.sent_at: dict[str, float] = {}
        # Linger and batch size from the settings the bench gives (BENCH_PRODUCER_LINGER_MS): a short
        # linger so the latency steps measure the contenders, not the load's batching.
        self._producer = create_producer(settings, max_in_flight_requests_per_connection=5)
        self._next = 0

    def _events(self, tag: str, count: int) -> Iterator[tuple[str, bytes, dict[str, Any]]]:
        for i in range(count):
            base = self.pool[(self._next + i) % len(self.pool)]
            yield f"{tag}-{i:07d}", str(base["customer_id"]).encode(), base
        self._next += count

    def _send(self, event_id: str, key: bytes, base: dict[str, Any]) -> None:
        now = utc_now()
        event = {**base, "event_id": event_id,
                 "event_time": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")}
        self.sent_at[event_id] = now.timestamp()
        self._producer.send(self.settings.events_topic, key=key, value=orjson.dumps(event))

    def burst(self, tag: str, count: int) -> list[str]:
        """Send ``count`` events as fast as the producer takes them and wait for the acks."""
        ids = []
        for event_id, key, base in self._events(tag, count):
            self._send(event_id, key, base)
            ids.append(event_id)
        self._producer.flush(timeout=120)
        return ids

    def paced(self, tag: str, rate: float, seconds: float) -> list[str]:
        """Send at ``rate`` events/s for ``seconds`` (in 5 ms ticks) and wait for the acks."""
        count = max(int(rate * seconds), 1)
        ids = []
        started = time.monotonic()
        for i, (event_id, key, base) in enumerate(self._events(tag, count)):
            delay = started + i / rate - time.monotonic()
            if delay > 0.005:
                time.sleep(delay)
            self._send(event_id, key, base)
            ids.append(event_id)
        self._producer.flush(timeout=120)
        return ids

    def close(self) -> None:
        """Close the producer."""
        self._producer.close(timeout=10)


class Collector(threading.Thread):
    """Reads the predictions topic from the start; records when each event's first prediction came."""

    def __init__(self, settings: ProducerSettings) -> None:
        super().__init__(daemon=True, name="bench-collector")
        self.settings = settings
        self.received_at: dict[str, float] = {}
        self.duplicates = 0
        self.errors: list[str] = []
        self._stop_event = threading.Event()
        self._ready = threading.Event()

    def run(self) -> None:
        """Poll until stopped."""
        from producers.kafka_clients import open_reader

        try:
            reader = open_reader(
                self.settings, [self.settings.predictions_topic], wait_s=COLLECTOR_TOPIC_WAIT_S,
                fetch_max_wait_ms=COLLECTOR_FETCH_WAIT_MS, max_partition_fetch_bytes=8 * 1024 * 1024,
            )
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            self._ready.set()
            raise
        self._ready.set()
        with reader:
            while not self._stop_event.is_set():
                batch = reader.poll(timeout_s=0.05, max_records=20_000)
                now = time.time()
                for record in batch:
                    event_id = orjson.loads(record.value or b"")["event_id"]
                    if event_id in self.received_at:
                        self.duplicates += 1
                    else:
                        self.received_at[event_id] = now

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Block until the consumer is assigned."""
        self._ready.wait(timeout_s)

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop_event.set()
        self.join(timeout=10)

    def count(self, ids: list[str]) -> int:
        """How many of ``ids`` have a prediction."""
        got = self.received_at
        return sum(1 for i in ids if i in got)
