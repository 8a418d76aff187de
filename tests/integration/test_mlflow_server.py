"""The registry on a real MLflow tracking server, started the way docker-compose.yml starts it.

With ``MLFLOW_TRACKING_URI=http://...`` versions and aliases live in the server's database and the
artifacts go through the server (``--serve-artifacts``): nothing is kept next to the client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from driftline.errors import ChecksumMismatchError
from driftline.registry import ARTIFACT_FILE, EntitySpec, FeatureSpec, ModelMetadata, ModelRegistry
from driftline.settings import ModelSettings
from driftline_tools.stack import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts: Path


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
    ]
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        # Its own process group: the server starts workers of its own, stopped with it.
        process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"mlflow server exited:\n{log_path.read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"mlflow server did not answer:\n{log_path.read_text()[-3000:]}"
                time.sleep(0.5)
        yield MlflowServer(f"http://127.0.0.1:{port}", folder / "artifacts")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _metadata() -> ModelMetadata:
    return ModelMetadata(
        name="fraud", version="0", created_at=datetime(2026, 1, 1, tzinfo=UTC), feature_service="fraud_v1",
        features=[
            FeatureSpec(name="amount", source="request", field="amount"),
            FeatureSpec(name="customer_stats__txn_count_7d", source="feast", ref="customer_stats:txn_count_7d"),
        ],
        entities=[EntitySpec(field="customer_id", join_key="customer_id")], classes=[0, 1], positive_class=1,
        threshold=0.5, training_window=(datetime(2025, 12, 1, tzinfo=UTC), datetime(2025, 12, 31, tzinfo=UTC)),
        metrics={}, library_versions={}, artifact_sha256="0" * 64,
    )


def test_versions_aliases_and_artifacts_live_on_the_server(
    mlflow_server: MlflowServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server is named by the settings alone, not by MLflow's process-wide tracking URI.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    registry = ModelRegistry(ModelSettings(DRIFTLINE_HOME=str(home), MLFLOW_TRACKING_URI=mlflow_server.url))  # type: ignore[call-arg]
    assert registry.where() == mlflow_server.url

    estimator = DummyClassifier(strategy="prior").fit(np.zeros((4, 2)), [0, 0, 0, 1])
    run = registry.client.create_run(registry.experiment_id("fraud"))
    saved = registry.register(estimator, _metadata(), run.info.run_id)
    registry.client.set_terminated(run.info.run_id)
    registry.set_alias("fraud", "production", saved.version, "first model")
    assert registry.client.get_model_version_download_uri("fraud", saved.version).startswith("mlflow-artifacts:/")

    loaded = registry.load("fraud")
    assert loaded.metadata == saved
    np.testing.assert_allclose(loaded.estimator.predict_proba(np.zeros((1, 2))), [[0.75, 0.25]])
    assert [(m.alias, m.to_version) for m in registry.history("fraud")] == [("production", saved.version)]
    assert not home.exists()  # nothing kept next to the client

    # The checksum is checked on what the server hands out.
    (artifact,) = mlflow_server.artifacts.rglob(ARTIFACT_FILE)
    artifact.write_bytes(artifact.read_bytes()[:-10])
    with pytest.raises(ChecksumMismatchError, match="refusing to load it"):
        registry.load("fraud")
