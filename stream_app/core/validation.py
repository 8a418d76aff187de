"""Decode and validate one raw event against what the served model needs.

Pure: no Kafka, no clock of its own (``now`` is passed in). What is required comes from the model
metadata (entity fields and request features), so another model needs no code change here. Every
rejection names the field and the rule, because the dead-letter reason is what a person reads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta

import orjson

from driftline.contracts import ID_MAX_LENGTH, DeadLetterType
from driftline.registry import EntitySpec, FeatureSpec


@dataclass(frozen=True, slots=True)
class ValidEvent:
    """An event that passed validation, reduced to what scoring needs."""

    event_id: str
    event_time: datetime
    entities: dict[str, str | int]  # Feast join key -> value, typed as the entity is
    request: dict[str, object]  # FeatureSpec.name -> event value
    # request-source fields for Feast's on-demand views: field -> event value (empty for most models)
    online_request: dict[str, object] = dataclass_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event cannot be scored."""

    error_type: DeadLetterType
    reason: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventRules:
    """What an event must carry for one model; built once per model version."""

    entities: Sequence[EntitySpec]
    request_specs: Sequence[FeatureSpec]
    online_request_specs: Sequence[FeatureSpec]  # request fields passed to Feast, not model columns
    max_event_bytes: int
    max_future_skew: timedelta
    max_event_age: timedelta

    @classmethod
    def for_model(
        cls,
        entities: Sequence[EntitySpec],
        specs: Sequence[FeatureSpec],
        max_event_bytes: int,
        max_future_skew_s: float,
        max_event_age_s: float,
        request_fields: Sequence[FeatureSpec] = (),
    ) -> EventRules:
        """Rules for a model: its typed entity keys, its request features and its on-demand views' inputs."""
        return cls(
            entities=list(entities),
            request_specs=[s for s in specs if s.source == "request"],
            online_request_specs=list(request_fields),
            max_event_bytes=max_event_bytes,
            max_future_skew=timedelta(seconds=max_future_skew_s),
            max_event_age=timedelta(seconds=max_event_age_s),
        )


def _span(span: timedelta) -> str:
    """A duration for a person: whole days when long or exact (``7 days``), else ``d days, h:mm:ss``."""
    if span.days >= 10 or (span.days and span == timedelta(days=span.days)):
        return f"{span.days} day{'' if span.days == 1 else 's'}"
    return str(span - timedelta(microseconds=span.microseconds))


def parse_event_time(
    value: object, now: datetime, max_future_skew: timedelta, max_event_age: timedelta
) -> datetime | str:
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
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00, before the first representable instant
        return f"event_time {value!r} is out of the representable range"
    if parsed - now > max_future_skew:
        return (
            f"event_time {value!r} is {(parsed - now).total_seconds():.0f}s in the future "
            f"(more than the allowed {max_future_skew.total_seconds():.0f}s)"
        )
    if now - parsed > max_event_age:
        return (
            f"event_time {value!r} is {_span(now - parsed)} old "
            f"(more than the allowed {_span(max_event_age)})"
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


#: Inclusive ranges of integer join keys, as Feast stores them (``<i`` and ``<q``).
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _check_entity(entity: EntitySpec, value: object) -> str | None:
    field = entity.field
    if entity.dtype == "string":
        if not isinstance(value, str) or not 0 < len(value) <= ID_MAX_LENGTH:
            return f"{field} must be a string of 1-{ID_MAX_LENGTH} characters"
        return None
    # A string "42" for an Int64 key would read nothing from the store: a type error, not a miss.
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{field} must be a whole number ({entity.dtype}), got {type(value).__name__}"
    low, high = INT_RANGES[entity.dtype]
    if not low <= value <= high:
        return f"{field} {value} is out of the {entity.dtype} range"
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


def _keys_written(raw: bytes) -> int:
    """Count the keys written in ``raw`` (valid JSON): its colons outside strings, one per key.

    Spacing and escapes cannot hide a key: whatever a string holds is cut out before counting.
    """
    if b"\\" in raw:
        # Backslashes occur only in strings. Dropping escaped backslashes first (pairs, from the left,
        # as a decoder reads them) leaves every remaining \" an escaped quote, which is dropped too.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Now every '"' opens or closes a string: the even pieces lie outside strings.
    return b"".join(raw.split(b'"')[::2]).count(b":")


def _keys_kept(doc: dict[str, object], raw: bytes) -> int:
    """Count the keys of every object in ``doc`` (iteratively: nesting may be deep)."""
    if raw.count(b"{") == 1:
        return len(doc)  # the top object is the only one (a '{' in a string only adds to the count)
    kept = 0
    pending: list[object] = [doc]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            kept += len(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return kept


def _duplicate_reason(raw: bytes, doc: dict[str, object]) -> str | None:
    """Why ``raw`` (already decoded by orjson into ``doc``) is ambiguous, or None when no key repeats.

    orjson keeps the last of repeated keys silently, so each repeat leaves one key fewer in ``doc``
    than written in ``raw``. Counting is exact and costs a few microseconds; the slower stdlib parse
    runs only on a real duplicate, to name it.
    """
    if _keys_written(raw) == _keys_kept(doc, raw):
        return None
    try:
        json.loads(raw, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return f"field {exc.key[:64]!r} appears more than once"
    except (ValueError, RecursionError):
        pass  # too deep for the stdlib parser: the count alone proves the repeat
    return "a field appears more than once in one object"


def validate_event(
    raw: bytes | None, rules: EventRules, now: datetime, key: bytes | None = None
) -> ValidEvent | Rejection:
    """Decode ``raw`` (the message value; ``key`` its key) and check it against ``rules``; never raises."""
    # The size rule comes first and counts the key too: both travel in the dead letter.
    key_bytes, value_bytes = len(key or b""), len(raw or b"")
    if key_bytes + value_bytes > rules.max_event_bytes:
        return Rejection(
            "too_large",
            f"the message is {key_bytes + value_bytes} bytes (value {value_bytes}, key {key_bytes}), "
            f"above the limit of {rules.max_event_bytes}",
        )
    if raw is None:
        return Rejection("not_json", "the message has no value (a tombstone)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection("not_json", f"the message is not valid UTF-8 JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejection("not_json", f"the message must be a JSON object, got a JSON {type(doc).__name__}")
    if (duplicate := _duplicate_reason(raw, doc)) is not None:
        return Rejection("duplicate_field", duplicate)

    event_id = doc.get("event_id")
    if event_id is None:
        return Rejection("missing_field", "event_id is missing")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= ID_MAX_LENGTH:
        return Rejection("invalid_field", f"event_id must be a string of 1-{ID_MAX_LENGTH} characters")

    if doc.get("event_time") is None:  # null is absent, as for every other required field
        return Rejection("missing_field", "event_time is missing", event_id)
    event_time = parse_event_time(doc["event_time"], now, rules.max_future_skew, rules.max_event_age)
    if isinstance(event_time, str):
        return Rejection("invalid_field", event_time, event_id)

    entities: dict[str, str | int] = {}
    for entity in rules.entities:
        value = doc.get(entity.field)
        if value is None:
            return Rejection("missing_field", f"{entity.field} is missing", event_id)
        problem = _check_entity(entity, value)
        if problem is not None:
            return Rejection("invalid_field", problem, event_id)
        entities[entity.join_key] = value  # checked above: a str or an int

    request: dict[str, object] = {}
    for spec in rules.request_specs:
        field = spec.field or spec.name
        if field not in doc or doc[field] is None:
            return Rejection("missing_field", f"{field} is missing", event_id)
        problem = _check_request(spec, doc[field])
        if problem is not None:
            return Rejection("invalid_field", problem, event_id)
        request[spec.name] = doc[field]

    online_request: dict[str, object] = {}
    for spec in rules.online_request_specs:
        if spec.name not in doc or doc[spec.name] is None:
            return Rejection("missing_field", f"{spec.name} is missing", event_id)
        problem = _check_request(spec, doc[spec.name])
        if problem is not None:
            return Rejection("invalid_field", problem, event_id)
        online_request[spec.name] = doc[spec.name]

    return ValidEvent(
        event_id=event_id, event_time=event_time, entities=entities, request=request, online_request=online_request
    )


def _field_schema(spec: FeatureSpec) -> dict[str, object]:
    if spec.kind == "categorical":
        schema: dict[str, object] = {"type": "string"}
        if spec.categories is not None:
            schema["enum"] = list(spec.categories)
        return schema
    schema = {"type": "integer" if spec.integer else "number"}
    if spec.minimum is not None:
        schema["minimum"] = spec.minimum
    if spec.maximum is not None:
        schema["maximum"] = spec.maximum
    return schema


def event_json_schema(rules: EventRules, title: str) -> dict[str, object]:
    """The event these rules accept, as JSON Schema (draft 2020-12), for producers to validate against.

    What JSON Schema cannot say is in descriptions: the event-time window, the size limit (key plus
    value) and that a repeated key is refused.
    """
    properties: dict[str, object] = {
        "event_id": {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH},
        "event_time": {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 with an offset; at most "
            f"{rules.max_future_skew.total_seconds():.0f}s ahead and {_span(rules.max_event_age)} old.",
        },
    }
    for entity in rules.entities:
        key: dict[str, object] = {"description": f"Feast join key {entity.join_key} ({entity.dtype})."}
        if entity.dtype == "string":
            key.update(type="string", minLength=1, maxLength=ID_MAX_LENGTH)
        else:
            low, high = INT_RANGES[entity.dtype]
            key.update(type="integer", minimum=low, maximum=high)
        properties[entity.field] = key
    for spec in [*rules.request_specs, *rules.online_request_specs]:
        properties.setdefault(spec.field or spec.name, _field_schema(spec))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "description": f"At most {rules.max_event_bytes} bytes (key plus value); a key repeated in an object is "
        "refused; unknown fields are ignored.",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": True,
    }
