"""The retrain gate: a paired bootstrap of the metric difference, and the storm guards (pure, no services)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from training.gate import (
    GateMetric,
    GatePolicy,
    GuardPolicy,
    LastRetrain,
    _bootstrap_differences,
    check_cooldown,
    check_guards,
    check_new_labels,
    compare,
    count_new_labels,
    weighted_metric,
)

NOW = datetime(2026, 12, 19, 12, 0, tzinfo=UTC)


def holdout(
    seed: int, n: int = 2000, rate: float = 0.08
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Labels, and the scores of a strong model, a weak one, and a second weak one of the same quality."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(np.int64)
    strong = 1 / (1 + np.exp(-(3.0 * y - 1.5 + rng.normal(0, 1.0, n))))
    weak = 1 / (1 + np.exp(-(1.0 * y - 0.5 + rng.normal(0, 1.0, n))))
    weak_again = 1 / (1 + np.exp(-(1.0 * y - 0.5 + rng.normal(0, 1.0, n))))
    return y, strong, weak, weak_again


@pytest.mark.parametrize("seed", [1, 2])
def test_a_clearly_better_challenger_is_promoted(seed: int) -> None:
    y, strong, weak, _ = holdout(seed)
    decision = compare(y, strong, weak, GatePolicy(margin=0.05, seed=seed))
    assert decision.promote and decision.outcome == "promote"
    assert decision.ci_low is not None and decision.ci_low > 0.05
    assert decision.challenger == pytest.approx(average_precision_score(y, strong))
    assert decision.champion == pytest.approx(average_precision_score(y, weak))
    assert decision.valid_samples == decision.samples == 1000
    assert "clears margin 0.05" in decision.reason


@pytest.mark.parametrize("seed", [1, 2])
def test_an_equal_challenger_is_not_promoted(seed: int) -> None:
    y, _, weak, weak_again = holdout(seed)
    decision = compare(y, weak_again, weak, GatePolicy(seed=seed))
    assert not decision.promote and decision.outcome == "not_better"
    assert decision.ci_low is not None and decision.ci_high is not None
    assert decision.ci_low < 0 < decision.ci_high  # the interval straddles no difference
    # The very same scores: every resample's difference is 0, and 0 does not exceed the margin 0.
    same = compare(y, weak, weak, GatePolicy(seed=seed))
    assert (same.ci_low, same.ci_high, same.promote) == (0.0, 0.0, False)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_worse_challenger_is_not_promoted(seed: int) -> None:
    y, strong, weak, _ = holdout(seed)
    decision = compare(y, weak, strong, GatePolicy(seed=seed))
    assert not decision.promote
    assert decision.ci_high is not None and decision.ci_high < 0
    assert decision.reason.startswith("challenger PR-AUC ")
    assert "does not clear margin 0" in decision.reason


def test_the_margin_must_be_cleared_by_the_lower_bound() -> None:
    y, strong, weak, _ = holdout(1)
    decision = compare(y, strong, weak, GatePolicy(margin=0.9))
    assert not decision.promote
    assert decision.difference is not None and decision.difference > 0  # better, but not by 0.9
    assert "does not clear margin 0.9" in decision.reason


def test_the_same_seed_gives_the_same_interval_and_another_seed_a_close_one() -> None:
    y, strong, weak, _ = holdout(4)
    first = compare(y, strong, weak, GatePolicy(seed=7))
    again = compare(y, strong, weak, GatePolicy(seed=7))
    other = compare(y, strong, weak, GatePolicy(seed=8))
    assert first == again
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low == pytest.approx(other.ci_low, abs=0.02)


def test_roc_auc_is_selectable() -> None:
    y, strong, weak, _ = holdout(5)
    decision = compare(y, strong, weak, GatePolicy(metric="roc_auc"))
    assert decision.metric == "roc_auc" and decision.promote
    assert decision.reason.startswith("challenger ROC-AUC ")


def test_a_holdout_the_metric_is_undefined_on_is_refused_with_a_reason() -> None:
    y = np.zeros(500, dtype=np.int64)
    scores = np.linspace(0, 1, 500)
    one_class = compare(y, scores, scores[::-1])
    assert one_class.outcome == "one_class" and not one_class.promote
    assert "0 positives in 500 rows" in one_class.reason
    tiny = compare([0, 1] * 5, np.linspace(0, 1, 10), np.linspace(0, 1, 10))
    assert tiny.outcome == "too_few_rows" and "10 rows" in tiny.reason


@pytest.mark.parametrize(
    ("metric", "sklearn_metric"), [("pr_auc", average_precision_score), ("roc_auc", roc_auc_score)]
)
def test_weighting_rows_by_draw_counts_is_scikit_learn_on_the_resampled_rows(
    metric: GateMetric, sklearn_metric: Callable[..., float]
) -> None:
    rng = np.random.default_rng(3)
    n = 300
    y = (rng.random(n) < 0.1).astype(np.int64)
    scores = np.round(rng.random(n) + 0.3 * y, 1).astype(np.float64)  # one decimal: many tied scores
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(40)]).astype(np.float64)
    counts[0] = 0.0
    counts[0, y == 0] = 1.0  # a resample without a positive: undefined, NaN
    values = weighted_metric(metric, y, scores, counts)
    assert np.isnan(values[0])
    for row, value in zip(counts[1:], values[1:], strict=True):
        drawn = np.repeat(np.arange(n), row.astype(np.int64))
        assert value == pytest.approx(sklearn_metric(y[drawn], scores[drawn]), abs=1e-12)


def test_resamples_without_a_positive_are_dropped() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros(200, dtype=np.int64)
    y[:2] = 1  # two positives: about 13% of resamples draw neither
    differences = _bootstrap_differences(GatePolicy(seed=0), y, rng.random(200), rng.random(200))
    assert 800 < len(differences) < 1000 and not np.isnan(differences).any()


def test_a_handful_of_positives_gives_no_interval() -> None:
    y = np.zeros(400, dtype=np.int64)
    y[:3] = 1
    ranked_first = y * 1.0  # the challenger ranks the 3 positives on top, the champion at the bottom
    decision = compare(y, ranked_first, 1.0 - ranked_first, GatePolicy(seed=0))
    assert decision.outcome == "too_few_positives" and not decision.promote  # 3 rows decide nothing
    assert decision.ci_low is None and decision.samples == 0
    assert decision.reason == (
        "the holdout has 3 positives in 400 rows: the gate needs at least 10 of each class for an interval; "
        "widen the window"
    )


def test_mismatched_lengths_are_an_error() -> None:
    with pytest.raises(ValueError, match="must be 1-d and equal"):
        compare([0, 1, 1], [0.1, 0.2], [0.3, 0.4, 0.5])
    with pytest.raises(ValueError, match="must be 0 or 1"):
        compare([0, 2, 1], [0.1, 0.2, 0.3], [0.3, 0.4, 0.5])


def test_a_bootstrap_of_1000_on_2000_rows_takes_seconds_not_minutes() -> None:
    y, strong, weak, _ = holdout(6)
    started = time.perf_counter()
    compare(y, strong, weak)
    assert time.perf_counter() - started < 3  # one vectorised pass per chunk, not 2,000 scikit-learn calls


# --- guards ---------------------------------------------------------------------------------------

LAST = LastRetrain(run_id="r1", started_at=NOW - timedelta(hours=2), labels=800,
                   last_label_time=NOW - timedelta(hours=3))


def test_the_cooldown_refuses_until_it_has_passed() -> None:
    policy = GuardPolicy(min_new_labels=10, cooldown=timedelta(hours=6))
    refusal = check_cooldown(NOW, LAST, policy)
    assert refusal is not None and refusal.kind == "cooldown"
    assert refusal.next_allowed_at == NOW + timedelta(hours=4)
    assert "run r1" in refusal.reason and "2026-12-19T16:00:00+00:00" in refusal.reason
    assert check_cooldown(NOW + timedelta(hours=4), LAST, policy) is None
    assert check_cooldown(NOW, None, policy) is None  # never retrained


def test_too_few_new_labels_are_refused() -> None:
    policy = GuardPolicy(min_new_labels=500, cooldown=timedelta(0))
    refusal = check_new_labels(499, LAST, policy)
    assert refusal is not None and refusal.kind == "too_few_labels"
    assert (refusal.new_labels, refusal.min_new_labels) == (499, 500)
    assert refusal.reason == "too few labels: 499 new since the last retrain (run r1), at least 500 needed"
    assert check_new_labels(500, LAST, policy) is None
    first = check_new_labels(3, None, policy)
    assert first is not None and "3 new in the window" in first.reason


def test_new_labels_are_those_after_the_last_retrains_latest_label() -> None:
    times = [NOW - timedelta(hours=h) for h in (5, 4, 3, 2, 1)]
    assert count_new_labels(times, LAST) == 2  # the one at exactly -3 h was seen
    assert count_new_labels(times, None) == 5
    no_time = LastRetrain(run_id="r0", started_at=NOW, labels=0, last_label_time=None)
    assert count_new_labels(times, no_time) == 5


def test_check_guards_applies_the_cooldown_first() -> None:
    policy = GuardPolicy(min_new_labels=500, cooldown=timedelta(hours=6))
    refusal = check_guards(NOW, LAST, 0, policy)
    assert refusal is not None and refusal.kind == "cooldown"
    later = check_guards(NOW + timedelta(hours=5), LAST, 0, policy)
    assert later is not None and later.kind == "too_few_labels"
    assert check_guards(NOW + timedelta(hours=5), LAST, 500, policy) is None
