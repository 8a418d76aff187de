"""Publish generated events (or JSON lines) to the events topic with kafka-python.

The pure parts, which plan what to send and when, are apart from the send loop: the
schedule (:func:`send_delay`), the deterministic mix of valid and invalid events
(:func:`invalid_positions`, :func:`mix_messages`) and the line reader (:func:`file_messages`).
The loop (:func:`send_messages`) takes any object with kafka-python's ``send``/``flush``, so a
test can hand it a fake producer.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TextIO, cast, get_args

import orjson

from driftline.contracts import utc_now
from driftline.errors import DriftlineError
from driftline.settings import ProducerSettings
from producers.kafka_clients import create_producer

logger = logging.getLogger(__name__)

#: Consecutive ``send`` calls that raise before the loop gives up (the broker is unreachable,
#: and each further call would block for ``max_block_ms`` too).
MAX_CONSECUTIVE_SEND_ERRORS = 5
#: Seconds to wait for outstanding acknowledgements at the end.
FLUSH_TIMEOUT_S = 60.0


# --- pure: what to send, and when -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One record to publish: key and value bytes, and whether it is meant to be a valid event."""

    key: bytes | None
    value: bytes
    valid: bool
    event_id: str | None = None


def send_delay(index: int, rate: float, elapsed: float) -> float:
    """Return seconds to wait before sending message ``index`` (0-based) at ``rate`` per second.

    Message ``i`` is due at ``i / rate`` seconds after the start, so a slow stretch is caught up
    afterwards rather than lowering the average rate; ``rate <= 0`` means no limit.
    """
    if rate <= 0:
        return 0.0
    return max(0.0, index / rate - elapsed)


def invalid_positions(count: int, invalid_fraction: float, seed: int) -> frozenset[int]:
    """Choose exactly ``round(count * invalid_fraction)`` positions for invalid events, by ``seed``."""
    if not 0.0 <= invalid_fraction <= 1.0:
        raise ValueError(f"invalid_fraction must be within [0, 1], got {invalid_fraction}")
    n_invalid = round(count * invalid_fraction)
    return frozenset(random.Random(seed).sample(range(count), n_invalid))


def encode_event(event: Mapping[str, Any]) -> OutgoingMessage:
    """Encode a generated event as compact JSON, keyed by its customer id."""
    value = orjson.dumps(event, option=orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY)
    customer = event.get("customer_id")
    event_id = event.get("event_id")
    return OutgoingMessage(
        key=str(customer).encode() if customer is not None else None,
        value=value,
        valid=True,
        event_id=str(event_id) if event_id is not None else None,
    )


class _HasPayload(Protocol):
    @property
    def payload(self) -> bytes:
        """The payload bytes."""


def encode_invalid(invalid: bytes | tuple[bytes, str] | _HasPayload) -> OutgoingMessage:
    """Wrap a deliberately invalid payload (an ``InvalidEvent``, bytes or ``(bytes, reason)``); no key."""
    if isinstance(invalid, bytes | bytearray):
        value = bytes(invalid)
    elif isinstance(invalid, tuple):
        value = bytes(invalid[0])
    else:
        value = bytes(invalid.payload)
    return OutgoingMessage(key=None, value=value, valid=False)


def mix_messages(
    valid: Iterable[OutgoingMessage],
    invalid: Iterable[OutgoingMessage],
    count: int,
    positions: frozenset[int],
) -> Iterator[OutgoingMessage]:
    """Yield ``count`` messages: from ``invalid`` at ``positions``, from ``valid`` elsewhere."""
    valid_it, invalid_it = iter(valid), iter(invalid)
    for index in range(count):
        source = invalid_it if index in positions else valid_it
        message = next(source, None)
        if message is None:
            kind = "invalid" if index in positions else "valid"
            raise ValueError(f"ran out of {kind} messages at position {index} of {count}")
        yield message


def file_messages(lines: Iterable[bytes], key_field: str | None = "customer_id") -> Iterator[OutgoingMessage]:
    """Turn JSON lines into messages, each value the line as-is; blank lines are skipped.

    The key is the line's ``key_field`` (a string or a whole number, as text) when present. Nothing
    is checked against a model's schema here: the worker decides, and refuses with a dead letter;
    ``valid`` only says whether the line is a JSON object.
    """
    for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            yield OutgoingMessage(key=None, value=line, valid=False)
            continue
        key_value = parsed.get(key_field) if key_field else None
        key = str(key_value).encode() if isinstance(key_value, str | int) and not isinstance(key_value, bool) else None
        event_id = parsed.get("event_id")
        yield OutgoingMessage(
            key=key, value=line, valid=True, event_id=event_id if isinstance(event_id, str) else None
        )


@dataclass(frozen=True, slots=True)
class PublishSummary:
    """What a publish run did (``driftline produce`` renders it)."""

    topic: str
    attempted: int
    sent: int
    invalid_sent: int
    failed: int
    seconds: float
    first_event_id: str | None = None
    last_event_id: str | None = None
    aborted: bool = False

    @property
    def rate(self) -> float:
        """Acknowledged records per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0


# --- the send loop ------------------------------------------------------------------------------------


class SendFuture(Protocol):
    """The part of kafka-python's ``FutureRecordMetadata`` the loop uses."""

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``f(metadata)`` on success."""

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``f(exception)`` on failure."""


class Producer(Protocol):
    """The part of kafka-python's ``KafkaProducer`` the loop uses."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> SendFuture:
        """Queue one record."""

    def flush(self, timeout: float | None = None) -> None:
        """Block until queued records are acknowledged or failed."""


class _Tally:
    """Acknowledgement counters, updated from the producer's I/O thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked = 0
        self.invalid_acked = 0
        self.failed = 0

    def ack(self, valid: bool) -> None:
        with self._lock:
            self.acked += 1
            self.invalid_acked += not valid

    def fail(self, error: BaseException) -> None:
        with self._lock:
            self.failed += 1
        logger.debug("send failed: %r", error)


class Progress:
    """A one-line progress display on a text stream, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, total: int | None, label: str = "publishing") -> None:
        self._stream = stream
        self._total = total
        self._label = label
        self._started = time.monotonic()
        self._drawn_at = 0.0

    def update(self, done: int, *, final: bool = False) -> None:
        """Redraw with ``done`` records sent so far."""
        now = time.monotonic()
        if not final and now - self._drawn_at < 0.1:
            return
        self._drawn_at = now
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self._total:
            width = 30
            filled = int(width * done / self._total)
            bar = "#" * filled + "-" * (width - filled)
            text = f"\r{self._label} [{bar}] {done}/{self._total} {rate:.0f}/s"
        else:
            text = f"\r{self._label} {done} {rate:.0f}/s"
        self._stream.write(text + ("\n" if final else ""))
        self._stream.flush()


def make_progress(enabled: bool, total: int | None, stream: TextIO | None = None) -> Progress | None:
    """Return a progress display when enabled and stderr is a terminal, or on ``stream`` if given."""
    if not enabled:
        return None
    if stream is None:
        if not sys.stderr.isatty():
            return None
        stream = sys.stderr
    return Progress(stream, total)


def send_messages(
    producer: Producer,
    topic: str,
    messages: Iterable[OutgoingMessage],
    rate: float = 0.0,
    progress: Progress | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    flush_timeout_s: float = FLUSH_TIMEOUT_S,
) -> PublishSummary:
    """Send ``messages`` at ``rate`` per second, wait for every acknowledgement, and count them."""
    from kafka.errors import KafkaError

    tally = _Tally()
    attempted = 0
    first_event_id: str | None = None
    last_event_id: str | None = None
    consecutive_errors = 0
    aborted = False
    started = clock()
    for index, message in enumerate(messages):
        delay = send_delay(index, rate, clock() - started)
        if delay > 0:
            sleep(delay)
        attempted += 1
        try:
            future = producer.send(topic, value=message.value, key=message.key)
        except (KafkaError, BufferError, OSError) as exc:
            tally.fail(exc)
            consecutive_errors += 1
            logger.warning("send to %s failed: %r", topic, exc)
            if consecutive_errors >= MAX_CONSECUTIVE_SEND_ERRORS:
                aborted = True
                break
            continue
        consecutive_errors = 0
        future.add_callback(lambda _metadata, valid=message.valid: tally.ack(valid))
        future.add_errback(tally.fail)
        if message.event_id is not None:
            first_event_id = first_event_id or message.event_id
            last_event_id = message.event_id
        if progress is not None:
            progress.update(attempted)
    try:
        producer.flush(timeout=flush_timeout_s)
    except KafkaError as exc:
        logger.warning("flush of %s did not complete: %r", topic, exc)
    seconds = clock() - started
    if progress is not None:
        progress.update(attempted, final=True)
    # Whatever was neither acknowledged nor failed by now (flush timed out) counts as failed.
    failed = attempted - tally.acked
    return PublishSummary(
        topic=topic,
        attempted=attempted,
        sent=tally.acked,
        invalid_sent=tally.invalid_acked,
        failed=failed,
        seconds=seconds,
        first_event_id=first_event_id,
        last_event_id=last_event_id,
        aborted=aborted,
    )


def _run(
    settings: ProducerSettings,
    messages: Iterable[OutgoingMessage],
    total: int | None,
    rate: float,
    progress: bool,
) -> PublishSummary:
    # A command line run gives up within seconds when the broker is away, rather than retrying for minutes.
    producer = create_producer(
        settings, retries=5, max_block_ms=10_000, request_timeout_ms=10_000, delivery_timeout_ms=30_000
    )
    try:
        summary = send_messages(
            producer, settings.events_topic, messages, rate=rate, progress=make_progress(progress, total)
        )
    finally:
        producer.close(timeout=10)
    logger.debug("%s", summary)
    return summary


def _now_rfc3339() -> str:
    return utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generated_messages(
    settings: ProducerSettings, count: int, invalid_fraction: float, drift: str, rate: float = 0.0
) -> Iterator[OutgoingMessage]:
    """Yield ``count`` encoded events of the seeded world, with invalid ones mixed in.

    Each event's ``event_time`` is the wall clock when it is taken for sending.
    """
    import numpy as np

    from producers.generator import Drift, build_world, event_stream, invalid_events

    if drift not in get_args(Drift):
        raise ValueError(f"drift must be one of {', '.join(get_args(Drift))}, got {drift!r}")
    world = build_world(settings.seed, settings.n_customers, settings.n_merchants)
    positions = invalid_positions(count, invalid_fraction, settings.seed)
    # Fresh randomness per run (new event ids and amounts); the world itself stays the seeded one.
    rng = np.random.default_rng()
    stream = event_stream(
        world,
        count - len(positions),
        rng,
        start_time=utc_now(),
        drift=cast(Drift, drift),
        rate=rate if rate > 0 else None,
    )
    # Live events happen now: stamp each with the wall clock (ms) as it is pulled for sending, so
    # event_time -> prediction latency is real and an unthrottled run never looks like the future.
    valid = (encode_event({**event, "event_time": _now_rfc3339()}) for event in stream)
    invalid = (encode_invalid(payload) for payload in invalid_events(rng, len(positions)))
    return mix_messages(valid, invalid, count, positions)


def publish_generated(
    settings: ProducerSettings,
    count: int,
    rate: float,
    invalid_fraction: float = 0.0,
    drift: str = "none",
    progress: bool = True,
) -> PublishSummary:
    """Publish ``count`` generated events (a share of them invalid) to the events topic."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    messages = generated_messages(settings, count, invalid_fraction, drift, rate)
    return _run(settings, messages, count, rate, progress)


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


def publish_file(
    settings: ProducerSettings, path: Path, rate: float, progress: bool = True, key_field: str | None = "customer_id"
) -> PublishSummary:
    """Publish the JSON lines of ``path`` (``-`` for stdin) as-is to the events topic, keyed by ``key_field``."""
    if str(path) == "-":
        return _run(settings, file_messages(_lines(sys.stdin.buffer), key_field), None, rate, progress)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise DriftlineError(f"cannot read {path}: {exc}") from exc
    with handle:
        total = sum(1 for line in handle if line.strip())
        handle.seek(0)
        return _run(settings, file_messages(_lines(handle), key_field), total, rate, progress)
