"""The labelled examples of a recent window: events joined to their delayed labels by ``event_id``.

:class:`WindowJoin` is pure (bytes in, a dataframe and counts out) and unit-tested; :func:`read_labelled`
feeds it the events and labels topics through :mod:`producers.kafka_clients`. A label is read by the
worker's own :func:`stream_app.core.labels.validate_label`, so training refuses exactly what the live
join refuses; a refused label, like an unreadable event, is counted by reason, never raised.

The frame has the columns of ``driftline data generate``'s transactions (``training.data``): the entity
keys, ``event_timestamp``, the request fields and ``label`` (0/1), plus ``label_time``; it is the entity
dataframe of a Feast point-in-time join.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import pandas as pd

from driftline.contracts import LabelRejectionType
from driftline.settings import KafkaSettings
from producers.kafka_clients import open_reader
from stream_app.core.labels import LabelRejection, label_value, validate_label
from training.dataset import ENTITIES, LABEL, REQUEST_FEATURES, TIMESTAMP

logger = logging.getLogger(__name__)

#: The example's event fields a training row needs besides event_id and event_time: keys, then request fields.
EXAMPLE_FIELDS: tuple[str, ...] = (
    *(e.field for e in ENTITIES),
    *(str(s.field) for s in REQUEST_FEATURES),
)
LABEL_TIME = "label_time"
#: Why a label is not in the window's frame: the worker's own reasons, and two of the offline join.
SkipReason = LabelRejectionType | Literal["no_event_id", "no_event_in_window"]
#: Why an event is not joinable.
EventProblem = Literal["malformed", "missing_field", "outside_window"]


#: How a topic read ended: every partition past the retrain's start, quiet for a while, out of time, or not read.
ReadStop = Literal["caught_up", "idle", "deadline", "given"]


@dataclass(frozen=True)
class LabelledWindow:
    """The labelled rows of ``[start, end]`` (by event time) and what was read, skipped and why."""

    frame: pd.DataFrame  # event_id, event_timestamp, the fields, label (0/1), label_time; by event time
    start: datetime
    end: datetime
    events_read: int
    labels_read: int
    skipped_events: dict[str, int] = field(default_factory=dict)  # EventProblem -> count
    skipped_labels: dict[str, int] = field(default_factory=dict)  # SkipReason -> count
    read_stopped: ReadStop = "given"  # how the topic read ended

    @property
    def labelled(self) -> int:
        """Rows: events in the window with a valid label."""
        return len(self.frame)

    @property
    def positives(self) -> int:
        """Rows labelled 1 (the positive class)."""
        return int(self.frame[LABEL].sum()) if len(self.frame) else 0

    @property
    def label_times(self) -> list[datetime]:
        """When each row's label became known (UTC)."""
        return [t.to_pydatetime() for t in self.frame[LABEL_TIME]] if len(self.frame) else []


def _utc(text: object) -> datetime | None:
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


class WindowJoin:
    """Accumulates events and labels (in any order) and joins them by ``event_id``; pure.

    Only events whose ``event_time`` lies in ``[start, end]`` are kept, so memory is bounded by the
    window, not the topic. Of several labels of one event the earliest (by ``label_time``) is kept and
    the others are counted as ``duplicate``: corrections are not applied, as in the worker's join.
    """

    def __init__(
        self,
        start: datetime,
        end: datetime,
        fields: Sequence[str] = EXAMPLE_FIELDS,
        max_future_skew_s: float = 300.0,
    ) -> None:
        self.start, self.end, self.fields = start, end, tuple(fields)
        self.max_future_skew_s = max_future_skew_s
        self._events: dict[str, dict[str, Any]] = {}
        self._labels: dict[str, tuple[datetime, float]] = {}
        self.events_read = 0
        self.labels_read = 0
        self.skipped_events: Counter[str] = Counter()
        self.skipped_labels: Counter[str] = Counter()

    def add_event(self, raw: bytes | None) -> None:
        """Keep one events-topic message if it is an event of the window with every field."""
        self.events_read += 1
        try:
            doc = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:
            doc = None
        event_id = doc.get("event_id") if isinstance(doc, dict) else None
        event_time = _utc(doc.get("event_time")) if isinstance(doc, dict) else None
        if not isinstance(doc, dict) or not isinstance(event_id, str) or not event_id or event_time is None:
            self.skipped_events["malformed"] += 1
            return
        if any(doc.get(name) is None or isinstance(doc.get(name), dict | list) for name in self.fields):
            self.skipped_events["missing_field"] += 1
            return
        if not self.start <= event_time <= self.end:
            self.skipped_events["outside_window"] += 1
            return
        # A redelivered event keeps its first copy: the same id is the same transaction.
        self._events.setdefault(event_id, {"event_id": event_id, TIMESTAMP: event_time,
                                           **{name: doc[name] for name in self.fields}})

    def add_label(self, raw: bytes | None) -> None:
        """Read one labels-topic message with the worker's validation; keep its binary value by event id."""
        self.labels_read += 1
        label = validate_label(raw, self.end, self.max_future_skew_s)
        if isinstance(label, LabelRejection):
            self.skipped_labels[label.error_type] += 1
            return
        if label.event_id is None:
            self.skipped_labels["no_event_id"] += 1  # a prediction_id alone names no event here
            return
        value = label_value(label.label, "binary")
        if not isinstance(value, float):  # binary: 0.0 or 1.0, else None
            self.skipped_labels["bad_label"] += 1
            return
        kept = self._labels.get(label.event_id)
        if kept is not None:
            self.skipped_labels["duplicate"] += 1
            if label.label_time >= kept[0]:
                return
        self._labels[label.event_id] = (label.label_time, value)

    def result(self, read_stopped: ReadStop = "given") -> LabelledWindow:
        """The joined rows (by event time, then id) and the counts."""
        rows: list[dict[str, Any]] = []
        skipped = Counter(self.skipped_labels)
        for event_id, (label_time, value) in self._labels.items():
            event = self._events.get(event_id)
            if event is None:
                skipped["no_event_in_window"] += 1
                continue
            rows.append({**event, LABEL: int(value), LABEL_TIME: label_time})
        columns = ["event_id", TIMESTAMP, *self.fields, LABEL, LABEL_TIME]
        frame = pd.DataFrame(rows, columns=columns)
        if len(frame):
            frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
            frame[LABEL_TIME] = pd.to_datetime(frame[LABEL_TIME], utc=True)
            frame = frame.sort_values([TIMESTAMP, "event_id"], kind="stable").reset_index(drop=True)
        frame[LABEL] = frame[LABEL].astype("int64")
        return LabelledWindow(
            frame=frame, start=self.start, end=self.end, events_read=self.events_read, labels_read=self.labels_read,
            skipped_events=dict(sorted(self.skipped_events.items())), skipped_labels=dict(sorted(skipped.items())),
            read_stopped=read_stopped,
        )


def join_labelled(
    events: Iterable[bytes | None],
    labels: Iterable[bytes | None],
    start: datetime,
    end: datetime,
    fields: Sequence[str] = EXAMPLE_FIELDS,
    max_future_skew_s: float = 300.0,
) -> LabelledWindow:
    """Join events and labels read elsewhere (pure): see :class:`WindowJoin`."""
    join = WindowJoin(start, end, fields, max_future_skew_s)
    for raw in events:
        join.add_event(raw)
    for raw in labels:
        join.add_label(raw)
    return join.result()


def read_labelled(
    settings: KafkaSettings,
    now: datetime,
    window: timedelta,
    *,
    idle_s: float = 2.0,
    max_read_s: float = 120.0,
    fields: Sequence[str] = EXAMPLE_FIELDS,
    max_future_skew_s: float = 300.0,
) -> LabelledWindow:
    """Read the events and labels topics from the beginning and join the window ``[now - window, now]``.

    The read stops once every partition has shown a record appended after the read began (everything
    before is read: ``caught_up``), once nothing has come for ``idle_s``, or after ``max_read_s``;
    ``read_stopped`` says which. Records appended after the read began are left out, so a busy topic
    ends the read as soon as it is caught up. No consumer group is used, so nothing is
    committed and the workers' offsets are untouched.
    """
    join = WindowJoin(now - window, now, fields, max_future_skew_s)
    labels_topic = settings.labels_topic
    stopped: ReadStop = "idle"
    deadline = time.monotonic() + max_read_s
    # Records appended after the read began are what it need not wait for (by the wall clock, not ``now``,
    # which a caller may set in the past).
    began_ms = time.time() * 1000
    with open_reader(settings, [settings.events_topic, labels_topic], client_id="driftline-retrain") as reader:
        pending = {(topic, p) for topic, partitions in reader.partitions.items() for p in partitions}
        for record in reader.records(idle_timeout_s=idle_s):
            where = (record.topic, record.partition)
            if record.timestamp > began_ms:
                pending.discard(where)  # appended after this read began: this partition is read up to then
                if not pending:
                    stopped = "caught_up"
                    break
            elif where in pending:
                if record.topic == labels_topic:
                    join.add_label(record.value)
                else:
                    join.add_event(record.value)
            if time.monotonic() >= deadline:
                stopped = "deadline"
                break
    result = join.result(stopped)
    logger.info(
        "labelled window %s .. %s: %d rows (%d positive) from %d events and %d labels; skipped labels %s",
        result.start.isoformat(), result.end.isoformat(), result.labelled, result.positives, result.events_read,
        result.labels_read, result.skipped_labels or "none",
    )
    return result
