"""Score a feature matrix with a fitted classifier and turn scores into decisions."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def score_matrix(estimator: Any, matrix: FloatArray) -> FloatArray:
    """Return the positive-class probability for each row, in one call for the whole batch."""
    if matrix.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    proba = estimator.predict_proba(matrix)
    return np.asarray(proba[:, 1], dtype=np.float64)


def score_rows_isolated(estimator: Any, matrix: FloatArray) -> list[float | str]:
    """Score row by row, returning a score or the error text per row.

    Only used when scoring the whole batch raised, so one bad row cannot sink its neighbours.
    """
    out: list[float | str] = []
    for row in matrix:
        try:
            out.append(float(estimator.predict_proba(row.reshape(1, -1))[0, 1]))
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


def decide(scores: FloatArray, threshold: float) -> npt.NDArray[np.bool_]:
    """Positive decision where the score reaches the threshold."""
    return scores >= threshold
