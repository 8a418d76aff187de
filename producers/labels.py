"""Ground-truth labels of the example's events, published late on the labels topic, as chargebacks come.

The pure part, a seeded :class:`LabelSchedule`, decides each event's label and when it is due: a fraud
event's chargeback comes after a log-normal delay (a median of days and a long tail), a legitimate event
is confirmed once the chargeback window is over, and a share of events is never labelled at all
(:class:`LabelDelays`; every delay is multiplied by ``scale`` so that tests and the demo take seconds
rather than months). Labels are the generator's own ``is_fraud``, so they follow whichever fraud
mechanism produced the event, the ``fraud_pattern`` drift included.

The sending side reuses :func:`producers.publish.send_messages` on one producer from
:mod:`producers.kafka_clients`: events go out in chunks of about a second, and after each chunk the
labels due by then (:func:`publish_due`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast, get_args

from driftline.contracts import Label, utc_now
from driftline.settings import ProducerSettings
from producers.kafka_clients import create_producer
from producers.publish import (
    OutgoingMessage,
    Producer,
    PublishSummary,
    encode_event,
    encode_invalid,
    invalid_positions,
    mix_messages,
    send_delay,
    send_messages,
)

logger = logging.getLogger(__name__)

_DAY_S = 86_400.0

#: ``LabelDelays.scale`` of the demo: a day of label delay passes in a second.
DEMO_SCALE = 1.0 / _DAY_S
#: ``Label.source`` of a chargeback (a positive label) and of a closed chargeback window (a negative one).
CHARGEBACK_SOURCE = "chargebacks"
WINDOW_CLOSED_SOURCE = "chargeback_window"
#: Seconds of sending between two looks at the labels that have come due.
LABEL_TICK_S = 1.0
#: Events per chunk when the rate is unlimited.
UNTHROTTLED_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class LabelDelays:
    """How late labels come, in seconds of the real world, before ``scale``.

    ``median_s`` and ``sigma``: the log-normal delay of a fraud chargeback (the defaults: a median of
    ten days, p95 about five weeks, p99 about two months). ``negative_after_s``: a legitimate event is
    confirmed as such once this long has passed without a chargeback; keep it within the worker's join
    window, or every negative label is refused as ``expired``. ``unlabelled_share``: events that never get
    a label, of either class. ``scale`` multiplies every delay (:data:`DEMO_SCALE`: a day per second).
    """

    median_s: float = 10 * _DAY_S
    sigma: float = 0.8
    negative_after_s: float = 60 * _DAY_S
    unlabelled_share: float = 0.05
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.median_s) and self.median_s > 0):
            raise ValueError(f"median_s must be a positive number of seconds, got {self.median_s}")
        if not (math.isfinite(self.sigma) and self.sigma >= 0):
            raise ValueError(f"sigma must be >= 0, got {self.sigma}")
        if not (math.isfinite(self.negative_after_s) and self.negative_after_s >= 0):
            raise ValueError(f"negative_after_s must be >= 0 seconds, got {self.negative_after_s}")
        if not 0.0 <= self.unlabelled_share <= 1.0:
            raise ValueError(f"unlabelled_share must be within [0, 1], got {self.unlabelled_share}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be > 0, got {self.scale}")

    def delay_s(self, is_fraud: bool, z: float) -> float:
        """The scaled delay of a label: ``z`` is the event's standard normal draw (used by fraud only)."""
        base = self.median_s * math.exp(self.sigma * z) if is_fraud else self.negative_after_s
        return base * self.scale


#: The demo's delays: chargebacks after a median of 10 s (p99 about a minute), negatives after 60 s.
DEMO_DELAYS = LabelDelays(scale=DEMO_SCALE)


@dataclass(frozen=True, slots=True)
class ScheduledLabel:
    """One event's label and when it is due: ``event_time`` + ``delay_s`` (to the millisecond)."""

    event_id: str
    label: bool
    due: datetime
    delay_s: float
    source: str

    def to_label(self) -> Label:
        """The ``Label`` record, its ``label_time`` the due time."""
        return Label(event_id=self.event_id, label=self.label, label_time=self.due, source=self.source)

    def encode(self) -> OutgoingMessage:
        """The ``Label`` as compact JSON, keyed by the event id (``label_time`` with ``Z``)."""
        value = self.to_label().model_dump_json(exclude_none=True).encode()
        return OutgoingMessage(key=self.event_id.encode(), value=value, valid=True, event_id=self.event_id)


def _utc(value: datetime | str) -> datetime:
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        raise ValueError(f"event_time must be timezone-aware, got {value!r}")
    return parsed.astimezone(UTC)


def _to_ms(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@dataclass
class LabelSchedule:
    """The labels of the events seen so far, earliest due first; deterministic in ``seed``.

    Each event takes exactly two draws, whatever its class and whatever the delays, so the same seed
    and events give the same schedule, and changing ``scale`` changes the due times and nothing else.
    """

    delays: LabelDelays = DEMO_DELAYS
    seed: int | None = None
    positive_source: str = CHARGEBACK_SOURCE
    negative_source: str = WINDOW_CLOSED_SOURCE
    #: Labels scheduled so far, events never to be labelled, and positive labels released by ``pop_due``.
    scheduled: int = field(default=0, init=False)
    unlabelled: int = field(default=0, init=False)
    released_positives: int = field(default=0, init=False)
    _rng: random.Random = field(init=False, repr=False)
    _heap: list[tuple[datetime, int, ScheduledLabel]] = field(default_factory=list, init=False, repr=False)
    _order: Iterator[int] = field(default_factory=itertools.count, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def add(self, event_id: str, event_time: datetime | str, is_fraud: bool | int) -> ScheduledLabel | None:
        """Schedule the label of one event; None when the event is never to be labelled."""
        never = self._rng.random() < self.delays.unlabelled_share
        z = self._rng.gauss(0.0, 1.0)
        if never:
            self.unlabelled += 1
            return None
        fraud = bool(is_fraud)
        delay_s = self.delays.delay_s(fraud, z)
        label = ScheduledLabel(
            event_id=event_id,
            label=fraud,
            due=_to_ms(_utc(event_time) + timedelta(seconds=delay_s)),
            delay_s=delay_s,
            source=self.positive_source if fraud else self.negative_source,
        )
        heapq.heappush(self._heap, (label.due, next(self._order), label))
        self.scheduled += 1
        return label

    def add_event(self, event: Mapping[str, Any]) -> ScheduledLabel | None:
        """Schedule the label of a generated event (``event_stream(..., include_label=True)``)."""
        return self.add(str(event["event_id"]), event["event_time"], int(event["is_fraud"]))

    def pop_due(self, now: datetime) -> list[ScheduledLabel]:
        """Remove and return the labels due at or before ``now``, earliest first."""
        due: list[ScheduledLabel] = []
        while self._heap and self._heap[0][0] <= now:
            label = heapq.heappop(self._heap)[2]
            self.released_positives += label.label
            due.append(label)
        return due

    @property
    def next_due(self) -> datetime | None:
        """When the earliest pending label is due (None when none is pending)."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        """Labels scheduled and not yet popped."""
        return len(self._heap)


def schedule_labels(
    events: Iterable[Mapping[str, Any]], delays: LabelDelays = DEMO_DELAYS, seed: int | None = None
) -> list[ScheduledLabel]:
    """Every label of ``events`` (each with ``event_id``, ``event_time`` and ``is_fraud``), by due time."""
    schedule = LabelSchedule(delays, seed)
    for event in events:
        schedule.add_event(event)
    return schedule.pop_due(datetime.max.replace(tzinfo=UTC))


# --- sending ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabelledPublishSummary:
    """What a run of events with their labels did (for the CLI to render)."""

    events: PublishSummary
    labels: PublishSummary
    #: Labels scheduled for the events sent, and events that are never to be labelled.
    scheduled: int
    unlabelled: int
    #: Positive (fraud) labels among those handed to the producer.
    positive_labels: int
    #: Labels not yet due when the run stopped (the drain time ran out, or sending was aborted).
    pending: int

    @property
    def aborted(self) -> bool:
        """Whether either stream gave up on an unreachable broker."""
        return self.events.aborted or self.labels.aborted


def _merge(topic: str, parts: Sequence[PublishSummary], seconds: float) -> PublishSummary:
    first = next((p.first_event_id for p in parts if p.first_event_id is not None), None)
    last = next((p.last_event_id for p in reversed(parts) if p.last_event_id is not None), None)
    return PublishSummary(
        topic=topic,
        attempted=sum(p.attempted for p in parts),
        sent=sum(p.sent for p in parts),
        invalid_sent=sum(p.invalid_sent for p in parts),
        failed=sum(p.failed for p in parts),
        seconds=seconds,
        first_event_id=first,
        last_event_id=last,
        aborted=any(p.aborted for p in parts),
    )


def _monotonic(now: Callable[[], datetime]) -> Callable[[], float]:
    return lambda: now().timestamp()


def publish_due(
    producer: Producer,
    topic: str,
    schedule: LabelSchedule,
    now: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishSummary | None:
    """Send the labels of ``schedule`` due by ``now()`` to ``topic`` and wait for their acknowledgement.

    None when none is due. A label's ``label_time`` is its due time, never after ``now()``, so the worker
    never refuses it as ``from_the_future``.
    """
    due = schedule.pop_due(now())
    if not due:
        return None
    return send_messages(producer, topic, (label.encode() for label in due), clock=_monotonic(now), sleep=sleep)


def send_with_labels(
    producer: Producer,
    events_topic: str,
    labels_topic: str,
    messages: Iterable[OutgoingMessage],
    schedule: LabelSchedule,
    *,
    rate: float = 0.0,
    drain_s: float | None = None,
    now: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> LabelledPublishSummary:
    """Send ``messages`` to ``events_topic`` at ``rate``, and their labels to ``labels_topic`` as they come due.

    ``messages`` schedules each event's label as it is taken for sending (see :func:`labelled_messages`).
    Events go out in chunks of about :data:`LABEL_TICK_S`, each followed by the labels due by then. Once
    the events are out, the run waits for the labels still pending, for at most ``drain_s`` seconds
    (None: until the last one is sent).
    """
    started = now()

    def elapsed() -> float:
        return (now() - started).total_seconds()

    chunk = max(1, math.ceil(rate * LABEL_TICK_S)) if rate > 0 else UNTHROTTLED_CHUNK
    source = iter(messages)
    event_parts: list[PublishSummary] = []
    label_parts: list[PublishSummary] = []
    clock = _monotonic(now)

    def send_due() -> bool:
        part = publish_due(producer, labels_topic, schedule, now, sleep)
        if part is not None:
            label_parts.append(part)
        return part is None or not part.aborted

    sent_events = 0
    while True:
        delay = send_delay(sent_events, rate, elapsed())
        if delay > 0:
            sleep(delay)
        part = send_messages(
            producer, events_topic, itertools.islice(source, chunk), rate=rate, clock=clock, sleep=sleep
        )
        event_parts.append(part)
        sent_events += part.attempted
        if part.aborted or not send_due():
            break
        if part.attempted < chunk:
            break
    events_done = elapsed()
    aborted = any(p.aborted for p in (*event_parts, *label_parts))
    while not aborted and (upcoming := schedule.next_due) is not None:
        left = None if drain_s is None else drain_s - (elapsed() - events_done)
        if left is not None and left <= 0:
            break
        wait = (upcoming - now()).total_seconds()
        if left is not None and wait > left:
            sleep(left)
            break
        if wait > 0:
            sleep(wait)
        aborted = not send_due()
    seconds = elapsed()
    return LabelledPublishSummary(
        events=_merge(events_topic, event_parts, events_done),
        labels=_merge(labels_topic, label_parts, seconds),
        scheduled=schedule.scheduled,
        unlabelled=schedule.unlabelled,
        positive_labels=schedule.released_positives,
        pending=len(schedule),
    )


def _rfc3339_ms(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def labelled_messages(
    settings: ProducerSettings,
    count: int,
    schedule: LabelSchedule,
    *,
    invalid_fraction: float = 0.0,
    drift: str = "none",
    rate: float = 0.0,
    now: Callable[[], datetime] = utc_now,
    part: int = 0,
) -> Iterator[OutgoingMessage]:
    """Yield ``count`` encoded events of the seeded world (a share invalid), scheduling each valid one's label.

    As in ``driftline produce``, each event's ``event_time`` is ``now()`` when it is taken for sending,
    and its label is due that long after it. The ground truth (``is_fraud``) goes to the schedule only,
    never onto the events topic. Invalid events get no label. Streams that share a seeded schedule
    (one run in phases) need distinct ``part`` numbers, or their event ids repeat.
    """
    import numpy as np

    from producers.generator import Drift, build_world, event_stream, invalid_events

    if drift not in get_args(Drift):
        raise ValueError(f"drift must be one of {', '.join(get_args(Drift))}, got {drift!r}")
    world = build_world(settings.seed, settings.n_customers, settings.n_merchants)
    positions = invalid_positions(count, invalid_fraction, settings.seed)
    # Fresh events per run unless the schedule is seeded; the world itself stays the seeded one.
    rng = np.random.default_rng(
        None if schedule.seed is None else [schedule.seed, 1] if part == 0 else [schedule.seed, 1, part]
    )
    stream = event_stream(
        world, count - len(positions), rng, start_time=now(), drift=cast(Drift, drift),
        rate=rate if rate > 0 else None, include_label=True,
    )

    def valid() -> Iterator[OutgoingMessage]:
        for event in stream:
            is_fraud = event.pop("is_fraud")
            stamped = {**event, "event_time": _rfc3339_ms(now())}
            schedule.add(str(stamped["event_id"]), stamped["event_time"], is_fraud)
            yield encode_event(stamped)

    invalid = (encode_invalid(payload) for payload in invalid_events(rng, len(positions)))
    return mix_messages(valid(), invalid, count, positions)


def publish_with_labels(
    settings: ProducerSettings,
    count: int,
    rate: float,
    delays: LabelDelays = DEMO_DELAYS,
    *,
    invalid_fraction: float = 0.0,
    drift: str = "none",
    drain_s: float | None = None,
    seed: int | None = None,
) -> LabelledPublishSummary:
    """Publish ``count`` generated events to the events topic and their labels, when due, to the labels topic.

    ``delays`` sets how late labels come (the default, :data:`DEMO_DELAYS`, compresses a day into a
    second); ``drift="fraud_pattern"`` switches the fraud mechanism, and the labels follow it. After the
    events, the run waits up to ``drain_s`` seconds (None: as long as it takes) for the pending labels.
    ``seed`` fixes the events and the label draws (None: fresh ones each run).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if drain_s is not None and drain_s < 0:
        raise ValueError(f"drain_s must be >= 0, got {drain_s}")
    schedule = LabelSchedule(delays, seed)
    messages = labelled_messages(settings, count, schedule, invalid_fraction=invalid_fraction, drift=drift, rate=rate)
    # A command line run gives up within seconds when the broker is away, rather than retrying for minutes.
    producer = create_producer(
        settings, client_id="driftline-labels", retries=5, max_block_ms=10_000, request_timeout_ms=10_000,
        delivery_timeout_ms=30_000,
    )
    try:
        summary = send_with_labels(
            producer, settings.events_topic, settings.labels_topic, messages, schedule, rate=rate, drain_s=drain_s
        )
    finally:
        producer.close(timeout=10)
    logger.debug("%s", summary)
    return summary
