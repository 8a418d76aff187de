"""Any scikit-learn estimator: binary (named positive class), multi-class, regressor, Pipeline on a frame.

Pure: the pipeline runs with a fake store, so these pin what a score and a decision are per task and
which models are refused, without services.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from itertools import count
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from driftline.features import OnlineRows, build_frame, build_matrix
from driftline.registry import EntitySpec, FeatureSpec, LoadedModel, ModelMetadata, estimator_problems
from stream_app.core.pipeline import Clock, RawRecord, process_batch
from stream_app.core.validation import EventRules, Rejection, ValidEvent, validate_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPECS = [
    FeatureSpec(name="trips", source="feast", ref="driver_stats:trips"),
    FeatureSpec(name="distance", source="request", field="distance", minimum=0),
]
DRIVER = EntitySpec(field="driver_id", join_key="driver_id", dtype="int64")
X = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 5.0], [4.0, 9.0], [5.0, 2.0], [6.0, 7.0]])


def metadata(**fields: object) -> ModelMetadata:
    base: dict[str, object] = {
        "name": "m", "version": "v1", "created_at": NOW, "feature_service": "svc", "features": SPECS,
        "entities": [DRIVER], "training_window": (NOW, NOW), "metrics": {}, "library_versions": {},
        "artifact_sha256": "0" * 64,
    }
    return ModelMetadata.model_validate({**base, **fields})


async def store(rows: list[dict[str, object]]) -> OnlineRows:
    # trips = driver_id: the fake store returns a value that depends on the typed key
    return OnlineRows(values=[{"trips": float(r["driver_id"])} for r in rows])  # type: ignore[arg-type]


def run(model: LoadedModel, events: list[dict[str, object]]) -> list[object]:
    meta = model.metadata
    rules = EventRules.for_model(meta.entities, meta.features, 65_536, 300, 86_400, meta.request_fields)
    records = [RawRecord(None, orjson.dumps(e), "t", 0, i) for i, e in enumerate(events)]
    ticks = count()
    result = asyncio.run(
        process_batch(records, rules, model, store, Clock(now=lambda: NOW, perf=lambda: float(next(ticks))))
    )
    assert not result.dead_letters, result.dead_letters
    return list(result.predictions)


def event(driver_id: object, distance: float, i: int = 0) -> dict[str, object]:
    return {"event_id": f"e{i}", "event_time": "2026-11-22T11:59:00Z", "driver_id": driver_id, "distance": distance}


def test_binary_score_is_the_named_positive_class_not_column_one() -> None:
    y = np.array(["yes", "no", "yes", "no", "yes", "no"])  # classes_ = ["no", "yes"]
    est = LogisticRegression().fit(X, y)
    meta = metadata(classes=["no", "yes"], positive_class="no", threshold=0.5)
    (pred,) = run(LoadedModel(metadata=meta, estimator=est), [event(3, 5.0)])
    expected = est.predict_proba(np.array([[3.0, 5.0]]))[0, 0]
    assert pred.score == pytest.approx(expected, abs=1e-12)
    assert pred.decision is bool(expected >= 0.5)


def test_multiclass_decides_by_argmax_and_scores_every_class() -> None:
    y = np.array(["a", "b", "c", "a", "b", "c"])
    est = LogisticRegression().fit(X, y)
    meta = metadata(task="multiclass", classes=["a", "b", "c"])
    preds = run(LoadedModel(metadata=meta, estimator=est), [event(1, 0.0), event(6, 7.0, 1)])
    proba = est.predict_proba(np.array([[1.0, 0.0], [6.0, 7.0]]))
    for pred, row in zip(preds, proba, strict=True):
        assert pred.class_scores == pytest.approx(dict(zip(["a", "b", "c"], row, strict=True)), abs=1e-12)
        assert pred.decision == ["a", "b", "c"][int(row.argmax())]
        assert pred.score == pytest.approx(row.max(), abs=1e-12)
        assert pred.threshold is None


def test_regressor_scores_its_prediction_and_decides_nothing() -> None:
    est = LinearRegression().fit(X, X[:, 0] * 2 + X[:, 1])
    meta = metadata(task="regression")
    (pred,) = run(LoadedModel(metadata=meta, estimator=est), [event(2**40, 3.5)])
    assert pred.score == pytest.approx(2.0 * 2**40 + 3.5, rel=1e-9)
    assert pred.decision is None and pred.class_scores is None
    assert pred.entities == {"driver_id": 2**40}  # the key keeps its type


def test_a_pipeline_fitted_on_a_frame_gets_named_columns_and_raw_categories() -> None:
    specs = [*SPECS, FeatureSpec(name="city", source="request", field="city", kind="categorical")]
    frame = pd.DataFrame({"trips": X[:, 0], "distance": X[:, 1], "city": ["x", "y", "x", "y", "x", "y"]})
    encode = ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough")
    est = make_pipeline(encode, LinearRegression()).fit(frame, X[:, 0] + (frame.city == "y"))
    meta = metadata(task="regression", features=specs, input_format="frame")
    assert estimator_problems(est, meta) == []
    (pred,) = run(LoadedModel(metadata=meta, estimator=est), [{**event(4, 1.0), "city": "y"}])
    assert pred.score == pytest.approx(5.0, abs=1e-9)


def test_build_frame_encodes_numbers_like_the_matrix_and_keeps_strings() -> None:
    specs = [FeatureSpec(name="n", source="request"), FeatureSpec(name="c", source="request", kind="categorical")]
    rows: list[dict[str, object]] = [{"n": 1, "c": "a"}, {"n": None, "c": None}]
    frame = build_frame(specs, rows)
    np.testing.assert_array_equal(frame["n"].to_numpy(), build_matrix(specs, rows)[:, 0])
    assert frame["c"].tolist() == ["a", None]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"classes": [0, 1], "positive_class": 1}, "threshold"),
        ({"classes": [0, 1], "positive_class": 2, "threshold": 0.5}, "positive class"),
        ({"task": "multiclass", "classes": ["a", "b"], "threshold": 0.5}, "argmax"),
        ({"task": "regression", "threshold": 0.5}, "regression"),
        ({"task": "multiclass", "classes": ["a"]}, "two or more"),
    ],
)
def test_incomplete_task_metadata_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        metadata(**fields)


def test_estimator_problems_name_what_is_wrong() -> None:
    classifier = LogisticRegression().fit(X, [0, 1, 0, 1, 0, 1])
    assert estimator_problems(classifier, metadata(classes=[0, 1], positive_class=1, threshold=0.5)) == []
    wrong_classes = estimator_problems(classifier, metadata(classes=["no", "yes"], positive_class="yes", threshold=0.5))
    assert wrong_classes == ["the estimator's classes are [0, 1], the metadata says ['no', 'yes']"]
    narrow = LinearRegression().fit(X[:, :1], X[:, 0])
    assert estimator_problems(narrow, metadata(task="regression")) == [
        "the estimator was fitted on 1 inputs, the feature list has 2"
    ]
    named = LinearRegression().fit(pd.DataFrame({"distance": X[:, 1], "trips": X[:, 0]}), X[:, 0])
    problems = estimator_problems(named, metadata(task="regression", input_format="frame"))
    assert problems == ["the estimator's input columns differ from the feature list (order ['distance', 'trips'])"]


def test_old_metadata_reads_as_a_binary_zero_one_classifier() -> None:
    old = metadata(classes=[0, 1], positive_class=1, threshold=0.5).model_dump(mode="json")
    for written_later in ("entities", "classes", "positive_class", "task", "input_format", "request_fields"):
        del old[written_later]
    meta = ModelMetadata.model_validate({**old, "entity_fields": {"customer_id": "customer_id"}})
    assert meta.entities == [EntitySpec(field="customer_id", join_key="customer_id", dtype="string")]
    assert (meta.classes, meta.positive_class, meta.positive_index) == ([0, 1], 1, 1)


INT_RULES = EventRules.for_model(
    [DRIVER, EntitySpec(field="zone", join_key="zone_id", dtype="int32")], [], 65_536, 300, 86_400
)


@pytest.mark.parametrize(
    ("driver", "zone", "reason"),
    [
        ("1001", 1, "driver_id must be a whole number (int64), got str"),
        (1001.5, 1, "driver_id must be a whole number (int64), got float"),
        (True, 1, "driver_id must be a whole number (int64), got bool"),
        (2**63, 1, "driver_id 9223372036854775808 is out of the int64 range"),
        (1, 2**31, "zone 2147483648 is out of the int32 range"),
    ],
)
def test_integer_keys_are_validated_with_their_type(driver: object, zone: object, reason: str) -> None:
    raw = orjson.dumps({"event_id": "e", "event_time": "2026-11-22T11:59:00Z", "driver_id": driver, "zone": zone})
    result = validate_event(raw, INT_RULES, NOW)
    assert isinstance(result, Rejection) and (result.error_type, result.reason) == ("invalid_field", reason)


def test_integer_and_compound_keys_are_kept_typed() -> None:
    raw = orjson.dumps({"event_id": "e", "event_time": "2026-11-22T11:59:00Z", "driver_id": -(2**63), "zone": 7})
    result = validate_event(raw, INT_RULES, NOW)
    assert isinstance(result, ValidEvent) and result.entities == {"driver_id": -(2**63), "zone_id": 7}


def test_request_fields_for_on_demand_views_are_validated_and_passed_on() -> None:
    wanted = [FeatureSpec(name="val_to_add", source="request", integer=True, minimum=0)]
    rules = EventRules.for_model([DRIVER], [], 65_536, 300, 86_400, wanted)
    base = {"event_id": "e", "event_time": "2026-11-22T11:59:00Z", "driver_id": 1}
    ok = validate_event(orjson.dumps({**base, "val_to_add": 3}), rules, NOW)
    assert isinstance(ok, ValidEvent) and ok.online_request == {"val_to_add": 3} and ok.request == {}
    bad = validate_event(orjson.dumps({**base, "val_to_add": -1}), rules, NOW)
    assert isinstance(bad, Rejection) and bad.reason == "val_to_add must be >= 0, got -1"
    missing = validate_event(orjson.dumps(base), rules, NOW)
    assert isinstance(missing, Rejection) and missing.reason == "val_to_add is missing"


def test_the_event_schema_accepts_what_validation_accepts_and_names_the_types() -> None:
    import jsonschema

    from stream_app.core.validation import event_json_schema

    wanted = [FeatureSpec(name="distance_km", source="request", minimum=0)]
    rules = EventRules.for_model([DRIVER], SPECS, 65_536, 300, 86_400, wanted)
    schema = event_json_schema(rules, "trip")
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["event_id", "event_time", "driver_id", "distance", "distance_km"]
    good = {**event(42, 1.5), "distance_km": 2.0}
    assert isinstance(validate_event(orjson.dumps(good), rules, NOW), ValidEvent)
    jsonschema.validate(good, schema)
    without = {k: v for k, v in good.items() if k != "distance_km"}
    for bad in ({**good, "driver_id": "42"}, {**good, "distance": -1}, without):
        assert isinstance(validate_event(orjson.dumps(bad), rules, NOW), Rejection)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["model", "register", "nope.pkl", "--name", "m", "--feature-service", "s", "--sample", "s.parquet"], {},
         "driftline: model file nope.pkl does not exist"),
        (["feast", "apply"], {"DRIFTLINE_FEAST_REPO": "."},
         "driftline: DRIFTLINE_FEAST_REPO=. has no feature_store.yaml; point it at a Feast repo folder"),
        (["schema"], {"DRIFTLINE_MAX_REQUEST_BYTES": "5"},
         "driftline: invalid setting: DRIFTLINE_MAX_REQUEST_BYTES: Input should be greater than or equal to 65536"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "driftline_tools.cli", *args], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "DRIFTLINE_HOME": str(tmp_path), **env}, timeout=120, check=False,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("driftline:")]
    assert errors and errors[0].startswith(message), done.stderr
    assert "Traceback" not in done.stderr


def test_serving_scores_a_versions_reference_sample_before_it_switches() -> None:
    from driftline.errors import ModelLoadError
    from stream_app.adapters.models import check_reference_sample

    est = LinearRegression().fit(X, X[:, 0])
    sample: list[dict[str, float | str | None]] = [{"trips": 1.0, "distance": 2.0}, {"trips": None, "distance": 1.0}]
    meta = metadata(task="regression", reference_sample=sample[:1])
    check_reference_sample(LoadedModel(metadata=meta, estimator=est))  # scores finitely: accepted
    # LinearRegression refuses NaN inputs: a version that fails on its own sample never serves.
    with pytest.raises(ModelLoadError, match="fails on its reference sample: ValueError"):
        failing = metadata(task="regression", reference_sample=sample)
        check_reference_sample(LoadedModel(metadata=failing, estimator=est))
