"""Drift statistics and the windowed monitor (pure; no services)."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from drift.monitor import (
    DriftMonitor,
    benjamini_hochberg,
    chi2_against_reference,
    chi2_goodness_of_fit,
    psi,
    round_significant,
)
from drift.records import DriftEvaluation, FeatureDrift
from drift.reference import SAMPLE_SIZE, build_reference, numeric_sketch
from driftline.reference_types import DriftReference
from driftline.registry import FeatureSpec

SPECS = [
    FeatureSpec(name="amount", source="request", field="amount"),
    FeatureSpec(name="channel", source="request", field="channel", kind="categorical", categories=["a", "b", "c"]),
    FeatureSpec(name="hour_of_day", source="request", field="hour_of_day"),
    FeatureSpec(name="stat", source="feast", ref="v:stat"),
]
#: The example's time-of-day strata: whole quarters of the day.
HOUR_BLOCKS = (6.0, 12.0, 18.0)


def draw(rng: np.random.Generator, n: int, amount_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A stationary synthetic world: hour-dependent traffic, some missing store values."""
    hour = rng.integers(0, 24, n).astype(float)
    night = hour < 6
    amount = rng.lognormal(3.0 + 0.5 * night, 0.5) * amount_scale
    channel = np.where(night, rng.choice(3, n, p=[0.7, 0.2, 0.1]), rng.choice(3, n, p=[0.2, 0.7, 0.1])).astype(float)
    stat = rng.poisson(5 + 3 * night).astype(float)
    stat[rng.random(n) < 0.05] = np.nan
    matrix = np.column_stack([amount, channel, hour, stat])
    score = 1 / (1 + np.exp(-(np.log(amount) - 4 + night)))
    return matrix, score


@pytest.fixture(scope="module")
def reference() -> DriftReference:
    matrix, score = draw(np.random.default_rng(1), 40_000)
    return build_reference(SPECS, matrix, score, seed=3, stratify_by="hour_of_day", stratum_edges=HOUR_BLOCKS)


# --- statistics -------------------------------------------------------------------------------------


def test_psi_matches_hand_computation() -> None:
    # ref (0.5, 0.3, 0.2), current counts (40, 40, 20) -> shares (0.4, 0.4, 0.2):
    # (0.4-0.5) ln(0.4/0.5) + (0.4-0.3) ln(0.4/0.3) + 0 = 0.0223144 + 0.0287682 = 0.0510826
    assert psi([0.5, 0.3, 0.2], [40, 40, 20]) == pytest.approx(0.0510826, abs=1e-6)
    assert psi([0.5, 0.5], [10, 10]) == 0.0


def test_psi_floors_empty_bins_at_eps() -> None:
    # ref share 0 floored to 1e-4: (0.5 - 1e-4) ln(0.5 / 1e-4) + (0.5 - 1) ln(0.5 / 1)
    expected = (0.5 - 1e-4) * math.log(0.5 / 1e-4) + (0.5 - 1.0) * math.log(0.5)
    assert psi([0.0, 1.0], [5, 5]) == pytest.approx(expected)
    assert math.isnan(psi([0.5, 0.5], [0, 0]))


def test_chi2_goodness_of_fit_equals_scipy_without_pooling() -> None:
    observed = [30, 50, 20]
    proportions = [0.25, 0.5, 0.25]
    statistic, p = chi2_goodness_of_fit(observed, proportions)
    reference = stats.chisquare(observed, [25.0, 50.0, 25.0])
    assert statistic == pytest.approx(reference.statistic)
    assert p == pytest.approx(reference.pvalue)
    # By hand: 25/25 + 0 + 25/25 = 2.0 on 2 degrees of freedom, p = exp(-1).
    assert statistic == pytest.approx(2.0)
    assert p == pytest.approx(math.exp(-1))


def test_chi2_pools_small_expected_cells() -> None:
    # Expected 1, 2, 47, 50 of n=100: the two small cells are pooled (3), then the pool takes the
    # next smallest (47) to reach 5 -> cells (50 + 1 + 2 pooled..) are [obs 4+1+45, 50] vs [50, 50].
    observed = [4, 1, 45, 50]
    statistic, p = chi2_goodness_of_fit(observed, [0.01, 0.02, 0.47, 0.50])
    reference = stats.chisquare([50, 50], [50.0, 50.0])
    assert statistic == pytest.approx(reference.statistic)
    assert p == pytest.approx(reference.pvalue)
    # A level the reference never saw does not divide by zero.
    statistic, p = chi2_goodness_of_fit([3, 50, 47], [0.0, 0.5, 0.5])
    assert math.isfinite(statistic) and 0 <= p <= 1


def test_chi2_against_reference_approximates_the_homogeneity_test() -> None:
    window = np.array([260, 640, 100])
    ref_counts = np.array([2_300, 6_600, 1_100])
    statistic, p = chi2_against_reference(window, ref_counts / ref_counts.sum(), float(ref_counts.sum()))
    table = stats.chi2_contingency(np.vstack([window, ref_counts]), correction=False)
    assert statistic == pytest.approx(table.statistic, rel=0.05)
    assert p == pytest.approx(table.pvalue, rel=0.2)
    # Without a reference size it is the plain goodness of fit.
    assert chi2_against_reference(window, ref_counts / ref_counts.sum(), None) == pytest.approx(
        chi2_goodness_of_fit(window, ref_counts / ref_counts.sum())
    )


def test_ks_in_the_monitor_is_scipys_two_sample_test(reference: DriftReference) -> None:
    only_amount = DriftReference(version=2, n=40_000, features={"amount": reference.features["amount"]})
    monitor = DriftMonitor(SPECS[:2], only_amount, window_size=500, min_events=10)
    values = np.random.default_rng(5).lognormal(3.0, 0.5, 500)
    monitor.observe(np.column_stack([values, np.zeros(500)]), np.zeros(500))
    column = monitor.evaluate().features[0]
    expected = stats.ks_2samp(round_significant(values), np.asarray(reference.features["amount"].sample))
    assert column.statistic_name == "ks"
    assert column.statistic == pytest.approx(expected.statistic)
    assert column.p_value == pytest.approx(expected.pvalue)


def test_benjamini_hochberg_hand_worked_example() -> None:
    # m = 5, alpha 0.05: thresholds 0.01 0.02 0.03 0.04 0.05 for the sorted p-values
    # 0.001 0.012 0.029 0.041 0.20 -> the largest k with p_(k) <= k/m alpha is 4 (0.041 <= 0.04? no;
    # 0.029 <= 0.03 yes) -> k = 3: the three smallest are rejected, in their original positions.
    p = [0.029, 0.20, 0.001, 0.041, 0.012]
    assert benjamini_hochberg(p, 0.05) == [True, False, True, False, True]
    # Step-up: a p-value above its own threshold is still rejected under a later passing rank.
    assert benjamini_hochberg([0.03, 0.035], 0.05) == [True, True]
    assert benjamini_hochberg([None, float("nan"), 0.001], 0.05) == [False, False, True]
    assert benjamini_hochberg([], 0.05) == []


def test_round_significant() -> None:
    assert round_significant([123456789.0, 0.000123456789, 0.0, -2.5])[0] == pytest.approx(123457000.0)
    assert round_significant([0.000123456789])[0] == pytest.approx(0.000123457)
    assert np.isnan(round_significant([np.nan])[0])


# --- reference sketches -----------------------------------------------------------------------------


def test_reference_sample_is_bounded_seeded_and_excludes_missing() -> None:
    values = np.random.default_rng(0).normal(size=5_000)
    values[:100] = np.nan
    sketch = numeric_sketch(values, seed=4)
    assert len(sketch.sample) == SAMPLE_SIZE
    assert not any(math.isnan(v) for v in sketch.sample)
    assert numeric_sketch(values, seed=4).sample == sketch.sample
    assert sketch.missing_rate == pytest.approx(0.02)
    json.dumps(sketch.model_dump())


def test_reference_has_time_of_day_strata(reference: DriftReference) -> None:
    strata = reference.strata
    assert strata is not None
    assert strata.feature == "hour_of_day" and strata.edges == [6.0, 12.0, 18.0]
    assert sum(strata.share) == pytest.approx(1.0)
    assert len(strata.features["amount"]) == 4 and len(strata.score) == 4
    assert reference.version == 2


def test_strata_come_from_the_parameter_only() -> None:
    # Ten rows whose "clock" (the stat column here) sits 3 / 2 / 2 / 3 in the blocks cut at 6, 12 and 18.
    clock = np.array([0.0, 1.0, 5.0, 6.0, 11.0, 12.0, 17.0, 18.0, 23.0, 23.0])
    matrix = np.column_stack([np.arange(10.0), np.zeros(10), np.full(10, 3.0), clock])
    score = np.linspace(0, 1, 10)
    assert build_reference(SPECS, matrix, score).strata is None  # hour_of_day is a column, but not asked for
    strata = build_reference(SPECS, matrix, score, stratify_by="stat", stratum_edges=HOUR_BLOCKS).strata
    assert strata is not None and strata.feature == "stat" and strata.edges == [6.0, 12.0, 18.0]
    assert strata.share == pytest.approx([0.3, 0.2, 0.2, 0.3])
    assert [part.n for part in strata.features["amount"]] == [3, 2, 2, 3]
    two = build_reference(SPECS, matrix, score, stratify_by="stat", stratum_edges=[12.0]).strata
    assert two is not None and two.share == pytest.approx([0.5, 0.5])


@pytest.mark.parametrize(
    ("stratify_by", "edges", "message"),
    [
        ("minute", HOUR_BLOCKS, "not one of the model's features"),
        ("channel", HOUR_BLOCKS, "must be a numeric feature"),
        ("hour_of_day", (), "needs stratum_edges"),
        ("hour_of_day", (6.0, 6.0, 18.0), "must increase"),
    ],
)
def test_bad_strata_parameters_are_refused(stratify_by: str, edges: tuple[float, ...], message: str) -> None:
    matrix, score = draw(np.random.default_rng(0), 100)
    with pytest.raises(ValueError, match=message):
        build_reference(SPECS, matrix, score, stratify_by=stratify_by, stratum_edges=edges)


def test_the_monitor_takes_the_stratum_feature_from_the_reference() -> None:
    # Stratified by the store value instead of the hour: stat becomes context, hour_of_day is tested.
    matrix, score = draw(np.random.default_rng(1), 10_000)
    by_stat = build_reference(SPECS, matrix, score, seed=3, stratify_by="stat", stratum_edges=(5.0,))
    monitor = DriftMonitor(SPECS, by_stat, window_size=1_000, min_events=10)
    monitor.observe(*draw(np.random.default_rng(2), 1_000))
    report = monitor.evaluate()
    tested = {c.name: c.tested for c in report.features}
    assert tested == {"amount": True, "channel": True, "hour_of_day": True, "stat": False}
    assert len(report.strata) == 2 and sum(report.strata) == pytest.approx(1.0)
    unstratified = DriftMonitor(SPECS, build_reference(SPECS, matrix, score, seed=3), window_size=1_000, min_events=10)
    unstratified.observe(*draw(np.random.default_rng(2), 1_000))
    report = unstratified.evaluate()
    assert report.strata == () and all(c.tested for c in report.features)


def test_version_1_sketch_computes_psi_but_skips_ks(reference: DriftReference) -> None:
    old = DriftReference.model_validate(
        {"version": 1, "n": 40_000, "features": {k: {kk: vv for kk, vv in v.model_dump().items() if kk != "sample"}
                                                 for k, v in reference.features.items()}}
    )
    monitor = DriftMonitor(SPECS, old, window_size=2_000, min_events=100)
    matrix, score = draw(np.random.default_rng(9), 2_000)
    monitor.observe(matrix, score)
    report = monitor.evaluate()
    amount = report.features[0]
    assert amount.statistic is None and amount.p_value is None and not amount.tested
    assert amount.psi is not None and amount.psi < 0.1
    assert report.features[1].statistic_name == "chi2" and report.features[1].p_value is not None
    assert report.score is None


# --- the monitor ------------------------------------------------------------------------------------


def test_stationary_stream_false_alarm_rate_is_about_alpha(reference: DriftReference) -> None:
    alpha = 0.05
    monitor = DriftMonitor(SPECS, reference, window_size=1_000, alpha=alpha, min_events=1_000)
    rng = np.random.default_rng(2024)
    evaluations = 200
    alarms = 0
    family_sizes: set[int] = set()
    for _ in range(evaluations):
        # Independent windows: each evaluation sees 1,000 fresh rows only.
        matrix, score = draw(rng, 1_000)
        monitor.observe(matrix, score)
        report = monitor.evaluate()
        alarms += report.any_flagged
        family_sizes.add(sum(c.tested for c in (*report.features, report.score) if c is not None))
    # Given the reference, fresh windows are independent: alarms ~ Binomial(200, q), q the chance that
    # BH flags anything in one stationary window. BH at alpha over m tests rejects at least when
    # Bonferroni does (min p <= alpha/m) and, under the global null with independent or positively
    # dependent p-values, at most alpha: alpha/m <= q <= alpha. Here m = 4 (amount, channel, stat and
    # the score; hour_of_day is context). The 0.1% tails of Binomial(200, alpha/m) and Binomial(200,
    # alpha) bound the count for any seed: [0, 21] (the lower tail is empty at 200 evaluations).
    assert family_sizes == {4}
    m = 4
    assert stats.binom.ppf(0.001, evaluations, alpha / m) <= alarms <= stats.binom.isf(0.001, evaluations, alpha)
    # The seeds (reference 1 and 3, windows 2024) fix every draw, so the count itself is known: 7,
    # a rate of 3.5%, inside [alpha/m, alpha]. A change to a test, to BH or to the time-of-day mixing
    # moves it; one that keeps the guarantee must still land inside the bound above.
    assert alarms == 7, alarms


def test_time_of_day_is_context_not_drift(reference: DriftReference) -> None:
    # A window of night traffic only: hours, amounts, channel and score all differ from the
    # day-dominated whole, but not from the night part of the reference.
    monitor = DriftMonitor(SPECS, reference, window_size=2_000, alpha=0.01, min_events=500)
    rng = np.random.default_rng(77)
    matrix, score = draw(rng, 20_000)
    night = matrix[:, 2] < 6
    monitor.observe(matrix[night][:2_000], score[night][:2_000])
    report = monitor.evaluate()
    assert not report.any_flagged, report.flagged
    assert report.strata[0] == pytest.approx(1.0)
    hour = report.features[2]
    assert not hour.tested and hour.p_value is None and hour.psi is not None


def test_shifted_feature_is_flagged(reference: DriftReference) -> None:
    monitor = DriftMonitor(SPECS, reference, window_size=2_000, alpha=0.01, min_events=1_000, min_psi=0.1)
    matrix, score = draw(np.random.default_rng(3), 2_000, amount_scale=1.5)
    monitor.observe(matrix, score)
    report = monitor.evaluate()
    assert "amount" in report.flagged
    assert "channel" not in report.flagged and "stat" not in report.flagged
    amount = report.features[0]
    assert amount.p_value is not None and amount.p_value < 1e-6 and amount.psi is not None and amount.psi > 0.1


def test_no_flags_before_min_events(reference: DriftReference) -> None:
    monitor = DriftMonitor(SPECS, reference, window_size=2_000, alpha=0.01, min_events=1_000)
    matrix, score = draw(np.random.default_rng(3), 999, amount_scale=3.0)
    monitor.observe(matrix, score)
    report = monitor.evaluate()
    assert not report.ready and not report.any_flagged
    assert report.features[0].p_value is not None and report.features[0].p_value < 1e-6


def test_min_psi_floor_keeps_tiny_significant_shifts_quiet(reference: DriftReference) -> None:
    matrix, score = draw(np.random.default_rng(8), 20_000, amount_scale=1.04)
    loud = DriftMonitor(SPECS, reference, window_size=20_000, alpha=0.01, min_events=1_000)
    quiet = DriftMonitor(SPECS, reference, window_size=20_000, alpha=0.01, min_events=1_000, min_psi=0.1)
    for monitor in (loud, quiet):
        monitor.observe(matrix, score)
    assert "amount" in loud.evaluate().flagged
    assert not quiet.evaluate().any_flagged


def test_missing_values_stay_out_of_bins_and_tests(reference: DriftReference) -> None:
    monitor = DriftMonitor(SPECS, reference, window_size=1_000, min_events=10)
    matrix, score = draw(np.random.default_rng(4), 1_000)
    matrix[:300, 3] = np.nan  # 30% missing store values
    matrix[:100, 1] = np.nan
    monitor.observe(matrix, score)
    report = monitor.evaluate()
    stat, channel = report.features[3], report.features[1]
    present = int(np.sum(~np.isnan(matrix[:, 3])))
    assert stat.n == present and stat.missing_rate == pytest.approx(1 - present / 1_000)
    assert sum(stat.current) == pytest.approx(1.0)  # shares of present values only
    assert stat.reference_missing_rate == pytest.approx(0.05, abs=0.01)
    assert channel.n == 900 and channel.missing_rate == pytest.approx(0.1)
    assert sum(channel.current) == pytest.approx(1.0)


def test_batch_bigger_than_window_keeps_the_newest_rows() -> None:
    monitor = DriftMonitor(SPECS[:1], None, window_size=5, min_events=1)
    monitor.observe(np.arange(3, dtype=float).reshape(-1, 1), np.zeros(3))
    monitor.observe(np.arange(100, 112, dtype=float).reshape(-1, 1), np.arange(12, dtype=float))
    assert monitor.events_seen == 15 and monitor.window_events == 5
    window = monitor._buffer  # the ring buffer holds exactly the last five rows
    assert sorted(window[:, 0]) == [107.0, 108.0, 109.0, 110.0, 111.0]
    assert sorted(window[:, 1]) == [7.0, 8.0, 9.0, 10.0, 11.0]
    # Wrapping across the end of the buffer keeps the newest rows too.
    monitor.observe(np.array([[200.0], [201.0], [202.0]]), np.zeros(3))
    assert sorted(monitor._buffer[:, 0]) == [110.0, 111.0, 200.0, 201.0, 202.0]


def test_observe_rejects_mismatched_shapes() -> None:
    monitor = DriftMonitor(SPECS, None, window_size=10)
    with pytest.raises(ValueError, match="4 columns"):
        monitor.observe(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="2 rows but 3 scores"):
        monitor.observe(np.zeros((2, 4)), np.zeros(3))


def test_evaluation_is_frozen_and_round_trips_as_json(reference: DriftReference) -> None:
    monitor = DriftMonitor(SPECS, reference, window_size=1_000, min_events=10)
    matrix, score = draw(np.random.default_rng(6), 1_000, amount_scale=2.0)
    monitor.observe(matrix, score)
    report = monitor.evaluate()
    data = json.loads(report.model_dump_json())
    assert [c["name"] for c in data["features"]] == [s.name for s in SPECS]
    assert data["score"]["name"] == "score" and data["score"]["statistic_name"] == "ks"
    assert data["flagged"] == list(report.flagged) and "amount" in report.flagged  # written for readers of the JSON
    assert data["features"][2]["statistic"] is None  # hour_of_day: context, not tested
    assert DriftEvaluation.model_validate_json(report.model_dump_json()) == report
    with pytest.raises(ValidationError):
        report.alpha = 0.5  # type: ignore[misc]


def _column(name: str, flagged: bool, statistic: float | None = 0.2) -> FeatureDrift:
    return FeatureDrift(
        name=name, kind="numeric", statistic_name="ks", statistic=statistic, p_value=0.5, psi=0.01,
        missing_rate=0.0, reference_missing_rate=0.0, n=100, flagged=flagged, tested=True,
        bins=("<1", ">=1"), reference=(0.5, 0.5), current=(0.4, 0.6),
    )


def test_flagged_is_derived_from_the_columns_and_nan_is_none() -> None:
    evaluation = DriftEvaluation(
        events_seen=100, window_events=100, window_size=100, alpha=0.01, ready=True, strata=(),
        features=(_column("amount", True), _column("stat", False)), score=_column("score", True),
    )
    assert evaluation.flagged == ("amount", "score") and evaluation.any_flagged
    assert [c.name for c in evaluation.columns] == ["amount", "stat", "score"]
    # A "flagged" list in the JSON is the columns' flags written out; reading derives it again.
    data = {**evaluation.model_dump(), "flagged": ["stat"]}
    assert DriftEvaluation.model_validate(data).flagged == ("amount", "score")
    assert _column("amount", False, statistic=float("nan")).statistic is None
    assert _column("amount", False, statistic=float("inf")).statistic is None


def test_evaluate_runs_safely_beside_observe(reference: DriftReference) -> None:
    monitor = DriftMonitor(SPECS, reference, window_size=2_000, min_events=10)
    matrix, score = draw(np.random.default_rng(7), 200)
    stop = threading.Event()
    errors: list[BaseException] = []

    def evaluate_loop() -> None:
        try:
            while not stop.is_set():
                report = monitor.evaluate()
                assert report.window_events <= 2_000
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=evaluate_loop)
    thread.start()
    for _ in range(300):
        monitor.observe(matrix, score)
    stop.set()
    thread.join()
    assert not errors
    assert monitor.events_seen == 60_000
