"""Records that cross a topic: events in, predictions and dead letters out.

Producers, the stream app, the tools that tail topics and the tests all use these models, so a
field changes in one place. Every record is JSON so that any Kafka client can publish or read it.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

#: Namespace of prediction ids: uuid5(namespace, "event_id|model_name|model_version").
PREDICTION_NAMESPACE = uuid.UUID("6b1f3c0e-5d4a-4f7e-9b57-1f0c2d8e9a31")

Channel = Literal["online", "pos", "atm"]

#: Why an event became a dead letter; bounded so it can label a metric.
DeadLetterType = Literal[
    "too_large",  # above the configured size, never parsed
    "not_json",  # not UTF-8 JSON, or not a JSON object
    "missing_field",  # a required field is absent
    "invalid_field",  # wrong type, impossible value, unparseable or out-of-range timestamp
    "duplicate_field",  # a JSON key appears twice, so which value is meant is ambiguous
    "scoring_failed",  # the model raised on this event's vector (should never happen)
]


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def prediction_id(event_id: str, model_name: str, model_version: str) -> str:
    """Return the id that is stable for one event scored by one model version.

    A redelivered event scored again by the same model gets the same id, so consumers can
    drop duplicates of at-least-once delivery by this id.
    """
    return str(uuid.uuid5(PREDICTION_NAMESPACE, f"{event_id}|{model_name}|{model_version}"))


class TransactionEvent(BaseModel):
    """A card transaction, the event of the worked example (fraud scoring)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: str = Field(min_length=1, max_length=128, description="Unique id chosen by the producer.")
    event_time: datetime = Field(description="When the transaction happened, RFC 3339 with offset (UTC).")
    customer_id: str = Field(min_length=1, max_length=64, description="Entity key of the customer.")
    merchant_id: str = Field(min_length=1, max_length=64, description="Entity key of the merchant.")
    amount: float = Field(gt=0, le=1_000_000, allow_inf_nan=False, description="Amount in EUR.")
    channel: Channel = Field(description="Where the card was used: online, pos or atm.")
    hour_of_day: int = Field(ge=0, le=23, description="Local hour of the transaction (0-23).")

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
    entities: dict[str, str] = Field(description="Entity join keys, e.g. customer_id and merchant_id.")
    model_name: str
    model_version: str
    score: float = Field(description="Probability of the positive class (fraud).")
    threshold: float = Field(description="Decision threshold of this model version.")
    decision: bool = Field(description="score >= threshold.")
    missing_features: list[str] = Field(description="Features the store had no value for (scored as NaN).")
    degraded: bool = Field(description="True when features were missing because the store failed.")
    event_time: datetime
    scored_at: datetime
    timings: StageTimings

    @field_serializer("event_time", "scored_at")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DeadLetter(BaseModel):
    """An input the worker could not score, kept whole with the reason so it can be replayed."""

    error_type: DeadLetterType
    reason: str = Field(description="Readable reason, naming the field and the rule it broke.")
    source_topic: str
    source_partition: int
    source_offset: int
    original_key: bytes | None = Field(description="Original key bytes, base64 in JSON.")
    original_value: bytes = Field(description="Original value bytes, base64 in JSON.")
    event_id: str | None = Field(default=None, description="The event id, when it could be read.")
    model_version: str | None = None
    failed_at: datetime

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
