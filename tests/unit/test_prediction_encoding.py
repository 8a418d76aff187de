"""The hot path's prediction encoding and id are byte-for-byte the slower reference ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.contracts import PREDICTION_NAMESPACE, Prediction, StageTimings, encode_prediction, prediction_id

_text = st.text(min_size=1, max_size=40)
_times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1),
                      timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                                 timezone(timedelta(hours=-8))]))
_floats = st.floats(allow_nan=True, allow_infinity=True)


@given(_text, _text, _text)
def test_prediction_id_is_uuid5(event_id: str, name: str, version: str) -> None:
    expected = str(uuid.uuid5(PREDICTION_NAMESPACE, f"{event_id}|{name}|{version}"))
    assert prediction_id(event_id, name, version) == expected


@settings(max_examples=300)
@given(
    _text, st.dictionaries(_text, st.one_of(_text, st.integers(-(2**63), 2**63 - 1)), max_size=3), _floats,
    st.one_of(st.none(), st.dictionaries(_text, _floats, max_size=3)), st.one_of(st.none(), _floats),
    st.one_of(st.none(), st.booleans(), st.integers(-5, 5), _text), st.lists(_text, max_size=3), st.booleans(),
    _times, _times, st.tuples(_floats, _floats, _floats),
)
def test_encode_prediction_is_model_dump_json(
    event_id: str, entities: dict[str, str | int], score: float, class_scores: dict[str, float] | None,
    threshold: float | None, decision: bool | int | str | None, missing: list[str], degraded: bool,
    event_time: datetime, scored_at: datetime, timings: tuple[float, float, float],
) -> None:
    prediction = Prediction(
        event_id=event_id, prediction_id=prediction_id(event_id, "fraud", "3"), entities=entities,
        model_name="fraud", model_version="3", score=score, class_scores=class_scores, threshold=threshold,
        decision=decision, missing_features=missing, degraded=degraded, event_time=event_time, scored_at=scored_at,
        timings=StageTimings(decode_s=timings[0], features_s=timings[1], predict_s=timings[2]),
    )
    assert encode_prediction(prediction) == prediction.model_dump_json().encode()
