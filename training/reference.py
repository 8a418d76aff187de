"""Reference sketches of the model's inputs and score, kept in ModelMetadata for drift monitoring.

A numeric sketch holds up to 9 decile cut points (``edges``: observed values, deduplicated), which define
``len(edges) + 1`` bins: bin 0 is ``x < edges[0]``, bin i is ``edges[i-1] <= x < edges[i]``, the
last bin ``x >= edges[-1]`` (the same as ``numpy.searchsorted(edges, x, side="right")``).
``proportions`` are shares of the non-missing values per bin; ``missing_rate`` is the NaN share.
A categorical sketch holds the share of each level among non-missing values, and the missing rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.registry import FeatureSpec

SKETCH_VERSION = 1
_DECILES = np.linspace(0.1, 0.9, 9)


def bin_index(edges: Sequence[float], values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """The bin of each value for a numeric sketch's ``edges`` (NaN values must be removed first)."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")


def numeric_sketch(values: npt.NDArray[np.float64]) -> dict[str, Any]:
    """Decile cut points, the share of values per bin, and the missing rate."""
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    missing_rate = float(1.0 - len(present) / len(values)) if len(values) else 0.0
    if len(present) == 0:
        return {"kind": "numeric", "edges": [], "proportions": [], "missing_rate": missing_rate}
    # "higher" keeps edges on observed values, so a discrete feature's levels get their own bins.
    edges = np.unique(np.quantile(present, _DECILES, method="higher"))
    counts = np.bincount(bin_index(edges.tolist(), present), minlength=len(edges) + 1)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "proportions": [float(c) for c in counts / len(present)],
        "missing_rate": missing_rate,
    }


def categorical_sketch(codes: npt.NDArray[np.float64], categories: Sequence[str]) -> dict[str, Any]:
    """Share of each level (codes are indices in ``categories``) and the missing rate."""
    codes = np.asarray(codes, dtype=np.float64)
    present = codes[~np.isnan(codes)].astype(np.int64)
    missing_rate = float(1.0 - len(present) / len(codes)) if len(codes) else 0.0
    counts = np.bincount(present, minlength=len(categories))[: len(categories)]
    total = max(len(present), 1)
    return {
        "kind": "categorical",
        "levels": {level: float(counts[i] / total) for i, level in enumerate(categories)},
        "missing_rate": missing_rate,
    }


def build_reference(
    specs: Sequence[FeatureSpec], matrix: npt.NDArray[np.float64], scores: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """Sketch every column of the encoded ``matrix`` (FeatureSpec order) and the scores."""
    if matrix.shape[1] != len(specs):
        raise ValueError(f"matrix has {matrix.shape[1]} columns for {len(specs)} features")
    features: dict[str, Any] = {}
    for j, spec in enumerate(specs):
        if spec.kind == "categorical":
            features[spec.name] = categorical_sketch(matrix[:, j], spec.categories or [])
        else:
            features[spec.name] = numeric_sketch(matrix[:, j])
    return {
        "version": SKETCH_VERSION,
        "n": int(matrix.shape[0]),
        "features": features,
        "score": numeric_sketch(np.asarray(scores, dtype=np.float64)),
    }
