"""The label schedule of the example (pure, seeded) and the send loop that releases labels as they come due."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline.contracts import Label
from driftline.settings import ProducerSettings
from producers.generator import build_world, event_stream
from producers.labels import (
    CHARGEBACK_SOURCE,
    DEMO_DELAYS,
    DEMO_SCALE,
    WINDOW_CLOSED_SOURCE,
    LabelDelays,
    LabelSchedule,
    ScheduledLabel,
    labelled_messages,
    schedule_labels,
    send_with_labels,
)

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY = 86_400.0


def _events(n: int, fraud: bool | None = None, step_s: float = 1.0) -> list[dict[str, Any]]:
    """Synthetic events one ``step_s`` apart; ``fraud`` None alternates the classes."""
    return [
        {
            "event_id": f"e{i:05d}",
            "event_time": T0 + timedelta(seconds=i * step_s),
            "is_fraud": int(i % 2 == 0) if fraud is None else int(fraud),
        }
        for i in range(n)
    ]


def _generated(n: int, drift: str = "none", seed: int = 3) -> list[dict[str, Any]]:
    world = build_world(7, 300, 60)
    rng = np.random.default_rng(seed)
    return list(event_stream(world, n, rng, start_time=T0, drift=drift, include_label=True))  # type: ignore[arg-type]


def _delays(labels: list[ScheduledLabel]) -> list[float]:
    return [label.delay_s for label in labels]


# --- the delay distribution ------------------------------------------------------------------------------


def test_fraud_delays_are_log_normal_with_the_median_and_sigma() -> None:
    delays = LabelDelays(median_s=10 * DAY, sigma=0.8, unlabelled_share=0.0)
    labels = schedule_labels(_events(20_000, fraud=True), delays, seed=1)
    assert len(labels) == 20_000
    values = sorted(_delays(labels))
    logs = [math.log(v) for v in values]
    assert statistics.median(values) == pytest.approx(10 * DAY, rel=0.03)
    assert statistics.stdev(logs) == pytest.approx(0.8, abs=0.02)
    # The long tail: p95 = median * exp(1.645 sigma), about 3.7 times the median.
    p95 = values[int(0.95 * len(values))]
    assert p95 == pytest.approx(10 * DAY * math.exp(1.645 * 0.8), rel=0.06)
    assert all(label.label is True and label.source == CHARGEBACK_SOURCE for label in labels)


def test_negatives_are_confirmed_after_the_fixed_window() -> None:
    delays = LabelDelays(negative_after_s=60 * DAY, unlabelled_share=0.0)
    labels = schedule_labels(_events(500, fraud=False), delays, seed=1)
    assert {label.delay_s for label in labels} == {60 * DAY}
    assert all(label.label is False and label.source == WINDOW_CLOSED_SOURCE for label in labels)
    by_id = {e["event_id"]: e["event_time"] for e in _events(500)}
    assert all(label.due - by_id[label.event_id] == timedelta(days=60) for label in labels)


def test_sigma_zero_gives_every_chargeback_the_median() -> None:
    labels = schedule_labels(_events(50, fraud=True), LabelDelays(median_s=3600, sigma=0, unlabelled_share=0), seed=2)
    assert {label.delay_s for label in labels} == {3600.0}


def test_scale_multiplies_every_delay_and_changes_nothing_else() -> None:
    events = _events(2_000)
    full = schedule_labels(events, LabelDelays(), seed=5)
    fast = schedule_labels(events, LabelDelays(scale=DEMO_SCALE), seed=5)
    assert {label.event_id for label in full} == {label.event_id for label in fast}
    fast_by_id = {label.event_id: label for label in fast}
    for label in full:
        twin = fast_by_id[label.event_id]
        assert twin.label == label.label
        assert twin.delay_s == pytest.approx(label.delay_s * DEMO_SCALE, rel=1e-12)


def test_demo_delays_run_in_seconds_to_minutes() -> None:
    labels = schedule_labels(_events(4_000), DEMO_DELAYS, seed=8)
    fraud = sorted(label.delay_s for label in labels if label.label)
    assert statistics.median(fraud) == pytest.approx(10.0, rel=0.1)
    assert {label.delay_s for label in labels if not label.label} == {60.0}


def test_due_times_are_whole_milliseconds_and_never_before_the_event() -> None:
    events = _events(300)
    times = {e["event_id"]: e["event_time"] for e in events}
    for label in schedule_labels(events, LabelDelays(median_s=1.2345678, sigma=1.0, scale=1.0), seed=4):
        assert label.due.microsecond % 1000 == 0
        assert label.due.tzinfo is not None
        assert times[label.event_id] <= label.due <= times[label.event_id] + timedelta(seconds=label.delay_s)


# --- determinism, completeness, unlabelled share -----------------------------------------------------------


def test_same_seed_same_schedule_other_seed_another() -> None:
    events = _events(1_000)
    assert schedule_labels(events, seed=11) == schedule_labels(events, seed=11)
    assert schedule_labels(events, seed=11) != schedule_labels(events, seed=12)


def test_adding_events_one_by_one_or_all_at_once_is_the_same() -> None:
    events = _events(600)
    schedule = LabelSchedule(DEMO_DELAYS, seed=9)
    released: list[ScheduledLabel] = []
    for i, event in enumerate(events):
        schedule.add_event(event)
        if i % 50 == 0:
            released += schedule.pop_due(event["event_time"])
    released += schedule.pop_due(datetime.max.replace(tzinfo=UTC))
    assert sorted(released, key=lambda label: label.event_id) == sorted(
        schedule_labels(events, DEMO_DELAYS, seed=9), key=lambda label: label.event_id
    )


def test_every_labelled_event_exactly_once_with_its_ground_truth() -> None:
    events = _generated(3_000)
    schedule = LabelSchedule(LabelDelays(unlabelled_share=0.1, scale=DEMO_SCALE), seed=6)
    for event in events:
        schedule.add_event(event)
    labels = schedule.pop_due(datetime.max.replace(tzinfo=UTC))
    ids = [label.event_id for label in labels]
    assert len(ids) == len(set(ids)) == schedule.scheduled
    assert schedule.scheduled + schedule.unlabelled == len(events)
    truth = {e["event_id"]: bool(e["is_fraud"]) for e in events}
    assert set(ids) <= set(truth)
    assert all(label.label == truth[label.event_id] for label in labels)
    assert any(label.label for label in labels) and not all(label.label for label in labels)
    assert len(schedule) == 0 and schedule.pop_due(datetime.max.replace(tzinfo=UTC)) == []


@pytest.mark.parametrize("share", [0.0, 0.2, 1.0])
def test_unlabelled_share(share: float) -> None:
    n = 10_000
    schedule = LabelSchedule(LabelDelays(unlabelled_share=share), seed=3)
    for event in _events(n):
        schedule.add_event(event)
    assert schedule.unlabelled / n == pytest.approx(share, abs=0.015)
    assert schedule.scheduled == len(schedule) == n - schedule.unlabelled


def test_pop_due_releases_earliest_first_and_only_what_is_due() -> None:
    schedule = LabelSchedule(LabelDelays(median_s=5, sigma=1.0, negative_after_s=8, unlabelled_share=0), seed=2)
    for event in _events(200):
        schedule.add_event(event)
    now = T0 + timedelta(seconds=60)
    due = schedule.pop_due(now)
    assert due and all(label.due <= now for label in due)
    assert [label.due for label in due] == sorted(label.due for label in due)
    assert schedule.next_due is not None and schedule.next_due > now
    assert schedule.released_positives == sum(label.label for label in due)


@pytest.mark.parametrize(
    "bad",
    [
        {"median_s": 0}, {"median_s": math.inf}, {"sigma": -0.1}, {"negative_after_s": -1},
        {"unlabelled_share": 1.5}, {"unlabelled_share": -0.1}, {"scale": 0}, {"scale": math.nan},
    ],
)
def test_delays_refuse_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        LabelDelays(**bad)


def test_a_naive_event_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        LabelSchedule(seed=1).add("e", datetime(2026, 1, 1), True)


# --- the label record ------------------------------------------------------------------------------------


def test_encoded_label_is_a_valid_label_record() -> None:
    (label,) = schedule_labels([{"event_id": "tx-1", "event_time": "2026-03-01T12:00:00.250Z", "is_fraud": 1}],
                               LabelDelays(median_s=10, sigma=0, unlabelled_share=0), seed=1)
    message = label.encode()
    assert message.key == b"tx-1" and message.event_id == "tx-1" and message.valid
    raw = orjson.loads(message.value)
    assert raw == {"event_id": "tx-1", "label": True, "label_time": "2026-03-01T12:00:10.250000Z",
                   "source": CHARGEBACK_SOURCE}
    assert Label.model_validate_json(message.value) == label.to_label()


# --- concept drift: labels follow the active fraud mechanism ---------------------------------------------


def _pos_share_of_fraud(drift: str) -> float:
    events = _generated(20_000, drift=drift)
    channel: dict[str, str] = {e["event_id"]: e["channel"] for e in events}
    truth = {e["event_id"]: bool(e["is_fraud"]) for e in events}
    labels = schedule_labels(events, LabelDelays(unlabelled_share=0, scale=DEMO_SCALE), seed=1)
    assert all(label.label == truth[label.event_id] for label in labels)
    positives = [label for label in labels if label.label]
    assert len(positives) > 50
    on_pos = sum(channel[label.event_id] == "pos" for label in positives)
    return on_pos / len(positives)


def test_labels_follow_the_new_fraud_pattern() -> None:
    # The new pattern is card-present fraud: the labels' positives move to the pos channel with it.
    assert _pos_share_of_fraud("fraud_pattern") > _pos_share_of_fraud("none") + 0.3


# --- the send loop, with a fake producer and a fake clock -----------------------------------------------


class _Future:
    def __init__(self) -> None:
        self.callbacks: list[Callable[..., Any]] = []

    def add_callback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.callbacks.append(f)

    def add_errback(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        pass


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class _Producer:
    """Acknowledges everything on flush and notes the clock at each send."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, bytes | None, bytes, datetime]] = []
        self._pending: list[_Future] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> _Future:
        assert value is not None
        self.sent.append((topic, key, value, self.clock()))
        future = _Future()
        self._pending.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        for future in self._pending:
            for callback in future.callbacks:
                callback("metadata")
        self._pending.clear()


@pytest.fixture
def settings(tmp_path: Path) -> ProducerSettings:
    return ProducerSettings(  # type: ignore[call-arg]
        DRIFTLINE_HOME=str(tmp_path), KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", DRIFTLINE_N_CUSTOMERS=200,
        DRIFTLINE_N_MERCHANTS=40,
    )


def _run(
    settings: ProducerSettings, count: int, delays: LabelDelays, drain_s: float | None, **kwargs: Any
) -> tuple[_Producer, Any, _Clock]:
    clock = _Clock()
    producer = _Producer(clock)
    schedule = LabelSchedule(delays, seed=4)
    messages = labelled_messages(settings, count, schedule, now=clock, **kwargs)
    summary = send_with_labels(
        producer, "events", "labels", messages, schedule, rate=100, drain_s=drain_s, now=clock, sleep=clock.sleep
    )
    return producer, summary, clock


def _by_topic(producer: _Producer, topic: str) -> Iterator[tuple[dict[str, Any], datetime]]:
    """The JSON objects sent to ``topic`` (invalid events, deliberately not JSON objects, are left out)."""
    for sent_to, _, value, at in producer.sent:
        if sent_to != topic:
            continue
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            yield parsed, at


def test_send_with_labels_publishes_each_label_once_when_due(settings: ProducerSettings) -> None:
    delays = LabelDelays(median_s=2, sigma=0.5, negative_after_s=3, unlabelled_share=0.1)
    producer, summary, _ = _run(settings, 500, delays, drain_s=None, invalid_fraction=0.02)
    events = {e["event_id"]: (e, at) for e, at in _by_topic(producer, "events") if "event_id" in e}
    labels = [(Label.model_validate(raw), at) for raw, at in _by_topic(producer, "labels")]
    assert summary.events.attempted == summary.events.sent == 500
    assert summary.events.invalid_sent == 10
    assert all("is_fraud" not in event for event, _ in events.values())
    ids = [label.event_id for label, _ in labels]
    assert len(ids) == len(set(ids)) == summary.scheduled == summary.labels.sent
    assert set(ids) <= set(events)
    assert summary.scheduled + summary.unlabelled == 490
    assert summary.pending == 0 and not summary.aborted
    assert summary.positive_labels == sum(label.label is True for label, _ in labels)
    for label, sent_at in labels:
        event, _ = events[label.event_id]
        # Never published before it is due, and due the delay after the event's stamped time.
        assert label.label_time <= sent_at
        assert label.label_time > datetime.fromisoformat(event["event_time"])
        # Released at the first look after it came due: at most a chunk (about a second) later.
        assert sent_at - label.label_time <= timedelta(seconds=1.5)
    # Labels interleave with events (5 s of them): those due in the first seconds go out meanwhile.
    last_event_at = max(at for _, at in events.values())
    assert sum(at < last_event_at for _, at in labels) > len(labels) / 10


def test_drain_time_bounds_the_wait_for_late_labels(settings: ProducerSettings) -> None:
    delays = LabelDelays(median_s=1, sigma=0, negative_after_s=600, unlabelled_share=0)
    producer, summary, clock = _run(settings, 200, delays, drain_s=5.0)
    assert summary.pending > 0
    assert summary.labels.sent == summary.scheduled - summary.pending
    assert all(raw["label"] is True for raw, _ in _by_topic(producer, "labels"))
    assert clock.now - T0 <= timedelta(seconds=2 + 5 + 0.5)


def test_same_seed_same_events_and_labels(settings: ProducerSettings) -> None:
    delays = LabelDelays(median_s=2, sigma=0.5, negative_after_s=3, unlabelled_share=0.1)
    first, _, _ = _run(settings, 120, delays, drain_s=None, drift="fraud_pattern")
    second, _, _ = _run(settings, 120, delays, drain_s=None, drift="fraud_pattern")
    assert [(t, k, v) for t, k, v, _ in first.sent] == [(t, k, v) for t, k, v, _ in second.sent]


def test_unknown_drift_is_refused(settings: ProducerSettings) -> None:
    with pytest.raises(ValueError, match="drift"):
        labelled_messages(settings, 10, LabelSchedule(seed=1), drift="sideways")
