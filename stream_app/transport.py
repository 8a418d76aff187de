"""Faust's aiokafka transport, with two changes the worker needs.

**The fetch wait is a setting.** Faust fixes aiokafka's ``fetch_max_wait_ms`` at 1500 ms. A broker
that implements long polling answers a fetch as soon as a record arrives, so the wait costs nothing
there; a broker that does not (Tansu, the embedded default, measured: p50 370 ms at 1500 ms against
2.6 ms at 50 ms) holds every fetch for the full wait, which becomes end-to-end latency.

**Batch topics skip the per-message path.** Faust's fetcher hands every message to the conductor
and on through a channel queue, a stream and an event (``Service.wait_first`` with four tasks per
message: about 15% of the worker's event loop, profiled). The worker scores batches, so for the
topics in :class:`BatchIntake` the fetcher hands over each fetch's messages as one list instead.
Everything else is Faust's: the group, offsets read and gaps, ``track_message`` (so a rebalance
waits for them), acknowledgement through ``Consumer.ack`` and the commit of acknowledged offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, cast

import aiokafka
import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message


class BatchIntake:
    """Each fetch's messages of ``topics``, in fetch order, for one consumer task.

    Bounded: when ``max_fetches`` lists wait unread, the fetcher waits too, so the worker holds
    at most that many fetches (aiokafka's ``max_poll_records`` each) besides what it is scoring.
    """

    def __init__(self, topics: Iterable[str], max_fetches: int = 2) -> None:
        self.topics = frozenset(topics)
        self._queue: asyncio.Queue[list[Message]] = asyncio.Queue(max_fetches)

    async def get(self) -> list[Message]:
        """The next fetch's messages (never empty)."""
        return await self._queue.get()

    async def put(self, messages: list[Message], suspended: asyncio.Event) -> bool:
        """Hand over one fetch's messages; False if the consumer's flow was suspended (a rebalance) first."""
        if not self._queue.full():
            self._queue.put_nowait(messages)
            return True
        put = asyncio.ensure_future(self._queue.put(messages))
        stop = asyncio.ensure_future(suspended.wait())
        try:
            await asyncio.wait({put, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not put.done():
                put.cancel()
        return put.done() and not put.cancelled()


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

        async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - run by Faust's Fetcher
            intake = cast(DriftlineApp, self.app).batch_intake
            if intake is None:
                await super()._drain_messages(fetcher)
                return
            await _drain_in_batches(self, fetcher, intake)

    return Consumer


async def _drain_in_batches(consumer: Any, fetcher: Any, intake: BatchIntake) -> None:
    """Faust's ``Consumer._drain_messages``, with the intake's topics handed over a fetch at a time.

    The bookkeeping per message is Faust's own (read offsets, gaps, periodic commit); only the
    delivery differs. Messages of other topics take Faust's usual path.
    """
    callback = consumer.callback
    should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    commit_every = consumer._commit_every
    batch_topics = intake.topics
    track = consumer.track_message
    try:
        while not (should_stop() or fetcher_should_stop()):
            consumer.diag.set_flag(CONSUMER_FETCHING)
            batch: list[Message] = []
            ait = consumer.getmany(timeout=1.0)
            await consumer.sleep(0)  # getmany may return at once, again and again: let the loop run
            if not consumer.should_stop:
                async for tp, message in ait:
                    offset = message.offset
                    r_offset = get_read_offset(tp)
                    if r_offset is not None and offset < r_offset:
                        continue  # read before a seek back: Faust drops these too
                    if offset - (r_offset or 0) > 1 and r_offset and acks_enabled_for(message.topic):
                        await consumer._add_gap(tp, r_offset + 1, offset)
                    if commit_every is not None and consumer._n_acked >= commit_every:
                        consumer._n_acked = 0
                        await consumer.commit()
                    if message.topic in batch_topics:
                        track(message)  # pending until acknowledged: a rebalance waits for it
                        batch.append(message)
                    else:
                        await consumer.wait_first(callback(message), consumer.suspend_flow.wait())
                    set_read_offset(tp, offset)
            if batch and not await intake.put(batch, consumer.suspend_flow):
                # A rebalance began while the scorer was busy: these were never handed over. Faust
                # seeks back to the committed offsets, so they are read again, here or elsewhere.
                consumer._unacked_messages.difference_update(batch)
            consumer.diag.unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            return
        raise
    finally:
        consumer.diag.unset_flag(CONSUMER_FETCHING)


class DriftlineApp(faust.App):
    """A Faust app whose consumer uses driftline's fetch wait and, if set, hands batch topics over whole."""

    fetch_max_wait_ms: int = 5
    batch_intake: BatchIntake | None = None

    def _new_transport(self) -> Any:
        transport = faust_aiokafka.Transport(self.conf.broker_consumer, self)
        transport.Consumer = _consumer_class(self.fetch_max_wait_ms)  # type: ignore[misc]
        return transport
