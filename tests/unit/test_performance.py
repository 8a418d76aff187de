"""Live performance per model version agrees with sklearn.metrics on the same window."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    recall_score,
    roc_auc_score,
)

from stream_app.core.performance import LivePerformance, PerformanceWindow

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
THRESHOLD = 0.3


def binary_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(1.5, 4.0, n)
    labels = (rng.random(n) < scores).astype(float)
    delays = rng.exponential(86_400.0 * 20, n)
    return scores, labels, delays


def fed(scores: np.ndarray, labels: np.ndarray, delays: np.ndarray, window: PerformanceWindow) -> LivePerformance:
    live = LivePerformance(window)
    start = NOW - timedelta(seconds=len(scores))
    for i, (score, label, delay) in enumerate(zip(scores.tolist(), labels.tolist(), delays.tolist(), strict=True)):
        live.add("7", "binary", score, score >= THRESHOLD, label, delay, start + timedelta(seconds=i + 1))
    return live


def test_binary_metrics_over_the_last_n_match_sklearn() -> None:
    scores, labels, delays = binary_data(3_000, seed=1)
    report = fed(scores, labels, delays, PerformanceWindow(max_labels=1_000, min_labels=500)).evaluate("7", NOW)
    s, y, d = scores[-1_000:], labels[-1_000:], delays[-1_000:]
    decided = s >= THRESHOLD
    assert report.labels == 1_000 and report.enough_labels
    assert report.positives == int(y.sum())
    assert report.roc_auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert report.pr_auc == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert report.precision == pytest.approx(precision_score(y, decided), abs=1e-12)
    assert report.recall == pytest.approx(recall_score(y, decided), abs=1e-12)
    assert report.brier == pytest.approx(brier_score_loss(y, s), abs=1e-12)
    assert report.accuracy == pytest.approx(accuracy_score(y, decided), abs=1e-12)
    assert report.label_delay_p50_s == pytest.approx(np.quantile(d, 0.5))
    assert report.label_delay_p95_s == pytest.approx(np.quantile(d, 0.95))
    assert report.mae is None and report.rmse is None


def test_a_time_window_keeps_only_recent_joins() -> None:
    scores, labels, delays = binary_data(2_000, seed=2)
    live = fed(scores, labels, delays, PerformanceWindow(max_labels=5_000, max_age_s=600.0, min_labels=1_000))
    report = live.evaluate("7", NOW, scored=1_200)
    assert report.labels == 601  # joined at NOW - 600 s ... NOW, both ends kept
    assert not report.enough_labels
    assert report.label_coverage == pytest.approx(601 / 1_200)
    assert report.roc_auc == pytest.approx(roc_auc_score(labels[-601:], scores[-601:]), abs=1e-12)
    assert live.evaluate("7", NOW + timedelta(hours=1)).labels == 0


def test_undefined_metrics_are_none_not_numbers() -> None:
    live = LivePerformance(PerformanceWindow(min_labels=1))
    for score in (0.1, 0.2, 0.25):  # all negatives, none decided positive
        live.add("7", "binary", score, score >= THRESHOLD, 0.0, 60.0, NOW)
    report = live.evaluate("7", NOW)
    assert report.positives == 0
    assert (report.roc_auc, report.pr_auc, report.precision, report.recall) == (None, None, None, None)
    assert report.brier == pytest.approx(np.mean(np.square([0.1, 0.2, 0.25])))
    assert report.accuracy == 1.0
    assert report.label_coverage is None  # no scored count given


def test_only_positives_define_average_precision_but_not_roc_auc() -> None:
    live = LivePerformance(PerformanceWindow(min_labels=1))
    for score in (0.2, 0.9):
        live.add("7", "binary", score, score >= THRESHOLD, 1.0, 60.0, NOW)
    report = live.evaluate("7", NOW)
    assert report.roc_auc is None
    assert report.pr_auc == pytest.approx(average_precision_score([1, 1], [0.2, 0.9]))
    assert (report.precision, report.recall) == (1.0, 0.5)


def test_an_empty_window_reports_zero_labels_and_no_metric() -> None:
    live = LivePerformance(PerformanceWindow(max_age_s=60.0))
    live.add("7", "binary", 0.5, True, 1.0, 10.0, NOW - timedelta(hours=1))
    report = live.evaluate("7", NOW, scored=0)
    assert report.labels == 0 and not report.enough_labels
    assert report.label_delay_p50_s is None and report.roc_auc is None and report.brier is None
    assert report.label_coverage is None


def test_regression_errors_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    predicted, actual = rng.normal(30, 10, 800), rng.normal(30, 12, 800)
    live = LivePerformance(PerformanceWindow(max_labels=500, min_labels=100))
    for p, a in zip(predicted.tolist(), actual.tolist(), strict=True):
        live.add("3", "regression", p, None, a, 3_600.0, NOW)
    report = live.evaluate("3", NOW)
    assert report.labels == 500 and report.task == "regression"
    assert report.mae == pytest.approx(mean_absolute_error(actual[-500:], predicted[-500:]), abs=1e-12)
    assert report.rmse == pytest.approx(math.sqrt(mean_squared_error(actual[-500:], predicted[-500:])), abs=1e-12)
    assert report.roc_auc is None and report.precision is None and report.accuracy is None


def test_a_nan_score_is_left_out_of_score_metrics_only() -> None:
    live = LivePerformance(PerformanceWindow(min_labels=1))
    for score, label in ((0.9, 1.0), (0.1, 0.0), (math.nan, 1.0)):
        live.add("7", "binary", score, score >= THRESHOLD, label, 1.0, NOW)
    report = live.evaluate("7", NOW)
    assert report.labels == 3 and report.positives == 2
    assert report.roc_auc == 1.0 and report.brier == pytest.approx((0.01 + 0.01) / 2)


def test_multiclass_reports_accuracy_of_its_decisions() -> None:
    live = LivePerformance(PerformanceWindow(min_labels=1))
    for decision, label in ((2, "2"), ("cat", "cat"), ("dog", "cat"), (0, "1")):
        live.add("5", "multiclass", 0.7, decision, label, 5.0, NOW)
    report = live.evaluate("5", NOW)
    assert report.accuracy == 0.5 and report.roc_auc is None and report.mae is None


def test_versions_are_kept_apart() -> None:
    live = LivePerformance(PerformanceWindow(min_labels=1))
    live.add("1", "binary", 0.9, True, 1.0, 1.0, NOW)
    live.add("2", "binary", 0.9, True, 0.0, 1.0, NOW)
    assert live.versions() == ["1", "2"]
    assert (live.evaluate("1", NOW).precision, live.evaluate("2", NOW).precision) == (1.0, 0.0)
    live.forget("1")
    assert live.versions() == ["2"]
    with pytest.raises(KeyError, match="model version 1"):
        live.evaluate("1", NOW)


@pytest.mark.parametrize(
    ("task", "decision", "label", "message"),
    [
        ("binary", True, "1", "must be a number"),
        ("binary", True, 2.0, "0.0 or 1.0"),
        ("binary", None, 1.0, "decision a bool"),
        ("regression", None, "3", "must be a number"),
    ],
)
def test_a_label_the_task_cannot_use_is_a_programming_error(
    task: str, decision: object, label: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LivePerformance(PerformanceWindow()).add("1", task, 0.5, decision, label, 1.0, NOW)  # type: ignore[arg-type]


def test_a_version_keeps_its_task() -> None:
    live = LivePerformance(PerformanceWindow())
    live.add("1", "binary", 0.9, True, 1.0, 1.0, NOW)
    with pytest.raises(ValueError, match="is a binary model, not regression"):
        live.add("1", "regression", 0.9, None, 1.0, 1.0, NOW)
