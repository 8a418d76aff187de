"""The MLflow model registry on a real embedded store: versions, checksums, damaged files, aliases, history.

One SQLite store serves the whole module; each test works on its own model name, so tests do not see
each other's versions or alias moves.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from driftline.errors import ChecksumMismatchError, ModelLoadError
from driftline.reference_types import DriftReference
from driftline.registry import (
    ARTIFACT_FILE,
    METADATA_FILE,
    SHA_TAG,
    EntitySpec,
    FeatureSpec,
    ModelMetadata,
    ModelRegistry,
    sha256_of,
)
from driftline.settings import ModelSettings
from tests.support import artifact_folder


def _estimator() -> DummyClassifier:
    return DummyClassifier(strategy="prior").fit(np.zeros((4, 2)), [0, 0, 0, 1])


def _metadata(name: str) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        version="0",  # MLflow assigns the version
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        feature_service="fraud_v1",
        features=[
            FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
            FeatureSpec(name="customer_stats__txn_count_7d", source="feast", ref="customer_stats:txn_count_7d"),
        ],
        entities=[EntitySpec(field="customer_id", join_key="customer_id")],
        classes=[0, 1],
        positive_class=1,
        threshold=0.5,
        training_window=(datetime(2025, 12, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)),
        metrics={"roc_auc": 0.9},
        library_versions={"scikit-learn": "1.9"},
        artifact_sha256="0" * 64,
        reference=DriftReference(version=1, n=0, features={}),
    )


def _register(
    registry: ModelRegistry, name: str, estimator: object = None, run_metrics: dict[str, float] | None = None
) -> ModelMetadata:
    """A new version of ``name`` from its own MLflow run, the way training makes one."""
    run = registry.client.create_run(registry.experiment_id(name))
    for key, value in (run_metrics or {}).items():
        registry.client.log_metric(run.info.run_id, key, value)
    saved = registry.register(_estimator() if estimator is None else estimator, _metadata(name), run.info.run_id)
    registry.client.set_terminated(run.info.run_id)
    return saved


def _unique_name() -> str:
    return f"fraud-{uuid.uuid4().hex[:8]}"


class _Trap:
    """Unpickling this makes a folder: proof that the bytes were unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (str(self.path),)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRegistry]:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the embedded store under the home
        yield ModelRegistry(ModelSettings(DRIFTLINE_HOME=str(home)))  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def released(registry: ModelRegistry) -> tuple[str, list[ModelMetadata]]:
    """A model with two versions and no alias; tests only read it."""
    name = _unique_name()
    return name, [_register(registry, name, run_metrics={"roc_auc": 0.91}), _register(registry, name)]


@pytest.fixture
def two_versions(registry: ModelRegistry) -> str:
    """A fresh model with versions 1 and 2, for tests that move its aliases."""
    name = _unique_name()
    _register(registry, name)
    _register(registry, name)
    return name


def test_the_embedded_store_lives_under_the_home(registry: ModelRegistry) -> None:
    assert registry.tracking_uri.startswith("sqlite:///") and registry.tracking_uri.endswith("/mlflow/mlflow.db")
    assert Path(registry.tracking_uri.removeprefix("sqlite:///")).is_file()
    assert registry.where() == registry.tracking_uri  # a local path has no secret to hide


def test_round_trip(registry: ModelRegistry, released: tuple[str, list[ModelMetadata]]) -> None:
    import mlflow.sklearn

    name, (saved, _) = released
    assert saved.version == "1" and saved.name == name
    folder = artifact_folder(registry, name, "1")
    assert saved.artifact_sha256 == sha256_of((folder / ARTIFACT_FILE).read_bytes())
    assert registry.client.get_model_version(name, "1").tags[SHA_TAG] == saved.artifact_sha256
    assert registry.read_metadata(name, "1") == saved

    loaded = registry.load(name, "1")
    assert loaded.metadata == saved
    assert loaded.metadata.feature_refs == ["customer_stats:txn_count_7d"]
    np.testing.assert_allclose(loaded.estimator.predict_proba(np.zeros((1, 2))), [[0.75, 0.25]])
    # The artifact is an ordinary MLflow sklearn model too.
    plain = mlflow.sklearn.load_model(registry.client.get_model_version_download_uri(name, "1"))
    np.testing.assert_allclose(plain.predict_proba(np.zeros((1, 2))), [[0.75, 0.25]])


def test_versions_are_numbered_and_listed_with_their_runs(
    registry: ModelRegistry, released: tuple[str, list[ModelMetadata]]
) -> None:
    name, saved = released
    assert [m.version for m in saved] == ["1", "2"]
    listed = registry.versions(name)
    assert [v.version for v in listed] == ["1", "2"]
    runs = [registry.client.get_model_version(name, v).run_id for v in ("1", "2")]
    assert [v.run_id for v in listed] == runs and len(set(runs)) == 2
    assert [v.metrics for v in listed] == [{"roc_auc": 0.91}, {}]  # the run's metrics
    assert [(v.model, v.feature_service, v.task, v.aliases) for v in listed] == [(name, "fraud_v1", "binary", [])] * 2
    assert listed[0].created_at <= listed[1].created_at
    assert registry.resolve(name, "2") == "2"
    lineage = registry.lineage(name, "1")
    assert runs[0] in lineage["run"] and lineage["tracking store"] == registry.where()


def test_without_a_production_alias_load_says_how_to_get_one(
    registry: ModelRegistry, released: tuple[str, list[ModelMetadata]]
) -> None:
    name, _ = released
    assert registry.production_version(name) is None
    with pytest.raises(ModelLoadError, match=f"model {name} has no production version in .*run `driftline train`"):
        registry.load(name)
    with pytest.raises(ModelLoadError, match=f"model {name} has no version 9 in"):
        registry.load(name, "9")


def test_a_tampered_artifact_is_refused_before_unpickling(registry: ModelRegistry, tmp_path: Path) -> None:
    name = _unique_name()
    saved = _register(registry, name)
    trap = tmp_path / "unpickled"
    tampered = pickle.dumps(_Trap(trap))
    (artifact_folder(registry, name, "1") / ARTIFACT_FILE).write_bytes(tampered)

    with pytest.raises(ChecksumMismatchError) as info:
        registry.load(name, "1")
    message = str(info.value)
    assert f"model {name} version 1" in message and "refusing to load it" in message
    assert sha256_of(tampered) in message and saved.artifact_sha256 in message
    assert not trap.exists()

    # With the recorded checksum forged as well, a caller's check still sees the metadata first and can
    # refuse before anything is unpickled...
    registry.client.set_model_version_tag(name, "1", SHA_TAG, sha256_of(tampered))
    seen: list[ModelMetadata] = []

    def refuse(meta: ModelMetadata) -> None:
        seen.append(meta)
        raise ModelLoadError("refused by the check")

    with pytest.raises(ModelLoadError, match="refused by the check"):
        registry.load(name, "1", check=refuse)
    assert [m.version for m in seen] == ["1"] and not trap.exists()
    # ...and without one the forged bytes are unpickled (the trap works), then refused as no model.
    with pytest.raises(ModelLoadError, match="predict_proba"):
        registry.load(name, "1")
    assert trap.is_dir()


def test_damaged_files_are_load_errors_naming_the_version(registry: ModelRegistry) -> None:
    name = _unique_name()
    _register(registry, name)
    folder = artifact_folder(registry, name, "1")
    metadata = (folder / METADATA_FILE).read_text()

    (folder / ARTIFACT_FILE).unlink()
    with pytest.raises(ModelLoadError, match=f"model {name} version 1: artifact model.pkl is missing"):
        registry.load(name, "1")

    garbage = b"not a pickle"
    (folder / ARTIFACT_FILE).write_bytes(garbage)
    registry.client.set_model_version_tag(name, "1", SHA_TAG, sha256_of(garbage))
    with pytest.raises(ModelLoadError, match=f"model {name} version 1: artifact cannot be read"):
        registry.load(name, "1")

    (folder / METADATA_FILE).write_text("{not json")
    with pytest.raises(ModelLoadError, match=f"model {name} version 1: invalid metadata"):
        registry.load(name, "1")
    (folder / METADATA_FILE).write_text(metadata.replace('"threshold": 0.5', '"threshold": null'))
    with pytest.raises(ModelLoadError, match=r"(?s)invalid metadata.*a binary classifier needs"):
        registry.read_metadata(name, "1")
    (folder / METADATA_FILE).unlink()
    with pytest.raises(ModelLoadError, match=f"model {name} version 1: no metadata.json"):
        registry.load(name, "1")


def test_an_object_without_predict_proba_is_refused(registry: ModelRegistry) -> None:
    name = _unique_name()
    _register(registry, name, estimator={"not": "a model"})
    with pytest.raises(ModelLoadError, match=f"model {name} version 1: a binary model needs predict_proba"):
        registry.load(name, "1")


def test_alias_moves_are_recorded_append_only_with_who_and_why(
    registry: ModelRegistry, two_versions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = two_versions
    monkeypatch.setenv("DRIFTLINE_ACTOR", "alice")
    first = registry.set_alias(name, "production", "1", "first model")
    monkeypatch.setenv("DRIFTLINE_ACTOR", "bob")
    registry.set_alias(name, "canary", "2", "try 2 on a share of traffic")
    registry.set_alias(name, "production", "2", "the canary held up")
    assert registry.aliases(name) == {"production": "2", "canary": "2"}
    before = registry.history(name)
    assert registry.remove_alias(name, "canary", "canary done") is not None

    history = registry.history(name)
    assert history[:3] == before and history[0] == first  # earlier moves are never rewritten
    assert [(m.sequence, m.alias, m.from_version, m.to_version, m.by, m.reason) for m in history] == [
        (1, "production", None, "1", "alice", "first model"),
        (2, "canary", None, "2", "bob", "try 2 on a share of traffic"),
        (3, "production", "1", "2", "bob", "the canary held up"),
        (4, "canary", "2", None, "bob", "canary done"),
    ]
    assert all(m.model == name for m in history)
    assert [m.at for m in history] == sorted(m.at for m in history)
    assert registry.aliases(name) == {"production": "2"} and registry.production_version(name) == "2"
    assert [v.aliases for v in registry.versions(name)] == [[], ["production"]]
    assert registry.load(name).metadata.version == "2"

    # Removing an alias that is not set, or a refused move, records nothing.
    assert registry.remove_alias(name, "canary", "again") is None
    with pytest.raises(ModelLoadError, match="alias 'staging' is not one of production, canary, shadow"):
        registry.set_alias(name, "staging", "1", "no such alias")
    with pytest.raises(ModelLoadError, match=f"model {name} has no version 7"):
        registry.set_alias(name, "production", "7", "no such version")
    assert registry.history(name) == history


def test_rollback_goes_back_to_the_previous_version(registry: ModelRegistry, two_versions: str) -> None:
    name = two_versions
    with pytest.raises(ModelLoadError, match=f"model {name}: production has no earlier version to roll back to"):
        registry.rollback(name, "nothing served yet")
    registry.set_alias(name, "production", "1", "first model")
    with pytest.raises(ModelLoadError, match=f"model {name}: production has no earlier version to roll back to"):
        registry.rollback(name, "only one version served so far")
    registry.set_alias(name, "production", "2", "retrained")

    move = registry.rollback(name, "2 misbehaves")
    assert (move.alias, move.from_version, move.to_version, move.reason) == ("production", "2", "1", "2 misbehaves")
    assert registry.production_version(name) == "1" and registry.history(name)[-1] == move
    # A rollback is a move too: rolling back again undoes it.
    assert registry.rollback(name, "false alarm").to_version == "2"
    # Each alias has its own history.
    with pytest.raises(ModelLoadError, match=f"model {name}: canary has no earlier version to roll back to"):
        registry.rollback(name, "never set", alias="canary")


def test_an_unknown_model_has_no_aliases_versions_or_history(registry: ModelRegistry) -> None:
    name = _unique_name()
    assert registry.aliases(name) == {}
    assert registry.versions(name) == [] and registry.history(name) == []
    assert registry.production_version(name) is None
    with pytest.raises(ModelLoadError, match=f"model {name} has no production version"):
        registry.load(name)
