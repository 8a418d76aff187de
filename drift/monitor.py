"""Windowed drift statistics of the model's inputs and score against the reference sketches.

Pure: numpy and scipy.stats only. :class:`DriftMonitor` keeps the last ``window_size`` scored rows
in a ring buffer (:meth:`~DriftMonitor.observe` is cheap and runs on the serving path) and
:meth:`~DriftMonitor.evaluate` compares the window with the reference that training stored in
``ModelMetadata.reference`` (see ``drift/reference.py``), off the hot path, and returns a typed
:class:`~drift.records.DriftEvaluation`.

Per column:

- numeric: two-sample Kolmogorov-Smirnov test of the window's non-missing values against the
  reference ``sample``, and PSI over the reference decile bins;
- categorical: chi-squared goodness of fit of the window's level counts against the reference
  level frequencies times n (small expected cells pooled, see :func:`chi2_goodness_of_fit`),
  corrected for the reference's own sampling noise (:func:`chi2_against_reference`), and PSI
  over the levels.

Missing values (NaN) never enter bins or tests; the missing rate is reported beside them.

**Time of day.** A window of a few thousand events spans minutes, while the reference spans
days: a window at 03:00 holds night traffic only (other customers, more online, higher scores),
so comparing it with the day-dominated reference raises an alarm every night. When the
reference carries ``strata`` (time-of-day blocks of a clock feature such as ``hour_of_day``),
each column's window is compared with the reference *mixed to the window's own time-of-day
mix*: the question becomes "do the values differ from what this time of day looked like?". The
clock feature itself is then context: reported, never tested (its window distribution is set by
the clock, not by the world). A change in the time-of-day mix alone is therefore not drift.

**Flags.** The p-values of every tested column and of the score form one family, corrected
with Benjamini-Hochberg at ``alpha``. BH controls the false discovery rate; on a stationary
stream every null hypothesis is true, and then FDR equals the family-wise error rate, so the
share of evaluations with any flag is about ``alpha`` (at most ``alpha`` for independent or
positively dependent tests). Nothing is flagged until the window holds ``min_events`` rows.
``min_psi`` (default 0, off) adds an effect-size floor: a column is flagged only when its test
is significant *and* its PSI reaches ``min_psi``. With big windows a test finds differences too
small to matter (and the reference is never a perfect picture of the live stream: one snapshot
per entity online against a history of them); 0.1, the usual "moderate shift" mark of PSI,
keeps those quiet. The floor can only lower the false-alarm rate below ``alpha``.
Evaluations of overlapping windows are correlated: one false alarm tends to last a few
evaluations, but their long-run share stays about ``alpha``.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

from drift.records import DriftEvaluation, FeatureDrift, StatisticName
from driftline.reference_types import (
    CategoricalSketch,
    CategoricalStratum,
    ColumnSketch,
    DriftReference,
    NumericStratum,
    StratumSketch,
)
from driftline.registry import FeatureSpec

FloatArray = npt.NDArray[np.float64]

#: Significant digits kept in reference samples; window values are rounded alike before KS, so
#: a value and its stored copy compare equal.
SAMPLE_DIGITS = 6
#: Chi-squared cells with a smaller expected count are pooled (the usual rule of thumb for the
#: chi-squared approximation).
MIN_EXPECTED = 5.0
#: Fewest non-missing window values for a test; below it the column is reported untested.
MIN_VALUES = 30
#: Name of the score column in reports.
SCORE = "score"


def round_significant(values: npt.ArrayLike, digits: int = SAMPLE_DIGITS) -> FloatArray:
    """Round to ``digits`` significant digits (zero, NaN and infinities unchanged)."""
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x) & (x != 0)
    out = x.copy()
    if finite.any():
        exponent = np.floor(np.log10(np.abs(x[finite])))
        scale = 10.0 ** (digits - 1 - exponent)
        out[finite] = np.round(x[finite] * scale) / scale
    return out


def psi(ref_proportions: npt.ArrayLike, current_counts: npt.ArrayLike, eps: float = 1e-4) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over bins, shares floored at ``eps``.

    ``current_counts`` are counts (made shares here); NaN when there are none.
    """
    ref = np.asarray(ref_proportions, dtype=np.float64)
    counts = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != counts.shape:
        raise ValueError(f"{len(ref)} reference bins but {len(counts)} current bins")
    total = counts.sum()
    if total <= 0:
        return math.nan
    r = np.maximum(ref, eps)
    c = np.maximum(counts / total, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def _pooled_cells(
    observed: npt.ArrayLike, expected_proportions: npt.ArrayLike, min_expected: float
) -> tuple[FloatArray, FloatArray] | None:
    """Observed and expected counts with small expected cells pooled; None when < 2 cells remain."""
    obs = np.asarray(observed, dtype=np.float64)
    prop = np.asarray(expected_proportions, dtype=np.float64)
    n = obs.sum()
    if n <= 0 or prop.sum() <= 0:
        return None
    exp = prop / prop.sum() * n
    order = np.argsort(exp, kind="stable")
    exp, obs = exp[order], obs[order]
    n_small = int(np.sum(exp < min_expected))
    if n_small:
        cumulative = np.cumsum(exp)
        # Pool the smallest cells: all the small ones, then more until the pool is large enough.
        reach = int(np.searchsorted(cumulative, min_expected, side="left")) + 1
        k = min(max(n_small, reach), len(exp))
        exp = np.concatenate([[exp[:k].sum()], exp[k:]])
        obs = np.concatenate([[obs[:k].sum()], obs[k:]])
    return (obs, exp) if len(exp) >= 2 else None


def chi2_goodness_of_fit(
    observed: npt.ArrayLike, expected_proportions: npt.ArrayLike, min_expected: float = MIN_EXPECTED
) -> tuple[float, float]:
    """Chi-squared goodness of fit of ``observed`` counts to ``expected_proportions`` x n.

    Cells whose expected count is below ``min_expected`` are pooled into one cell; if that pool
    is still below ``min_expected`` it absorbs the smallest remaining cells until it is not. A
    level the reference never saw (expected 0) thus lands in the pool rather than dividing by
    zero; PSI, which floors shares, still shows it. Returns ``(statistic, p_value)``, NaN for
    both when fewer than two cells remain.
    """
    cells = _pooled_cells(observed, expected_proportions, min_expected)
    if cells is None:
        return math.nan, math.nan
    result = stats.chisquare(*cells)
    return float(result.statistic), float(result.pvalue)


def chi2_against_reference(
    observed: npt.ArrayLike,
    reference_proportions: npt.ArrayLike,
    reference_n: float | None,
    min_expected: float = MIN_EXPECTED,
) -> tuple[float, float]:
    """Chi-squared test that the window's counts and the reference come from one distribution.

    The goodness-of-fit statistic treats the reference shares as exact, but they are estimated
    from ``reference_n`` values: the difference of the two shares has variance
    ``(1/n + 1/reference_n) p(1-p)``, not ``p(1-p)/n``. Dividing the statistic by
    ``1 + n / reference_n`` is the asymptotic two-sample (homogeneity) statistic with the same
    degrees of freedom. It matters when the reference is small next to the window (a
    time-of-day stratum of a few hundred rows against a window of thousands), where the plain
    test would call the reference's own noise drift. ``reference_n`` None means exact shares.
    """
    cells = _pooled_cells(observed, reference_proportions, min_expected)
    if cells is None:
        return math.nan, math.nan
    obs, exp = cells
    statistic = float(stats.chisquare(obs, exp).statistic)
    if reference_n is not None and reference_n > 0:
        statistic /= 1.0 + obs.sum() / reference_n
    return statistic, float(stats.chi2.sf(statistic, len(obs) - 1))


def benjamini_hochberg(p_values: Sequence[float | None], alpha: float) -> list[bool]:
    """Benjamini-Hochberg step-up: which hypotheses to reject at false discovery rate ``alpha``.

    ``None`` or NaN p-values (untested) are left out of the family and never rejected.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    tested = [(i, float(p)) for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    reject = [False] * len(p_values)
    m = len(tested)
    if m == 0:
        return reject
    ranked = sorted(tested, key=lambda item: item[1])
    last = 0
    for rank, (_, p) in enumerate(ranked, start=1):
        if p <= rank / m * alpha:
            last = rank
    for i, _ in ranked[:last]:
        reject[i] = True
    return reject


@dataclass(frozen=True, slots=True)
class _StratumRef:
    proportions: FloatArray
    sample: FloatArray | None
    n: int  # non-missing reference values


@dataclass(frozen=True, slots=True)
class _ColumnRef:
    name: str
    column: int
    kind: Literal["numeric", "categorical"]
    edges: FloatArray  # numeric bin edges; empty for categorical
    bins: tuple[str, ...]
    proportions: FloatArray
    sample: FloatArray | None
    missing_rate: float
    n: int  # non-missing reference values
    strata: tuple[_StratumRef | None, ...]
    tested: bool


def _sample(sketch: ColumnSketch | StratumSketch) -> FloatArray | None:
    values = None if isinstance(sketch, CategoricalSketch | CategoricalStratum) else sketch.sample
    if not values:
        return None  # a version-1 sketch: PSI only
    return round_significant(np.asarray(values, dtype=np.float64))


def _proportions(sketch: ColumnSketch | StratumSketch, levels: Sequence[str] | None) -> FloatArray:
    # A sketch of the other kind than the spec (never written by drift.reference) reads as empty.
    if isinstance(sketch, CategoricalSketch | CategoricalStratum):
        shares: Mapping[str, float] = sketch.levels
        proportions: Sequence[float] = []
    else:
        shares, proportions = {}, sketch.proportions
    if levels is not None:
        return np.asarray([float(shares.get(level, 0.0)) for level in levels], dtype=np.float64)
    return np.asarray(proportions, dtype=np.float64)


def _numeric_bins(edges: FloatArray) -> tuple[str, ...]:
    if len(edges) == 0:
        return ("all",)
    labels = [f"<{edges[0]:.4g}"]
    labels += [f"{lo:.4g}..{hi:.4g}" for lo, hi in itertools.pairwise(edges)]
    labels.append(f">={edges[-1]:.4g}")
    return tuple(labels)


def _column_ref(
    name: str,
    column: int,
    sketch: ColumnSketch,
    levels: Sequence[str] | None,
    strata_sketches: Sequence[StratumSketch] | None,
    tested: bool,
    reference_rows: int,
) -> _ColumnRef:
    kind: Literal["numeric", "categorical"] = "categorical" if levels is not None else "numeric"
    edges = np.asarray([] if isinstance(sketch, CategoricalSketch) else sketch.edges, dtype=np.float64)
    strata: list[_StratumRef | None] = []
    for part in strata_sketches or []:
        n = part.n
        strata.append(_StratumRef(_proportions(part, levels), _sample(part), n) if n > 0 else None)
    return _ColumnRef(
        name=name,
        column=column,
        kind=kind,
        edges=edges,
        bins=tuple(levels) if levels is not None else _numeric_bins(edges),
        proportions=_proportions(sketch, levels),
        sample=_sample(sketch),
        missing_rate=sketch.missing_rate,
        n=round(reference_rows * (1.0 - sketch.missing_rate)),
        strata=tuple(strata),
        tested=tested,
    )


class DriftMonitor:
    """Ring buffer of the latest scored rows and drift tests of it against the model's reference.

    ``specs`` are the model's inputs in column order and ``reference`` its
    ``ModelMetadata.reference``; columns without a reference sketch (all of them, when the
    reference is None) are not monitored.

    ``observe`` runs per batch on the serving path: one slice copy into a preallocated buffer.
    ``evaluate`` runs from a timer, possibly in another thread: it copies the buffer under the
    lock and computes everything on the copy.
    """

    def __init__(
        self,
        specs: Sequence[FeatureSpec],
        reference: DriftReference | None,
        *,
        window_size: int = 2_000,
        alpha: float = 0.01,
        min_events: int = 1_000,
        min_psi: float = 0.0,
    ) -> None:
        if window_size < 1:
            raise ValueError(f"window_size must be positive, got {window_size}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.window_size = window_size
        self.alpha = alpha
        self.min_events = min(min_events, window_size)
        self.min_psi = min_psi
        self._n_features = len(specs)
        names = [s.name for s in specs]

        strata = reference.strata if reference is not None else None
        clock = strata.feature if strata is not None else None
        self._stratum_column = names.index(clock) if clock in names else None
        self._stratum_edges = np.asarray(strata.edges if strata is not None else [], dtype=np.float64)
        self._n_strata = len(self._stratum_edges) + 1 if self._stratum_column is not None else 0
        by_feature: Mapping[str, Sequence[StratumSketch]] = (
            strata.features if strata is not None and self._stratum_column is not None else {}
        )

        sketches: Mapping[str, ColumnSketch] = reference.features if reference is not None else {}
        rows = reference.n if reference is not None else 0
        self._columns: list[_ColumnRef] = []
        for j, spec in enumerate(specs):
            sketch = sketches.get(spec.name)
            if sketch is None:
                continue  # no reference for this column: nothing to compare with
            levels = (spec.categories or []) if spec.kind == "categorical" else None
            self._columns.append(
                _column_ref(spec.name, j, sketch, levels, by_feature.get(spec.name), j != self._stratum_column, rows)
            )
        score_sketch = reference.score if reference is not None else None
        self._score: _ColumnRef | None = None
        if score_sketch is not None:
            score_strata: Sequence[NumericStratum] | None = (
                strata.score if strata is not None and self._stratum_column is not None else None
            )
            self._score = _column_ref(SCORE, len(specs), score_sketch, None, score_strata, True, rows)

        # Columns: the features in FeatureSpec order, then the score.
        self._buffer = np.full((window_size, self._n_features + 1), np.nan, dtype=np.float64)
        self._position = 0
        self._filled = 0
        self._seen = 0
        self._lock = threading.Lock()

    @property
    def events_seen(self) -> int:
        """Rows observed since the monitor was built (or reset)."""
        return self._seen

    @property
    def window_events(self) -> int:
        """Rows currently in the window."""
        return self._filled

    def reset(self) -> None:
        """Empty the window (after a model swap the old rows describe another model)."""
        with self._lock:
            self._position = self._filled = self._seen = 0

    def observe(self, matrix: FloatArray, scores: npt.ArrayLike) -> None:
        """Add scored rows (``matrix`` in FeatureSpec column order, one score per row).

        O(batch): at most two slice copies. A batch larger than the window keeps its newest rows.
        """
        rows = np.asarray(matrix, dtype=np.float64)
        score = np.asarray(scores, dtype=np.float64).reshape(-1)
        if rows.ndim != 2 or rows.shape[1] != self._n_features:
            raise ValueError(f"matrix must have {self._n_features} columns, got shape {rows.shape}")
        if len(score) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(score)} scores")
        k = len(rows)
        if k == 0:
            return
        w = self.window_size
        kept = min(k, w)
        rows, score = rows[k - kept :], score[k - kept :]
        with self._lock:
            start = self._position
            first = min(kept, w - start)
            self._buffer[start : start + first, :-1] = rows[:first]
            self._buffer[start : start + first, -1] = score[:first]
            rest = kept - first
            if rest:
                self._buffer[:rest, :-1] = rows[first:]
                self._buffer[:rest, -1] = score[first:]
            self._position = (start + kept) % w
            self._filled = min(self._filled + kept, w)
            self._seen += k

    def evaluate(self) -> DriftEvaluation:
        """Test the current window against the reference and flag drift (Benjamini-Hochberg)."""
        with self._lock:
            window = self._buffer[: self._filled].copy()
            seen = self._seen
        n_rows = len(window)
        ready = n_rows >= self.min_events and n_rows > 0
        stratum = self._strata_of(window)
        mix = (
            tuple(float(x) for x in np.bincount(stratum, minlength=self._n_strata) / max(n_rows, 1))
            if stratum is not None
            else ()
        )
        refs = [*self._columns, *([self._score] if self._score else [])]
        results = [self._column_drift(ref, window[:, ref.column], stratum) for ref in refs]
        p_values = [r.p_value if r.tested else None for r in results]
        significant = benjamini_hochberg(p_values, self.alpha) if ready else [False] * len(results)
        flags = [f and (r.psi or 0.0) >= self.min_psi for f, r in zip(significant, results, strict=True)]
        done = [_with_flag(r, f) for r, f in zip(results, flags, strict=True)]
        score = done.pop() if self._score else None
        return DriftEvaluation(
            events_seen=seen,
            window_events=n_rows,
            window_size=self.window_size,
            alpha=self.alpha,
            ready=ready,
            features=tuple(done),
            score=score,
            strata=mix,
        )

    def _strata_of(self, window: FloatArray) -> npt.NDArray[np.intp] | None:
        if self._stratum_column is None:
            return None
        clock = window[:, self._stratum_column]
        # A missing clock value (never, for a validated request field) counts in the first stratum.
        return np.searchsorted(self._stratum_edges, np.nan_to_num(clock, nan=-np.inf), side="right")

    def _column_drift(
        self, ref: _ColumnRef, values: FloatArray, stratum: npt.NDArray[np.intp] | None
    ) -> FeatureDrift:
        present_mask = ~np.isnan(values)
        present = values[present_mask]
        n = len(present)
        missing_rate = float(1.0 - n / len(values)) if len(values) else 0.0
        n_bins = len(ref.bins)
        if ref.kind == "categorical":
            counts = np.bincount(present.astype(np.intp), minlength=n_bins)[:n_bins]
        else:
            counts = np.bincount(np.searchsorted(ref.edges, present, side="right"), minlength=n_bins)
        weights = (
            np.bincount(stratum[present_mask], minlength=self._n_strata) / n
            if stratum is not None and n and ref.strata
            else None
        )
        expected = self._mixed_proportions(ref, weights)
        current = counts / n if n else np.zeros(n_bins)
        statistic_name: StatisticName = "chi2" if ref.kind == "categorical" else "ks"
        statistic = p_value = None
        tested = ref.tested
        if tested and n >= MIN_VALUES:
            if ref.kind == "categorical":
                statistic, p_value = chi2_against_reference(counts, expected, self._reference_size(ref, weights))
            else:
                sample = self._mixed_sample(ref, weights)
                if sample is not None and len(sample) >= 2:
                    result = stats.ks_2samp(round_significant(present), sample)
                    statistic, p_value = float(result.statistic), float(result.pvalue)
        if p_value is not None and math.isnan(p_value):
            statistic = p_value = None
        return FeatureDrift(
            name=ref.name,
            kind=ref.kind,
            statistic_name=statistic_name,
            statistic=statistic,
            p_value=p_value,
            psi=psi(expected, counts) if n and len(expected) == n_bins else None,
            missing_rate=missing_rate,
            reference_missing_rate=ref.missing_rate,
            n=n,
            flagged=False,
            tested=tested and p_value is not None,
            bins=ref.bins,
            reference=tuple(float(x) for x in expected),
            current=tuple(float(x) for x in current),
        )

    @staticmethod
    def _reference_size(ref: _ColumnRef, weights: FloatArray | None) -> float | None:
        """Effective size of the (mixed) reference: 1 / sum(w_s^2 / n_s) for stratum weights w_s."""
        if weights is None:
            return float(ref.n) if ref.n > 0 else None
        inverse = 0.0
        for w, part in zip(weights, ref.strata, strict=False):
            n = part.n if part is not None else ref.n
            if w > 0:
                if n <= 0:
                    return None
                inverse += w * w / n
        return 1.0 / inverse if inverse > 0 else None

    @staticmethod
    def _mixed_proportions(ref: _ColumnRef, weights: FloatArray | None) -> FloatArray:
        """Reference shares per bin mixed to the window's time-of-day weights (global if none)."""
        if weights is None:
            return ref.proportions
        mixed = np.zeros_like(ref.proportions)
        for w, part in zip(weights, ref.strata, strict=False):
            if w > 0:
                mixed += w * (part.proportions if part is not None else ref.proportions)
        return mixed

    @staticmethod
    def _mixed_sample(ref: _ColumnRef, weights: FloatArray | None) -> FloatArray | None:
        """A reference sample with the window's time-of-day mix.

        Stored samples are in random order, so a prefix is a random subsample without
        replacement: take from each stratum a prefix proportional to its weight, as long as the
        scarcest stratum allows.
        """
        if weights is None:
            return ref.sample
        parts: list[tuple[float, FloatArray]] = []
        for w, part in zip(weights, ref.strata, strict=False):
            if w <= 0:
                continue
            sample = part.sample if part is not None and part.sample is not None else ref.sample
            if sample is None or len(sample) == 0:
                return ref.sample
            parts.append((float(w), sample))
        if not parts:
            return ref.sample
        size = min(len(s) / w for w, s in parts)
        return np.concatenate([s[: round(w * size)] for w, s in parts])


def _with_flag(result: FeatureDrift, flagged: bool) -> FeatureDrift:
    return result.model_copy(update={"flagged": True}) if flagged else result
