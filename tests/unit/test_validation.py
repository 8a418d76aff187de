from datetime import UTC, datetime, timedelta

import orjson
import pytest

from driftline.registry import EntitySpec, FeatureSpec
from stream_app.core.validation import EventRules, Rejection, ValidEvent, validate_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPECS = [
    FeatureSpec(name="avg_amount_30d", source="feast", ref="customer_stats:avg_amount_30d"),
    FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
    FeatureSpec(name="channel", source="request", field="channel", kind="categorical",
                categories=["online", "pos", "atm"]),
    FeatureSpec(name="hour_of_day", source="request", field="hour_of_day", integer=True, minimum=0, maximum=23),
]
MAX_AGE_S = 7 * 86_400.0
ENTITIES = [
    EntitySpec(field="customer_id", join_key="customer_id"), EntitySpec(field="merchant_id", join_key="merchant_id")
]
RULES = EventRules.for_model(ENTITIES, SPECS, 4096, 300, MAX_AGE_S)


def event(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_id": "e-1", "event_time": "2026-11-22T11:59:59Z", "customer_id": "C00001",
        "merchant_id": "M0001", "amount": 12.5, "channel": "pos", "hour_of_day": 11,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def check(doc: object) -> ValidEvent | Rejection:
    return validate_event(orjson.dumps(doc), RULES, NOW)


def test_valid_event_is_reduced_to_what_scoring_needs() -> None:
    result = check(event())
    assert isinstance(result, ValidEvent)
    assert result.entities == {"customer_id": "C00001", "merchant_id": "M0001"}
    assert result.request == {"amount": 12.5, "channel": "pos", "hour_of_day": 11}
    assert result.event_time == datetime(2026, 11, 22, 11, 59, 59, tzinfo=UTC)


def test_offsets_are_converted_to_utc_and_unknown_fields_ignored() -> None:
    result = check(event(event_time="2026-11-22T13:00:00+02:00", extra_field={"nested": [1, 2]}))
    assert isinstance(result, ValidEvent)
    assert result.event_time == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doc", "error_type", "needle"),
    [
        (event(event_id=...), "missing_field", "event_id is missing"),
        (event(event_id=""), "invalid_field", "event_id must be"),
        (event(event_id=5), "invalid_field", "event_id must be"),
        (event(event_time=...), "missing_field", "event_time is missing"),
        (event(event_time="yesterday"), "invalid_field", "not an RFC 3339"),
        (event(event_time="2026-11-22T11:00:00"), "invalid_field", "no UTC offset"),
        (event(event_time="2027-01-01T00:00:00Z"), "invalid_field", "in the future"),
        (event(event_time=1700000000), "invalid_field", "RFC 3339 string"),
        (event(customer_id=...), "missing_field", "customer_id is missing"),
        (event(customer_id=""), "invalid_field", "customer_id must be"),
        (event(amount=-3), "invalid_field", "amount must be >= 0.01"),
        (event(amount="12"), "invalid_field", "amount must be a number"),
        (event(amount=True), "invalid_field", "amount must be a number"),
        (event(amount=1e300), "invalid_field", "amount must be <= 1e+06"),
        (event(amount=...), "missing_field", "amount is missing"),
        (event(channel="carrier-pigeon"), "invalid_field", "is not one of"),
        (event(channel=3), "invalid_field", "channel must be a string"),
        (event(hour_of_day=25), "invalid_field", "hour_of_day must be <= 23"),
        (event(hour_of_day=1.5), "invalid_field", "whole number"),
        ([1, 2, 3], "not_json", "JSON object"),
        ("just a string", "not_json", "JSON object"),
    ],
)
def test_each_rule_rejects_with_a_reason(doc: object, error_type: str, needle: str) -> None:
    result = check(doc)
    assert isinstance(result, Rejection)
    assert result.error_type == error_type
    assert needle in result.reason


def test_bytes_that_are_not_json() -> None:
    for raw in (b"\xff\xfe", b"{not json", b"", b'{"amount": NaN}'):
        result = validate_event(raw, RULES, NOW)
        assert isinstance(result, Rejection)
        assert result.error_type == "not_json"


def test_oversized_message_is_rejected_unparsed() -> None:
    raw = orjson.dumps(event(padding="x" * 5000))
    result = validate_event(raw, RULES, NOW)
    assert isinstance(result, Rejection)
    assert result.error_type == "too_large"
    assert "4096" in result.reason


def test_the_size_rule_counts_the_key_too() -> None:
    raw = orjson.dumps(event())
    assert isinstance(validate_event(raw, RULES, NOW, key=b"k" * 100), ValidEvent)
    result = validate_event(raw, RULES, NOW, key=b"k" * (RULES.max_event_bytes - len(raw) + 1))
    assert isinstance(result, Rejection) and result.error_type == "too_large"
    assert f"value {len(raw)}" in result.reason


def test_tombstone() -> None:
    result = validate_event(None, RULES, NOW)
    assert isinstance(result, Rejection) and result.error_type == "not_json"


def test_rejection_keeps_the_event_id_when_readable() -> None:
    result = check(event(amount=-1))
    assert isinstance(result, Rejection) and result.event_id == "e-1"


def test_an_event_older_than_the_allowed_age_is_refused_with_a_readable_reason() -> None:
    result = check(event(event_time="1970-01-01T00:00:00Z"))
    assert isinstance(result, Rejection) and result.error_type == "invalid_field"
    assert result.reason == "event_time '1970-01-01T00:00:00Z' is 20779 days old (more than the allowed 7 days)"


def test_an_event_just_inside_the_allowed_age_is_accepted() -> None:
    inside = NOW - timedelta(seconds=MAX_AGE_S) + timedelta(milliseconds=1)
    assert isinstance(check(event(event_time=inside.isoformat())), ValidEvent)
    outside = NOW - timedelta(seconds=MAX_AGE_S + 1)
    result = check(event(event_time=outside.isoformat()))
    assert isinstance(result, Rejection) and result.error_type == "invalid_field"
    assert result.reason.endswith("is 7 days, 0:00:01 old (more than the allowed 7 days)"), result.reason


def test_the_allowed_age_is_a_setting() -> None:
    hourly = EventRules.for_model(RULES.entities, SPECS, 4096, 300, 3600)
    raw = orjson.dumps(event(event_time=(NOW - timedelta(hours=2)).isoformat()))
    result = validate_event(raw, hourly, NOW)
    assert isinstance(result, Rejection) and "is 2:00:00 old (more than the allowed 1:00:00)" in result.reason
    assert isinstance(validate_event(raw, RULES, NOW), ValidEvent)


def test_an_offset_beyond_the_calendar_is_refused_not_raised() -> None:
    for stamp in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        result = check(event(event_time=stamp))
        assert isinstance(result, Rejection) and result.error_type == "invalid_field", stamp


def test_skew_allowance_is_a_setting() -> None:
    strict = EventRules.for_model(RULES.entities, SPECS, 4096, 0, MAX_AGE_S)
    raw = orjson.dumps(event(event_time=(NOW + timedelta(seconds=5)).isoformat()))
    assert isinstance(validate_event(raw, strict, NOW), Rejection)
    assert isinstance(validate_event(raw, RULES, NOW), ValidEvent)


def test_duplicated_keys_are_refused_even_with_spaces_or_nesting() -> None:
    for raw in (
        b'{"event_id":"a","event_id":"b","event_time":"2026-11-22T11:59:59Z"}',
        b'{"event_id" : "a", "amount" : 1, "amount" : 2}',
        b'{"event_id":"a","meta":{"x":1,"x":2}}',
        b'{"event_id":"a","meta":[1,{"y":{"x":1,"z":[],"x":2}}]}',
    ):
        result = validate_event(raw, RULES, NOW)
        assert isinstance(result, Rejection) and result.error_type == "duplicate_field", raw


def test_a_spaced_key_cannot_balance_a_duplicated_one() -> None:
    # One '":' short ("channel" :) and one too many (amount twice): a count of '":' saw nothing.
    raw = (
        b'{"event_id":"e-1","event_time":"2026-11-22T11:59:59Z","customer_id":"C00001","merchant_id":"M0001",'
        b'"amount":12.5,"channel" :"pos","hour_of_day":11,"amount":99999}'
    )
    result = validate_event(raw, RULES, NOW)
    assert isinstance(result, Rejection) and result.error_type == "duplicate_field"
    assert result.reason == "field 'amount' appears more than once"


def test_an_escaped_key_is_the_same_key() -> None:
    raw = orjson.dumps(event())[:-1] + b',"am\\u006funt":99999}'  # \u006f is "o"
    result = validate_event(raw, RULES, NOW)
    assert isinstance(result, Rejection) and result.error_type == "duplicate_field"
    assert "'amount'" in result.reason


def test_a_duplicate_too_deep_for_the_stdlib_parser_is_still_refused() -> None:
    depth = 1000  # orjson accepts it; the stdlib parser hits the recursion limit
    raw = b'{"event_id":"a","deep":' + b"[" * depth + b'{"x":1,"x":2}' + b"]" * depth + b"}"
    result = validate_event(raw, EventRules.for_model([], [], 65_536, 300, MAX_AGE_S), NOW)
    assert isinstance(result, Rejection) and result.error_type == "duplicate_field", result


def test_strings_with_colons_quotes_and_escapes_are_not_keys() -> None:
    for extra in (
        {"meta": {"x": 1}, "more": {"x": 2, "y": {"x": 3}}, "x": 4},  # one name in different objects
        {"note": 'he said "x": 1, {"y": 2}'},
        {"a:b": "c:d", "e\\": "\\:\"", "\u00e9:": {"k": "v:"}},
    ):
        assert isinstance(check(event(**extra)), ValidEvent), extra


def test_strings_that_look_like_keys_do_not_trip_the_duplicate_check() -> None:
    result = check(event(note='he said "x": 1 and "y": 2'))
    assert isinstance(result, ValidEvent)
