"""Decode and validate one raw event against what the served model needs.

Pure: no Kafka, no clock of its own (``now`` is passed in). What is required comes from the model
metadata (entity fields and request features), so another model needs no code change here. Every
rejection names the field and the rule, because the dead-letter reason is what a person reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from driftline.contracts import DeadLetterType
from driftline.registry import FeatureSpec

MAX_ID_LENGTH = 128


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An event that passed validation, reduced to what scoring needs."""

    event_id: str
    event_time: datetime
    entities: dict[str, str]  # Feast join key -> value
    request: dict[str, object]  # FeatureSpec.name -> event value


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event cannot be scored."""

    error_type: DeadLetterType
    reason: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventRules:
    """What an event must carry for one model; built once per model version."""

    entity_fields: Mapping[str, str]  # event field -> Feast join key
    request_specs: Sequence[FeatureSpec]
    max_event_bytes: int
    max_future_skew: timedelta

    @classmethod
    def for_model(
        cls,
        entity_fields: Mapping[str, str],
        specs: Sequence[FeatureSpec],
        max_event_bytes: int,
        max_future_skew_s: float,
    ) -> EventRules:
        """Rules for a model: its entity fields and its request features."""
        return cls(
            entity_fields=dict(entity_fields),
            request_specs=[s for s in specs if s.source == "request"],
            max_event_bytes=max_event_bytes,
            max_future_skew=timedelta(seconds=max_future_skew_s),
        )


def parse_event_time(value: object, now: datetime, max_future_skew: timedelta) -> datetime | str:
    """Parse an RFC 3339 timestamp with an offset; return the UTC datetime or a reason."""
    if not isinstance(value, str):
        return f"event_time must be an RFC 3339 string, got {type(value).__name__}"
    if len(value) > 40:
        return "event_time is too long to be an RFC 3339 timestamp"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return f"event_time {value!r} is not an RFC 3339 timestamp"
    if parsed.tzinfo is None:
        return f"event_time {value!r} has no UTC offset; send e.g. 2026-01-01T12:00:00Z"
    parsed = parsed.astimezone(UTC)
    if parsed - now > max_future_skew:
        return (
            f"event_time {value!r} is {(parsed - now).total_seconds():.0f}s in the future "
            f"(more than the allowed {max_future_skew.total_seconds():.0f}s)"
        )
    return parsed


def _check_request(spec: FeatureSpec, value: object) -> str | None:
    field = spec.field or spec.name
    if spec.kind == "categorical":
        if not isinstance(value, str):
            return f"{field} must be a string, got {type(value).__name__}"
        if spec.categories is not None and value not in spec.categories:
            return f"{field} {value[:64]!r} is not one of {spec.categories}"
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{field} must be a number, got {type(value).__name__}"
    if not math.isfinite(value):
        return f"{field} must be finite, got {value}"
    if spec.integer and not float(value).is_integer():
        return f"{field} must be a whole number, got {value}"
    if spec.minimum is not None and value < spec.minimum:
        return f"{field} must be >= {spec.minimum:g}, got {value}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{field} must be <= {spec.maximum:g}, got {value}"
    return None


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def _duplicated_key(raw: bytes) -> str | None:
    """Return a key that appears twice in some object of ``raw`` (already known to be valid JSON)."""
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return exc.key
    except (ValueError, RecursionError):
        return None  # orjson accepted it; a stricter parser's complaint is not a duplicate
    return None


def validate_event(raw: bytes | None, rules: EventRules, now: datetime) -> ValidEvent | Rejection:
    """Decode ``raw`` and check it against ``rules``; never raises on any input."""
    if raw is None:
        return Rejection("not_json", "the message has no value (a tombstone)")
    if len(raw) > rules.max_event_bytes:
        return Rejection(
            "too_large", f"the message is {len(raw)} bytes, above the limit of {rules.max_event_bytes}"
        )
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"the message is not valid UTF-8 JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejection("not_json", f"the message must be a JSON object, got a JSON {type(doc).__name__}")
    # orjson keeps the last of duplicated keys silently. A compact flat object has exactly one '":'
    # per key, so the exact (slower) check runs only when that count does not match.
    if raw.count(b'":') != len(doc) and (duplicate := _duplicated_key(raw)) is not None:
        return Rejection("duplicate_field", f"field {duplicate[:64]!r} appears more than once")

    event_id = doc.get("event_id")
    if event_id is None:
        return Rejection("missing_field", "event_id is missing")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID_LENGTH:
        return Rejection("invalid_field", f"event_id must be a string of 1-{MAX_ID_LENGTH} characters")

    if "event_time" not in doc:
        return Rejection("missing_field", "event_time is missing", event_id)
    event_time = parse_event_time(doc["event_time"], now, rules.max_future_skew)
    if isinstance(event_time, str):
        return Rejection("invalid_field", event_time, event_id)

    entities: dict[str, str] = {}
    for field, join_key in rules.entity_fields.items():
        value = doc.get(field)
        if value is None:
            return Rejection("missing_field", f"{field} is missing", event_id)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
            return Rejection(
                "invalid_field", f"{field} must be a string of 1-{MAX_ID_LENGTH} characters", event_id
            )
        entities[join_key] = value

    request: dict[str, object] = {}
    for spec in rules.request_specs:
        field = spec.field or spec.name
        if field not in doc or doc[field] is None:
            return Rejection("missing_field", f"{field} is missing", event_id)
        problem = _check_request(spec, doc[field])
        if problem is not None:
            return Rejection("invalid_field", problem, event_id)
        request[spec.name] = doc[field]

    return ValidEvent(event_id=event_id, event_time=event_time, entities=entities, request=request)
