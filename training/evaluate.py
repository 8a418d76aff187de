"""Evaluate stage: held-out metrics of a probabilistic classifier, pure functions on arrays."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


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
