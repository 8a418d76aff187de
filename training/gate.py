"""The promotion gate of a retrain: is the challenger better than the champion, and may we retrain at all?

Pure: arrays and times in, dataclasses out; no MLflow, no Kafka, no clock of its own.

:func:`compare` is a paired bootstrap. Both models score the *same* holdout rows; each resample draws
rows with replacement (a seeded ``numpy`` Generator) and takes the difference of the metric
(challenger minus champion) on that resample, so the noise both models share (which rows happen to be
hard) cancels. The challenger is promoted only when the lower bound of the difference's percentile
confidence interval exceeds the margin: "better by more than the margin, with that confidence".
Resamples are computed as draw-count weights on the sorted holdout (:func:`weighted_metric`), which
equals scikit-learn on the resampled rows and takes well under a second for 1,000 resamples of 2,000 rows.

:func:`check_guards` holds back retrain storms (an alert that fires every minute): a cooldown since
the last retrain and a minimum of labels that arrived since it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from driftline.settings import GateMetric

#: Ranking metrics the gate compares; PR-AUC (average precision) is the default for a rare positive class.
#: What the gate decided: promote, or why not.
GateOutcome = Literal["promote", "not_better", "one_class", "too_few_rows", "too_few_positives"]
#: Why a storm guard refused to retrain.
GuardKind = Literal["cooldown", "too_few_labels"]

METRIC_NAMES: dict[GateMetric, str] = {"pr_auc": "PR-AUC", "roc_auc": "ROC-AUC"}
_METRICS: dict[GateMetric, Callable[..., float]] = {
    "pr_auc": average_precision_score,
    "roc_auc": roc_auc_score,
}
#: Fewer holdout rows than this and no interval is worth computing.
MIN_HOLDOUT_ROWS = 20
#: Fewer rows of the rarer class than this and neither is the interval.
MIN_HOLDOUT_CLASS_ROWS = 10


@dataclass(frozen=True)
class GatePolicy:
    """How sure the gate must be: the metric, the margin the CI's lower bound must exceed, the bootstrap."""

    metric: GateMetric = "pr_auc"
    margin: float = 0.0
    confidence: float = 0.95
    samples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be between 0 and 1, got {self.confidence}")
        if self.samples < 100:
            raise ValueError(f"a bootstrap needs at least 100 resamples, got {self.samples}")


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with its figures; ``reason`` is the sentence a person reads."""

    outcome: GateOutcome
    metric: GateMetric
    challenger: float | None  # the metric on the whole holdout; None when undefined (one class)
    champion: float | None
    difference: float | None  # challenger - champion on the whole holdout
    ci_low: float | None  # percentile interval of the bootstrapped difference
    ci_high: float | None
    margin: float
    confidence: float
    rows: int
    positives: int
    samples: int  # resamples drawn
    valid_samples: int  # resamples with both classes, on which the metric is defined

    @property
    def promote(self) -> bool:
        """True only when the interval's lower bound clears the margin."""
        return self.outcome == "promote"

    @property
    def reason(self) -> str:
        """One line: what the gate saw and why it promotes or does not."""
        name = METRIC_NAMES[self.metric]
        if self.outcome == "too_few_rows":
            return f"the holdout has {self.rows} rows; the gate needs at least {MIN_HOLDOUT_ROWS}"
        if self.outcome == "too_few_positives":
            return (
                f"the holdout has {self.positives} positives in {self.rows} rows: the gate needs at least "
                f"{MIN_HOLDOUT_CLASS_ROWS} of each class for an interval; widen the window"
            )
        if self.outcome == "one_class":
            return (
                f"the holdout has {self.positives} positives in {self.rows} rows: {name} needs both classes, "
                "so the models cannot be compared"
            )
        assert self.challenger is not None and self.champion is not None
        assert self.ci_low is not None and self.ci_high is not None
        interval = f"{self.confidence:.0%} CI of the difference [{self.ci_low:+.3f}, {self.ci_high:+.3f}]"
        figures = f"challenger {name} {self.challenger:.3f} vs champion {self.champion:.3f}"
        if self.promote:
            return f"{figures}: {interval} clears margin {self.margin:g}"
        return f"{figures}: {interval} does not clear margin {self.margin:g}"


def metric_value(metric: GateMetric, y_true: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> float:
    """``metric`` of ``scores`` against 0/1 labels (both classes must be present)."""
    return float(_METRICS[metric](y_true, scores))


def weighted_metric(
    metric: GateMetric, y_true: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``metric`` of ``scores`` under each row of ``weights`` (k x n): one value per row, NaN where undefined.

    A bootstrap resample is the holdout with each row counted as often as it was drawn, so weighting
    the rows by their draw counts gives what scikit-learn gives on the resampled arrays (tied scores
    form one threshold either way), for all resamples at once instead of one Python call each.
    """
    order = np.argsort(-scores, kind="stable")
    ranked, positive = scores[order], y_true[order].astype(np.float64)
    # The last row of each run of equal scores: the curve has one point per distinct threshold.
    ends = np.append(np.flatnonzero(np.diff(ranked)), len(ranked) - 1)
    w = weights[:, order]
    tp = np.cumsum(w * positive, axis=1)[:, ends]
    fp = np.cumsum(w * (1.0 - positive), axis=1)[:, ends]
    total_p, total_n = tp[:, -1:], fp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "pr_auc":
            # Average precision: recall gained at each threshold times the precision there (no interpolation).
            gained = np.diff(tp, axis=1, prepend=0.0)
            precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=tp + fp > 0)
            value = (gained * precision).sum(axis=1) / total_p[:, 0]
        else:
            # ROC-AUC: the trapezoids under (fpr, tpr), the origin included.
            tpr = np.concatenate([np.zeros_like(total_p), tp], axis=1) / total_p
            fpr = np.concatenate([np.zeros_like(total_n), fp], axis=1) / total_n
            value = (np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2).sum(axis=1)
    defined = (total_p[:, 0] > 0) & (total_n[:, 0] > 0)
    return np.where(defined, value, np.nan)


#: Resample counts held in memory at once (rows x resamples of one chunk): about 16 MB of float64.
_CHUNK_CELLS = 2_000_000


def _bootstrap_differences(
    policy: GatePolicy, y: npt.NDArray[np.int64], challenger: npt.NDArray[np.float64], champion: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Challenger-minus-champion metric on each resample that holds both classes."""
    rng = np.random.default_rng(policy.seed)
    n = len(y)
    chunk = max(1, _CHUNK_CELLS // n)
    kept: list[npt.NDArray[np.float64]] = []
    for first in range(0, policy.samples, chunk):
        size = min(chunk, policy.samples - first)
        drawn = rng.integers(0, n, size=(size, n))
        # Row i of the chunk counts how often each holdout row was drawn into resample i.
        flat = (drawn + (np.arange(size) * n)[:, None]).ravel()
        counts = np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)
        difference = weighted_metric(policy.metric, y, challenger, counts) - weighted_metric(
            policy.metric, y, champion, counts
        )
        # A resample with one class only leaves the metric undefined; dropping it is the usual
        # percentile-bootstrap convention (``valid_samples`` says how many were left).
        kept.append(difference[~np.isnan(difference)])
    return np.concatenate(kept) if kept else np.empty(0, dtype=np.float64)


def compare(
    y_true: npt.ArrayLike, challenger: npt.ArrayLike, champion: npt.ArrayLike, policy: GatePolicy | None = None
) -> GateDecision:
    """Decide whether ``challenger`` beats ``champion`` on the same labelled rows (paired bootstrap).

    ``y_true`` is 0/1 (1 the positive class); the scores are each model's positive-class probability,
    row for row. The same seed gives the same decision.
    """
    policy = policy or GatePolicy()
    y = np.asarray(y_true, dtype=np.int64)
    new = np.asarray(challenger, dtype=np.float64)
    old = np.asarray(champion, dtype=np.float64)
    if not (y.ndim == new.ndim == old.ndim == 1 and len(y) == len(new) == len(old)):
        raise ValueError(f"labels {y.shape}, challenger {new.shape} and champion {old.shape} must be 1-d and equal")
    if not np.isin(np.asarray(y_true), (0, 1)).all():
        raise ValueError("labels must be 0 or 1 (1 the positive class)")
    positives = int(y.sum())
    empty = GateDecision(
        outcome="too_few_rows", metric=policy.metric, challenger=None, champion=None, difference=None, ci_low=None,
        ci_high=None, margin=policy.margin, confidence=policy.confidence, rows=len(y), positives=positives,
        samples=0, valid_samples=0,
    )
    if len(y) < MIN_HOLDOUT_ROWS:
        return empty
    if positives in (0, len(y)):
        return GateDecision(**{**empty.__dict__, "outcome": "one_class"})
    if min(positives, len(y) - positives) < MIN_HOLDOUT_CLASS_ROWS:
        # With a handful of positives every resample repeats the same few: the interval comes out narrow
        # and says more about those rows than about the models.
        return GateDecision(**{**empty.__dict__, "outcome": "too_few_positives"})
    new_value, old_value = metric_value(policy.metric, y, new), metric_value(policy.metric, y, old)
    differences = _bootstrap_differences(policy, y, new, old)
    tail = (1 - policy.confidence) / 2
    low, high = (float(v) for v in np.quantile(differences, [tail, 1 - tail]))
    return GateDecision(
        outcome="promote" if low > policy.margin else "not_better",
        metric=policy.metric,
        challenger=new_value,
        champion=old_value,
        difference=new_value - old_value,
        ci_low=low,
        ci_high=high,
        margin=policy.margin,
        confidence=policy.confidence,
        rows=len(y),
        positives=positives,
        samples=policy.samples,
        valid_samples=len(differences),
    )


# --- storm guards ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GuardPolicy:
    """The least labels that must have arrived since the last retrain, and the least time between retrains."""

    min_new_labels: int = 500
    cooldown: timedelta = timedelta(hours=6)


@dataclass(frozen=True)
class LastRetrain:
    """The most recent retrain, as its MLflow run records it."""

    run_id: str
    started_at: datetime
    labels: int  # labelled examples it trained and evaluated on
    last_label_time: datetime | None  # the latest label it saw: labels after it are new


@dataclass(frozen=True)
class GuardRefusal:
    """Why a retrain was not started: a cooldown still running, or too few new labels."""

    kind: GuardKind
    last_run_id: str | None
    new_labels: int | None = None
    min_new_labels: int | None = None
    next_allowed_at: datetime | None = None

    @property
    def reason(self) -> str:
        """One line for a person."""
        if self.kind == "cooldown":
            assert self.next_allowed_at is not None
            return (
                f"in the cooldown: the last retrain (run {self.last_run_id}) was too recent; "
                f"the next is allowed from {self.next_allowed_at.isoformat()}"
            )
        since = f"since the last retrain (run {self.last_run_id})" if self.last_run_id else "in the window"
        return f"too few labels: {self.new_labels} new {since}, at least {self.min_new_labels} needed"


def check_cooldown(now: datetime, last: LastRetrain | None, policy: GuardPolicy) -> GuardRefusal | None:
    """Refuse while ``policy.cooldown`` has not passed since the last retrain started."""
    if last is None:
        return None
    allowed = last.started_at + policy.cooldown
    return GuardRefusal("cooldown", last.run_id, next_allowed_at=allowed) if now < allowed else None


def check_new_labels(new_labels: int, last: LastRetrain | None, policy: GuardPolicy) -> GuardRefusal | None:
    """Refuse when fewer than ``policy.min_new_labels`` labels arrived since the last retrain."""
    if new_labels >= policy.min_new_labels:
        return None
    return GuardRefusal(
        "too_few_labels", last.run_id if last else None, new_labels=new_labels, min_new_labels=policy.min_new_labels
    )


def count_new_labels(label_times: Iterable[datetime], last: LastRetrain | None) -> int:
    """Labels that arrived after the last retrain's latest label (all of them without a last retrain)."""
    if last is None or last.last_label_time is None:
        return sum(1 for _ in label_times)
    cut = last.last_label_time
    return sum(1 for t in label_times if t > cut)


def check_guards(
    now: datetime, last: LastRetrain | None, new_labels: int, policy: GuardPolicy
) -> GuardRefusal | None:
    """The first guard that refuses (cooldown first: it needs nothing read), or None to go ahead."""
    return check_cooldown(now, last, policy) or check_new_labels(new_labels, last, policy)
