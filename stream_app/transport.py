"""Faust's aiokafka transport with the consumer's fetch wait made a setting.

Faust fixes aiokafka's ``fetch_max_wait_ms`` at 1500 ms. A broker that implements long polling
answers a fetch as soon as a record arrives, so the wait costs nothing there; a broker that does
not (Tansu, the embedded default, measured: p50 370 ms at 1500 ms against 2.6 ms at 50 ms) holds
every fetch for the full wait, which becomes end-to-end latency. A short wait costs only a few
idle fetch requests per second on either.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


def _consumer_class(fetch_max_wait_ms: int) -> type[faust_aiokafka.Consumer]:
    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            # Read by AIOKafkaConsumer.start() when it builds its Fetcher; Faust has no setting for it.
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    return Consumer


class DriftlineApp(faust.App):
    """A Faust app whose consumer uses ``fetch_max_wait_ms`` from driftline's settings."""

    fetch_max_wait_ms: int = 5

    def _new_transport(self) -> Any:
        transport = faust_aiokafka.Transport(self.conf.broker_consumer, self)
        transport.Consumer = _consumer_class(self.fetch_max_wait_ms)  # type: ignore[misc]
        return transport
