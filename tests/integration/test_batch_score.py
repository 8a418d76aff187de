"""``driftline score`` on the served world: Feast's point-in-time features, the worker's verdicts, every row once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from driftline.contracts import prediction_id, utc_now
from driftline.errors import ModelLoadError
from driftline.features import build_matrix_from_columns
from driftline.registry import LoadedModel, ModelRegistry
from driftline.settings import WorkerSettings
from feature_repo.store import feature_store
from producers.generator import build_world, event_stream, invalid_events
from stream_app.batch import score_file
from stream_app.core.validation import EventRules, Rejection, validate_event
from tests.integration.conftest import ServedWorld
from training.data import TRANSACTIONS_FILE
from training.dataset import TIMESTAMP, raw_columns

pytestmark = pytest.mark.integration

NOW = utc_now().replace(microsecond=0)


def history(world: ServedWorld) -> tuple[datetime, datetime]:
    stamps = pd.read_parquet(world.training().data_dir / TRANSACTIONS_FILE, columns=[TIMESTAMP])[TIMESTAMP]
    return stamps.min().to_pydatetime(), stamps.max().to_pydatetime()


def generated_events(world: ServedWorld) -> list[dict[str, object]]:
    """Events of the served world inside its history: a slow stretch, a burst, and rows sharing a key and time."""
    settings = world.training()
    start, end = history(world)
    people = build_world(settings.seed, settings.n_customers, settings.n_merchants, anchor=end)
    rng = np.random.default_rng(5)
    middle = start + (end - start) / 2
    slow = list(event_stream(people, 240, rng, middle, rate=0.02))  # 3+ hours of event time
    burst = list(event_stream(people, 60, rng, middle + timedelta(days=2), rate=100.0))  # merchants repeat each second
    # The same customer at the same instant at another merchant: Feast's join keeps one of such rows.
    twins = [
        {**e, "event_id": f"{e['event_id']}-twin", "merchant_id": "M0000" if e["merchant_id"] != "M0000" else "M0001"}
        for e in slow[:5]
    ]
    return [*slow, *burst, *twins, slow[7]]  # slow[7] twice: one lookup, two output rows


def stream_rules(settings: WorkerSettings, model: LoadedModel) -> EventRules:
    meta = model.metadata
    return EventRules.for_model(
        meta.entities, meta.features, settings.max_event_bytes, settings.max_future_skew_s,
        settings.max_event_age_s, meta.request_fields,
    )


def expected_scores(settings: WorkerSettings, model: LoadedModel, events: list[dict[str, object]]) -> dict[str, float]:
    """Per event id, the estimator on Feast's historical features, joined as training joins them.

    Feast keeps one row per join key and timestamp, so rows sharing one go to later calls.
    """
    meta = model.metadata
    store = feature_store(settings)
    service = store.get_feature_service(meta.feature_service)
    frame = pd.DataFrame(events).drop_duplicates("event_id")
    frame[TIMESTAMP] = pd.to_datetime(frame.pop("event_time"), utc=True)
    joined: list[pd.DataFrame] = []
    while len(frame):
        first = ~frame.duplicated(["customer_id", TIMESTAMP]) & ~frame.duplicated(["merchant_id", TIMESTAMP])
        part = frame[first]
        got = store.get_historical_features(entity_df=part, features=service, full_feature_names=True).to_df()
        assert sorted(got["event_id"]) == sorted(part["event_id"])
        joined.append(got)
        frame = frame[~first]
    features = pd.concat(joined, ignore_index=True)
    features = features.rename(columns={str(s.ref).replace(":", "__", 1): s.name for s in meta.features if s.ref})
    matrix = build_matrix_from_columns(meta.features, raw_columns(features, meta.features), len(features))
    proba = model.estimator.predict_proba(matrix)[:, meta.positive_index]
    return dict(zip(features["event_id"], proba.tolist(), strict=True))


def test_batch_scores_are_feasts_history_through_the_model_and_refusals_are_the_workers(
    served_world: ServedWorld, tmp_path: Path
) -> None:
    settings = WorkerSettings(**served_world.env)  # type: ignore[arg-type]
    model = ModelRegistry(settings).load(settings.model_name)
    events = generated_events(served_world)
    invalid = invalid_events(np.random.default_rng(9), 10, at=NOW - timedelta(hours=1))
    future = orjson.dumps({**events[0], "event_id": "from-the-future", "event_time": "2099-01-01T00:00:00Z"})
    lines = [orjson.dumps(e) for e in events[:100]] + [i.payload for i in invalid] + [future]
    lines += [orjson.dumps(e) for e in events[100:]]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    result = score_file(settings, source, tmp_path / "scores.parquet", now=NOW)
    out = pd.read_parquet(tmp_path / "scores.parquet")

    # Every input row once, in input order.
    assert out["row"].tolist() == list(range(len(lines))) and result.rows == len(lines)
    assert result.scored == len(events) and sum(result.refused.values()) == len(invalid) + 1
    assert result.joins > 1  # the burst and the twins share keys and times: Feast needs several calls
    assert result.lookups == len(events) - 1  # the repeated event is looked up once
    assert (out["model_name"] == "fraud").all() and (out["model_version"] == model.metadata.version).all()

    # Refused rows say what the worker would dead-letter them with (its own rules, the same clock).
    rules = stream_rules(settings, model)
    refused = out[out["error_type"].notna()]
    assert len(refused) == len(invalid) + 1
    for _, row in refused.iterrows():
        verdict = validate_event(lines[row["row"]], rules, NOW)
        assert isinstance(verdict, Rejection)
        assert (row["error_type"], row["reason"], row["event_id"]) == (verdict.error_type, verdict.reason,
                                                                       verdict.event_id)
        assert pd.isna(row["score"]) and row["prediction_id"] is None
    assert set(refused["error_type"]) >= {"not_json", "missing_field", "invalid_field"}
    assert "in the future" in refused.set_index("event_id").loc["from-the-future", "reason"]

    # Scores are the estimator on Feast's point-in-time features, computed here the way training joins them.
    scored = out[out["error_type"].isna()]
    ids = [json.loads(lines[i])["event_id"] for i in scored["row"]]
    assert scored["event_id"].tolist() == ids
    expected = expected_scores(settings, model, events)
    assert np.allclose(scored["score"], [expected[i] for i in ids], rtol=0, atol=1e-12)
    threshold = model.metadata.threshold
    assert scored["decision"].tolist() == [expected[i] >= threshold for i in ids]
    assert scored["prediction_id"].tolist() == [prediction_id(i, "fraud", model.metadata.version) for i in ids]
    # The worker would refuse these events by age; a batch scores them.
    oldest = min(datetime.fromisoformat(str(e["event_time"])) for e in events)
    assert NOW - oldest > timedelta(seconds=settings.max_event_age_s)
    # Mid-history, the daily snapshots are fresh: nearly every event has all its features.
    assert (scored["missing_features"].map(len) == 0).mean() > 0.9, scored["missing_features"].tolist()


def test_parquet_input_scores_as_json_lines_do(served_world: ServedWorld, tmp_path: Path) -> None:
    settings = WorkerSettings(**served_world.env)  # type: ignore[arg-type]
    events = generated_events(served_world)[:50]
    (tmp_path / "events.jsonl").write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    pd.DataFrame(events).to_parquet(tmp_path / "events.parquet", index=False)
    from_lines = score_file(settings, tmp_path / "events.jsonl", tmp_path / "a.parquet", now=NOW)
    from_parquet = score_file(settings, tmp_path / "events.parquet", tmp_path / "b.parquet", now=NOW)
    assert from_lines.scored == from_parquet.scored == len(events)
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_an_unknown_version_is_a_model_load_error(served_world: ServedWorld, tmp_path: Path) -> None:
    settings = WorkerSettings(**served_world.env)  # type: ignore[arg-type]
    source = tmp_path / "events.jsonl"
    source.write_bytes(orjson.dumps(generated_events(served_world)[0]))
    with pytest.raises(ModelLoadError, match="no version 999"):
        score_file(settings, source, tmp_path / "scores.parquet", model="999")
    assert not (tmp_path / "scores.parquet").exists()



def test_feast_keeps_one_row_per_key_and_time_whatever_else_a_row_carries(served_world: ServedWorld) -> None:
    # Why batch scoring splits its lookups into rounds: a unique extra column does not keep the rows apart.
    settings = WorkerSettings(**served_world.env)  # type: ignore[arg-type]
    store = feature_store(settings)
    event = generated_events(served_world)[0]
    entity_df = pd.DataFrame(
        {
            "customer_id": [event["customer_id"]] * 2,
            "merchant_id": ["M0000", "M0001"],
            TIMESTAMP: pd.to_datetime([event["event_time"]] * 2, utc=True),
            "row": [0, 1],
        }
    )
    service = store.get_feature_service("fraud_v1")
    joined = store.get_historical_features(entity_df=entity_df, features=service, full_feature_names=True).to_df()
    assert len(joined) == 1
