"""The model registry: round trip, checksums, corrupted files, the production pointer."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from driftline.errors import ChecksumMismatchError, ModelLoadError
from driftline.reference_types import DriftReference
from driftline.registry import (
    ARTIFACT_FILE,
    METADATA_FILE,
    PRODUCTION_POINTER,
    FeatureSpec,
    ModelMetadata,
    ModelRegistry,
    sha256_of,
)


def _estimator() -> DummyClassifier:
    return DummyClassifier(strategy="prior").fit(np.zeros((4, 2)), [0, 0, 0, 1])


def _metadata(version: str = "20260101T000000Z") -> ModelMetadata:
    return ModelMetadata(
        name="fraud",
        version=version,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        feature_service="fraud_v1",
        features=[
            FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
            FeatureSpec(name="customer_stats__txn_count_7d", source="feast", ref="customer_stats:txn_count_7d"),
        ],
        entity_fields={"customer_id": "customer_id"},
        threshold=0.5,
        training_window=(datetime(2025, 12, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)),
        metrics={"roc_auc": 0.9},
        library_versions={"scikit-learn": "1.9"},
        artifact_sha256="0" * 64,
        reference=DriftReference(version=1, n=0, features={}),
    )


@pytest.fixture
def registry(tmp_path):
    return ModelRegistry(tmp_path / "models")


def test_round_trip(registry):
    saved = registry.save(_estimator(), _metadata())
    assert saved.artifact_sha256 != "0" * 64
    registry.promote("fraud", saved.version)
    loaded = registry.load("fraud")
    assert loaded.metadata == saved
    assert loaded.metadata.feature_refs == ["customer_stats:txn_count_7d"]
    np.testing.assert_allclose(loaded.estimator.predict_proba(np.zeros((1, 1))), [[0.75, 0.25]])
    assert registry.production_version("fraud") == saved.version


def test_versions_sort_and_duplicates_are_refused(registry):
    registry.save(_estimator(), _metadata("20260102T000000Z"))
    registry.save(_estimator(), _metadata("20260101T000000Z"))
    assert registry.versions("fraud") == ["20260101T000000Z", "20260102T000000Z"]
    with pytest.raises(ModelLoadError, match="already exists"):
        registry.save(_estimator(), _metadata("20260101T000000Z"))


def test_checksum_mismatch_is_refused_naming_both_hashes(registry):
    saved = registry.save(_estimator(), _metadata())
    artifact = registry.root / "fraud" / saved.version / ARTIFACT_FILE
    tampered = artifact.read_bytes() + b"\x00"
    artifact.write_bytes(tampered)
    with pytest.raises(ChecksumMismatchError) as info:
        registry.load("fraud", saved.version)
    message = str(info.value)
    assert sha256_of(tampered) in message
    assert saved.artifact_sha256 in message


def test_corrupted_artifact_with_matching_checksum_is_a_load_error(registry):
    saved = registry.save(_estimator(), _metadata())
    folder = registry.root / "fraud" / saved.version
    garbage = b"not a pickle"
    (folder / ARTIFACT_FILE).write_bytes(garbage)
    meta = json.loads((folder / METADATA_FILE).read_text())
    meta["artifact_sha256"] = sha256_of(garbage)
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="cannot be read"):
        registry.load("fraud", saved.version)


def test_corrupted_metadata_is_a_load_error(registry):
    saved = registry.save(_estimator(), _metadata())
    (registry.root / "fraud" / saved.version / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match="invalid metadata"):
        registry.load("fraud", saved.version)


def test_missing_artifact_is_a_load_error(registry):
    saved = registry.save(_estimator(), _metadata())
    (registry.root / "fraud" / saved.version / ARTIFACT_FILE).unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        registry.load("fraud", saved.version)


def test_missing_production_pointer_is_a_load_error(registry):
    registry.save(_estimator(), _metadata())
    assert registry.production_version("fraud") is None
    with pytest.raises(ModelLoadError, match="no production version"):
        registry.load("fraud")
    assert not (registry.root / "fraud" / PRODUCTION_POINTER).exists()


def test_promote_unknown_version_is_refused(registry):
    with pytest.raises(ModelLoadError, match="no version"):
        registry.promote("fraud", "20990101T000000Z")


def test_estimator_without_predict_proba_is_refused(registry):
    saved = registry.save({"not": "a model"}, _metadata())
    with pytest.raises(ModelLoadError, match="predict_proba"):
        registry.load("fraud", saved.version)
