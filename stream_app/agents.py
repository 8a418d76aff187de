"""The worker's scoring loop: a micro-batch in, predictions and dead letters out, then the offsets.

Thin by design: the batch logic is ``stream_app.core.pipeline``, delivery is
``stream_app.adapters.publisher``, the label join is ``stream_app.adapters.labels``. The events and
labels topics are read in batches through Faust's consumer (``stream_app.transport.BatchIntake``: each
fetch's messages as one list, without Faust's per-message stream machinery). Delivery is at-least-once:
an input is acknowledged to Faust's consumer, which commits acknowledged offsets, only after the broker
has acknowledged every output of its batch, and batches are finished in the order they were read. A
crash or a stop in between redelivers the batch; its predictions repeat with the same ``prediction_id``.

The feedback loop follows the same rule. A batch's served predictions are remembered in the join store
while its outputs are delivered, and its events are acknowledged only once both are done, so a crash
never loses join state. A batch of labels is acknowledged once it is joined and its rejected labels are
acknowledged on the dead-letter topic. A join store that fails or times out is retried with backoff
while the batch waits uncommitted (the worker holds, as it does for outputs, rather than lose a join):
after ``DRIFTLINE_OUTPUTS_IN_FLIGHT`` waiting batches it consumes nothing more until the store answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faust.types import Message

from drift.log import DriftLogRecord, append_record, drift_log_path
from driftline.registry import Task
from driftline.settings import WorkerSettings
from stream_app.adapters.labels import LabelBatchResult, LabelJoiner
from stream_app.adapters.metrics import WorkerMetrics
from stream_app.adapters.models import ModelHolder, ServingModel
from stream_app.adapters.publisher import Delivery, Publisher
from stream_app.adapters.serving import RoutedResult, follow_aliases, score_routed
from stream_app.app import Topics
from stream_app.core.canary_guard import CanaryGuard, GuardLimits
from stream_app.core.outputs import Output, dead_letter_output, prediction_output
from stream_app.core.pipeline import BatchResult, Clock, RawRecord, process_batch
from stream_app.transport import BatchIntake, DriftlineApp

logger = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
CANARY_CHECK_S = 2.0
#: How often live performance, coverage and the CBPE estimate are computed and exported.
PERFORMANCE_EXPORT_S = 5.0


def _guarded(name: str, body: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """Run a housekeeping timer so that its failure is logged and never stops the scoring agent."""

    async def run() -> None:
        try:
            await body()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("%s failed; scoring goes on and the next tick retries", name)

    run.__name__ = name
    return run


def _record(message: Message) -> RawRecord:
    return RawRecord(
        key=message.key, value=message.value, topic=message.topic,
        partition=message.partition, offset=message.offset,
    )


def split_by_topic(messages: Sequence[Message], events_topic: str) -> tuple[list[Message], list[Message]]:
    """A fetch's events and its other messages (labels), each in the order read."""
    events: list[Message] = []
    others: list[Message] = []
    for message in messages:
        (events if message.topic == events_topic else others).append(message)
    return events, others


def served_tasks(routed: RoutedResult) -> dict[str, Task]:
    """Model version -> task of every version that served part of a batch."""
    return {model.model.metadata.version: model.model.metadata.task for model, _ in routed.parts}


def batch_outputs(result: BatchResult, topics: Topics, max_request_bytes: int) -> list[Output]:
    """The batch's records to publish: predictions first, then dead letters (each sized to fit)."""
    predictions_topic = topics.predictions.get_topic_name()
    dead_letter_topic = topics.dead_letters.get_topic_name()
    outputs = [
        prediction_output(prediction, source, predictions_topic)
        for prediction, source in zip(result.predictions, result.prediction_sources, strict=True)
    ]
    outputs.extend(dead_letter_output(letter, dead_letter_topic, max_request_bytes) for letter in result.dead_letters)
    return outputs


@dataclass(slots=True)
class InFlight:
    """A scored batch whose outputs are with the producer, awaiting the broker's acknowledgement."""

    messages: Sequence[Message]
    records: list[RawRecord]
    result: BatchResult
    parts: list[tuple[ServingModel, BatchResult]]
    serving: ServingModel
    canary: ServingModel | None
    shadow: ServingModel | None
    intake_s: float  # reading the messages and routing, outside the pipeline's stages
    output_s: float  # building, encoding and handing the outputs to the producer
    handed_over: float  # clock.perf() when the producer had them all
    delivery: asyncio.Future[Delivery]  # done when every output is acknowledged and the predictions remembered


@dataclass(slots=True)
class LabelsInFlight:
    """A batch of labels being joined; done once joined and its dead letters are acknowledged."""

    messages: Sequence[Message]
    delivery: asyncio.Future[LabelBatchResult]


async def _delivered_and_remembered(delivery: Awaitable[Delivery], remembered: asyncio.Future[None]) -> Delivery:
    """The batch's delivery, once its predictions are in the join store too."""
    try:
        delivered = await delivery
        await remembered
        return delivered
    finally:
        remembered.cancel()  # a no-op once done; a stop or a failed delivery must not leave it retrying


def register_agents(
    app: DriftlineApp, topics: Topics, holder: ModelHolder, metrics: WorkerMetrics, clock: Clock,
    settings: WorkerSettings, drift_log_home: Path | None = None, joiner: LabelJoiner | None = None,
) -> None:
    """Attach the scoring agent and the model-refresh timer to ``app``.

    With a ``joiner``, the labels topic is read too: labels are joined to the predictions remembered
    for them, and live performance, label coverage and the CBPE estimate are exported on a timer.
    """
    publisher: Publisher | None = None
    guard = CanaryGuard(GuardLimits(
        max_dead_letter_increase=settings.canary_max_dead_letter_increase,
        max_p99_ratio=settings.canary_max_p99_ratio, max_score_psi=settings.canary_max_score_psi,
        min_events=settings.canary_min_events,
    ))

    in_flight: deque[InFlight | LabelsInFlight] = deque()
    label_order = asyncio.Lock()  # label batches are joined one at a time, in the order they were read

    def get_publisher() -> Publisher:
        nonlocal publisher
        if publisher is None:  # built on first use: the app's producer exists once the worker runs
            publisher = Publisher(
                app.producer, topics.dead_letters.get_topic_name(), settings.max_request_bytes, metrics,
                clock.now, blocked_after_s=settings.send_timeout_s,
            )
        return publisher

    def drain(_: object = None) -> None:
        # Finish acknowledged batches in the order they were read: an offset is only ever committed after
        # every output before it (Faust commits up to the first unacknowledged offset).
        while in_flight and in_flight[0].delivery.done():
            head = in_flight[0].delivery
            if not head.cancelled() and head.exception() is not None:
                return  # left at the head: the agent raises it
            batch = in_flight.popleft()
            if isinstance(batch, LabelsInFlight):
                finish_labels(batch)
            else:
                finish(batch)

    def finish_labels(batch: LabelsInFlight) -> None:
        result = batch.delivery.result()
        ack = app.consumer.ack
        for message in batch.messages:
            ack(message)
        for letter in result.dead_letters:
            metrics.dead_letters.labels(letter.error_type).inc()

    def finish(batch: InFlight) -> None:
        delivery = batch.delivery.result()
        ack = app.consumer.ack
        for message in batch.messages:
            ack(message)
        result, serving, canary = batch.result, batch.serving, batch.canary
        acked_at = time.time()
        metrics.observe_batch(
            result, len(batch.messages), batch.output_s, clock.perf() - batch.handed_over,
            (acked_at - p.event_time.timestamp() for i, p in enumerate(result.predictions)
             if i not in delivery.refused_predictions),
            refused_predictions=len(delivery.refused_predictions), intake_s=batch.intake_s,
        )
        metrics.observe_freshness(result.feature_ages, serving.view_ttls)
        guard.watch(canary.model.metadata.version if canary is not None and settings.canary_percent > 0 else None)
        if guard.canary_version is not None:
            for model, part_result in batch.parts:
                side = guard.canary if model is canary else guard.production
                side.observe(len(part_result.predictions), len(part_result.dead_letters),
                             (acked_at - p.event_time.timestamp() for p in part_result.predictions),
                             part_result.scores.tolist())
        for model, part_result in batch.parts:
            model.freshness.observe(part_result.feature_ages)
            if part_result.scores.size:
                model.drift.observe(part_result.matrix, part_result.scores)  # tests run in evaluate_drift
                if joiner is not None:
                    meta = model.model.metadata
                    joiner.observe_scores(meta.version, meta.threshold, meta.task, part_result.scores.tolist(),
                                          clock.now())
        if batch.shadow is not None:
            start_shadow(batch.shadow, batch.records, result)

    async def score_events() -> None:
        events_topic = topics.events.get_topic_name()
        try:
            while True:
                fetched = await intake.get()
                events, labels = split_by_topic(fetched, events_topic) if joiner is not None else (fetched, [])
                for start in range(0, len(events), settings.batch_size):
                    await score_batch(events[start:start + settings.batch_size])
                for start in range(0, len(labels), settings.batch_size):
                    await join_labels(labels[start:start + settings.batch_size])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Never expected (bad input is data, delivery retries). Stop the worker rather than score on
            # past a batch that can never be acknowledged: a restart redelivers it.
            logger.exception("the scoring loop failed; the worker stops and its uncommitted events are redelivered")
            await app.crash(exc)
        finally:
            for pending in in_flight:
                pending.delivery.cancel()
            in_flight.clear()

    async def score_batch(messages: list[Message]) -> None:
        loop_started = clock.perf()
        # Each slot is read once: a model swap never splits a batch.
        serving, canary, shadow = holder.current, holder.canary, holder.shadow
        records = [_record(m) for m in messages]
        routed = await score_routed(records, serving, canary, settings.canary_percent, clock)
        started = clock.perf()
        # Reading the messages, and routing around the pipeline's own stages, count as decode.
        intake_s = started - loop_started - routed.result.stage_s
        publisher = get_publisher()
        outputs = batch_outputs(routed.result, topics, settings.max_request_bytes)
        remembered = remember(routed)  # one round trip, overlapping the hand-over and the broker's acks
        sent = await publisher.send(outputs)
        handed_over = clock.perf()
        delivered = publisher.deliver(outputs, serving.model.metadata.version, sent)
        delivery = asyncio.ensure_future(
            delivered if remembered is None else _delivered_and_remembered(delivered, remembered)
        )
        output_s = routed.result.records_s + handed_over - started  # records, encoding, hand-over
        batch = InFlight(messages, records, routed.result, routed.parts, serving, canary, shadow,
                         intake_s, output_s, handed_over, delivery)
        in_flight.append(batch)
        batch.delivery.add_done_callback(drain)
        held = clock.perf()
        await hold_inputs()
        done = clock.perf()
        metrics.stage_seconds.labels("held").observe(done - held)
        metrics.batch_seconds.observe(done - loop_started)

    async def hold_inputs() -> None:
        """Return once fewer than DRIFTLINE_OUTPUTS_IN_FLIGHT batches await their acknowledgements."""
        while True:
            if in_flight and in_flight[0].delivery.done():
                in_flight[0].delivery.result()  # a delivery that failed unexpectedly stops the loop
            if len(in_flight) < settings.outputs_in_flight:
                break
            await asyncio.wait([in_flight[0].delivery])  # hold the inputs: consume nothing more
            drain()

    def remember(routed: RoutedResult) -> asyncio.Future[None] | None:
        """Start keeping the batch's served predictions (production and canary) for their labels.

        Started before the broker's acknowledgements, so it may keep a prediction the broker then refuses
        for good (published as an ``output_failed`` dead letter instead): rare, and harmless to the join.
        """
        predictions = routed.result.predictions
        if joiner is None or not predictions:
            return None
        tasks, keep = served_tasks(routed), joiner
        return asyncio.ensure_future(keep.retrying(
            lambda: keep.remember(predictions, tasks), f"a batch of {len(predictions)} predictions"
        ))

    async def join_labels(messages: list[Message]) -> None:
        records = [_record(m) for m in messages]
        joined = asyncio.ensure_future(join_and_deliver(records))
        in_flight.append(LabelsInFlight(messages, joined))
        joined.add_done_callback(drain)
        await hold_inputs()

    async def join_and_deliver(records: list[RawRecord]) -> LabelBatchResult:
        """Join a batch of labels, then publish its rejected labels as dead letters and await their acks."""
        assert joiner is not None
        keep = joiner
        async with label_order:
            result = await keep.retrying(lambda: keep.process(records), f"a batch of {len(records)} labels")
        if result.dead_letters:
            publisher = get_publisher()
            dead_letter_topic = topics.dead_letters.get_topic_name()
            outputs = [dead_letter_output(d, dead_letter_topic, settings.max_request_bytes)
                       for d in result.dead_letters]
            await publisher.deliver(outputs, "", await publisher.send(outputs))
        return result

    shadow_task: asyncio.Task[None] | None = None

    def start_shadow(shadow: ServingModel, records: list[RawRecord], production: BatchResult) -> None:
        """Score the batch with the shadow version in the background; never awaited by the scoring loop."""
        nonlocal shadow_task
        if shadow_task is not None and not shadow_task.done():
            metrics.shadow_skipped.inc()  # the shadow is slower than the stream: skip, never queue
            return
        shadow_task = asyncio.create_task(run_shadow(shadow, records, production))

    async def run_shadow(shadow: ServingModel, records: list[RawRecord], production: BatchResult) -> None:
        started = clock.perf()
        shadow_version = shadow.model.metadata.version

        def count_failure(sent: asyncio.Future[Any]) -> None:
            if not sent.cancelled() and sent.exception() is not None:
                metrics.shadow_failures.labels(shadow_version).inc()
        try:
            result = await process_batch(records, shadow.rules, shadow.model, shadow.reader, clock)
            topic = topics.shadow_predictions.get_topic_name()
            for output in (prediction_output(p, s, topic) for p, s in zip(
                    result.predictions, result.prediction_sources, strict=True)):
                # Fire and forget: a shadow record lost to a broker error costs a comparison, not an event.
                sent = asyncio.ensure_future(await app.producer.send(topic, output.key, output.value, None, None, None))
                sent.add_done_callback(count_failure)
            metrics.observe_shadow(production.predictions, result.predictions, shadow_version,
                                   clock.perf() - started)
        except Exception:
            metrics.shadow_failures.labels(shadow_version).inc()
            logger.exception("shadow version %s failed on a batch; production is unaffected", shadow_version)

    def export_test_performance(model: ServingModel | None) -> None:
        # The denominator of DriftlineLivePerformanceLow: the version's held-out metrics from the registry.
        if joiner is not None and model is not None:
            meta = model.model.metadata
            joiner.set_test_performance(meta.version, meta.metrics)

    async def refresh_model() -> None:
        for change in await follow_aliases(holder, metrics):
            if change.outcome == "swapped" and change.alias in ("production", "canary"):
                export_test_performance(holder.slot(change.alias))

    async def export_performance() -> None:
        assert joiner is not None
        # Evaluating the windows takes tens of ms (sklearn over thousands of rows): keep it off the event loop.
        export = await asyncio.to_thread(joiner.evaluate, clock.now(), joiner.coverage())
        joiner.publish(export)

    async def check_canary() -> None:
        canary = holder.canary
        guard.watch(canary.model.metadata.version if canary is not None and settings.canary_percent > 0 else None)
        reason = guard.verdict() if settings.canary_guard else None
        if reason is None:
            return
        logger.warning("rolling the canary back: %s", reason)
        metrics.canary_rollbacks.labels(str(guard.canary_version)).inc()
        guard.watch(None)
        await holder.retire_canary(f"guard: {reason}")

    async def evaluate_drift() -> None:
        serving = holder.current
        started = clock.perf()
        # The statistics take tens of ms over a few thousand rows: keep them off the event loop.
        report = await asyncio.to_thread(serving.drift.evaluate)
        metrics.drift_evaluation_seconds.observe(clock.perf() - started)
        if holder.current is not serving:  # a swap meanwhile makes this report stale
            return
        meta = serving.model.metadata
        metrics.observe_drift(report, meta.version)
        if drift_log_home is not None and report.window_events:
            record = DriftLogRecord.of(
                meta.name, meta.version, clock.now(), report, serving.freshness.summary(serving.view_ttls)
            )
            path = drift_log_path(drift_log_home, meta.name, meta.version)
            await asyncio.to_thread(append_record, path, record)

    async def report_lag() -> None:
        consumer = app.consumer
        metrics.consumer_lag.clear()
        for tp in consumer.assignment():
            if tp.topic != topics.events.get_topic_name():
                continue
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                metrics.consumer_lag.labels(str(tp.partition)).set(max(highwater - position, 0))

    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        # Faust's assignment is eager: the argument is this worker's whole new assignment.
        assigned: set[Any] = args[0] if args else set()
        metrics.assigned_partitions.set(sum(1 for tp in assigned if tp.topic == topics.events.get_topic_name()))

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        metrics.assigned_partitions.set(0)

    # The events (and labels) topics are subscribed through the conductor, like an agent's, and read whole
    # fetches at a time.
    batch_topics = {topics.events.get_topic_name()}
    app.topics.add(topics.events)
    if joiner is not None:
        labels = app.topic(settings.labels_topic, key_type=bytes, value_type=bytes, value_serializer="raw",
                           key_serializer="raw")
        batch_topics.add(labels.get_topic_name())
        app.topics.add(labels)
        for model in (holder.current, holder.canary):
            export_test_performance(model)
        app.timer(PERFORMANCE_EXPORT_S)(_guarded("export_performance", export_performance))
    intake = app.batch_intake = BatchIntake(batch_topics)
    app.task(score_events)
    app.timer(settings.model_poll_s)(_guarded("refresh_model", refresh_model))
    app.timer(LAG_INTERVAL_S)(_guarded("report_lag", report_lag))
    app.timer(CANARY_CHECK_S)(_guarded("check_canary", check_canary))
    app.timer(settings.drift_interval_s)(_guarded("evaluate_drift", evaluate_drift))
    app.on_partitions_assigned.connect(on_assigned)
    app.on_partitions_revoked.connect(on_revoked)
