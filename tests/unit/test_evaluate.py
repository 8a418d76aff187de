"""Held-out metrics and reference sketches."""

from __future__ import annotations

import numpy as np
import pytest

from drift.reference import bin_index, build_reference, categorical_sketch, numeric_sketch
from driftline.registry import FeatureSpec
from training.evaluate import evaluate


def test_perfect_ranking():
    metrics = evaluate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], threshold=0.5)
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert metrics["brier"] == pytest.approx((0.01 + 0.04 + 0.04 + 0.01) / 4)
    assert metrics["positive_rate"] == 0.5
    assert metrics["flagged_rate"] == 0.5
    assert metrics["precision_at_threshold"] == 1.0
    assert metrics["recall_at_threshold"] == 1.0
    assert metrics["n"] == 4


def test_uninformative_scores_rank_at_chance():
    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.1
    metrics = evaluate(y, rng.random(20_000))
    assert metrics["roc_auc"] == pytest.approx(0.5, abs=0.02)
    assert metrics["pr_auc"] == pytest.approx(0.1, abs=0.02)


def test_nothing_flagged_has_zero_precision():
    assert evaluate([0, 1], [0.1, 0.2], threshold=0.9)["precision_at_threshold"] == 0.0


def test_one_class_and_shape_mismatch_are_refused():
    with pytest.raises(ValueError, match="both classes"):
        evaluate([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="equal length"):
        evaluate([0, 1], [0.1, 0.2, 0.3])


def test_numeric_sketch_deciles_and_missing_rate():
    values = np.concatenate([np.arange(1000, dtype=float), [np.nan] * 250])
    sketch = numeric_sketch(values)
    assert sketch.kind == "numeric"
    assert len(sketch.edges) == 9
    assert sketch.missing_rate == pytest.approx(0.2)
    assert sum(sketch.proportions) == pytest.approx(1.0)
    assert sketch.proportions == pytest.approx([0.1] * 10, abs=0.002)


def test_numeric_sketch_of_a_discrete_feature_dedups_edges():
    sketch = numeric_sketch(np.array([0.0] * 90 + [1.0] * 10))
    assert sketch.edges == [0.0, 1.0]
    assert sketch.proportions == pytest.approx([0.0, 0.9, 0.1])
    counts = np.bincount(bin_index(sketch.edges, np.array([0.0] * 90 + [1.0] * 10)))
    assert list(counts / 100) == pytest.approx(sketch.proportions[: len(counts)])


def test_categorical_sketch():
    sketch = categorical_sketch(np.array([0, 0, 1, np.nan]), ["online", "pos", "atm"])
    assert sketch.model_dump() == {
        "kind": "categorical",
        "levels": {"online": pytest.approx(2 / 3), "pos": pytest.approx(1 / 3), "atm": 0.0},
        "missing_rate": 0.25,
    }


def test_build_reference_covers_every_feature_and_the_score():
    specs = [
        FeatureSpec(name="amount", source="request", field="amount"),
        FeatureSpec(name="channel", source="request", field="channel", kind="categorical", categories=["a", "b"]),
    ]
    matrix = np.column_stack([np.linspace(1, 100, 50), np.tile([0.0, 1.0], 25)])
    reference = build_reference(specs, matrix, np.linspace(0, 1, 50))
    assert set(reference.features) == {"amount", "channel"}
    assert reference.n == 50
    assert reference.score.kind == "numeric"
    with pytest.raises(ValueError, match="columns"):
        build_reference(specs[:1], matrix, np.zeros(50))
