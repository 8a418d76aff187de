"""Estimate a binary classifier's performance before its labels arrive (confidence-based, as CBPE).

Pure. A calibrated score p says the event is positive with probability p, so each unlabelled
prediction counts as p of a positive and 1 - p of a negative. At the threshold t this gives the
expected confusion matrix, summed over the window:

    E[TP] = sum of p over predictions with p >= t     E[FP] = sum of (1 - p) over the same
    E[FN] = sum of p over predictions with p < t      E[TN] = sum of (1 - p) over the same

and from it the expected precision E[TP] / (E[TP] + E[FP]), recall E[TP] / (E[TP] + E[FN]) and
accuracy. The expected ROC-AUC (and average precision) is NannyML's: every score enters twice, as
a positive weighted p and as a negative weighted 1 - p, and the weighted curve is integrated.

Two assumptions, and the estimate is only as good as they are:

* **Calibration**: among predictions scored p, a share p is positive. A model calibrated on its
  training data (isotonic or Platt) meets it there; a score that is only a ranking does not, and the
  estimate is then wrong even without any drift.
* **No concept shift**: P(y | x) is what it was when the model was calibrated. Covariate shift
  (P(x) moves) is what CBPE can follow; if the relation between inputs and fraud changes, the
  scores stay confident while the model degrades, and only realised labels can show it.

It is why the estimate is shown beside the realised metric (``stream_app.core.performance``): the
two agree while the assumptions hold, and their gap is itself a signal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ExpectedConfusion:
    """The confusion matrix at the threshold, in expected (fractional) counts."""

    true_positives: float
    false_positives: float
    false_negatives: float
    true_negatives: float


@dataclass(frozen=True, slots=True)
class CbpeEstimate:
    """Expected performance of a window of unlabelled scores; None where undefined."""

    scores: int  # finite scores used
    enough_scores: bool
    expected_positives: float  # sum of p: the positives the scores promise
    confusion: ExpectedConfusion
    precision: float | None  # None with no predicted positive
    recall: float | None  # None when no positive is expected
    accuracy: float | None
    roc_auc: float | None  # None when either class has no weight
    pr_auc: float | None  # expected average precision; None when no positive is expected
    brier: float | None  # expected Brier score, the mean of p(1 - p)


def estimate(scores: Iterable[float] | FloatArray, threshold: float, min_scores: int = 0) -> CbpeEstimate:
    """Expected performance of a binary classifier at ``threshold`` from its calibrated ``scores``.

    Non-finite scores are left out and the rest are clipped to [0, 1] (a probability).
    """
    p = np.asarray(scores if isinstance(scores, np.ndarray) else list(scores), dtype=np.float64)
    p = np.clip(p[np.isfinite(p)], 0.0, 1.0)
    n = len(p)
    decided = p >= threshold  # the published decision: score >= threshold
    tp, fp = float(p[decided].sum()), float((1.0 - p[decided]).sum())
    fn, tn = float(p[~decided].sum()), float((1.0 - p[~decided]).sum())
    positives, negatives = tp + fn, fp + tn
    return CbpeEstimate(
        scores=n,
        enough_scores=n >= min_scores,
        expected_positives=positives,
        confusion=ExpectedConfusion(tp, fp, fn, tn),
        precision=tp / (tp + fp) if decided.any() else None,
        recall=tp / positives if positives > 0 else None,
        accuracy=(tp + tn) / n if n else None,
        roc_auc=_expected_ranking(p, roc_auc_score) if positives > 0 and negatives > 0 else None,
        pr_auc=_expected_ranking(p, average_precision_score) if positives > 0 else None,
        brier=float(np.mean(p * (1.0 - p))) if n else None,
    )


def _expected_ranking(p: FloatArray, metric: Callable[..., Any]) -> float:
    """A ranking metric with each score counted as a positive weighted p and a negative weighted 1 - p."""
    n = len(p)
    y = np.concatenate([np.ones(n), np.zeros(n)])
    both = np.concatenate([p, p])
    weights = np.concatenate([p, 1.0 - p])
    return float(metric(y, both, sample_weight=weights))


@dataclass(frozen=True, slots=True)
class CbpeWindow:
    """Which unlabelled scores an estimate covers, and how many make it trustworthy."""

    max_scores: int = 20_000  # the last N scores per version
    max_age_s: float | None = None  # and of those, only the ones scored this recently (None: all N)
    min_scores: int = 500  # below this, enough_scores is False


class LiveCbpe:
    """Rolling windows of scores, one per binary model version, estimated on demand."""

    def __init__(self, window: CbpeWindow) -> None:
        if window.max_scores < 1:
            raise ValueError(f"max_scores must be at least 1, got {window.max_scores}")
        self.window = window
        self._thresholds: dict[str, float] = {}
        self._times: dict[str, deque[float]] = {}
        self._scores: dict[str, deque[float]] = {}

    def versions(self) -> list[str]:
        """Model versions with a window, in the order they were first fed."""
        return list(self._scores)

    def forget(self, model_version: str) -> None:
        """Drop a version's window (a retired version)."""
        for kept in (self._thresholds, self._times, self._scores):
            kept.pop(model_version, None)

    def add(self, model_version: str, threshold: float, scores: Iterable[float], at: datetime) -> None:
        """Feed a batch of a binary version's scores, scored at ``at`` (which should not go backwards)."""
        if model_version not in self._scores:
            self._times[model_version] = deque(maxlen=self.window.max_scores)
            self._scores[model_version] = deque(maxlen=self.window.max_scores)
        self._thresholds[model_version] = threshold  # a version's threshold is fixed; the last one wins
        batch = list(scores)
        self._scores[model_version].extend(batch)
        self._times[model_version].extend([at.timestamp()] * len(batch))

    def estimate(self, model_version: str, now: datetime) -> CbpeEstimate:
        """The expected performance of ``model_version`` over its window at ``now``."""
        if model_version not in self._scores:
            raise KeyError(f"no scores of model version {model_version}")
        scores = np.fromiter(self._scores[model_version], float, count=len(self._scores[model_version]))
        if self.window.max_age_s is not None:
            times = np.fromiter(self._times[model_version], float, count=len(scores))
            scores = scores[times >= now.timestamp() - self.window.max_age_s]
        return estimate(scores, self._thresholds[model_version], self.window.min_scores)
