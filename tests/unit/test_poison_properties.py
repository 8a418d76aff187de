"""Property tests: no input makes validation raise; each gets exactly one verdict with a reason."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import get_args

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.contracts import AMOUNT_MAX, AMOUNT_MIN, HOUR_MAX, HOUR_MIN, ID_MAX_LENGTH, Channel
from stream_app.core.validation import Rejection, ValidEvent, validate_event

from .test_validation import MAX_AGE_S, NOW, RULES, event

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)


def dumps(doc: object) -> bytes:
    """Encode like any producer might (stdlib: integers of any size, no NaN)."""
    return json.dumps(doc, allow_nan=False).encode()


def verdict(raw: bytes) -> ValidEvent | Rejection:
    result = validate_event(raw, RULES, NOW)
    assert isinstance(result, ValidEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.reason and result.error_type
    return result


@given(st.binary(max_size=5000))
def test_arbitrary_bytes(raw: bytes) -> None:
    verdict(raw)


# --- an oracle of the event rules ------------------------------------------------------------------
# Written from the contract (driftline.contracts) and the dead-letter categories, not from the
# validator: each required field is judged on its own, and an event is accepted only when all are.

FIELDS = ("event_id", "event_time", "customer_id", "merchant_id", "amount", "channel", "hour_of_day")
IDS = ("event_id", "customer_id", "merchant_id")
CHANNELS: tuple[str, ...] = get_args(Channel)
NOW_S = NOW.timestamp()
MAX_FUTURE_S = RULES.max_future_skew.total_seconds()
# RFC 3339 date-time: full-date, 'T' (or a space, as the RFC allows), full-time, a mandatory offset.
RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))"
)


def rfc3339_seconds(text: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp with an offset; None when ``text`` is not one."""
    match = RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    try:
        days = date(year, month, day).toordinal() - date(1970, 1, 1).toordinal()
    except ValueError:  # no such day (month 13, 30 February, year 0)
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if match[8] is None:  # +hh:mm or -hh:mm
        offset_hours, offset_minutes = int(match[10]), int(match[11])
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = (1 if match[9] == "+" else -1) * (offset_hours * 3600 + offset_minutes * 60)
    fraction = float("0." + match[7]) if match[7] else 0.0
    return days * 86_400 + hour * 3600 + minute * 60 + second + fraction - offset


def is_number(value: object) -> bool:
    """A JSON number (a JSON true/false is not one, though Python's bool is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def field_verdict(doc: dict[str, object], field: str) -> str:
    """``ok``, ``missing_field`` (absent or null) or ``invalid_field`` for one required field."""
    value = doc.get(field)
    if value is None:
        return "missing_field"
    if field in IDS:
        good = isinstance(value, str) and 1 <= len(value) <= ID_MAX_LENGTH
    elif field == "event_time":
        seconds = rfc3339_seconds(value) if isinstance(value, str) else None
        good = seconds is not None and NOW_S - MAX_AGE_S <= seconds <= NOW_S + MAX_FUTURE_S
    elif field == "amount":
        good = is_number(value) and AMOUNT_MIN <= value <= AMOUNT_MAX
    elif field == "channel":
        good = isinstance(value, str) and value in CHANNELS
    else:  # hour_of_day: a whole number of hours, 23.0 included
        good = is_number(value) and HOUR_MIN <= value <= HOUR_MAX and value == int(value)
    return "ok" if good else "invalid_field"


def allowed_verdicts(raw: bytes, doc: object) -> set[str]:
    """Every verdict the rules allow for ``raw`` (the JSON encoding of ``doc``): ``accepted`` or error types.

    The rules do not say which of several broken fields is reported, so an event with broken fields
    of different kinds allows each of their error types; with one kind (or one field) it is decided.
    """
    if len(raw) > RULES.max_event_bytes:
        return {"too_large"}
    if not isinstance(doc, dict):
        return {"not_json"}
    problems = {field_verdict(doc, field) for field in FIELDS} - {"ok"}
    return problems or {"accepted"}


def verdict_name(result: ValidEvent | Rejection) -> str:
    return "accepted" if isinstance(result, ValidEvent) else result.error_type


#: Values around every rule's edge: bounds, types, timestamps inside and outside the allowed window.
EDGE_VALUES: list[object] = [
    None, 0, -0.0, 1e308, -1e308, 2**63, -(2**63), 0.009, 0.01, 1e6, 1e6 + 0.01, 23, 23.0, 23.5, 24, -1, "",
    True, False, "online", "pos", "atm", "ATM", "x" * ID_MAX_LENGTH, "x" * (ID_MAX_LENGTH + 1),
    "\u00e9" * ID_MAX_LENGTH, "2026-11-22T11:59:59Z", "2026-11-22T13:59:59+02:00", "2026-11-22 11:59:59Z",
    "2026-11-22T12:05:00Z", "2026-11-22T12:05:00.001Z", "2026-11-15T12:00:00Z", "2026-11-15T11:59:59.999Z",
    "2026-11-22T11:59:59", "2026-11-22", "2026-02-30T00:00:00Z", "0001-01-01T00:00:00+05:00",
]
field_values = json_values | st.text(min_size=100, max_size=3000) | st.sampled_from(EDGE_VALUES)


@st.composite
def event_like(draw: st.DrawFn) -> dict[str, object]:
    """A valid event with any of its fields kept, dropped or replaced by any JSON value, plus extra keys."""
    doc: dict[str, object] = {}
    for field, good in event().items():
        action = draw(st.sampled_from(["keep", "drop", "replace"]))
        if action == "keep":
            doc[field] = good
        elif action == "replace":
            doc[field] = draw(field_values)
    doc.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3)))
    return doc


@given(json_values | event_like())
def test_arbitrary_json(doc: object) -> None:
    raw = dumps(doc)
    result = verdict(raw)
    allowed = allowed_verdicts(raw, doc)
    assert verdict_name(result) in allowed, (doc, result)
    if not isinstance(doc, dict) and len(raw) <= RULES.max_event_bytes:
        assert isinstance(result, Rejection) and result.error_type == "not_json"


def assert_single_mutation_verdict(field: str, value: object) -> None:
    """An event valid but for ``field`` set to ``value`` gets exactly the oracle's verdict."""
    doc = event(**{field: value})
    raw = dumps(doc)
    (expected,) = allowed_verdicts(raw, doc)  # one field changed: the verdict is decided
    result = verdict(raw)
    assert verdict_name(result) == expected, (field, value, result)
    if isinstance(result, ValidEvent) and field == "event_time":
        assert result.event_time.timestamp() == pytest.approx(rfc3339_seconds(str(value)), abs=1e-6)
    elif isinstance(result, ValidEvent):
        assert {"event_id": result.event_id, **result.entities, **result.request}[field] == value
    elif expected != "too_large":
        assert field in result.reason, result.reason  # the reason names the broken field
        assert result.event_id == (None if field == "event_id" else "e-1")


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=field_values)
def test_any_single_field_mutation(field: str, value: object) -> None:
    assert_single_mutation_verdict(field, value)


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_at_every_edge(field: str) -> None:
    # Deterministic: random draws reach an edge value only now and then. A null counts as absent
    # for every required field, event_time included.
    for value in EDGE_VALUES:
        assert_single_mutation_verdict(field, value)


@given(st.dictionaries(st.text(max_size=20), json_values, max_size=20))
def test_unknown_fields_never_change_a_valid_verdict(extra: dict[str, object]) -> None:
    known = event()
    extra = {k: v for k, v in extra.items() if k not in known}
    raw = dumps({**known, **extra})
    result = verdict(raw)
    if len(raw) <= RULES.max_event_bytes:
        assert isinstance(result, ValidEvent)
    else:
        assert isinstance(result, Rejection) and result.error_type == "too_large"


@given(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999"]))
def test_non_finite_numbers(token: bytes) -> None:
    raw = orjson.dumps(event(amount=12345.5)).replace(b"12345.5", token)
    assert isinstance(verdict(raw), Rejection)


@given(st.integers(min_value=1, max_value=5000))
def test_deep_nesting(depth: int) -> None:
    raw = orjson.dumps(event())[:-1] + b',"deep":' + b"[" * depth + b"]" * depth + b"}"
    verdict(raw)


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)), st.booleans())
def test_timestamps_naive_or_far(moment: datetime, aware: bool) -> None:
    stamp = moment.replace(tzinfo=UTC).isoformat() if aware else moment.isoformat()
    result = verdict(orjson.dumps(event(event_time=stamp)))
    when = moment.replace(tzinfo=UTC)
    if not aware or when > NOW + timedelta(minutes=5) or when < NOW - timedelta(seconds=MAX_AGE_S):
        assert isinstance(result, Rejection) and result.error_type == "invalid_field"
    else:
        assert isinstance(result, ValidEvent) and result.event_time == when


# Duplicated keys, written the ways a producer (or an attacker) might: any JSON whitespace around
# ':' and ',', and any character of a key as a \uXXXX escape (upper or lower case hex, surrogate
# pairs beyond the BMP). Whatever the spelling, the decoded keys are equal and the event is refused.
whitespace = st.text(alphabet=" \t\n\r", max_size=3)
scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)


@st.composite
def spelled_key(draw: st.DrawFn, key: str) -> str:
    """``key`` as a JSON string token, each character written plainly or as a \\u escape."""
    out: list[str] = []
    for char in key:
        if draw(st.booleans()):
            units = char.encode("utf-16-be")
            hex_digits = units.hex().upper() if draw(st.booleans()) else units.hex()
            out.extend(f"\\u{hex_digits[i:i + 4]}" for i in range(0, len(hex_digits), 4))
        else:
            out.append(json.dumps(char, ensure_ascii=False)[1:-1])
    return '"' + "".join(out) + '"'


@st.composite
def json_object(draw: st.DrawFn, entries: list[tuple[str, str]]) -> str:
    """An object of (key, encoded value) entries, with any whitespace around every token."""
    members = [
        draw(whitespace) + draw(spelled_key(key)) + draw(whitespace) + ":" + draw(whitespace) + value
        + draw(whitespace)
        for key, value in entries
    ]
    return "{" + ",".join(members) + draw(whitespace) + "}"


@st.composite
def event_with_a_duplicated_key(draw: st.DrawFn) -> tuple[bytes, str]:
    """An event holding, at any depth, one object with a key written twice; and that key."""
    keys = draw(st.lists(st.text(max_size=6), min_size=1, max_size=4, unique=True))
    duplicated = draw(st.sampled_from(keys))
    entries = [(key, json.dumps(draw(scalars))) for key in [*keys, duplicated]]
    node = draw(json_object(draw(st.permutations(entries))))
    for _ in range(draw(st.integers(0, 3))):  # wrap it in lists and objects
        if draw(st.booleans()):
            node = "[" + draw(whitespace) + node + draw(whitespace) + "," + json.dumps(draw(scalars)) + "]"
        else:
            node = draw(json_object([("payload", node), ("note", json.dumps(draw(scalars)))]))
    if not node.startswith("{") or draw(st.booleans()):
        known = [(key, json.dumps(value)) for key, value in event().items()]
        node = draw(json_object([*known, ("extra", node)]))
    return node.encode(), duplicated


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(event_with_a_duplicated_key())
def test_a_duplicated_key_is_refused_however_it_is_written(case: tuple[bytes, str]) -> None:
    raw, key = case
    assert orjson.loads(raw)  # valid JSON: only the repeat is wrong
    result = verdict(raw)
    assert isinstance(result, Rejection) and result.error_type == "duplicate_field", raw
    unnamed = "a field appears more than once in one object"  # when too deep for the stdlib parser to name it
    assert result.reason in (f"field {key[:64]!r} appears more than once", unnamed)


@given(json_values, st.lists(whitespace, min_size=4, max_size=4), st.booleans())
def test_no_duplicate_is_seen_where_there_is_none(extra: object, spaces: list[str], ascii_only: bool) -> None:
    separators = (spaces[0] + "," + spaces[1], spaces[2] + ":" + spaces[3])
    raw = json.dumps({**event(), "extra": extra}, ensure_ascii=ascii_only, separators=separators).encode()
    result = verdict(raw)
    assert not (isinstance(result, Rejection) and result.error_type == "duplicate_field"), raw


tricky_text = st.text(alphabet='\\":{},[] a\u00e9\n', max_size=8)  # what could confuse a key count


@given(st.dictionaries(tricky_text, tricky_text | st.dictionaries(tricky_text, tricky_text, max_size=3), max_size=5))
def test_quotes_backslashes_and_colons_in_strings_are_never_counted_as_keys(extra: dict[str, object]) -> None:
    raw = json.dumps({**event(), "extra": extra}, ensure_ascii=False).encode()
    assert isinstance(verdict(raw), ValidEvent), raw
