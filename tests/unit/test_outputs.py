"""Outputs and their delivery: sizes, replacements, retries and holds, with a scripted producer."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import errors as kafka_errors
from faust.exceptions import ProducerSendError
from prometheus_client import CollectorRegistry

from driftline.contracts import (
    TRUNCATED_KEEP_BYTES,
    DeadLetter,
    Prediction,
    StageTimings,
    largest_whole_dead_letter,
)
from stream_app.adapters.metrics import WorkerMetrics
from stream_app.adapters.publisher import Publisher, backoff_s, is_permanent
from stream_app.core.outputs import Output, dead_letter_output, fallback, prediction_output
from stream_app.core.pipeline import RawRecord

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LIMIT = 100_000


def source(value: bytes = b'{"event_id":"e1"}', key: bytes | None = b"C1", offset: int = 7) -> RawRecord:
    return RawRecord(key=key, value=value, topic="events", partition=2, offset=offset)


def letter(value: bytes, key: bytes | None = b"C1") -> DeadLetter:
    return DeadLetter.for_input(
        key, value, error_type="too_large", reason="too big", source_topic="events", source_partition=2,
        source_offset=7, failed_at=NOW,
    )


def prediction(event_id: str = "e1") -> Prediction:
    return Prediction(
        event_id=event_id, prediction_id="p", entities={"customer_id": "C1"}, model_name="m", model_version="3",
        score=0.2, threshold=0.5, decision=False, missing_features=[], degraded=False, event_time=NOW,
        scored_at=NOW, timings=StageTimings(decode_s=0, features_s=0, predict_s=0),
    )


def test_a_dead_letter_that_fits_carries_its_input_whole() -> None:
    out = dead_letter_output(letter(b"x" * 1000), "dl", LIMIT)
    assert out.letter is not None and not out.letter.original_truncated
    assert out.letter.original_value == b"x" * 1000
    assert out.size <= LIMIT


def test_a_dead_letter_too_large_keeps_the_first_bytes_length_and_hash() -> None:
    value = b"y" * 2_000_000
    out = dead_letter_output(letter(value, key=b"k" * 300_000), "dl", LIMIT)
    decoded = DeadLetter.model_validate_json(out.value)
    assert decoded.original_truncated
    assert decoded.original_value == value[:TRUNCATED_KEEP_BYTES]
    assert decoded.original_key == b"k" * TRUNCATED_KEEP_BYTES
    assert decoded.original_length == len(value)
    assert decoded.original_sha256 == hashlib.sha256(value).hexdigest()
    assert out.size <= LIMIT


@pytest.mark.parametrize("max_request", [65_536, 100_000, 1_000_000, 10_000_000])
def test_inputs_up_to_the_largest_whole_size_dead_letter_whole(max_request: int) -> None:
    n = largest_whole_dead_letter(max_request)
    key = b"k" * (n // 2)
    out = dead_letter_output(letter(b"\xff" * (n - len(key)), key=key), "dl", max_request)
    assert out.letter is not None and not out.letter.original_truncated
    assert out.size <= max_request


def test_a_refused_prediction_becomes_an_output_failed_dead_letter_of_its_input() -> None:
    raw = source()
    out = prediction_output(prediction(), raw, "predictions")
    replacement = fallback(out, "MessageSizeTooLargeError", "dl", LIMIT, "3", NOW)
    assert replacement is not None and replacement.kind == "dead_letter" and replacement.topic == "dl"
    decoded = DeadLetter.model_validate_json(replacement.value)
    assert decoded.error_type == "output_failed"
    assert "predictions" in decoded.reason and "MessageSizeTooLargeError" in decoded.reason
    assert (decoded.original_key, decoded.original_value) == (raw.key, raw.value)
    assert (decoded.source_partition, decoded.source_offset, decoded.event_id) == (2, 7, "e1")


def test_a_refused_dead_letter_is_cut_and_a_cut_one_has_no_replacement() -> None:
    out = dead_letter_output(letter(b"z" * 10_000), "dl", LIMIT)
    cut = fallback(out, "PolicyViolationError", "dl", LIMIT, "3", NOW)
    assert cut is not None and cut.letter is not None and cut.letter.original_truncated
    assert fallback(cut, "PolicyViolationError", "dl", LIMIT, "3", NOW) is None


def test_errors_are_classified_through_faust_wrapping() -> None:
    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = kafka_errors.MessageSizeTooLargeError()
    assert is_permanent(wrapped)
    assert not is_permanent(kafka_errors.KafkaTimeoutError())
    assert not is_permanent(kafka_errors.UnknownError())  # seen once after a topic was recreated
    assert [backoff_s(a) for a in (1, 2, 3, 10)] == [0.1, 0.2, 0.4, 5.0]


class ScriptedProducer:
    """Accepts or refuses each send by a rule on (topic, value, attempt of that value)."""

    def __init__(self, rule: Callable[[str, bytes, int], BaseException | None], raise_at_send: bool = False) -> None:
        self.rule = rule
        self.raise_at_send = raise_at_send
        self.tries: dict[bytes, int] = {}
        self.accepted: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes, *_: Any) -> asyncio.Future[None]:
        self.tries[value] = self.tries.get(value, 0) + 1
        error = self.rule(topic, value, self.tries[value])
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if error is None:
            self.accepted.append((topic, key, value))
            future.set_result(None)
        elif self.raise_at_send:
            raise error
        else:
            future.set_exception(error)
        return future


def publisher(
    producer: ScriptedProducer, blocked_after_s: float = 60.0
) -> tuple[Publisher, WorkerMetrics, list[float]]:
    metrics = WorkerMetrics(CollectorRegistry())
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        assert metrics.registry.get_sample_value("driftline_output_blocked") in (0.0, 1.0)

    return Publisher(producer, "dl", LIMIT, metrics, lambda: NOW, blocked_after_s, sleep=sleep), metrics, slept


async def test_retriable_failures_are_sent_again_until_acknowledged() -> None:
    producer = ScriptedProducer(lambda topic, value, attempt: kafka_errors.KafkaTimeoutError() if attempt < 3 else None)
    pub, metrics, slept = publisher(producer)
    outputs = [prediction_output(prediction(f"e{i}"), source(offset=i), "predictions") for i in range(3)]
    delivery = await pub.deliver(outputs, "3")
    assert delivery.attempts == 3 and not delivery.refused_predictions
    assert sorted(v for _, _, v in producer.accepted) == sorted(o.value for o in outputs)
    assert slept == [0.1, 0.2]
    sample = metrics.registry.get_sample_value(
        "driftline_output_send_failures_total", {"output": "prediction", "error": "KafkaTimeoutError"}
    )
    assert sample == 6


async def test_a_prediction_too_large_is_replaced_at_once_by_a_dead_letter() -> None:
    def rule(topic: str, value: bytes, attempt: int) -> BaseException | None:
        if topic == "predictions" and b'"e1"' in value:
            wrapped = ProducerSendError("Error while sending")
            wrapped.__cause__ = kafka_errors.MessageSizeTooLargeError()
            return wrapped
        return None

    producer = ScriptedProducer(rule, raise_at_send=True)
    pub, _, slept = publisher(producer)
    outputs = [prediction_output(prediction(f"e{i}"), source(offset=i), "predictions") for i in range(3)]
    delivery = await pub.deliver(outputs, "3")
    assert delivery.refused_predictions == {1}
    assert slept == []  # a replacement goes out without waiting
    topics = sorted(topic for topic, _, _ in producer.accepted)
    assert topics == ["dl", "predictions", "predictions"]
    letter_value = next(v for t, _, v in producer.accepted if t == "dl")
    assert DeadLetter.model_validate_json(letter_value).error_type == "output_failed"


async def test_a_dead_letter_refused_for_good_blocks_until_it_goes_through() -> None:
    refused_until = 4

    def rule(topic: str, value: bytes, attempt: int) -> BaseException | None:
        if topic == "dl" and attempt < refused_until:
            return kafka_errors.TopicAuthorizationFailedError()
        return None

    producer = ScriptedProducer(rule)
    pub, metrics, slept = publisher(producer)
    out: Output = dead_letter_output(letter(b"q" * 5000), "dl", LIMIT)
    delivery = await pub.deliver([out], "3")
    # whole letter refused -> cut letter, refused 3 times -> accepted on its 4th try
    assert delivery.attempts == 4 and delivery.blocked_s >= 0
    assert len(slept) == 3
    accepted = DeadLetter.model_validate_json(producer.accepted[0][2])
    assert accepted.original_truncated
    assert metrics.registry.get_sample_value("driftline_output_blocked") == 0.0


async def test_retries_past_the_limit_report_the_block() -> None:
    producer = ScriptedProducer(lambda topic, value, attempt: kafka_errors.KafkaTimeoutError() if attempt < 3 else None)
    pub, metrics, _ = publisher(producer, blocked_after_s=0.0)
    seen: list[float | None] = []
    original_sleep = pub._sleep

    async def sleep(seconds: float) -> None:
        seen.append(metrics.registry.get_sample_value("driftline_output_blocked"))
        await original_sleep(seconds)

    pub._sleep = sleep
    await pub.deliver([prediction_output(prediction(), source(), "predictions")], "3")
    assert seen == [1.0, 1.0]
    assert metrics.registry.get_sample_value("driftline_output_blocked") == 0.0
