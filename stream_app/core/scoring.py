"""Score a batch with any fitted scikit-learn estimator and turn its output into decisions.

What a score and a decision are follows the model's task (from its metadata, never guessed from
column positions): a binary classifier's score is the probability of its named positive class and
its decision is ``score >= threshold``; a multi-class classifier scores every class and decides
by argmax (the score is the decided class's probability); a regressor's score is its prediction
and it makes no decision.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.registry import ClassLabel, ModelMetadata

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
Decision = bool | ClassLabel | None


@dataclass(frozen=True, slots=True)
class Scores:
    """A batch's scores, one per row, and for multi-class models each class's probability."""

    score: FloatArray  # shape (n,)
    class_scores: FloatArray | None = None  # shape (n, classes), multi-class only


def score_batch(estimator: Any, meta: ModelMetadata, model_input: Any) -> Scores:
    """Score every row of ``model_input`` in one call."""
    rows = len(model_input)
    if rows == 0:
        return Scores(np.empty(0, dtype=np.float64))
    if meta.task == "regression":
        return Scores(np.asarray(estimator.predict(model_input), dtype=np.float64).reshape(rows))
    proba = np.asarray(estimator.predict_proba(model_input), dtype=np.float64)
    if meta.task == "binary":
        return Scores(proba[:, meta.positive_index])
    return Scores(proba.max(axis=1), class_scores=proba)


def decide(scores: Scores, meta: ModelMetadata) -> list[Decision]:
    """One decision per row: bool for binary, the class label for multi-class, None for regression."""
    if meta.task == "binary":
        assert meta.threshold is not None  # the metadata validator guarantees it
        return [bool(x) for x in scores.score >= meta.threshold]
    if meta.task == "multiclass" and scores.class_scores is not None and meta.classes is not None:
        classes = meta.classes
        return [classes[i] for i in scores.class_scores.argmax(axis=1).tolist()]
    return [None] * len(scores.score)


def class_score_maps(scores: Scores, classes: Sequence[ClassLabel] | None) -> list[dict[str, float] | None]:
    """Per row, class label (as text) -> probability for multi-class models; None otherwise."""
    if scores.class_scores is None or classes is None:
        return [None] * len(scores.score)
    names = [str(c) for c in classes]
    return [dict(zip(names, row, strict=True)) for row in scores.class_scores.tolist()]


def score_rows_isolated(estimator: Any, meta: ModelMetadata, model_input: Any) -> list[Scores | str]:
    """Score row by row, returning a one-row ``Scores`` or the error text per row.

    Only used when scoring the whole batch raised, so one bad row cannot sink its neighbours.
    """
    out: list[Scores | str] = []
    for i in range(len(model_input)):
        row = model_input.iloc[i : i + 1] if hasattr(model_input, "iloc") else model_input[i : i + 1]
        try:
            out.append(score_batch(estimator, meta, row))
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


#: Per row: (score, class scores, decision), or the error text of a row the model failed on.
Outcome = tuple[float, dict[str, float] | None, Decision] | str


def score_outcomes(estimator: Any, meta: ModelMetadata, model_input: Any) -> list[Outcome]:
    """One call for the whole batch; row by row only if that call raised, so one bad row sinks no other."""
    try:
        scored = score_batch(estimator, meta, model_input)
        return list(
            zip(scored.score.tolist(), class_score_maps(scored, meta.classes), decide(scored, meta), strict=True)
        )
    except Exception:
        logger.exception("scoring the batch failed; scoring its %d rows one by one", len(model_input))
    return [
        (float(one.score[0]), class_score_maps(one, meta.classes)[0], decide(one, meta)[0])
        if isinstance(one, Scores)
        else one
        for one in score_rows_isolated(estimator, meta, model_input)
    ]
