from datetime import UTC, datetime
from itertools import count

import numpy as np
import orjson
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from driftline.contracts import prediction_id
from driftline.errors import FeatureStoreError
from driftline.registry import FeatureSpec, LoadedModel, ModelMetadata
from stream_app.core.pipeline import Clock, OnlineRows, RawRecord, process_batch
from stream_app.core.validation import EventRules

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPECS = [
    FeatureSpec(name="avg_amount_30d", source="feast", ref="customer_stats:avg_amount_30d"),
    FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
]


def make_model() -> LoadedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (x[:, 1] > 0).astype(int)
    estimator = HistGradientBoostingClassifier(max_iter=20).fit(x, y)  # handles NaN like the real model
    meta = ModelMetadata(
        name="fraud", version="v1", created_at=NOW, feature_service="fraud_v1", features=SPECS,
        entity_fields={"customer_id": "customer_id"}, threshold=0.5,
        training_window=(NOW, NOW), metrics={}, library_versions={}, artifact_sha256="0" * 64,
    )
    return LoadedModel(metadata=meta, estimator=estimator)


MODEL = make_model()
RULES = EventRules.for_model(MODEL.metadata.entities, SPECS, 4096, 300, 7 * 86_400)
ticks = count()
CLOCK = Clock(now=lambda: NOW, perf=lambda: float(next(ticks)))


def record(doc: object, offset: int) -> RawRecord:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return RawRecord(key=b"k", value=raw, topic="events", partition=1, offset=offset)


def good(i: int, customer: str = "C1", amount: float = 10.0) -> dict[str, object]:
    return {"event_id": f"e{i}", "event_time": "2026-11-22T11:59:00Z", "customer_id": customer, "amount": amount}


class FakeStore:
    """Pure stand-in for the online store in unit tests of the batch logic."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values
        self.calls: list[list[dict[str, str]]] = []

    async def __call__(self, rows: list[dict[str, str]]) -> OnlineRows:
        self.calls.append(rows)
        return OnlineRows(
            values=[{"avg_amount_30d": self.values.get(r["customer_id"])} for r in rows],
            view_timestamps=[{"customer_stats": NOW.timestamp() - 60} if r["customer_id"] in self.values else {}
                             for r in rows],
        )


async def test_valid_and_invalid_split_one_output_each() -> None:
    store = FakeStore({"C1": 5.0, "C2": 7.0})
    records = [record(good(0), 0), record(b"nope", 1), record(good(2, "C2"), 2), record({"x": 1}, 3)]
    result = await process_batch(records, RULES, MODEL, store, CLOCK)
    assert [p.event_id for p in result.predictions] == ["e0", "e2"]
    assert [(d.source_offset, d.error_type) for d in result.dead_letters] == [(1, "not_json"), (3, "missing_field")]
    assert result.dead_letters[0].original_value == b"nope"
    assert all(p.missing_features == [] and not p.degraded for p in result.predictions)


async def test_one_read_per_batch_with_distinct_entities() -> None:
    store = FakeStore({"C1": 5.0})
    records = [record(good(i, "C1" if i % 2 else "C2"), i) for i in range(10)]
    result = await process_batch(records, RULES, MODEL, store, CLOCK)
    assert len(store.calls) == 1
    assert store.calls[0] == [{"customer_id": "C2"}, {"customer_id": "C1"}]
    assert len(result.predictions) == 10
    assert result.feature_ages == {"customer_stats": [60.0] * 5}  # per scored event that had values
    assert result.matrix.shape == (10, 2) and result.scores.shape == (10,)


async def test_unknown_entity_is_scored_with_missing_features_named() -> None:
    result = await process_batch([record(good(0, "NEW"), 0)], RULES, MODEL, FakeStore({}), CLOCK)
    (prediction,) = result.predictions
    assert prediction.missing_features == ["avg_amount_30d"]
    assert not prediction.degraded
    assert result.missing_counts == {"avg_amount_30d": 1}


async def test_store_failure_scores_degraded() -> None:
    async def broken(rows: list[dict[str, str]]) -> OnlineRows:
        raise FeatureStoreError("timed out")

    result = await process_batch([record(good(0), 0)], RULES, MODEL, broken, CLOCK)
    (prediction,) = result.predictions
    assert prediction.degraded and prediction.missing_features == ["avg_amount_30d"]
    assert result.feature_error == "timed out"


async def test_scores_match_the_estimator_and_ids_are_stable() -> None:
    store = FakeStore({"C1": 5.0})
    result = await process_batch([record(good(0, amount=3.0), 0)], RULES, MODEL, store, CLOCK)
    (p,) = result.predictions
    expected = MODEL.estimator.predict_proba(np.array([[5.0, 3.0]]))[0, 1]
    assert p.score == pytest.approx(expected, abs=1e-12)
    assert p.decision == (expected >= 0.5)
    assert p.prediction_id == prediction_id("e0", "fraud", "v1")
    again = await process_batch([record(good(0, amount=3.0), 0)], RULES, MODEL, store, CLOCK)
    assert again.predictions[0].prediction_id == p.prediction_id


async def test_model_failure_on_a_row_isolates_it() -> None:
    class Picky:
        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            if np.any(x[:, 1] > 100):
                raise ValueError("too big for me")
            return np.column_stack([np.zeros(len(x)), np.full(len(x), 0.25)])

    model = LoadedModel(metadata=MODEL.metadata, estimator=Picky())
    records = [record(good(0, amount=5), 0), record(good(1, amount=500), 1)]
    result = await process_batch(records, RULES, model, FakeStore({"C1": 1.0}), CLOCK)
    assert [p.event_id for p in result.predictions] == ["e0"]
    assert result.dead_letters[0].error_type == "scoring_failed"
    assert "too big for me" in result.dead_letters[0].reason


async def test_all_invalid_batch_does_not_touch_the_store() -> None:
    store = FakeStore({})
    result = await process_batch([record(b"[]", 0)], RULES, MODEL, store, CLOCK)
    assert store.calls == [] and len(result.dead_letters) == 1 and not result.predictions


def test_records_round_trip_through_json() -> None:
    from driftline.contracts import DeadLetter, Prediction

    async def run() -> None:
        result = await process_batch([record(good(0), 0), record(b"\x00", 1)], RULES, MODEL, FakeStore({}), CLOCK)
        p = Prediction.model_validate_json(result.predictions[0].model_dump_json())
        assert p == result.predictions[0]
        d = DeadLetter.model_validate_json(result.dead_letters[0].model_dump_json())
        assert d.original_value == b"\x00"
        assert orjson.loads(result.predictions[0].model_dump_json())["event_time"].endswith("Z")

    import asyncio

    asyncio.run(run())
