"""Records that cross a topic: events and labels in, predictions and dead letters out.

Producers, the stream app, the tools that tail topics and the tests all use these models, so a
field changes in one place. Every record is JSON so that any Kafka client can publish or read it.
"""

from __future__ import annotations

import base64
import hashlib
import math
import uuid
from datetime import UTC, datetime
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

#: Namespace of prediction ids: uuid5(namespace, "event_id|model_name|model_version").
PREDICTION_NAMESPACE = uuid.UUID("6b1f3c0e-5d4a-4f7e-9b57-1f0c2d8e9a31")
_NAMESPACE_BYTES = PREDICTION_NAMESPACE.bytes

#: Bounds of an event, stated once: TransactionEvent, the worker's validator (ids, entity keys)
#: and the model's request features (training.dataset) all read them; README states them too.
ID_MAX_LENGTH = 128  # event_id and every entity key, in characters
AMOUNT_MIN = 0.01  # EUR; a zero or negative amount is not a card payment
AMOUNT_MAX = 1_000_000  # EUR
HOUR_MIN = 0
HOUR_MAX = 23

Channel = Literal["online", "pos", "atm"]

#: Why an event (or a label) became a dead letter; bounded so it can label a metric.
DeadLetterType = Literal[
    "too_large",  # above the configured size, never parsed
    "not_json",  # not UTF-8 JSON, or not a JSON object
    "missing_field",  # a required field is absent
    "invalid_field",  # wrong type, impossible value, unparseable or out-of-range timestamp
    "duplicate_field",  # a JSON key appears twice, so which value is meant is ambiguous
    "scoring_failed",  # the model raised on this event's vector (should never happen)
    "output_failed",  # its prediction could not be published (too large for the topic, topic refused)
    # A label's dead letter carries its LabelRejectionType (too_large is shared): see LabelRejectionType below.
    "malformed",
    "missing_id",
    "bad_label",
    "from_the_future",
    "unknown_prediction",
    "expired",
    "duplicate",
    "id_mismatch",
]

#: Bytes of a dead-letter record that are not the original input: its fields, the reason (capped
#: at REASON_MAX_CHARS), timestamps and the record's own overhead, with room to spare.
DEAD_LETTER_ENVELOPE_BYTES = 4096
#: A reason longer than this is cut: it is for a person, and a dead letter must stay small.
REASON_MAX_CHARS = 1000
#: What a dead letter keeps of an input too large to carry whole: its first bytes.
TRUNCATED_KEEP_BYTES = 4096


def largest_whole_dead_letter(max_request_bytes: int) -> int:
    """Largest input (key plus value bytes) whose dead letter carries it whole in ``max_request_bytes``.

    The record holds the original key raw (as its own key) and key and value again in base64 (4/3),
    so an input of n bytes needs at most n + 4n/3 plus the envelope.
    """
    return max(0, (max_request_bytes - DEAD_LETTER_ENVELOPE_BYTES) * 3 // 7)


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def prediction_id(event_id: str, model_name: str, model_version: str) -> str:
    """Return the id that is stable for one event scored by one model version.

    A redelivered event scored again by the same model gets the same id, so consumers can
    drop duplicates of at-least-once delivery by this id.
    """
    # uuid.uuid5 spelled out: the same bytes without building a UUID object, once per scored event.
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{event_id}|{model_name}|{model_version}".encode()).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class TransactionEvent(BaseModel):
    """A card transaction, the event of the worked example (fraud scoring)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: str = Field(
        min_length=1, max_length=ID_MAX_LENGTH, description="Unique id chosen by the producer."
    )
    event_time: datetime = Field(
        description="When the transaction happened, RFC 3339 with offset (UTC). The worker also refuses times "
        "more than DRIFTLINE_MAX_FUTURE_SKEW_S ahead or DRIFTLINE_MAX_EVENT_AGE_S old."
    )
    customer_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, description="Entity key of the customer.")
    merchant_id: str = Field(min_length=1, max_length=ID_MAX_LENGTH, description="Entity key of the merchant.")
    amount: float = Field(ge=AMOUNT_MIN, le=AMOUNT_MAX, allow_inf_nan=False, description="Amount in EUR.")
    channel: Channel = Field(description="Where the card was used: online, pos or atm.")
    hour_of_day: int = Field(
        ge=HOUR_MIN, le=HOUR_MAX, description=f"Local hour of the transaction ({HOUR_MIN}-{HOUR_MAX})."
    )

    @field_validator("event_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("event_time must carry a UTC offset (RFC 3339)")
        return value.astimezone(UTC)

    @field_serializer("event_time")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class StageTimings(BaseModel):
    """Seconds spent by the batch that carried this event in each stage of the worker."""

    decode_s: float = Field(description="Decoding and validating the batch.")
    features_s: float = Field(description="The online feature read for the batch.")
    predict_s: float = Field(description="Building the matrix and scoring the batch.")


class Prediction(BaseModel):
    """One scored event, published on the predictions topic keyed by the first entity key."""

    model_config = ConfigDict(protected_namespaces=())

    event_id: str
    prediction_id: str = Field(description="uuid5 of (event_id, model_name, model_version): stable.")
    entities: dict[str, str | int] = Field(description="Entity join keys, e.g. customer_id and merchant_id.")
    model_name: str
    model_version: str
    score: float = Field(
        description="Binary: probability of the positive class (fraud). Multi-class: probability of the "
        "decided class. Regression: the predicted value."
    )
    class_scores: dict[str, float] | None = Field(
        default=None, description="Multi-class only: each class (as text) -> its probability."
    )
    threshold: float | None = Field(description="Binary: decision threshold of this model version.")
    decision: bool | int | str | None = Field(
        description="Binary: score >= threshold. Multi-class: the class with the highest probability. "
        "Regression: null."
    )
    missing_features: list[str] = Field(description="Features the store had no value for (scored as NaN).")
    degraded: bool = Field(description="True when features were missing because the store failed.")
    event_time: datetime
    scored_at: datetime
    timings: StageTimings

    @field_serializer("event_time", "scored_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_prediction(prediction: Prediction) -> bytes:
    """``prediction.model_dump_json()``'s bytes, built by orjson: the same JSON at a third of the cost per event."""
    p, t = prediction, prediction.timings
    return orjson.dumps({
        "event_id": p.event_id, "prediction_id": p.prediction_id, "entities": p.entities,
        "model_name": p.model_name, "model_version": p.model_version, "score": p.score,
        "class_scores": p.class_scores, "threshold": p.threshold, "decision": p.decision,
        "missing_features": p.missing_features, "degraded": p.degraded,
        "event_time": p.event_time.astimezone(UTC), "scored_at": p.scored_at.astimezone(UTC),
        "timings": {"decode_s": t.decode_s, "features_s": t.features_s, "predict_s": t.predict_s},
    }, option=orjson.OPT_UTC_Z)


class DeadLetter(BaseModel):
    """An input the worker could not score, kept whole with the reason so it can be replayed."""

    error_type: DeadLetterType
    reason: str = Field(description="Readable reason, naming the field and the rule it broke.")
    source_topic: str
    source_partition: int
    source_offset: int
    original_key: bytes | None = Field(description="Original key bytes, base64 in JSON.")
    original_value: bytes = Field(description="Original value bytes, base64 in JSON.")
    original_truncated: bool = Field(
        default=False,
        description="True when original_key/original_value hold only the first bytes of an input too large "
        "to carry whole; original_length and original_sha256 still describe the whole value.",
    )
    original_length: int | None = Field(default=None, description="Bytes of the whole original value.")
    original_sha256: str | None = Field(default=None, description="SHA-256 (hex) of the whole original value.")
    event_id: str | None = Field(default=None, description="The event id, when it could be read.")
    model_version: str | None = None
    failed_at: datetime

    @classmethod
    def for_input(cls, key: bytes | None, value: bytes | None, **fields: object) -> DeadLetter:
        """A dead letter carrying ``key`` and ``value`` whole, with the value's length and SHA-256."""
        value = value if value is not None else b""
        return cls.model_validate(
            {
                **fields,
                "original_key": key,
                "original_value": value,
                "original_length": len(value),
                "original_sha256": hashlib.sha256(value).hexdigest(),
            }
        )

    def truncated(self, keep: int = TRUNCATED_KEEP_BYTES) -> DeadLetter:
        """A copy keeping only the first ``keep`` bytes of the original key and value."""
        key = self.original_key
        return self.model_copy(
            update={
                "original_key": key[:keep] if key is not None else None,
                "original_value": self.original_value[:keep],
                "original_truncated": True,
            }
        )

    @field_validator("reason")
    @classmethod
    def _short_reason(cls, value: str) -> str:
        if len(value) <= REASON_MAX_CHARS:
            return value
        return value[: REASON_MAX_CHARS - 15] + " ... (cut here)"

    @field_serializer("original_key", "original_value")
    def _b64(self, value: bytes | None) -> str | None:
        return None if value is None else base64.b64encode(value).decode("ascii")

    @field_validator("original_key", "original_value", mode="before")
    @classmethod
    def _unb64(cls, value: object) -> object:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True)
        return value

    @field_serializer("failed_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: Why a label was not joined to a prediction; bounded so it can label a metric.
LabelRejectionType = Literal[
    "too_large",  # above the configured size, never parsed
    "malformed",  # not a JSON object, a repeated key, an id, source or label_time of the wrong type or form
    "missing_id",  # neither event_id nor prediction_id
    "bad_label",  # label absent, null, not finite, too long, or not a value the model's task can score
    "from_the_future",  # label_time further ahead of the worker's clock than the allowed skew
    "unknown_prediction",  # no pending prediction has its id: never scored, or gone past the store's TTL
    "expired",  # its prediction is still stored but was scored longer ago than the join window
    "duplicate",  # its prediction already took a label (corrections are not applied)
    "id_mismatch",  # event_id and prediction_id both given, and the prediction is of another event
]

#: Longest label_time string read; anything longer cannot be an RFC 3339 timestamp.
_TIME_MAX_CHARS = 40


class Label(BaseModel):
    """The realised outcome of a scored event (a chargeback, a review), published on the labels topic."""

    model_config = ConfigDict(frozen=True)

    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        description="The labelled event's id; joins every prediction of that event.",
    )
    prediction_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        description="The labelled prediction's id; when event_id is given too, both must name the same event.",
    )
    label: bool | int | float | str = Field(
        description="The outcome. Binary: true/false or 1/0 (1 = the positive class). Multi-class: the class, "
        "as the model names it. Regression: the realised value. Finite; a string has 1-128 characters."
    )
    label_time: datetime = Field(description="When the outcome became known, RFC 3339 with offset (UTC).")
    source: str | None = Field(
        default=None, min_length=1, max_length=ID_MAX_LENGTH, description="Who said so, e.g. chargebacks."
    )

    @field_validator("label_time", mode="before")
    @classmethod
    def _rfc3339_in(cls, value: object) -> object:
        # Before pydantic's own parsing, which would also take numbers as Unix times.
        if isinstance(value, str):
            if len(value) > _TIME_MAX_CHARS:
                raise ValueError("label_time is too long to be an RFC 3339 timestamp")
            parsed = datetime.fromisoformat(value)  # a ValueError names the string
        elif isinstance(value, datetime):
            parsed = value
        else:
            raise ValueError(f"label_time must be an RFC 3339 string, got {type(value).__name__}")
        if parsed.tzinfo is None:
            raise ValueError("label_time must carry a UTC offset (RFC 3339), e.g. 2026-01-01T12:00:00Z")
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00
            raise ValueError("label_time is out of the representable range") from None

    @field_validator("label")
    @classmethod
    def _scorable(cls, value: bool | int | float | str) -> bool | int | float | str:
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"label must be finite, got {value}")
        if isinstance(value, str) and not 0 < len(value) <= ID_MAX_LENGTH:
            raise ValueError(f"a label string must have 1-{ID_MAX_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _names_a_prediction(self) -> Label:
        if self.event_id is None and self.prediction_id is None:
            raise ValueError("a label needs event_id or prediction_id (or both)")
        return self

    @field_serializer("label_time")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
