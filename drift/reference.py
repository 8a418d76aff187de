"""Reference sketches of the model's inputs and score, kept in ModelMetadata for drift monitoring.

A numeric sketch holds up to 9 decile cut points (``edges``: observed values, deduplicated), which define
``len(edges) + 1`` bins: bin 0 is ``x < edges[0]``, bin i is ``edges[i-1] <= x < edges[i]``, the
last bin ``x >= edges[-1]`` (the same as ``numpy.searchsorted(edges, x, side="right")``).
``proportions`` are shares of the non-missing values per bin; ``missing_rate`` is the NaN share.
A categorical sketch holds the share of each level among non-missing values, and the missing rate.

Version 2 adds, for the KS test of ``drift.monitor``:

- ``sample`` on each numeric sketch (and the score's): up to ``SAMPLE_SIZE`` non-missing values
  drawn without replacement with a fixed seed, in random order (so any prefix is itself a random
  subsample), rounded to ``SAMPLE_DIGITS`` significant digits to keep the metadata small;
- ``strata`` (when :func:`build_reference` is given ``stratify_by``): the same sketches per
  block of that feature's values (blocks cut at ``stratum_edges``, as numeric bins are cut at
  ``edges``; column bins are the global ``edges``). With a clock feature, e.g. hour_of_day cut
  at 6, 12 and 18, the monitor compares a window of night traffic with the night part of the
  reference instead of a day-dominated whole. Each stratum sketch has ``n`` (non-missing
  values), ``proportions`` or ``levels``, ``missing_rate`` and, numeric, a ``sample`` of up to
  ``STRATUM_SAMPLE_SIZE`` values.

Readers treat a sketch without ``sample`` (version 1) as PSI-only, and a reference without
``strata`` as unstratified. The records themselves (``DriftReference`` and its sketches) are typed
in ``driftline.reference_types``, so the registry validates them without importing ``drift``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from drift.monitor import SAMPLE_DIGITS, round_significant
from driftline.reference_types import (
    CategoricalSketch,
    CategoricalStratum,
    ColumnSketch,
    DriftReference,
    NumericSketch,
    NumericStratum,
    Strata,
    StratumSketch,
)
from driftline.registry import FeatureSpec

SKETCH_VERSION = 2
_DECILES = np.linspace(0.1, 0.9, 9)
#: Reference values kept per numeric sketch for the KS test (n_eff of a KS test against a
#: window of 2,000 is ~670 with 1,000 of them: enough for shifts that matter, small as JSON).
SAMPLE_SIZE = 1_000
#: Values kept per numeric sketch per stratum (the metadata's largest part).
STRATUM_SAMPLE_SIZE = 250


def bin_index(edges: Sequence[float], values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """The bin of each value for a numeric sketch's ``edges`` (NaN values must be removed first)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")


def reference_sample(present: npt.NDArray[np.float64], size: int, seed: int) -> list[float]:
    """Up to ``size`` of the values, drawn without replacement, in random order, rounded."""
    order = np.random.default_rng(seed).permutation(len(present))[:size]
    return [float(v) for v in round_significant(present[order], SAMPLE_DIGITS)]


def numeric_sketch(values: npt.NDArray[np.float64], seed: int = 0) -> NumericSketch:
    """Decile cut points, the share of values per bin, the missing rate and a reference sample."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    missing_rate = float(1.0 - len(present) / len(values)) if len(values) else 0.0
    if len(present) == 0:
        return NumericSketch(edges=[], proportions=[], missing_rate=missing_rate, sample=[])
    # "higher" keeps edges on observed values, so a discrete feature's levels get their own bins.
    edges = np.unique(np.quantile(present, _DECILES, method="higher"))
    counts = np.bincount(bin_index(edges.tolist(), present), minlength=len(edges) + 1)
    return NumericSketch(
        edges=[float(e) for e in edges],
        proportions=[float(c) for c in counts / len(present)],
        missing_rate=missing_rate,
        sample=reference_sample(present, SAMPLE_SIZE, seed),
    )


def _numeric_stratum(values: npt.NDArray[np.float64], edges: Sequence[float], seed: int) -> NumericStratum:
    present = values[~np.isnan(values)]
    counts = np.bincount(bin_index(edges, present), minlength=len(edges) + 1) if len(edges) else np.zeros(0)
    return NumericStratum(
        n=len(present),
        proportions=[float(c) for c in counts / max(len(present), 1)],
        missing_rate=float(1.0 - len(present) / len(values)) if len(values) else 0.0,
        sample=reference_sample(present, STRATUM_SAMPLE_SIZE, seed),
    )


def categorical_sketch(codes: npt.NDArray[np.float64], categories: Sequence[str]) -> CategoricalSketch:
    """Share of each level (codes are indices in ``categories``) and the missing rate."""
    codes = np.asarray(codes, dtype=np.float64)
    present = codes[~np.isnan(codes)].astype(np.int64)
    missing_rate = float(1.0 - len(present) / len(codes)) if len(codes) else 0.0
    counts = np.bincount(present, minlength=len(categories))[: len(categories)]
    total = max(len(present), 1)
    return CategoricalSketch(
        levels={level: float(counts[i] / total) for i, level in enumerate(categories)},
        missing_rate=missing_rate,
    )


def _strata(
    specs: Sequence[FeatureSpec],
    matrix: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    features: dict[str, ColumnSketch],
    score_sketch: NumericSketch,
    seed: int,
    stratify_by: str,
    stratum_edges: Sequence[float],
) -> Strata:
    names = [s.name for s in specs]
    clock = matrix[:, names.index(stratify_by)]
    stratum = np.searchsorted(np.asarray(stratum_edges), np.nan_to_num(clock, nan=-np.inf), side="right")
    n_strata = len(stratum_edges) + 1
    by_feature: dict[str, list[StratumSketch]] = {}
    for j, spec in enumerate(specs):
        parts: list[StratumSketch] = []
        for k in range(n_strata):
            column = matrix[stratum == k, j]
            sketch = features[spec.name]
            if isinstance(sketch, CategoricalSketch):
                levels = categorical_sketch(column, spec.categories or [])
                parts.append(
                    CategoricalStratum(
                        n=int(np.sum(~np.isnan(column))), levels=levels.levels, missing_rate=levels.missing_rate
                    )
                )
            else:
                parts.append(_numeric_stratum(column, sketch.edges, seed + 1 + j * n_strata + k))
        by_feature[spec.name] = parts
    score_parts = [
        _numeric_stratum(scores[stratum == k], score_sketch.edges, seed + 1 + len(specs) * n_strata + k)
        for k in range(n_strata)
    ]
    return Strata(
        feature=stratify_by,
        edges=[float(e) for e in stratum_edges],
        share=[float(np.mean(stratum == k)) for k in range(n_strata)],
        features=by_feature,
        score=score_parts,
    )


def build_reference(
    specs: Sequence[FeatureSpec],
    matrix: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    seed: int = 0,
    *,
    stratify_by: str | None = None,
    stratum_edges: Sequence[float] = (),
) -> DriftReference:
    """Sketch every column of the encoded ``matrix`` (FeatureSpec order) and the scores.

    ``seed`` fixes the reference samples, so retraining on the same data gives the same metadata.
    ``stratify_by`` names a numeric feature whose values, cut at ``stratum_edges`` (increasing),
    split the rows into ``len(stratum_edges) + 1`` strata sketched apart; None: no strata.
    """
    if matrix.shape[1] != len(specs):
        raise ValueError(f"matrix has {matrix.shape[1]} columns for {len(specs)} features")
    if stratify_by is not None:
        _check_strata(specs, stratify_by, stratum_edges)
    scores = np.asarray(scores, dtype=np.float64)
    features: dict[str, ColumnSketch] = {}
    for j, spec in enumerate(specs):
        if spec.kind == "categorical":
            features[spec.name] = categorical_sketch(matrix[:, j], spec.categories or [])
        else:
            features[spec.name] = numeric_sketch(matrix[:, j], seed=seed + j)
    score = numeric_sketch(scores, seed=seed + len(specs))
    strata = (
        _strata(specs, matrix, scores, features, score, seed, stratify_by, stratum_edges)
        if stratify_by is not None
        else None
    )
    return DriftReference(version=SKETCH_VERSION, n=int(matrix.shape[0]), features=features, score=score, strata=strata)


def _check_strata(specs: Sequence[FeatureSpec], stratify_by: str, stratum_edges: Sequence[float]) -> None:
    spec = next((s for s in specs if s.name == stratify_by), None)
    if spec is None:
        raise ValueError(f"stratify_by {stratify_by!r} is not one of the model's features")
    if spec.kind != "numeric":
        raise ValueError(f"stratify_by {stratify_by!r} must be a numeric feature, not {spec.kind}")
    if not stratum_edges:
        raise ValueError(f"stratify_by {stratify_by!r} needs stratum_edges: the values where one stratum ends")
    if any(b <= a for a, b in itertools.pairwise(stratum_edges)):
        raise ValueError(f"stratum_edges must increase, got {list(stratum_edges)}")
