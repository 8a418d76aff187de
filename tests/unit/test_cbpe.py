"""CBPE: estimates from calibrated scores land on the realised metrics; miscalibrated ones do not."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, precision_score, recall_score, roc_auc_score

from stream_app.core.cbpe import CbpeWindow, LiveCbpe, estimate

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
THRESHOLD = 0.5
N = 20_000
TOLERANCE = 0.02


def realised(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    decided = scores >= THRESHOLD
    return {
        "precision": precision_score(labels, decided),
        "recall": recall_score(labels, decided),
        "accuracy": accuracy_score(labels, decided),
        "roc_auc": roc_auc_score(labels, scores),
        "pr_auc": average_precision_score(labels, scores),
        "brier": float(np.mean((scores - labels) ** 2)),
    }


def estimated(scores: np.ndarray) -> dict[str, float | None]:
    e = estimate(scores, THRESHOLD)
    return {m: getattr(e, m) for m in ("precision", "recall", "accuracy", "roc_auc", "pr_auc", "brier")}


def calibrated(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores p and labels drawn as Bernoulli(p): calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2.0, 5.0, N)
    return p, (rng.random(N) < p).astype(float)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_on_calibrated_scores_the_estimates_land_on_the_realised_metrics(seed: int) -> None:
    scores, labels = calibrated(seed)
    truth, guess = realised(scores, labels), estimated(scores)
    for metric, value in truth.items():
        assert guess[metric] == pytest.approx(value, abs=TOLERANCE), metric


@pytest.mark.parametrize(
    ("distort", "diverging"),
    [
        # overconfident: every probability pushed up (same ranking)
        (np.sqrt, ("precision", "recall", "pr_auc")),
        # underconfident: every probability pushed down (same ranking)
        (np.square, ("precision", "accuracy", "roc_auc", "pr_auc", "brier")),
    ],
)
def test_on_miscalibrated_scores_the_estimates_diverge(
    distort: Callable[..., np.ndarray], diverging: tuple[str, ...]
) -> None:
    scores, labels = calibrated(11)
    distorted = distort(scores)
    truth, guess = realised(distorted, labels), estimated(distorted)
    # The realised ranking does not move, but the estimate believes the distorted probabilities.
    assert truth["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    for metric in diverging:
        assert abs(guess[metric] - truth[metric]) > 0.05, metric  # type: ignore[operator]


def test_the_expected_confusion_matrix_by_hand() -> None:
    e = estimate([0.9, 0.6, 0.2, 0.1], THRESHOLD, min_scores=5)
    c = e.confusion
    assert (c.true_positives, c.false_positives, c.false_negatives, c.true_negatives) == pytest.approx(
        (1.5, 0.5, 0.3, 1.7)
    )
    assert e.precision == pytest.approx(0.75)
    assert e.recall == pytest.approx(1.5 / 1.8)
    assert e.accuracy == pytest.approx(0.8)
    assert e.brier == pytest.approx((0.09 + 0.24 + 0.16 + 0.09) / 4)
    assert e.expected_positives == pytest.approx(1.8)
    assert e.scores == 4 and not e.enough_scores


def test_undefined_estimates_are_none() -> None:
    empty = estimate([], THRESHOLD)
    assert (empty.scores, empty.precision, empty.recall, empty.accuracy, empty.roc_auc, empty.brier) == (
        0,
        None,
        None,
        None,
        None,
        None,
    )
    certain_negatives = estimate([0.0, 0.0, 0.2], THRESHOLD)
    assert certain_negatives.precision is None  # nothing decided positive
    assert certain_negatives.roc_auc is not None
    nothing_positive = estimate([0.0, 0.0], THRESHOLD)
    assert (nothing_positive.recall, nothing_positive.roc_auc, nothing_positive.pr_auc) == (None, None, None)


def test_scores_outside_a_probability_are_clipped_or_dropped() -> None:
    assert estimate([1.2, -0.1, math.nan, math.inf], THRESHOLD) == estimate([1.0, 0.0], THRESHOLD)


def test_live_windows_by_count_and_age_per_version() -> None:
    scores, _ = calibrated(14)
    live = LiveCbpe(CbpeWindow(max_scores=5_000, max_age_s=3_600.0, min_scores=1_000))
    live.add("1", THRESHOLD, scores[:4_000].tolist(), NOW - timedelta(hours=2))
    live.add("1", THRESHOLD, scores[4_000:7_000].tolist(), NOW - timedelta(minutes=5))
    live.add("2", 0.3, scores[:10], NOW)
    assert live.versions() == ["1", "2"]
    recent = live.estimate("1", NOW)
    assert recent == estimate(scores[4_000:7_000], THRESHOLD, min_scores=1_000)  # the 2-hour-old batch is out
    assert recent.enough_scores
    later = live.estimate("1", NOW + timedelta(hours=3))
    assert later.scores == 0 and not later.enough_scores
    assert live.estimate("2", NOW) == estimate(scores[:10], 0.3, min_scores=1_000)
    live.forget("2")
    with pytest.raises(KeyError, match="model version 2"):
        live.estimate("2", NOW)


def test_a_count_window_keeps_the_last_scores() -> None:
    scores, _ = calibrated(15)
    live = LiveCbpe(CbpeWindow(max_scores=2_000, min_scores=10))
    live.add("1", THRESHOLD, scores, NOW)
    assert live.estimate("1", NOW) == estimate(scores[-2_000:], THRESHOLD, min_scores=10)
