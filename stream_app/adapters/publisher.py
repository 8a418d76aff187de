"""Deliver a batch's outputs: retry what can still succeed, replace what never will, hold the rest.

The agent acknowledges a batch's input offsets only after :meth:`Publisher.deliver` returns, and
it returns only when the broker has acknowledged an output for every input. :meth:`Publisher.send`
hands a batch's outputs to the producer first, so the agent can score the next batches while
these are in flight; it acknowledges batches strictly in the order they were read. A send that failed
for a reason that may pass (timeout, broker paused or restarting, leader moved, topic being
recreated) is sent again with backoff. A record the broker will never take (too large, topic
refused) is replaced by a smaller one (``stream_app.core.outputs.fallback``). When even the
smallest dead letter is refused, or retries have gone on for ``blocked_after_s``, the worker is
*blocked*: it says why in one log line, sets ``driftline_output_blocked`` to 1 and keeps retrying,
consuming nothing more and committing nothing past the held inputs, until the output goes through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import errors as kafka_errors

from stream_app.adapters.metrics import WorkerMetrics
from stream_app.core.outputs import Output, fallback

logger = logging.getLogger(__name__)

#: Errors that sending the same record again can never fix.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.PolicyViolationError,
    kafka_errors.CorruptRecordException,
)

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0


def root_error(exc: BaseException) -> BaseException:
    """The Kafka error behind ``exc`` (Faust wraps send errors in ProducerSendError)."""
    while not isinstance(exc, kafka_errors.KafkaError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def is_permanent(exc: BaseException) -> bool:
    """Whether the broker will never take this record, however often it is sent."""
    return isinstance(root_error(exc), PERMANENT_ERRORS)


def describe(exc: BaseException) -> str:
    """A one-line description of a send error."""
    cause = root_error(exc)
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return f"{type(cause).__name__}: {text}" if text else type(cause).__name__


def backoff_s(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: 0.1 s doubling up to 5 s."""
    return float(min(BACKOFF_FIRST_S * 2 ** max(attempt - 1, 0), BACKOFF_MAX_S))


@dataclass(frozen=True, slots=True)
class Sent:
    """Outputs handed to the producer, with what to await for each one's acknowledgement."""

    pending: list[tuple[int, Output]]
    waits: list[Awaitable[Any]]


@dataclass(slots=True)
class Delivery:
    """How a batch's outputs were delivered."""

    attempts: int = 1
    #: indices (into the outputs passed to ``deliver``) of predictions replaced by a dead letter
    refused_predictions: set[int] = field(default_factory=set)
    blocked_s: float = 0.0


class Publisher:
    """Sends outputs through the app's producer until the broker has acknowledged each one.

    Straight to the producer of Faust's app rather than through ``Topic.send``: the per-message
    channel machinery cost twice the rest of the batch in a profile, and driftline needs none of
    it (no callbacks, no Faust models, acknowledgements awaited here).
    """

    def __init__(
        self,
        producer: Any,
        dead_letter_topic: str,
        max_request_bytes: int,
        metrics: WorkerMetrics,
        now: Callable[[], datetime],
        blocked_after_s: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._producer = producer
        self._dead_letter_topic = dead_letter_topic
        self._max_request_bytes = max_request_bytes
        self._metrics = metrics
        self._now = now
        self._blocked_after_s = blocked_after_s
        self._sleep = sleep

    async def send(self, outputs: Sequence[Output]) -> Sent:
        """Hand every output to the producer; :meth:`deliver` then waits for the broker's acknowledgements.

        Split from :meth:`deliver` so the caller can time the hand-over and score the next batch
        while these are in flight.
        """
        pending = list(enumerate(outputs))
        return Sent(pending, await self._enqueue(pending))

    async def deliver(self, outputs: Sequence[Output], model_version: str, sent: Sent | None = None) -> Delivery:
        """Return once every output, or its replacement, is acknowledged by the broker.

        ``sent`` is the first attempt from :meth:`send`, when the caller made it already.
        """
        delivery = Delivery()
        pending = list(enumerate(outputs))
        started = time.monotonic()
        blocked = False
        while True:
            if sent is not None:
                failures, sent = await self._collect(sent.pending, sent.waits), None
            else:
                failures = await self._collect(pending, await self._enqueue(pending))
            if not failures:
                break
            retry: list[tuple[int, Output]] = []
            reason = ""
            waiting = 0  # failures sent again as they are (not replaced)
            refused_for_good = False  # a dead letter with nothing smaller to send instead
            for (index, output), exc in failures:
                error = describe(exc)
                self._metrics.output_send_failures.labels(output.kind, type(root_error(exc)).__name__).inc()
                if is_permanent(exc):
                    replacement = fallback(
                        output, error, self._dead_letter_topic, self._max_request_bytes, model_version, self._now()
                    )
                    if replacement is not None:
                        logger.warning(
                            "the %s for %s was refused for good (%s); publishing a %s in its place",
                            output.kind.replace("_", " "), output.where, error,
                            "dead letter" if output.kind == "prediction" else "dead letter cut to its first bytes",
                        )
                        if output.kind == "prediction":
                            delivery.refused_predictions.add(index)
                        retry.append((index, replacement))
                        continue
                    refused_for_good = True
                    reason = f"the dead letter for {output.where} is refused by {output.topic}: {error}"
                retry.append((index, output))
                waiting += 1
                reason = reason or f"sending to {output.topic} for {output.where} fails: {error}"
            if not waiting:  # every failure was replaced: send the replacements at once
                pending = retry
                continue
            waited = time.monotonic() - started
            if not blocked and (refused_for_good or waited >= self._blocked_after_s):
                blocked = True
                self._metrics.output_blocked.set(1)
                logger.error(
                    "output blocked: %s; holding %d outputs and their inputs' offsets (nothing past them is "
                    "committed) and retrying every %.0fs", reason, len(retry), BACKOFF_MAX_S,
                )
            elif delivery.attempts == 1:
                logger.warning("%d of %d outputs not acknowledged (%s); retrying", len(retry), len(outputs), reason)
            await self._sleep(backoff_s(delivery.attempts))
            delivery.attempts += 1
            pending = retry
        if blocked:
            delivery.blocked_s = time.monotonic() - started
            self._metrics.output_blocked.set(0)
            logger.warning("output unblocked after %.1fs and %d attempts; consuming again",
                           delivery.blocked_s, delivery.attempts)
        return delivery

    async def _enqueue(self, pending: list[tuple[int, Output]]) -> list[Awaitable[Any]]:
        """Hand each pending output to the producer; return what to await for its acknowledgement."""
        waits: list[Awaitable[Any]] = []
        for _, output in pending:
            try:
                waits.append(await self._producer.send(output.topic, output.key, output.value, None, None, None))
            except Exception as exc:  # refused before it left: too large for the producer, producer closed
                waits.append(_failed(exc))
        return waits

    @staticmethod
    async def _collect(
        pending: list[tuple[int, Output]], waits: list[Awaitable[Any]]
    ) -> list[tuple[tuple[int, Output], BaseException]]:
        """Wait for every acknowledgement; return the outputs that failed, with their error."""
        results = await asyncio.gather(*waits, return_exceptions=True)
        return [(item, result) for item, result in zip(pending, results, strict=True)
                if isinstance(result, BaseException)]


async def _failed(exc: BaseException) -> None:
    raise exc
