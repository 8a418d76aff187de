"""Labels: the contract, reading a labels message, the join record and the join itself."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from driftline.contracts import Label, prediction_id
from stream_app.core.labels import (
    JOIN_RECORD_FIXED_BYTES,
    CorruptJoinRecordError,
    JoinedPrediction,
    JoinWindow,
    LabelRejection,
    join,
    label_value,
    validate_label,
)

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
SKEW_S = 300.0
DOC = Path(__file__).parents[2] / "docs" / "feedback-loop.md"
WINDOW = JoinWindow(accept_s=90 * 86_400.0, grace_s=86_400.0)
PID_V1 = prediction_id("e-1", "fraud", "1")
PID_V2 = prediction_id("e-1", "fraud", "2")


def raw(**overrides: object) -> bytes:
    base: dict[str, object] = {"event_id": "e-1", "label": True, "label_time": "2026-11-27T17:00:00Z"}
    base.update(overrides)
    return orjson.dumps({k: v for k, v in base.items() if v is not ...})


def pending(**overrides: object) -> JoinedPrediction:
    fields: dict[str, object] = {
        "prediction_id": PID_V1,
        "event_id": "e-1",
        "model_version": "1",
        "score": 0.83,
        "decision": True,
        "scored_at": NOW - timedelta(days=3),
        "threshold": 0.5,
        "task": "binary",
    }
    fields.update(overrides)
    return JoinedPrediction(**fields)  # type: ignore[arg-type]


def valid(**overrides: object) -> Label:
    label = validate_label(raw(**overrides), NOW, SKEW_S)
    assert isinstance(label, Label), label
    return label


# --- the contract ---------------------------------------------------------------------------------


def test_a_label_round_trips_with_rfc3339_z() -> None:
    label = valid(label_time="2026-11-27T18:30:00.250+01:00", source="chargebacks")
    assert label.label_time == datetime(2026, 11, 27, 17, 30, 0, 250_000, tzinfo=UTC)
    dumped = orjson.loads(label.model_dump_json())
    assert dumped["label_time"] == "2026-11-27T17:30:00.250000Z"
    assert Label.model_validate_json(label.model_dump_json()) == label


@pytest.mark.parametrize("value", [True, False, 0, 1, 3, 12.75, "fraud"])
def test_label_keeps_its_json_type(value: object) -> None:
    label = valid(label=value)
    assert label.label == value and type(label.label) is type(value)


def test_the_contract_needs_an_id_and_an_aware_time() -> None:
    with pytest.raises(ValidationError, match="event_id or prediction_id"):
        Label(label=True, label_time=NOW)
    with pytest.raises(ValidationError, match="UTC offset"):
        Label(event_id="e", label=True, label_time=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="RFC 3339 string"):
        Label.model_validate({"event_id": "e", "label": True, "label_time": 1_764_262_800})


def test_every_label_field_is_documented() -> None:
    text = DOC.read_text()
    for field in Label.model_fields:
        assert re.search(rf"`{field}`", text), field


def test_the_documented_example_is_a_valid_label() -> None:
    examples = re.findall(r"```json\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert examples, "docs/feedback-loop.md shows the label as a ```json block"
    label = validate_label(examples[0].encode(), NOW + timedelta(days=365), SKEW_S)
    assert isinstance(label, Label), label


# --- reading a labels message ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error_type", "reason"),
    [
        (None, "malformed", "tombstone"),
        (b"x" * 5000, "too_large", "5000 bytes"),
        (b"{not json", "malformed", "not valid UTF-8 JSON"),
        (b"[1, 2]", "malformed", "JSON list"),
        (
            b'{"event_id": "e-1", "label": true, "label": false, "label_time": "2026-11-27T17:00:00Z"}',
            "malformed",
            "'label' appears more than once",
        ),
        (b'{"label": true, "label_time": "2026-11-27T17:00:00Z"}', "missing_id", "neither"),
        (raw(event_id=None, prediction_id=None), "missing_id", "neither"),
        (raw(label=...), "bad_label", "label is missing"),
        (raw(label=None), "bad_label", "label is missing"),
        (raw(label=[1]), "bad_label", "got a JSON list"),
        (raw(label={"y": 1}), "bad_label", "got a JSON dict"),
        (raw(label=""), "bad_label", "1-128 characters"),
        (raw(label="x" * 129), "bad_label", "1-128 characters"),
        (b'{"event_id": "e-1", "label": NaN, "label_time": "2026-11-27T17:00:00Z"}', "malformed", "JSON"),
        (raw(event_id=42), "malformed", "event_id"),
        (raw(event_id=""), "malformed", "event_id"),
        (raw(prediction_id="p" * 129), "malformed", "prediction_id"),
        (raw(source=7), "malformed", "source"),
        (raw(label_time=...), "malformed", "label_time"),
        (raw(label_time="2026-11-27T17:00:00"), "malformed", "UTC offset"),
        (raw(label_time="yesterday"), "malformed", "label_time"),
        (raw(label_time=1_764_262_800), "malformed", "RFC 3339 string, got int"),
        (raw(label_time="2026-11-27T17:00:00Z" + " " * 30), "malformed", "too long"),
        (raw(label_time="0001-01-01T00:00:00+05:00"), "malformed", "representable"),
        (raw(label_time="2026-11-27T18:05:01Z"), "from_the_future", "301s in the future"),
    ],
)
def test_a_bad_label_is_a_rejection_with_a_reason(message: bytes | None, error_type: str, reason: str) -> None:
    rejection = validate_label(message, NOW, SKEW_S)
    assert isinstance(rejection, LabelRejection)
    assert rejection.error_type == error_type, rejection
    assert reason in rejection.reason
    assert "\n" not in rejection.reason


def test_a_rejection_keeps_the_ids_it_could_read() -> None:
    rejection = validate_label(raw(prediction_id=PID_V1, label=[1]), NOW, SKEW_S)
    assert isinstance(rejection, LabelRejection)
    assert (rejection.event_id, rejection.prediction_id) == ("e-1", PID_V1)


def test_labels_within_the_skew_and_with_unknown_fields_are_read() -> None:
    label = valid(label_time="2026-11-27T18:04:59Z", comment="reviewed by ops")
    assert label.label_time == NOW + timedelta(minutes=4, seconds=59)
    assert valid(event_id=None, prediction_id=PID_V1).prediction_id == PID_V1


@given(st.binary(max_size=300))
def test_no_bytes_make_validation_raise(message: bytes) -> None:
    assert isinstance(validate_label(message, NOW, SKEW_S), Label | LabelRejection)


# --- the join record ------------------------------------------------------------------------------

aware = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
records = st.builds(
    JoinedPrediction,
    prediction_id=st.text(max_size=40),
    event_id=st.text(min_size=1, max_size=128),
    model_version=st.text(min_size=1, max_size=16),
    score=st.floats(),
    decision=st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=128)),
    scored_at=aware,
    threshold=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    task=st.sampled_from(["binary", "multiclass", "regression"]),
    labelled_at=st.one_of(st.none(), aware),
)


def _json_len(value: object) -> int:
    return len(orjson.dumps(value))


@given(records)
def test_a_join_record_round_trips_within_its_byte_bound(record: JoinedPrediction) -> None:
    encoded = record.to_bytes()
    decoded = JoinedPrediction.from_bytes(encoded)
    if math.isfinite(record.score):
        assert decoded == record
    else:
        assert math.isnan(decoded.score) and replace(decoded, score=0.0) == replace(record, score=0.0)
    variable = sum(_json_len(v) for v in (record.prediction_id, record.event_id, record.model_version, record.decision))
    assert len(encoded) <= JOIN_RECORD_FIXED_BYTES + variable


def test_a_fraud_prediction_takes_under_160_bytes_pending() -> None:
    record = pending(
        event_id="0b5e6e0e-6c1b-4a57-a0e4-5b1f6f2c9d3e",
        model_version="12",
        score=0.012345678901234567,
        scored_at=datetime(2026, 11, 27, 17, 59, 59, 999_999, tzinfo=UTC),
        threshold=0.4375,
    )
    assert len(record.to_bytes()) <= 160
    labelled = replace(record, labelled_at=NOW)
    assert len(labelled.to_bytes()) <= 175


def test_times_keep_the_microsecond_and_the_instant() -> None:
    moment = datetime(2026, 11, 27, 19, 0, 0, 1, tzinfo=timezone(timedelta(hours=1)))
    decoded = JoinedPrediction.from_bytes(pending(scored_at=moment).to_bytes())
    assert decoded.scored_at == moment and decoded.scored_at.tzinfo == UTC


@pytest.mark.parametrize(
    "stored",
    [
        b"",
        b"{}",
        b"[1]",
        b'[2,"p","e","1",0.5,true,0,0.5,"b",null]',
        b'[1,"p",7,"1",0.5,true,0,0.5,"b",null]',
        b'[1,"p","e","1","0.5",true,0,0.5,"b",null]',
        b'[1,"p","e","1",0.5,[true],0,0.5,"b",null]',
        b'[1,"p","e","1",0.5,true,0.5,0.5,"b",null]',
        b'[1,"p","e","1",0.5,true,0,true,"b",null]',
        b'[1,"p","e","1",0.5,true,0,0.5,"x",null]',
        b'[1,"p","e","1",0.5,true,0,0.5,"b",false]',
        b'[1,"p","e","1",0.5,true,999999999999999999,0.5,"b",null]',
    ],
)
def test_a_corrupt_join_record_raises_a_driftline_error(stored: bytes) -> None:
    with pytest.raises(CorruptJoinRecordError, match="join record"):
        JoinedPrediction.from_bytes(stored)


# --- the join -------------------------------------------------------------------------------------


def test_a_label_by_event_id_joins_every_version_that_scored_it() -> None:
    v1, v2 = pending(), pending(prediction_id=PID_V2, model_version="2", score=0.41, decision=False)
    other = pending(prediction_id="p-other", event_id="e-2")
    outcome = join(valid(), [v1, other, v2], NOW, WINDOW)
    assert outcome.status == "joined" and outcome.rejection is None
    assert [lp.prediction.model_version for lp in outcome.labelled] == ["1", "2"]
    first = outcome.labelled[0]
    assert first.label == 1.0
    assert first.label_delay_s == (timedelta(days=3) - timedelta(hours=1)).total_seconds()
    assert first.marked == replace(v1, labelled_at=NOW)


def test_a_label_by_prediction_id_joins_only_that_prediction() -> None:
    v2 = pending(prediction_id=PID_V2, model_version="2")
    outcome = join(valid(prediction_id=PID_V2), [pending(), v2], NOW, WINDOW)
    assert [lp.prediction for lp in outcome.labelled] == [v2]
    alone = join(valid(event_id=None, prediction_id=PID_V2), [v2], NOW, WINDOW)
    assert alone.status == "joined"


def test_a_label_before_its_prediction_has_no_delay() -> None:
    replayed = pending(scored_at=NOW - timedelta(minutes=5))  # scored after the outcome was known
    (labelled,) = join(valid(), [replayed], NOW, WINDOW).labelled
    assert labelled.label_delay_s == 0.0


@pytest.mark.parametrize(
    ("label", "records", "error_type", "reason"),
    [
        ({}, [], "unknown_prediction", "no pending prediction of event e-1"),
        ({"event_id": None, "prediction_id": "p-9"}, [pending()], "unknown_prediction", "of prediction p-9"),
        ({"prediction_id": PID_V1}, [pending(event_id="e-7")], "id_mismatch", "is of event 'e-7'"),
        ({}, [pending(scored_at=NOW - timedelta(days=91))], "expired", "beyond the join window"),
        ({}, [pending(labelled_at=NOW - timedelta(hours=2))], "duplicate", "was labelled at 2026-11-27T16:00:00Z"),
        ({"label": "fraud"}, [pending()], "bad_label", "not a binary label"),
        ({"label": 2}, [pending()], "bad_label", "true/false or 1/0"),
        ({"label": True}, [pending(task="regression", decision=None, threshold=None)], "bad_label", "a number"),
        ({"label": 1.5}, [pending(task="multiclass", decision="b", threshold=None)], "bad_label", "class"),
        # precedence when no prediction takes the label: bad_label before duplicate before expired
        (
            {"label": "x"},
            [pending(labelled_at=NOW), pending(prediction_id=PID_V2, task="regression")],
            "bad_label",
            "not a binary label",
        ),
        (
            {},
            [pending(scored_at=NOW - timedelta(days=100)), pending(prediction_id=PID_V2, labelled_at=NOW)],
            "duplicate",
            PID_V2,
        ),
    ],
)
def test_a_label_no_prediction_takes_is_a_rejection(
    label: dict[str, object], records: list[JoinedPrediction], error_type: str, reason: str
) -> None:
    outcome = join(valid(**label), records, NOW, WINDOW)
    assert outcome.labelled == ()
    assert outcome.status == error_type
    assert outcome.rejection is not None and reason in outcome.rejection.reason, outcome.rejection


def test_one_fresh_prediction_is_enough_to_join() -> None:
    old = pending(labelled_at=NOW - timedelta(days=1))
    fresh = pending(prediction_id=PID_V2, model_version="2")
    outcome = join(valid(), [old, fresh], NOW, WINDOW)
    assert outcome.status == "joined" and [lp.prediction for lp in outcome.labelled] == [fresh]


def test_the_marked_record_makes_the_next_label_a_duplicate() -> None:
    (first,) = join(valid(), [pending()], NOW, WINDOW).labelled
    stored = JoinedPrediction.from_bytes(first.marked.to_bytes())
    assert join(valid(), [stored], NOW + timedelta(seconds=1), WINDOW).status == "duplicate"


def test_the_store_ttl_is_the_window_plus_the_grace() -> None:
    assert WINDOW.ttl_s == 91 * 86_400.0


@pytest.mark.parametrize(
    ("value", "task", "expected"),
    [
        (True, "binary", 1.0),
        (False, "binary", 0.0),
        (1, "binary", 1.0),
        (0.0, "binary", 0.0),
        (2, "binary", None),
        ("1", "binary", None),
        (0.5, "binary", None),
        (3, "regression", 3.0),
        (-1.25, "regression", -1.25),
        (True, "regression", None),
        ("3", "regression", None),
        (2, "multiclass", "2"),
        ("cat", "multiclass", "cat"),
        (True, "multiclass", None),
        (2.0, "multiclass", None),
    ],
)
def test_label_value_follows_the_task(value: bool | int | float | str, task: str, expected: object) -> None:
    assert label_value(value, task) == expected  # type: ignore[arg-type]
