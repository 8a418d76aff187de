"""Batch scoring's pure parts: reading events, planning and re-aligning Feast's join, the output rows."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from driftline.contracts import DeadLetterType, prediction_id
from driftline.errors import ConfigError, FeatureStoreError
from driftline.features import build_matrix
from driftline.registry import EntitySpec, FeatureSpec, LoadedModel, ModelMetadata
from driftline.settings import WorkerSettings
from driftline_tools import cli
from stream_app.batch import (
    LOOKUP,
    TIMESTAMP,
    BatchScores,
    ScoredRow,
    ScoreResult,
    align,
    batch_rules,
    check_event,
    jsonl_events,
    parquet_events,
    plan_lookups,
    read_events,
    score_events,
    scores_table,
    summarize,
    write_scores,
)
from stream_app.core.validation import EventRules, Rejection, ValidEvent, validate_event

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPECS = [
    FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
    FeatureSpec(name="customer_stats__avg_amount_30d", source="feast", ref="customer_stats:avg_amount_30d"),
    FeatureSpec(
        name="merchant_stats__category", source="feast", ref="merchant_stats:category", kind="categorical",
        categories=["grocery", "electronics"],
    ),
]
ENTITIES = [
    EntitySpec(field="customer_id", join_key="customer_id"),
    EntitySpec(field="merchant_id", join_key="merchant_id"),
]


def make_model(task: str = "binary") -> LoadedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    x[:, 2] = rng.integers(0, 2, 300)
    if task == "binary":
        y = (x[:, 0] + x[:, 1] > 0).astype(int)
        estimator = HistGradientBoostingClassifier(max_iter=20).fit(x, y)  # NaN is "missing", as served
        extra: dict[str, object] = {"classes": [0, 1], "positive_class": 1, "threshold": 0.5}
    else:
        y = np.digitize(x[:, 0], [-0.5, 0.5])
        estimator = HistGradientBoostingClassifier(max_iter=20).fit(x, y)
        extra = {"task": "multiclass", "classes": [0, 1, 2]}
    meta = ModelMetadata(
        name="fraud", version="3", created_at=NOW, feature_service="fraud_v1", features=SPECS, entities=ENTITIES,
        training_window=(NOW, NOW), metrics={}, library_versions={}, artifact_sha256="0" * 64, **extra,
    )
    return LoadedModel(metadata=meta, estimator=estimator)


MODEL = make_model()
META = MODEL.metadata


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> EventRules:
    return batch_rules(META, WorkerSettings(DRIFTLINE_HOME=str(tmp_path_factory.mktemp("home"))))


def event(
    i: int, at: str = "2026-10-01T10:00:00Z", customer: str = "C1", merchant: str = "M1", **extra: object
) -> bytes:
    doc = {"event_id": f"e{i}", "event_time": at, "customer_id": customer, "merchant_id": merchant, "amount": 10.0 + i}
    return orjson.dumps({**doc, **extra})


# --- reading ------------------------------------------------------------------------------------------------


def test_jsonl_lines_are_events_and_blank_lines_are_not() -> None:
    data = b'{"a": 1}\r\n\n  \n{"b": 2}\nnot json\n'
    assert jsonl_events(data) == [b'{"a": 1}', b'{"b": 2}', b"not json"]


def test_parquet_rows_become_the_json_events_the_worker_reads(tmp_path: Path, rules: EventRules) -> None:
    aware = pa.array([datetime(2026, 10, 1, 10, tzinfo=UTC)] * 3, pa.timestamp("ns", tz="UTC"))
    table = pa.table(
        {
            "event_id": ["e0", "e1", "e2"],
            "event_time": aware,
            "customer_id": ["C1", None, "C3"],
            "merchant_id": ["M1", "M2", "M3"],
            "amount": [12.5, 3.0, float("nan")],
            "label": [0, 1, 0],  # an extra field, ignored like any other
        }
    )
    pq.write_table(table, tmp_path / "events.parquet")
    raws = read_events(tmp_path / "events.parquet")
    assert json.loads(raws[0])["event_time"] == "2026-10-01T10:00:00+00:00"
    verdicts = [check_event(raw, rules, NOW) for raw in raws]
    assert isinstance(verdicts[0], ValidEvent) and verdicts[0].event_time == datetime(2026, 10, 1, 10, tzinfo=UTC)
    assert verdicts[1] == Rejection("missing_field", "customer_id is missing", "e1")  # null is absent
    assert verdicts[2] == Rejection("missing_field", "amount is missing", "e2")  # so is NaN


def test_a_naive_parquet_timestamp_is_refused_like_a_json_time_without_offset(rules: EventRules) -> None:
    table = pa.table({"event_id": ["e0"], "event_time": pa.array([datetime(2026, 10, 1, 10)], pa.timestamp("us"))})
    verdict = check_event(parquet_events(table)[0], rules, NOW)
    assert isinstance(verdict, Rejection) and verdict.error_type == "invalid_field"
    assert "has no UTC offset" in verdict.reason


def test_bad_inputs_are_one_line_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_events(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match=r"expected a \.jsonl"):
        read_events(tmp_path / "events.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="cannot be read as parquet"):
        read_events(tmp_path / "broken.parquet")


# --- validation ---------------------------------------------------------------------------------------------


CHANGES: list[dict[str, object]] = [{"customer_id": ""}, {"amount": -1}, {"amount": "1"}, {"merchant_id": None}]


def test_batch_rules_are_the_workers_without_the_age_limit(rules: EventRules) -> None:
    stream = EventRules.for_model(ENTITIES, SPECS, rules.max_event_bytes, 300, 7 * 86_400)
    old = event(0, at="2019-03-01T00:00:00Z")
    assert isinstance(validate_event(old, stream, NOW), Rejection)
    assert isinstance(check_event(old, rules, NOW), ValidEvent)
    future = event(1, at="2027-01-01T00:00:00Z")
    assert check_event(future, rules, NOW) == validate_event(future, stream, NOW)  # the same reason, word for word
    recent = "2026-11-22T11:00:00Z"  # the stream's age limit aside, the verdicts are the stream's own
    bad_events = [b"nope", *(event(i, at=recent, **change) for i, change in enumerate(CHANGES))]
    for bad in bad_events:
        assert check_event(bad, rules, NOW) == validate_event(bad, stream, NOW)


def test_a_time_pandas_cannot_hold_is_refused_not_raised(rules: EventRules) -> None:
    verdict = check_event(event(0, at="1500-01-01T00:00:00Z"), rules, NOW)
    assert isinstance(verdict, Rejection) and verdict.error_type == "invalid_field" and verdict.event_id == "e0"
    assert "outside the years a point-in-time join can use" in verdict.reason


# --- the point-in-time join -----------------------------------------------------------------------------------


def valid(raws: list[bytes], rules: EventRules) -> list[ValidEvent]:
    out = [check_event(raw, rules, NOW) for raw in raws]
    assert all(isinstance(e, ValidEvent) for e in out), out
    return out  # type: ignore[return-value]


def test_lookups_are_distinct_and_rounds_never_share_a_key_at_one_time(rules: EventRules) -> None:
    at = "2026-10-01T10:00:00Z"
    events = valid(
        [
            event(0, at=at, customer="C1", merchant="M1"),
            event(0, at=at, customer="C1", merchant="M1"),  # the same event twice: one lookup
            event(1, at=at, customer="C1", merchant="M2"),  # C1 again at the same time: another round
            event(2, at=at, customer="C2", merchant="M1"),  # M1 again at the same time: another round
            event(3, at="2026-10-01T10:00:01Z", customer="C1", merchant="M1"),
        ],
        rules,
    )
    lookups = plan_lookups(META, events)
    assert lookups.size == 4 and lookups.positions == [0, 0, 1, 2, 3]
    for frame in lookups.rounds:
        for key in ("customer_id", "merchant_id"):
            assert not frame.duplicated([key, TIMESTAMP]).any()
    assert sorted(p for frame in lookups.rounds for p in frame[LOOKUP]) == [0, 1, 2, 3]
    first = lookups.rounds[0]
    assert str(first[TIMESTAMP].dtype) == "datetime64[ns, UTC]"
    assert {"customer_id", "merchant_id", "amount", TIMESTAMP, LOOKUP} == set(first.columns)


def test_integer_join_keys_are_typed_as_the_metadata_says() -> None:
    entities = [EntitySpec(field="driver_id", join_key="driver_id", dtype="int64")]
    meta = META.model_copy(update={"entities": entities})
    rules = EventRules.for_model(entities, SPECS, 4096, 300, 10**9)
    raw = orjson.dumps({"event_id": "e", "event_time": "2026-10-01T10:00:00Z", "driver_id": 1001, "amount": 1.0})
    lookups = plan_lookups(meta, valid([raw], rules))
    assert str(lookups.rounds[0]["driver_id"].dtype) == "int64"


def joined_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[LOOKUP, "customer_stats__avg_amount_30d", "merchant_stats__category"])


def test_align_puts_feasts_rows_back_in_lookup_order_and_missing_values_are_none() -> None:
    joined = joined_frame(
        [
            {LOOKUP: 2, "customer_stats__avg_amount_30d": 30.0, "merchant_stats__category": "grocery"},
            {LOOKUP: 0, "customer_stats__avg_amount_30d": float("nan"), "merchant_stats__category": None},
            {LOOKUP: 1, "customer_stats__avg_amount_30d": 10.0, "merchant_stats__category": pd.NA},
        ]
    )
    assert align(joined, META, 3) == [
        {"customer_stats__avg_amount_30d": None, "merchant_stats__category": None},
        {"customer_stats__avg_amount_30d": 10.0, "merchant_stats__category": None},
        {"customer_stats__avg_amount_30d": 30.0, "merchant_stats__category": "grocery"},
    ]


def test_align_refuses_a_join_that_lost_or_repeated_a_row() -> None:
    row = {"customer_stats__avg_amount_30d": 1.0, "merchant_stats__category": "grocery"}
    with pytest.raises(FeatureStoreError, match="returned 1 rows"):
        align(joined_frame([{LOOKUP: 0, **row}]), META, 2)
    with pytest.raises(FeatureStoreError, match="1 distinct"):
        align(joined_frame([{LOOKUP: 0, **row}, {LOOKUP: 0, **row}]), META, 2)
    with pytest.raises(FeatureStoreError, match="lack the columns merchant_stats__category"):
        align(pd.DataFrame({LOOKUP: [0], "customer_stats__avg_amount_30d": [1.0]}), META, 1)


# --- scoring ------------------------------------------------------------------------------------------------------


class FakeFeast:
    """Feast's offline join as the file store behaves: as-of values, rows reordered, one row per key and time."""

    def __init__(self) -> None:
        self.customer = {"C1": [(datetime(2026, 9, 1, tzinfo=UTC), 20.0), (datetime(2026, 10, 1, tzinfo=UTC), 40.0)]}
        self.merchant = {"M1": "electronics", "M2": "grocery"}
        self.calls: list[pd.DataFrame] = []

    def __call__(self, entity_df: pd.DataFrame) -> pd.DataFrame:
        self.calls.append(entity_df)
        frame = entity_df.drop_duplicates(["customer_id", TIMESTAMP], keep="last")
        frame = frame.drop_duplicates(["merchant_id", TIMESTAMP], keep="last").iloc[::-1].copy()

        def as_of(customer: str, at: pd.Timestamp) -> float | None:
            values = [v for t, v in self.customer.get(customer, []) if t <= at]
            return values[-1] if values else None

        frame["customer_stats__avg_amount_30d"] = [
            as_of(c, t) for c, t in zip(frame["customer_id"], frame[TIMESTAMP], strict=True)
        ]
        frame["merchant_stats__category"] = [self.merchant.get(m) for m in frame["merchant_id"]]
        return frame.reset_index(drop=True)


def test_every_event_is_one_row_in_input_order_scored_as_the_worker_scores(rules: EventRules) -> None:
    feast = FakeFeast()
    raws = [
        event(0, at="2026-09-15T00:00:00Z"),  # C1 as of mid-September: 20.0
        b"not json",
        event(2, at="2026-10-02T00:00:00Z", merchant="M2"),  # 40.0, grocery
        event(3, at="2026-10-02T00:00:00Z", customer="C9"),  # same time, same merchant as nothing: fine
        event(4, at="2026-10-02T00:00:00Z", customer="C1", merchant="M1"),  # C1 again at that time: a 2nd round
        event(5, customer="C1", amount=-3),
        event(6, at="2019-01-01T00:00:00Z", customer="C7", merchant="M7"),  # old: accepted, nothing known then
    ]
    scores = score_events(raws, rules, MODEL, feast, NOW)
    rows = scores.rows
    assert [r.row for r in rows] == list(range(len(raws)))
    assert [r.event_id for r in rows] == ["e0", None, "e2", "e3", "e4", "e5", "e6"]
    assert scores.joins == len(feast.calls) == 2 and scores.lookups == 5

    refused = {r.row: r for r in rows if r.error_type is not None}
    assert set(refused) == {1, 5}
    for i, r in refused.items():
        expected = validate_event(raws[i], rules, NOW)
        assert isinstance(expected, Rejection)
        assert (r.error_type, r.reason, r.score, r.prediction_id) == (expected.error_type, expected.reason, None, None)

    features = [
        {"amount": 10.0, "customer_stats__avg_amount_30d": 20.0, "merchant_stats__category": "electronics"},
        {"amount": 12.0, "customer_stats__avg_amount_30d": 40.0, "merchant_stats__category": "grocery"},
        {"amount": 13.0, "customer_stats__avg_amount_30d": None, "merchant_stats__category": "electronics"},
        {"amount": 14.0, "customer_stats__avg_amount_30d": 40.0, "merchant_stats__category": "electronics"},
        {"amount": 16.0, "customer_stats__avg_amount_30d": None, "merchant_stats__category": None},
    ]
    expected_scores = MODEL.estimator.predict_proba(build_matrix(SPECS, features))[:, 1]
    scored = [r for r in rows if r.error_type is None]
    assert [r.score for r in scored] == expected_scores.tolist()
    assert [r.decision for r in scored] == [bool(s >= 0.5) for s in expected_scores]
    assert [r.missing_features for r in scored] == [
        [], [], ["customer_stats__avg_amount_30d"], [],
        ["customer_stats__avg_amount_30d", "merchant_stats__category"],
    ]
    assert scored[0].prediction_id == prediction_id("e0", "fraud", "3")


def test_nothing_valid_means_no_feast_call(rules: EventRules) -> None:
    feast = FakeFeast()
    scores = score_events([b"[]", b""], rules, MODEL, feast, NOW)
    assert feast.calls == [] and [r.error_type for r in scores.rows] == ["not_json", "not_json"]


def test_a_row_the_model_fails_on_is_refused_alone(rules: EventRules) -> None:
    class Picky:
        classes_ = np.array([0, 1])

        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            if len(x) > 1 or x[0, 0] > 100:
                raise ValueError("too much")
            return np.array([[0.25, 0.75]])

    model = LoadedModel(metadata=META, estimator=Picky())
    scores = score_events([event(0), event(1, amount=500.0)], rules, model, FakeFeast(), NOW)
    assert [r.score for r in scores.rows] == [0.75, None]
    assert scores.rows[1].error_type == "scoring_failed"
    assert scores.rows[1].reason == "the model failed on this event: ValueError: too much"


# --- output -------------------------------------------------------------------------------------------------------


def test_the_output_file_keeps_every_row_with_typed_columns(tmp_path: Path, rules: EventRules) -> None:
    scores = score_events([event(0), b"{}"], rules, MODEL, FakeFeast(), NOW)
    write_scores(scores_table(scores.rows, META, NOW), tmp_path / "out" / "scores.parquet")
    table = pq.read_table(tmp_path / "out" / "scores.parquet")
    assert table.schema.field("decision").type == pa.bool_()
    assert table.schema.metadata[b"driftline.model_version"] == b"3"
    frame = table.to_pandas()
    assert frame["row"].tolist() == [0, 1]
    assert frame["error_type"].tolist() == [None, "missing_field"]
    assert frame["reason"].tolist() == [None, "event_id is missing"]
    assert list(frame["missing_features"][0]) == [] and frame["missing_features"][1] is None
    assert frame["model_version"].tolist() == ["3", "3"]
    assert not list(tmp_path.glob("out/.*.tmp"))


def test_multiclass_rows_carry_class_scores_as_json_text(tmp_path: Path, rules: EventRules) -> None:
    model = make_model("multiclass")
    scores = score_events([event(0)], rules, model, FakeFeast(), NOW)
    row = scores.rows[0]
    class_scores = json.loads(row.class_scores or "")
    assert list(class_scores) == ["0", "1", "2"] and row.score == max(class_scores.values())
    table = scores_table(scores.rows, model.metadata, NOW)
    assert table.schema.field("decision").type == pa.int64()
    assert table.column("decision").to_pylist() == [row.decision]


def test_summary_counts_rows_scored_and_refused_by_type() -> None:
    def refused(i: int, error_type: DeadLetterType) -> ScoredRow:
        return ScoredRow(i, None, None, "fraud", "3", None, None, None, None, error_type, "why")

    scored = ScoredRow(0, "e0", "p", "fraud", "3", 0.5, True, None, ["f"], None, None)
    rows = [scored, refused(1, "not_json"), refused(2, "missing_field"), refused(3, "not_json")]
    result = summarize(BatchScores(rows, 1, 1), META, Path("in.jsonl"), Path("out.parquet"), NOW, 1.5)
    assert (result.rows, result.scored, result.missing_features) == (4, 1, 1)
    assert list(result.refused.items()) == [("not_json", 2), ("missing_field", 1)]


# --- the command ------------------------------------------------------------------------------------------------------


def a_result() -> ScoreResult:
    return ScoreResult(
        input=Path("events.jsonl"), output=Path("scores.parquet"), model="fraud", model_version="3", rows=10,
        scored=7, refused={"not_json": 2, "missing_field": 1}, missing_features=1, lookups=7, joins=1,
        validated_at=NOW, seconds=2.5,
    )


def test_score_command_renders_the_result_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import stream_app.batch

    calls: list[tuple[Path, Path, str | None]] = []

    def fake(settings: WorkerSettings, input_path: Path, output: Path, model: str | None = None) -> ScoreResult:
        calls.append((input_path, output, model))
        return a_result()

    monkeypatch.setattr(stream_app.batch, "score_file", fake)
    runner = CliRunner()
    shown = runner.invoke(cli.app, ["score", "--input", "events.jsonl", "--output", "scores.parquet", "--model", "3"])
    assert shown.exit_code == 0, shown.output
    assert calls == [(Path("events.jsonl"), Path("scores.parquet"), "3")]
    assert "refused" in shown.output and "3 (not_json 2, missing_field 1)" in shown.output
    as_json = runner.invoke(cli.app, ["score", "--input", "events.jsonl", "--output", "scores.parquet", "--json"])
    data = json.loads(as_json.output)
    assert data["refused"] == {"not_json": 2, "missing_field": 1} and data["model_version"] == "3"


def test_a_missing_input_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    missing = tmp_path / "nope.jsonl"
    monkeypatch.setattr(sys, "argv", ["driftline", "score", "--input", str(missing), "--output", "x.parquet"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f"driftline: input {missing} does not exist"


def test_event_times_are_inside_the_frame_not_shifted() -> None:
    # Feast compares the entity timestamp with feature timestamps in UTC: the lookup keeps the instant.
    rules = EventRules.for_model(ENTITIES, SPECS, 4096, 300, 10**9)
    raw = event(0, at="2026-10-01T12:00:00+02:00")
    lookups = plan_lookups(META, valid([raw], rules))
    assert lookups.rounds[0][TIMESTAMP][0] == pd.Timestamp("2026-10-01T10:00:00Z")
    assert lookups.rounds[0][TIMESTAMP][0].to_pydatetime() - datetime(2026, 10, 1, 10, tzinfo=UTC) == timedelta(0)


def test_a_frame_model_is_given_a_dataframe(rules: EventRules) -> None:
    frame_specs = [SPECS[1]]
    x = pd.DataFrame({"customer_stats__avg_amount_30d": [1.0, 2.0, 3.0, 4.0]})
    estimator = LogisticRegression().fit(x, [0, 0, 1, 1])
    meta = META.model_copy(update={"features": frame_specs, "input_format": "frame"})
    model = LoadedModel(metadata=meta, estimator=estimator)
    scores = score_events([event(0, at="2026-09-15T00:00:00Z")], rules, model, FakeFeast(), NOW)
    expected = estimator.predict_proba(pd.DataFrame({"customer_stats__avg_amount_30d": [20.0]}))[:, 1]
    assert scores.rows[0].score == expected[0]
