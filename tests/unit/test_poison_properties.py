"""Property tests: no input makes validation raise; each gets exactly one verdict with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_app.core.validation import Rejection, ValidEvent, validate_event

from .test_validation import NOW, RULES, event

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
    if not aware or moment.replace(tzinfo=UTC) > datetime(2026, 11, 22, 12, 5, tzinfo=UTC):
        assert isinstance(result, Rejection) and result.error_type == "invalid_field"
