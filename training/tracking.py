"""Every training and registration is an MLflow run: parameters, metrics, the data it saw, plots, the version.

The run records what a person needs to trust a version: the estimator's parameters, held-out metrics,
the training set as an MLflow dataset input (its fingerprint and size), the feature service, the code
revision, the drift reference, and plots of the scores. The version it registers is tagged with what
serving needs (see ``driftline.registry``).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.registry import ModelMetadata, ModelRegistry

logger = logging.getLogger(__name__)

#: Parameter values longer than this are cut (MLflow refuses values over 6,000 characters).
PARAM_MAX_CHARS = 500


def code_revision() -> str | None:
    """The git commit of the working tree this runs from, when there is one."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
            timeout=5, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def estimator_params(estimator: Any) -> dict[str, str]:
    """The estimator's own parameters (and its class), as MLflow parameters."""
    params = {"estimator": f"{type(estimator).__module__}.{type(estimator).__qualname__}"}
    get_params = getattr(estimator, "get_params", None)
    if callable(get_params):
        for key, value in get_params(deep=False).items():
            if isinstance(value, str | int | float | bool) or value is None:
                params[f"estimator.{key}"] = str(value)[:PARAM_MAX_CHARS]
    return params


@dataclass(frozen=True)
class RunRecord:
    """The MLflow run a training or registration made, and the version it registered."""

    run_id: str
    experiment_id: str
    tracking_uri: str


class TrackedRun:
    """One open MLflow run, logged through the registry's client (no global MLflow state)."""

    def __init__(self, registry: ModelRegistry, run_id: str, experiment_id: str) -> None:
        self._registry = registry
        self._client = registry.client
        self.record = RunRecord(run_id, experiment_id, registry.where())

    def params(self, params: Mapping[str, object]) -> None:
        """Log parameters (values as text, cut to ``PARAM_MAX_CHARS``)."""
        from mlflow.entities import Param

        batch = [Param(k, str(v)[:PARAM_MAX_CHARS]) for k, v in params.items() if v is not None]
        self._client.log_batch(self.record.run_id, params=batch)

    def metrics(self, metrics: Mapping[str, float]) -> None:
        """Log metrics (finite ones; MLflow refuses NaN in some stores)."""
        from mlflow.entities import Metric

        now = pd.Timestamp.now(tz="UTC").value // 1_000_000
        batch = [Metric(k, float(v), now, 0) for k, v in metrics.items() if np.isfinite(v)]
        self._client.log_batch(self.record.run_id, metrics=batch)

    def dataset(self, frame: pd.DataFrame, name: str, source: str, context: str, targets: str | None) -> str:
        """Log ``frame`` as a dataset input (MLflow keeps its digest, schema and size); return the digest."""
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.entities import DatasetInput, InputTag

        dataset = from_pandas(frame, source=source, name=name, targets=targets)
        entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
        self._client.log_inputs(self.record.run_id, datasets=[entity])
        return str(dataset.digest)

    def figure(self, figure: Any, path: str) -> None:
        """Log a matplotlib figure as a PNG artifact."""
        import matplotlib.pyplot as plt

        self._client.log_figure(self.record.run_id, figure, path)
        plt.close(figure)

    def json(self, data: dict[str, Any], path: str) -> None:
        """Log a JSON artifact."""
        self._client.log_dict(self.record.run_id, data, path)

    def register(self, estimator: object, metadata: ModelMetadata) -> ModelMetadata:
        """Make ``estimator`` a new version of the model from this run."""
        return self._registry.register(estimator, metadata, self.record.run_id)


@contextmanager
def tracked_run(registry: ModelRegistry, model: str, run_name: str, tags: Mapping[str, str]) -> Iterator[TrackedRun]:
    """An MLflow run in the model's experiment; FAILED when the block raises, FINISHED otherwise."""
    experiment_id = registry.experiment_id(model)
    all_tags = {"driftline.model": model, **tags}
    revision = code_revision()
    if revision:
        all_tags["mlflow.source.git.commit"] = revision
    run = registry.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
    tracked = TrackedRun(registry, run.info.run_id, experiment_id)
    try:
        yield tracked
    except BaseException:
        registry.client.set_terminated(run.info.run_id, status="FAILED")
        raise
    registry.client.set_terminated(run.info.run_id, status="FINISHED")


def score_figures(
    task: str, y_true: npt.ArrayLike | None, scores: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """Plots of a version's scores on its evaluation rows: path -> matplotlib figure.

    Binary classifiers: ROC curve, calibration curve, score histogram by class. Other tasks: the score
    histogram (and predicted vs actual for regressors).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=(6, 4))
    if task == "binary" and y_true is not None:
        y = np.asarray(y_true, dtype=bool)
        ax.hist([scores[~y], scores[y]], bins=40, label=["negative", "positive"], log=True, stacked=False)
        ax.legend()
    else:
        ax.hist(scores, bins=40)
    ax.set_xlabel("score")
    ax.set_ylabel("rows")
    ax.set_title("score histogram")
    figures["plots/score_histogram.png"] = fig
    if task == "binary" and y_true is not None:
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import roc_curve

        y = np.asarray(y_true, dtype=np.int64)
        fpr, tpr, _ = roc_curve(y, scores)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC")
        figures["plots/roc.png"] = fig
        observed, predicted = calibration_curve(y, scores, n_bins=10, strategy="quantile")
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(predicted, observed, marker="o")
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed positive rate")
        ax.set_title("calibration (deciles of score)")
        figures["plots/calibration.png"] = fig
    elif task == "regression" and y_true is not None:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(np.asarray(y_true, dtype=np.float64), scores, s=4, alpha=0.4)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title("predicted vs actual")
        figures["plots/predicted_vs_actual.png"] = fig
    return figures


def log_version(
    run: TrackedRun,
    estimator: object,
    metadata: ModelMetadata,
    evaluation: pd.DataFrame,
    label: str | None,
    scores: npt.NDArray[np.float64],
) -> ModelMetadata:
    """Log what every version's run carries (metrics, drift reference, plots), then register the version."""
    run.metrics(metadata.metrics)
    if metadata.reference is not None:
        run.json(metadata.reference.model_dump(mode="json"), "drift_reference.json")
    y_true = evaluation[label].to_numpy() if label is not None and label in evaluation else None
    if metadata.task == "binary" and y_true is not None:
        y_true = np.asarray([str(v) == str(metadata.positive_class) for v in y_true])
    try:
        for path, figure in score_figures(metadata.task, y_true, scores).items():
            run.figure(figure, path)
    except ValueError as exc:  # e.g. one class only in a small sample: plots are a nicety
        logger.warning("plots of run %s skipped: %s", run.record.run_id, exc)
    return run.register(estimator, metadata)
