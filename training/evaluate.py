"""Evaluate stage: held-out metrics of classifiers and regressors, pure functions on arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)


def evaluate(y_true: npt.ArrayLike, scores: npt.ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """Return roc_auc, pr_auc, brier, positive_rate, flagged_rate, precision and recall at ``threshold``.

    Ranking metrics need both classes; a one-class sample raises ValueError rather than
    reporting a number that means nothing.
    """
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(scores, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and scores {p.shape} must be 1-d and of equal length")
    if len(np.unique(y)) != 2:
        raise ValueError("evaluation needs both classes in y_true")
    flagged = p >= threshold
    positives = y == 1
    true_pos = float(np.sum(flagged & positives))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "positive_rate": float(positives.mean()),
        "flagged_rate": float(flagged.mean()),
        "precision_at_threshold": true_pos / float(flagged.sum()) if flagged.any() else 0.0,
        "recall_at_threshold": true_pos / float(positives.sum()),
        "n": float(len(y)),
    }


def evaluate_regression(y_true: npt.ArrayLike, predicted: npt.ArrayLike) -> dict[str, float]:
    """Return mae, rmse and r2 of a regressor's predictions, and the sample size."""
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y_true {y.shape} and predictions {p.shape} must be 1-d, non-empty and of equal length")
    return {
        "mae": float(mean_absolute_error(y, p)),
        "rmse": float(np.sqrt(mean_squared_error(y, p))),
        "r2": float(r2_score(y, p)),
        "n": float(len(y)),
    }


def evaluate_multiclass(
    y_true: Sequence[object], proba: npt.NDArray[np.float64], classes: Sequence[object]
) -> dict[str, float]:
    """Return accuracy and log loss of a multi-class model's probabilities, and the sample size."""
    decided = [classes[i] for i in np.asarray(proba).argmax(axis=1)]
    return {
        "accuracy": float(np.mean([a == b for a, b in zip(decided, y_true, strict=True)])),
        "log_loss": float(log_loss(list(y_true), proba, labels=list(classes))),
        "n": float(len(decided)),
    }
