"""The pure parts of the producer: schedule, valid/invalid mix, encoding, and the loop with a fake producer."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from producers.publish import (
    OutgoingMessage,
    Progress,
    PublishSummary,
    encode_event,
    encode_invalid,
    file_messages,
    invalid_positions,
    make_progress,
    mix_messages,
    send_delay,
    send_messages,
)

EVENT = {
    "event_id": "e-1",
    "event_time": "2026-01-01T12:00:00Z",
    "customer_id": "C00001",
    "merchant_id": "M0001",
    "amount": 12.5,
    "channel": "pos",
    "hour_of_day": 12,
}


# --- schedule -----------------------------------------------------------------------------------------


def test_send_delay_unbounded() -> None:
    assert send_delay(1000, 0, 0.0) == 0.0
    assert send_delay(1000, -1, 0.0) == 0.0


def test_send_delay_follows_schedule() -> None:
    assert send_delay(0, 100, 0.0) == 0.0
    assert send_delay(10, 100, 0.0) == pytest.approx(0.1)
    assert send_delay(10, 100, 0.04) == pytest.approx(0.06)
    assert send_delay(10, 100, 0.5) == 0.0  # behind schedule: no wait, catch up


# --- mixing -------------------------------------------------------------------------------------------


def test_invalid_positions_exact_count_and_deterministic() -> None:
    first = invalid_positions(1000, 0.05, seed=7)
    assert len(first) == 50
    assert first == invalid_positions(1000, 0.05, seed=7)
    assert first != invalid_positions(1000, 0.05, seed=8)
    assert all(0 <= p < 1000 for p in first)


@pytest.mark.parametrize(("count", "fraction", "expected"), [(0, 0.5, 0), (10, 0.0, 0), (10, 1.0, 10)])
def test_invalid_positions_edges(count: int, fraction: float, expected: int) -> None:
    assert len(invalid_positions(count, fraction, seed=1)) == expected


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_invalid_positions_rejects_bad_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match="invalid_fraction"):
        invalid_positions(10, fraction, seed=1)


def _valid(n: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(key=b"k", value=b"v%d" % i, valid=True, event_id=f"e{i}") for i in range(n)]


def _invalid(n: int) -> list[OutgoingMessage]:
    return [OutgoingMessage(key=None, value=b"bad%d" % i, valid=False) for i in range(n)]


def test_mix_places_invalid_at_positions_and_keeps_order() -> None:
    positions = frozenset({0, 3, 4})
    mixed = list(mix_messages(_valid(5), _invalid(3), 8, positions))
    assert [i for i, m in enumerate(mixed) if not m.valid] == [0, 3, 4]
    assert [m.value for m in mixed if m.valid] == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert [m.value for m in mixed if not m.valid] == [b"bad0", b"bad1", b"bad2"]


def test_mix_raises_when_a_source_runs_dry() -> None:
    with pytest.raises(ValueError, match="ran out of valid"):
        list(mix_messages(_valid(1), _invalid(0), 2, frozenset()))


# --- encoding -----------------------------------------------------------------------------------------


def test_encode_event_keys_by_customer_and_is_compact_json() -> None:
    message = encode_event({**EVENT, "event_time": datetime(2026, 1, 1, 12, tzinfo=UTC)})
    assert message.key == b"C00001"
    assert message.valid and message.event_id == "e-1"
    assert b" " not in message.value
    assert orjson.loads(message.value)["event_time"] == "2026-01-01T12:00:00Z"


class _Invalid:
    payload = b"\xffnope"


@pytest.mark.parametrize("payload", [b"\xffnope", (b"\xffnope", "not_json"), _Invalid()])
def test_encode_invalid_accepts_each_generator_shape(payload: Any) -> None:
    message = encode_invalid(payload)
    assert message == OutgoingMessage(key=None, value=b"\xffnope", valid=False)


def test_file_messages_sends_lines_as_is() -> None:
    good = orjson.dumps(EVENT)
    spaced = b'{"event_id": "e-2", "customer_id": "C2"}'
    lines = [good + b"\n", b"\n", b"   \n", spaced + b"\r\n", b"not json\n", b"[1, 2]"]
    messages = list(file_messages(lines))
    assert [m.value for m in messages] == [good, spaced, b"not json", b"[1, 2]"]
    assert [m.key for m in messages] == [b"C00001", b"C2", None, None]
    # Only "is it a JSON object": the schema is the served model's, checked by the worker.
    assert [m.valid for m in messages] == [True, True, False, False]
    assert [m.event_id for m in messages] == ["e-1", "e-2", None, None]


def test_file_messages_key_by_any_field_typed_as_text() -> None:
    lines = [b'{"event_id": "t1", "driver_id": 1001}', b'{"event_id": "t2", "driver_id": "D7"}',
             b'{"event_id": "t3", "driver_id": true}', b'{"event_id": "t4"}']
    assert [m.key for m in file_messages(lines, key_field="driver_id")] == [b"1001", b"D7", None, None]
    assert [m.key for m in file_messages(lines[:1], key_field=None)] == [None]


# --- the loop with a fake producer ----------------------------------------------------------------------


class _Future:
    def __init__(self) -> None:
        self.callbacks: list[Callable[..., Any]] = []
        self.errbacks: list[Callable[..., Any]] = []

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.callbacks.append(f)

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.errbacks.append(f)


class FakeProducer:
    """Acknowledges on flush; fails the values listed in ``fail``; raises on send for ``raise_on``."""

    def __init__(self, fail: set[bytes] | None = None, raise_on: set[bytes] | None = None) -> None:
        self.fail = fail or set()
        self.raise_on = raise_on or set()
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self._pending: list[tuple[bytes | None, _Future]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        from kafka.errors import KafkaTimeoutError

        if value in self.raise_on:
            raise KafkaTimeoutError("metadata not available")
        self.sent.append((topic, key, value))
        future = _Future()
        self._pending.append((value, future))
        return future

    def flush(self, timeout: float | None = None) -> None:
        for value, future in self._pending:
            if value in self.fail:
                for errback in future.errbacks:
                    errback(RuntimeError("boom"))
            else:
                for callback in future.callbacks:
                    callback("metadata")
        self._pending.clear()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_send_messages_counts_and_keys() -> None:
    producer = FakeProducer(fail={b"v2"})
    messages = list(mix_messages(_valid(4), _invalid(1), 5, frozenset({1})))
    summary = send_messages(producer, "events", messages)
    assert [v for _, _, v in producer.sent] == [b"v0", b"bad0", b"v1", b"v2", b"v3"]
    assert {t for t, _, _ in producer.sent} == {"events"}
    assert summary.attempted == 5
    assert summary.sent == 4
    assert summary.invalid_sent == 1
    assert summary.failed == 1
    assert (summary.first_event_id, summary.last_event_id) == ("e0", "e3")
    assert not summary.aborted


def test_send_messages_rate_limits_with_schedule() -> None:
    clock = FakeClock()
    summary = send_messages(FakeProducer(), "t", _valid(5), rate=10, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == pytest.approx([0.1, 0.1, 0.1, 0.1])
    assert summary.seconds == pytest.approx(0.4)
    assert summary.sent == 5


def test_send_messages_unbounded_never_sleeps() -> None:
    clock = FakeClock()
    send_messages(FakeProducer(), "t", _valid(50), rate=0, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_send_messages_aborts_after_repeated_send_errors() -> None:
    values = {m.value for m in _valid(20)}
    summary = send_messages(FakeProducer(raise_on=values), "t", _valid(20))
    assert summary.aborted
    assert summary.sent == 0
    assert summary.attempted == summary.failed == 5


def test_progress_draws_on_given_stream() -> None:
    stream = io.StringIO()
    progress = make_progress(True, 5, stream)
    assert isinstance(progress, Progress)
    send_messages(FakeProducer(), "t", _valid(5), progress=progress)
    assert "5/5" in stream.getvalue()
    assert stream.getvalue().endswith("\n")
    assert make_progress(False, 5, stream) is None


def test_summary_rate_counts_acknowledged_records() -> None:
    summary = PublishSummary(
        topic="transactions",
        attempted=10,
        sent=9,
        invalid_sent=1,
        failed=1,
        seconds=2.0,
        first_event_id="a",
        last_event_id="b",
    )
    assert summary.rate == pytest.approx(4.5)
    assert PublishSummary("transactions", 0, 0, 0, 0, 0.0).rate == 0.0
