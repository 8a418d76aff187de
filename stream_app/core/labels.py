"""Read a delayed label and join it to the prediction it is about.

Pure: no Kafka, no Redis, no clock of its own (``now`` is passed in). :func:`validate_label` turns the
bytes of a ``labels`` message into a :class:`~driftline.contracts.Label` or a :class:`LabelRejection`;
:func:`join` takes the label and the records the join store found for its ids and says which
predictions take it, or why none does. A bad label is data (a rejection with a reason), never an
exception: the worker counts it by reason and dead-letters it.

What the store keeps per prediction is a :class:`JoinedPrediction`, encoded by
:meth:`JoinedPrediction.to_bytes` in at most :data:`JOIN_RECORD_FIXED_BYTES` plus the JSON of its ids,
model version and decision (about 140 bytes for a fraud prediction with uuid ids).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from pydantic import ValidationError

from driftline.contracts import ID_MAX_LENGTH, Label, LabelRejectionType
from driftline.errors import DriftlineError
from driftline.registry import Task

#: Largest label (message value) read; a real one is a few hundred bytes.
LABEL_MAX_BYTES = 4096

#: Bytes of an encoded JoinedPrediction besides the JSON of its prediction_id, event_id,
#: model_version and decision: brackets, commas, format, score and threshold (at most 24 characters
#: each as JSON numbers), scored_at and labelled_at (at most 18 digits of microseconds), the task.
JOIN_RECORD_FIXED_BYTES = 100

_FORMAT = 1  # first element of an encoded record; bumped when the layout changes
_FIELDS = 10
_TASK_CODE: dict[Task, str] = {"binary": "b", "multiclass": "m", "regression": "r"}
_TASK_OF_CODE: dict[str, Task] = {code: task for task, code in _TASK_CODE.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

Decision = bool | int | str | None
#: A label made comparable with a score: binary 0.0 / 1.0, regression the value, multi-class the class as text.
LabelValue = float | str
JoinStatus = Literal["joined"] | LabelRejectionType


class CorruptJoinRecordError(DriftlineError):
    """Bytes read from the join store are not an encoded JoinedPrediction."""


@dataclass(frozen=True, slots=True)
class LabelRejection:
    """Why a label is dead-lettered instead of joined; ``reason`` is one line for a person."""

    error_type: LabelRejectionType
    reason: str
    event_id: str | None = None
    prediction_id: str | None = None


@dataclass(frozen=True, slots=True)
class JoinedPrediction:
    """What the join store keeps of one published prediction until its label arrives (or its TTL ends)."""

    prediction_id: str
    event_id: str
    model_version: str
    score: float  # NaN survives encoding as NaN; every other value exactly
    decision: Decision  # binary: bool; multi-class: the class; regression: None
    scored_at: datetime  # timezone-aware; kept to the microsecond
    threshold: float | None  # binary only, finite
    task: Task
    labelled_at: datetime | None = None  # set when a label joined: a second label is a duplicate

    def to_bytes(self) -> bytes:
        """Encode as a compact JSON array (no keys), the value the store writes."""
        return orjson.dumps(
            [
                _FORMAT,
                self.prediction_id,
                self.event_id,
                self.model_version,
                self.score if math.isfinite(self.score) else None,
                self.decision,
                _micros(self.scored_at),
                self.threshold,
                _TASK_CODE[self.task],
                None if self.labelled_at is None else _micros(self.labelled_at),
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> JoinedPrediction:
        """Decode what :meth:`to_bytes` wrote; raise :class:`CorruptJoinRecordError` on anything else."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CorruptJoinRecordError(f"join record is not JSON: {exc}") from None
        if not isinstance(doc, list) or len(doc) != _FIELDS or doc[0] != _FORMAT:
            raise CorruptJoinRecordError(f"join record is not a format-{_FORMAT} array of {_FIELDS} values")
        _, pid, eid, version, score, decision, scored_us, threshold, task, labelled_us = doc
        if not (isinstance(pid, str) and isinstance(eid, str) and isinstance(version, str)):
            raise CorruptJoinRecordError("join record ids and model version must be strings")
        if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
            raise CorruptJoinRecordError(f"join record score must be a number, got {type(score).__name__}")
        if decision is not None and not isinstance(decision, bool | int | str):
            raise CorruptJoinRecordError(f"join record decision has type {type(decision).__name__}")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, int | float)):
            raise CorruptJoinRecordError(f"join record threshold must be a number, got {type(threshold).__name__}")
        if task not in _TASK_OF_CODE:
            raise CorruptJoinRecordError(f"join record task code {task!r} is unknown")
        if not _is_int(scored_us) or not (labelled_us is None or _is_int(labelled_us)):
            raise CorruptJoinRecordError("join record times must be integer microseconds")
        try:
            scored_at = _from_micros(scored_us)
            labelled_at = None if labelled_us is None else _from_micros(labelled_us)
        except OverflowError:
            raise CorruptJoinRecordError("join record time is out of range") from None
        return cls(
            prediction_id=pid,
            event_id=eid,
            model_version=version,
            score=math.nan if score is None else float(score),
            decision=decision,
            scored_at=scored_at,
            threshold=None if threshold is None else float(threshold),
            task=_TASK_OF_CODE[task],
            labelled_at=labelled_at,
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _micros(moment: datetime) -> int:
    """Exact microseconds since the Unix epoch (a float timestamp would lose the last digit)."""
    return (moment - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


# --- reading a label -------------------------------------------------------------------------------


class _RepeatedKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _refuse_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _RepeatedKey(key)
        seen[key] = value
    return seen


def _repeated_key(raw: bytes) -> str | None:
    """The first key repeated in one object of ``raw`` (which orjson accepted), or None.

    orjson keeps the last of repeated keys silently. Labels are few (one per labelled event, days
    later), so the stdlib's second parse costs nothing that matters.
    """
    try:
        json.loads(raw, object_pairs_hook=_refuse_repeats)
    except _RepeatedKey as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None  # orjson read it; nothing the stdlib cannot read can be named
    return None


def _id(value: object) -> str | None:
    """An id for the rejection's context, when the message carries one as text."""
    return value[:ID_MAX_LENGTH] if isinstance(value, str) and value else None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def validate_label(
    raw: bytes | None, now: datetime, max_future_skew_s: float, max_label_bytes: int = LABEL_MAX_BYTES
) -> Label | LabelRejection:
    """Decode one ``labels`` message into a :class:`Label`, or say why it cannot be joined; never raises."""
    if raw is None:
        return LabelRejection("malformed", "the message has no value (a tombstone)")
    if len(raw) > max_label_bytes:
        return LabelRejection("too_large", f"the label is {len(raw)} bytes, above the limit of {max_label_bytes}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return LabelRejection("malformed", _one_line(f"the label is not valid UTF-8 JSON: {exc}"))
    if not isinstance(doc, dict):
        return LabelRejection("malformed", f"the label must be a JSON object, got a JSON {type(doc).__name__}")
    event_id, pid = _id(doc.get("event_id")), _id(doc.get("prediction_id"))
    if (repeated := _repeated_key(raw)) is not None:
        return LabelRejection("malformed", f"field {repeated[:64]!r} appears more than once", event_id, pid)
    if doc.get("event_id") is None and doc.get("prediction_id") is None:
        return LabelRejection("missing_id", "the label has neither event_id nor prediction_id")
    value = doc.get("label")
    if value is None:
        return LabelRejection("bad_label", "label is missing", event_id, pid)
    if not isinstance(value, bool | int | float | str):
        return LabelRejection(
            "bad_label",
            f"label must be true/false, a number or a string, got a JSON {type(value).__name__}",
            event_id,
            pid,
        )
    try:
        label = Label.model_validate(doc)
    except ValidationError as exc:
        error = exc.errors()[0]  # the first is enough for a person to fix the producer
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # the model's own check: no id at all
            return LabelRejection("missing_id", _one_line(message)[:300], event_id, pid)
        field = str(error["loc"][0])
        error_type: LabelRejectionType = "bad_label" if field == "label" else "malformed"
        return LabelRejection(error_type, _one_line(f"{field}: {message}")[:300], event_id, pid)
    ahead = (label.label_time - now).total_seconds()
    if ahead > max_future_skew_s:
        return LabelRejection(
            "from_the_future",
            f"label_time is {ahead:.0f}s in the future (more than the allowed {max_future_skew_s:.0f}s)",
            label.event_id,
            label.prediction_id,
        )
    return label


# --- joining it ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JoinWindow:
    """How long a prediction waits for its label, and how much longer the store keeps it.

    The grace lets a label that comes too late be counted as ``expired`` (the record is still there)
    rather than ``unknown_prediction`` (the TTL removed it): a rising ``expired`` count says the
    window is shorter than the label delay.
    """

    accept_s: float  # a label arriving more than this after scoring is expired
    grace_s: float = 86_400.0

    @property
    def ttl_s(self) -> float:
        """The TTL the store sets on every record: the window plus the grace."""
        return self.accept_s + self.grace_s


@dataclass(frozen=True, slots=True)
class LabelledPrediction:
    """A prediction that took a label: what the performance windows are fed."""

    prediction: JoinedPrediction  # as the store held it, before the label
    label: LabelValue
    label_delay_s: float  # label_time - scored_at, never below 0 (a replay may score after the outcome)
    labelled_at: datetime  # when the join happened (the worker's clock)

    @property
    def marked(self) -> JoinedPrediction:
        """The record to write back (keeping its TTL), so a second label is seen as a duplicate."""
        return replace(self.prediction, labelled_at=self.labelled_at)


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """Which predictions took the label; or, when none did, why (a rejection to dead-letter)."""

    labelled: tuple[LabelledPrediction, ...]
    rejection: LabelRejection | None = None

    @property
    def status(self) -> JoinStatus:
        """``joined``, or the rejection's reason: the value of a bounded metric label."""
        return "joined" if self.rejection is None else self.rejection.error_type


def label_value(label: bool | int | float | str, task: Task) -> LabelValue | None:
    """The label as the task compares it with a score or decision, or None if the task cannot use it."""
    if task == "binary":
        if isinstance(label, bool):
            return float(label)
        if isinstance(label, int | float) and label in (0, 1):
            return float(label)
        return None
    if task == "regression":
        return float(label) if isinstance(label, int | float) and not isinstance(label, bool) else None
    # Multi-class decisions are compared as text, as Prediction.class_scores names classes.
    return str(label) if isinstance(label, int | str) and not isinstance(label, bool) else None


#: What each task takes as a label, for the reason of a ``bad_label``.
_EXPECTED: dict[Task, str] = {
    "binary": "true/false or 1/0",
    "regression": "a number",
    "multiclass": "a class name or integer",
}


#: When no prediction takes the label, the reason reported is the first of these that applies.
_PRECEDENCE: tuple[LabelRejectionType, ...] = ("id_mismatch", "bad_label", "duplicate", "expired")


def join(label: Label, pending: Sequence[JoinedPrediction], now: datetime, window: JoinWindow) -> JoinOutcome:
    """Join ``label`` to the records the store found for its ids.

    By prediction_id when the label has one (then its event_id, if given, must match), else every
    prediction of its event_id: one per model version that scored the event. Records of other ids
    are ignored, so the store may return more than it needs to.
    """
    if label.prediction_id is not None:
        candidates = [p for p in pending if p.prediction_id == label.prediction_id]
    else:
        candidates = [p for p in pending if p.event_id == label.event_id]
    if not candidates:
        wanted = f"prediction {label.prediction_id}" if label.prediction_id is not None else f"event {label.event_id}"
        return _rejected(label, "unknown_prediction", f"no pending prediction of {wanted} (never scored, or past TTL)")

    labelled: list[LabelledPrediction] = []
    problems: dict[LabelRejectionType, str] = {}
    for prediction in candidates:
        if label.event_id is not None and prediction.event_id != label.event_id:
            problems.setdefault(
                "id_mismatch",
                f"prediction {prediction.prediction_id} is of event {prediction.event_id[:64]!r}, "
                f"not {label.event_id[:64]!r}",
            )
            continue
        value = label_value(label.label, prediction.task)
        if value is None:
            expected = _EXPECTED[prediction.task]
            problems.setdefault(
                "bad_label", f"label {str(label.label)[:64]!r} is not a {prediction.task} label ({expected})"
            )
            continue
        if prediction.labelled_at is not None:
            problems.setdefault(
                "duplicate",
                f"prediction {prediction.prediction_id} (version {prediction.model_version}) was labelled at "
                f"{_rfc3339(prediction.labelled_at)}",
            )
            continue
        waited = (now - prediction.scored_at).total_seconds()
        if waited > window.accept_s:
            problems.setdefault(
                "expired",
                f"prediction {prediction.prediction_id} was scored {waited:.0f}s ago, "
                f"beyond the join window of {window.accept_s:.0f}s",
            )
            continue
        delay = max(0.0, (label.label_time - prediction.scored_at).total_seconds())
        labelled.append(LabelledPrediction(prediction, value, delay, now))

    if labelled:
        return JoinOutcome(tuple(labelled))
    error_type = next(kind for kind in _PRECEDENCE if kind in problems)
    return _rejected(label, error_type, problems[error_type])


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _rejected(label: Label, error_type: LabelRejectionType, reason: str) -> JoinOutcome:
    return JoinOutcome((), LabelRejection(error_type, reason, label.event_id, label.prediction_id))
