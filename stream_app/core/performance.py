"""Live performance per model version, from predictions whose labels have joined.

Pure: the worker feeds each :class:`~stream_app.core.labels.LabelledPrediction` (score, decision,
label, label delay, join time) and asks for a :class:`PerformanceReport` with the clock passed in.
Each version keeps its last ``max_labels`` labelled predictions, and evaluation may narrow them to
those joined in the last ``max_age_s``. A metric that the window cannot define (ROC-AUC with one
class, precision with no predicted positive) is None, never a made-up number; ``enough_labels`` says
whether the window holds the configured minimum, below which a dashboard should grey the value out.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from driftline.registry import Task

FloatArray = npt.NDArray[np.float64]
Decision = bool | int | str | None


@dataclass(frozen=True, slots=True)
class PerformanceWindow:
    """Which labelled predictions an evaluation covers, and how many make it trustworthy."""

    max_labels: int = 5_000  # the last N labelled predictions per version
    max_age_s: float | None = None  # and of those, only the ones joined this recently (None: all N)
    min_labels: int = 200  # below this, enough_labels is False


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    """Realised performance of one model version over its window; None where undefined."""

    model_version: str
    task: Task
    labels: int  # labelled predictions in the window
    enough_labels: bool
    label_coverage: float | None  # labels / scored, when the scored count is given
    label_delay_p50_s: float | None
    label_delay_p95_s: float | None
    positives: int | None = None  # binary: labels of the positive class
    roc_auc: float | None = None  # binary, both classes present
    pr_auc: float | None = None  # binary: average precision, at least one positive
    precision: float | None = None  # binary, at the threshold (the published decisions)
    recall: float | None = None  # binary, at the threshold
    brier: float | None = None  # binary: mean squared error of the probability
    accuracy: float | None = None  # binary and multi-class: decision == label
    mae: float | None = None  # regression
    rmse: float | None = None  # regression


class _Labelled(NamedTuple):
    at: float  # join time, Unix seconds
    score: float
    decision: Decision
    label: float | str
    delay_s: float


class _VersionWindow:
    def __init__(self, task: Task, max_labels: int) -> None:
        self.task = task
        self.entries: deque[_Labelled] = deque(maxlen=max_labels)


class LivePerformance:
    """Rolling windows of labelled predictions, one per model version."""

    def __init__(self, window: PerformanceWindow) -> None:
        if window.max_labels < 1:
            raise ValueError(f"max_labels must be at least 1, got {window.max_labels}")
        self.window = window
        self._versions: dict[str, _VersionWindow] = {}

    def versions(self) -> list[str]:
        """Model versions with a window, in the order they were first fed."""
        return list(self._versions)

    def forget(self, model_version: str) -> None:
        """Drop a version's window (a retired version), so its metrics can be removed."""
        self._versions.pop(model_version, None)

    def add(
        self,
        model_version: str,
        task: Task,
        score: float,
        decision: Decision,
        label: float | str,
        label_delay_s: float,
        at: datetime,
    ) -> None:
        """Feed one labelled prediction; ``at`` (the join time) should not go backwards.

        ``label`` is as :func:`~stream_app.core.labels.label_value` makes it: binary 0.0 or 1.0,
        regression the value, multi-class the class as text; a binary ``decision`` is a bool.
        """
        if task in ("binary", "regression") and not isinstance(label, float | int):
            raise ValueError(f"a {task} label must be a number, got {label!r}")
        if task == "binary" and (label not in (0.0, 1.0) or not isinstance(decision, bool)):
            raise ValueError(f"a binary label must be 0.0 or 1.0 and its decision a bool, got {label!r}, {decision!r}")
        version = self._versions.get(model_version)
        if version is None:
            version = self._versions[model_version] = _VersionWindow(task, self.window.max_labels)
        elif version.task != task:
            raise ValueError(f"model version {model_version} is a {version.task} model, not {task}")
        version.entries.append(_Labelled(at.timestamp(), score, decision, label, label_delay_s))

    def evaluate(self, model_version: str, now: datetime, scored: int | None = None) -> PerformanceReport:
        """Performance of ``model_version`` over its window at ``now``.

        ``scored`` is how many predictions the version published over the same span; label coverage
        is labels / scored. It runs behind the scoring rate by the label delay (and can pass 1
        briefly after a burst of late labels): read it as the rate at which labels keep up.
        """
        version = self._versions.get(model_version)
        if version is None:
            raise KeyError(f"no labelled predictions of model version {model_version}")
        entries = list(version.entries)
        if self.window.max_age_s is not None:
            oldest = now.timestamp() - self.window.max_age_s
            entries = [e for e in entries if e.at >= oldest]
        n = len(entries)
        delays = np.fromiter((e.delay_s for e in entries), float, count=n)
        p50: float | None = None
        p95: float | None = None
        if n:
            p50, p95 = (float(q) for q in np.quantile(delays, [0.5, 0.95]))
        report = PerformanceReport(
            model_version=model_version,
            task=version.task,
            labels=n,
            enough_labels=n >= self.window.min_labels,
            label_coverage=n / scored if scored else None,
            label_delay_p50_s=p50,
            label_delay_p95_s=p95,
        )
        if version.task == "binary":
            return _with_binary(report, entries)
        if version.task == "regression":
            return _with_regression(report, entries)
        accuracy = float(np.mean([str(e.decision) == e.label for e in entries])) if n else None
        return replace(report, accuracy=accuracy)


def _finite(scores: FloatArray, *others: FloatArray) -> tuple[FloatArray, ...]:
    """Scores (and what goes with them) without the rows whose score is not finite."""
    keep = np.isfinite(scores)
    return (scores[keep], *(o[keep] for o in others))


def _with_binary(report: PerformanceReport, entries: list[_Labelled]) -> PerformanceReport:
    n = len(entries)
    y = np.fromiter((float(e.label) for e in entries), float, count=n)
    decided = np.fromiter((bool(e.decision) for e in entries), bool, count=n)
    positives = int(y.sum())
    predicted = int(decided.sum())
    true_positives = int((decided & (y == 1.0)).sum())
    scores, y_scored = _finite(np.fromiter((e.score for e in entries), float, count=n), y)
    scored_positives = int(y_scored.sum())
    both_classes = 0 < scored_positives < len(y_scored)
    return replace(
        report,
        positives=positives,
        roc_auc=float(roc_auc_score(y_scored, scores)) if both_classes else None,
        pr_auc=float(average_precision_score(y_scored, scores)) if scored_positives else None,
        precision=true_positives / predicted if predicted else None,
        recall=true_positives / positives if positives else None,
        brier=float(np.mean((scores - y_scored) ** 2)) if len(scores) else None,
        accuracy=float(np.mean(decided == (y == 1.0))) if n else None,
    )


def _with_regression(report: PerformanceReport, entries: list[_Labelled]) -> PerformanceReport:
    n = len(entries)
    predicted, actual = _finite(
        np.fromiter((e.score for e in entries), float, count=n),
        np.fromiter((float(e.label) for e in entries), float, count=n),
    )
    if not len(predicted):
        return report
    errors = predicted - actual
    return replace(report, mae=float(np.mean(np.abs(errors))), rmse=math.sqrt(float(np.mean(errors**2))))
