"""The label joiner and the worker's label path without services: an in-memory join store stands in for Redis."""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import orjson
import pytest
from faust.types import Message
from prometheus_client import CollectorRegistry

from driftline.contracts import Label, Prediction, StageTimings, prediction_id
from driftline.settings import WorkerSettings
from stream_app.adapters.join_store import JoinStoreError, MarkResult
from stream_app.adapters.labels import LabelJoiner
from stream_app.adapters.metrics import WorkerMetrics
from stream_app.adapters.serving import RoutedResult
from stream_app.agents import served_tasks, split_by_topic
from stream_app.core.labels import JoinedPrediction
from stream_app.core.pipeline import BatchResult, Clock, RawRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MemoryJoinStore:
    """The JoinStore protocol on a dict, failing the next ``fail`` calls of each operation on demand."""

    def __init__(self) -> None:
        self.records: dict[str, JoinedPrediction] = {}  # prediction id -> record
        self.fail: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def _call(self, op: str) -> None:
        self.calls[op] = self.calls.get(op, 0) + 1
        if self.fail.get(op, 0) > 0:
            self.fail[op] -= 1
            raise JoinStoreError(f"join store (test:*): {op} failed: ConnectionError: refused")

    async def remember(self, predictions: Sequence[JoinedPrediction]) -> None:
        self._call("remember")
        for prediction in predictions:
            self.records.setdefault(prediction.prediction_id, prediction)

    async def pending(self, labels: Sequence[Label]) -> list[list[JoinedPrediction]]:
        self._call("pending")
        found: list[list[JoinedPrediction]] = []
        for label in labels:
            if label.prediction_id is not None:
                record = self.records.get(label.prediction_id)
                found.append([record] if record is not None else [])
            else:
                found.append([r for r in self.records.values() if r.event_id == label.event_id])
        return found

    async def mark(self, labelled: Sequence[JoinedPrediction]) -> list[MarkResult]:
        self._call("mark")
        results: list[MarkResult] = []
        for record in labelled:
            kept = self.records.get(record.prediction_id)
            if kept is None:
                results.append("gone")
            elif kept.labelled_at is not None:
                results.append("labelled")
            else:
                self.records[record.prediction_id] = record
                results.append("marked")
        return results


class Setup:
    def __init__(self, tmp_path: Path, **settings: Any) -> None:
        self.now = T0
        self.sleeps: list[float] = []
        self.store = MemoryJoinStore()
        self.metrics = WorkerMetrics(CollectorRegistry())
        worker_settings = WorkerSettings(  # type: ignore[call-arg]
            DRIFTLINE_HOME=str(tmp_path), DRIFTLINE_PERFORMANCE_MIN_LABELS=1, DRIFTLINE_CBPE_MIN_SCORES=1, **settings
        )
        self.joiner = LabelJoiner(self.store, self.metrics, worker_settings, Clock(lambda: self.now, lambda: 0.0),
                                  sleep=self.sleep)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        found = self.metrics.registry.get_sample_value(name, labels or {})
        assert found is not None, (name, labels)
        return found


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def prediction(event_id: str, version: str = "1", score: float = 0.8) -> Prediction:
    return Prediction(
        event_id=event_id, prediction_id=prediction_id(event_id, "fraud", version),
        entities={"customer_id": "c-1"}, model_name="fraud", model_version=version, score=score, threshold=0.5,
        decision=score >= 0.5, missing_features=[], degraded=False, event_time=T0, scored_at=T0,
        timings=StageTimings(decode_s=0, features_s=0, predict_s=0),
    )


def label(offset: int, value: object = True, **fields: object) -> RawRecord:
    doc = {"label": value, "label_time": (T0 + timedelta(minutes=5)).isoformat(), **fields}
    return RawRecord(key=b"k", value=orjson.dumps(doc), topic="labels", partition=0, offset=offset)


async def test_remember_is_retried_until_the_store_answers_and_counted_once(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    setup.store.fail["remember"] = 3
    predictions = [prediction(f"e-{i}") for i in range(4)]

    with caplog.at_level(logging.INFO, logger="stream_app.adapters.labels"):
        await setup.joiner.retrying(lambda: setup.joiner.remember(predictions, "binary"), "a batch of 4 predictions")

    assert setup.store.calls["remember"] == 4 and len(setup.store.records) == 4
    assert setup.sleeps == [0.1, 0.2, 0.4]  # the publisher's backoff
    assert setup.value("driftline_join_store_failures_total", {"op": "remember"}) == 3
    assert setup.joiner.coverage() == {"1": (0, 4)}  # published once, although written four times
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2  # one line when the outage starts, one when it ends
    assert "remember failed" in messages[0] and "holding a batch of 4 predictions" in messages[0]
    assert messages[1] == "the join store answers again; a batch of 4 predictions is no longer held"


async def test_remember_takes_each_versions_task(setup: Setup) -> None:
    await setup.joiner.remember([prediction("e-1", "1"), prediction("e-1", "2", score=3.5)],
                                {"1": "binary", "2": "regression"})
    tasks = {r.model_version: r.task for r in setup.store.records.values()}
    assert tasks == {"1": "binary", "2": "regression"}


async def test_a_failed_lookup_counts_nothing_and_the_retry_counts_once(setup: Setup) -> None:
    await setup.joiner.remember([prediction("e-1")], "binary")
    setup.store.fail["pending"] = 1
    records = [label(0, event_id="e-1"), label(1, event_id="e-unknown"), RawRecord(None, b"{", "labels", 0, 2)]

    with pytest.raises(JoinStoreError):
        await setup.joiner.process(records)
    assert setup.value("driftline_labels_total", {"outcome": "joined"}) == 0
    assert setup.value("driftline_labels_total", {"outcome": "malformed"}) == 0

    result = await setup.joiner.retrying(lambda: setup.joiner.process(records), "a batch of 3 labels")

    assert result.outcomes == {"joined": 1, "unknown_prediction": 1, "malformed": 1}
    assert [(d.source_offset, d.error_type) for d in result.dead_letters] == [(2, "malformed"),
                                                                               (1, "unknown_prediction")]
    assert all(d.source_topic == "labels" and d.reason for d in result.dead_letters)
    for outcome in result.outcomes:
        assert setup.value("driftline_labels_total", {"outcome": outcome}) == 1
    assert setup.value("driftline_join_store_failures_total", {"op": "lookup"}) == 1


async def test_a_label_after_its_prediction_was_marked_is_a_duplicate(setup: Setup) -> None:
    await setup.joiner.remember([prediction("e-1")], "binary")
    first = await setup.joiner.process([label(0, event_id="e-1")])
    again = await setup.joiner.process([label(1, value=False, event_id="e-1")])
    assert first.outcomes == {"joined": 1} and again.outcomes == {"duplicate": 1}
    assert "was labelled at" in again.dead_letters[0].reason


async def test_export_sets_live_performance_coverage_and_the_estimate(setup: Setup) -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(200)
    predictions = [prediction(f"e-{i}", score=float(s)) for i, s in enumerate(scores)]
    await setup.joiner.remember(predictions, "binary")
    setup.joiner.observe_scores("1", 0.5, "binary", scores.tolist(), T0)
    setup.joiner.observe_scores("2", 0.5, "binary", [0.1, 0.9], T0)  # a canary: scored, none remembered yet
    labelled = [label(i, value=bool(rng.random() < s), event_id=f"e-{i}") for i, s in enumerate(scores[:100])]
    await setup.joiner.process(labelled)
    setup.joiner.set_test_performance("1", {"pr_auc": 0.7, "precision_at_threshold": 0.6, "log_loss": 0.3})

    setup.joiner.export(T0 + timedelta(minutes=10))

    assert setup.value("driftline_live_labelled", {"model_version": "1"}) == 100
    assert setup.value("driftline_label_coverage", {"model_version": "1"}) == 0.5
    for metric in ("roc_auc", "pr_auc", "brier", "accuracy"):
        assert 0.0 <= setup.value("driftline_live_performance", {"model_version": "1", "metric": metric}) <= 1.0
        assert 0.0 <= setup.value("driftline_cbpe_estimate", {"model_version": "1", "metric": metric}) <= 1.0
    assert setup.value("driftline_live_labelled", {"model_version": "2"}) == 0
    assert math.isnan(setup.value("driftline_label_coverage", {"model_version": "2"}))  # nothing published yet
    assert setup.value("driftline_cbpe_estimate", {"model_version": "2", "metric": "accuracy"}) == pytest.approx(0.9)
    assert setup.value("driftline_model_test_performance", {"model_version": "1", "metric": "precision"}) == 0.6
    assert setup.metrics.registry.get_sample_value(
        "driftline_model_test_performance", {"model_version": "1", "metric": "log_loss"}) is None


async def test_evaluating_in_a_thread_while_the_loop_feeds_the_windows(tmp_path: Path) -> None:
    setup = Setup(tmp_path, DRIFTLINE_CBPE_WINDOW=2000, DRIFTLINE_PERFORMANCE_WINDOW=500)
    joiner = setup.joiner
    await joiner.remember([prediction(f"e-{i}", score=(i % 10) / 10) for i in range(3000)], "binary")
    stop = threading.Event()

    def evaluate_repeatedly() -> int:
        rounds = 0
        while not stop.is_set():
            joiner.publish(joiner.evaluate(T0, {"1": (0, 1)}))
            rounds += 1
        return rounds

    evaluating = asyncio.ensure_future(asyncio.to_thread(evaluate_repeatedly))
    for i in range(1000):  # each window fills and then turns over while the thread reads it
        joiner.observe_scores("1", 0.5, "binary", [(i % 10) / 10] * 5, T0)
        await joiner.process([label(i, value=i % 3 == 0, event_id=f"e-{i}")])
        if i % 50 == 0:
            await asyncio.sleep(0)
    stop.set()
    assert await evaluating > 0
    assert joiner.evaluate(T0, joiner.coverage()).reports[0].labels == 500


def test_split_by_topic_keeps_each_topics_order() -> None:
    messages = [cast(Message, SimpleNamespace(topic=t, offset=i)) for i, t in enumerate("eleelle")]
    events, labels = split_by_topic(messages, "e")
    assert [m.offset for m in events] == [0, 2, 3, 6] and [m.offset for m in labels] == [1, 4, 5]


def test_served_tasks_names_every_version_of_the_batch() -> None:
    def model(version: str, task: str) -> Any:
        return SimpleNamespace(model=SimpleNamespace(metadata=SimpleNamespace(version=version, task=task)))

    routed = RoutedResult(BatchResult(), [(model("3", "binary"), BatchResult()), (model("4", "binary"), BatchResult())])
    assert served_tasks(routed) == {"3": "binary", "4": "binary"}



def test_coverage_counts_the_bucket_the_span_starts_in_pro_rata() -> None:
    from datetime import UTC, datetime

    from stream_app.adapters.labels import LabelCoverage

    coverage = LabelCoverage(max_labels=2, bucket_s=60.0)
    base = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # a bucket boundary
    for second in range(60):
        coverage.scored("1", 2, base.replace(second=second))
    coverage.labelled("1", base.replace(second=50))
    coverage.labelled("1", base.replace(second=55))
    # The full window spans 50 s .. 59 s (the latest predictions): 9 of the bucket's 59 elapsed seconds.
    assert coverage.coverage("1") == (2, round(120 * 9 / 59))


def test_predictions_all_before_the_span_are_not_counted() -> None:
    from datetime import UTC, datetime

    from stream_app.adapters.labels import LabelCoverage

    coverage = LabelCoverage(max_labels=2, bucket_s=60.0)
    base = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    coverage.scored("1", 120, base)
    coverage.labelled("1", base.replace(second=50))
    coverage.labelled("1", base.replace(second=55))
    assert coverage.coverage("1") == (2, 0)


def test_coverage_prorates_a_bucket_that_is_still_filling_over_its_elapsed_part() -> None:
    from datetime import UTC, datetime

    from stream_app.adapters.labels import LabelCoverage

    coverage = LabelCoverage(max_labels=2, bucket_s=60.0)
    base = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    for second in range(10):  # 40 predictions a second for the bucket's first 10 s
        coverage.scored("1", 40, base.replace(second=second))
    coverage.labelled("1", base.replace(second=5))
    coverage.labelled("1", base.replace(second=6))
    # The window spans 5 s .. 9 s (the latest predictions): 4 of the 9 elapsed seconds of 400 predictions.
    assert coverage.coverage("1") == (2, round(400 * 4 / 9))
