"""Property tests: no input makes validation raise; each gets exactly one verdict with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


@given(json_values)
def test_arbitrary_json(doc: object) -> None:
    verdict(dumps(doc))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["event_id", "event_time", "customer_id", "merchant_id", "amount", "channel", "hour_of_day"]),
    value=json_values | st.text(min_size=100, max_size=3000) | st.sampled_from(
        [0, -0.0, 1e308, -1e308, 2**63, -(2**63), 0.009, 0.01, 1e6, 1e6 + 0.01, 23, 24, -1, ""]
    ),
)
def test_any_single_field_mutation(field: str, value: object) -> None:
    verdict(dumps(event(**{field: value})))


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
