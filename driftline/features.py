"""The model's input matrix, built the same way in training and in serving.

Training and the stream worker both call :func:`build_matrix` (or :func:`build_matrix_from_columns`),
so a feature is encoded identically on both sides: that is the training/serving parity guarantee.
Columns follow the ``FeatureSpec`` order; numeric values become floats, categorical values become
their index in ``FeatureSpec.categories``; missing, ``None``, NaN and unknown levels become NaN,
which scikit-learn's histogram gradient boosting treats as "missing".
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from driftline.registry import FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class OnlineRows:
    """What the online store returned for a list of entity rows."""

    values: list[dict[str, object]]  # per row: FeatureSpec.name -> value (None when missing)
    # per row: feature view -> epoch seconds its values were computed for (absent when missing)
    view_timestamps: list[dict[str, float]] = field(default_factory=list)


#: Reads the online store for entity rows (join key or request field -> value); raises FeatureStoreError.
FetchFeatures = Callable[[list[dict[str, object]]], Awaitable[OnlineRows]]


def _numeric_column(spec: FeatureSpec, values: Sequence[object]) -> Matrix:
    try:
        # Fast path: numpy turns None into NaN when asked for float64.
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        pass
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        out[i] = _to_float(spec, value)
    return out


def _to_float(spec: FeatureSpec, value: object) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        # pandas.NA and friends refuse float(); anything that claims to be missing is NaN.
        if type(value).__name__ in {"NAType", "NaTType"} or value != value:
            return math.nan
        raise ValueError(f"feature {spec.name}: value {value!r} is not numeric") from None


def _categorical_column(spec: FeatureSpec, values: Sequence[object]) -> Matrix:
    codes = {level: float(i) for i, level in enumerate(spec.categories or [])}
    nan = math.nan
    return np.fromiter(
        (codes.get(v, nan) if isinstance(v, str) else nan for v in values),
        dtype=np.float64,
        count=len(values),
    )


def encode_column(spec: FeatureSpec, values: Sequence[object]) -> Matrix:
    """Encode one feature's raw values as a float column (categorical -> code, missing -> NaN)."""
    if spec.kind == "categorical":
        return _categorical_column(spec, values)
    return _numeric_column(spec, values)


def build_matrix_from_columns(
    specs: Sequence[FeatureSpec], columns: Mapping[str, Sequence[object]], n_rows: int
) -> Matrix:
    """Build the ``n_rows x len(specs)`` matrix from raw columns keyed by ``FeatureSpec.name``.

    A column that is absent is all NaN (the feature is missing for every row).
    """
    matrix = np.full((n_rows, len(specs)), np.nan, dtype=np.float64)
    for j, spec in enumerate(specs):
        values = columns.get(spec.name)
        if values is None:
            continue
        if len(values) != n_rows:
            raise ValueError(f"feature {spec.name}: {len(values)} values for {n_rows} rows")
        matrix[:, j] = encode_column(spec, values)
    return matrix


def build_matrix(specs: Sequence[FeatureSpec], rows: Sequence[Mapping[str, object]]) -> Matrix:
    """Build the model input from rows mapping ``FeatureSpec.name`` to a raw value."""
    columns = {spec.name: [row.get(spec.name) for row in rows] for spec in specs}
    return build_matrix_from_columns(specs, columns, len(rows))


def build_frame(specs: Sequence[FeatureSpec], rows: Sequence[Mapping[str, object]]) -> pd.DataFrame:
    """The model input for an estimator fitted on a DataFrame (``input_format="frame"``).

    Numeric columns are floats (missing -> NaN) exactly as in :func:`build_matrix`; categorical
    columns keep their raw strings (missing -> None) for the Pipeline's own encoder.
    """
    import pandas as pd

    columns: dict[str, object] = {}
    for spec in specs:
        values = [row.get(spec.name) for row in rows]
        if spec.kind == "categorical":
            columns[spec.name] = pd.Series([v if isinstance(v, str) else None for v in values], dtype=object)
        else:
            columns[spec.name] = _numeric_column(spec, values)
    return pd.DataFrame(columns, columns=[s.name for s in specs])
