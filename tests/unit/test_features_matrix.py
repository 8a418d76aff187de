"""The shared matrix builder: column order, categorical codes, missing values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from driftline.features import build_matrix, build_matrix_from_columns
from driftline.registry import FeatureSpec

SPECS = [
    FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
    FeatureSpec(
        name="channel", source="request", field="channel", kind="categorical", categories=["online", "pos", "atm"]
    ),
    FeatureSpec(name="customer_stats__txn_count_7d", source="feast", ref="customer_stats:txn_count_7d"),
    FeatureSpec(
        name="merchant_stats__category",
        source="feast",
        ref="merchant_stats:category",
        kind="categorical",
        categories=["grocery", "fuel", "electronics"],
    ),
]


def test_columns_follow_spec_order_not_row_order():
    rows = [
        {"merchant_stats__category": "fuel", "customer_stats__txn_count_7d": 3, "channel": "atm", "amount": 12.5},
        {"amount": 7, "channel": "online", "customer_stats__txn_count_7d": 0, "merchant_stats__category": "grocery"},
    ]
    matrix = build_matrix(SPECS, rows)
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[12.5, 2.0, 3.0, 1.0], [7.0, 0.0, 0.0, 0.0]])


def test_missing_none_nan_and_unknown_levels_become_nan():
    rows = [
        {"amount": None, "channel": "telepathy", "merchant_stats__category": None},
        {"amount": math.nan, "channel": None, "customer_stats__txn_count_7d": pd.NA, "merchant_stats__category": 3},
        {},
    ]
    matrix = build_matrix(SPECS, rows)
    assert np.isnan(matrix).all()


def test_numeric_strings_and_bools_follow_float():
    matrix = build_matrix(SPECS[:1], [{"amount": "1.5"}, {"amount": True}])
    np.testing.assert_array_equal(matrix[:, 0], [1.5, 1.0])


def test_non_numeric_value_is_refused_with_the_feature_name():
    with pytest.raises(ValueError, match="amount"):
        build_matrix(SPECS[:1], [{"amount": "lots"}])


def test_empty_batch_has_the_right_width():
    assert build_matrix(SPECS, []).shape == (0, len(SPECS))


def test_rows_and_columns_give_the_same_matrix():
    rng = np.random.default_rng(0)
    rows = [
        {
            "amount": float(rng.uniform(1, 100)),
            "channel": ["online", "pos", "atm", None][int(rng.integers(0, 4))],
            "customer_stats__txn_count_7d": None if rng.random() < 0.2 else int(rng.integers(0, 9)),
            "merchant_stats__category": ["grocery", "fuel", "electronics", "travel"][int(rng.integers(0, 4))],
        }
        for _ in range(200)
    ]
    columns = {s.name: [r[s.name] for r in rows] for s in SPECS}
    np.testing.assert_array_equal(build_matrix(SPECS, rows), build_matrix_from_columns(SPECS, columns, len(rows)))


def test_absent_column_is_all_nan_and_length_is_checked():
    matrix = build_matrix_from_columns(SPECS, {"amount": [1.0, 2.0]}, 2)
    assert np.isnan(matrix[:, 1:]).all()
    with pytest.raises(ValueError, match="amount"):
        build_matrix_from_columns(SPECS, {"amount": [1.0]}, 2)
