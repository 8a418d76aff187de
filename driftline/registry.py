"""The model registry: what a model version is (metadata, checks) and where it is kept (MLflow).

A version is an MLflow Model Registry version made from an MLflow run: its artifact folder holds the
fitted estimator as an MLflow sklearn model (``model.pkl``, pickle) and driftline's ``metadata.json``
(features, entities, task, drift reference). Aliases (``production``, ``canary``, ``shadow``) say what
serves; every alias move is also recorded, append-only, as a registered-model tag, because MLflow
keeps no alias history. Pickle runs code when it is loaded, so an artifact is deserialized only after
its SHA-256 matches the version's tag: the checksum keeps a corrupted or swapped file from ever
reaching ``pickle.loads``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftline.errors import ChecksumMismatchError, ModelLoadError
from driftline.reference_types import DriftReference
from driftline.settings import ModelSettings, mask_url

ARTIFACT_FILE = "model.pkl"
METADATA_FILE = "metadata.json"


class FeatureSpec(BaseModel):
    """One model input, in the model's column order.

    ``source`` says where the value comes from at serving time: ``feast`` features are read from
    the online store by ``ref`` (``feature_view:feature``); ``request`` features are fields of the
    event itself, named by ``field``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Column name in the training set and the model.")
    source: Literal["feast", "request"]
    ref: str | None = Field(default=None, description="feature_view:feature, for feast features.")
    field: str | None = Field(default=None, description="Event field, for request features.")
    kind: Literal["numeric", "categorical"] = "numeric"
    categories: list[str] | None = Field(
        default=None, description="Categorical levels; a value's code is its index here."
    )
    minimum: float | None = Field(default=None, description="Smallest valid value of a request field.")
    maximum: float | None = Field(default=None, description="Largest valid value of a request field.")
    integer: bool = Field(default=False, description="A request field that must be a whole number.")

    @property
    def feature_view(self) -> str | None:
        """The feature view of a feast feature."""
        return self.ref.split(":", 1)[0] if self.ref else None


#: Feast value types a join key may have in an event (Feast's ValueType names, lower case).
EntityType = Literal["string", "int64", "int32"]
#: What the estimator predicts: the score and decision of a prediction follow from it.
Task = Literal["binary", "multiclass", "regression"]
#: How the estimator takes its input (see ModelMetadata.input_format).
InputFormat = Literal["matrix", "frame"]
#: A class label as the estimator's ``classes_`` holds it (JSON keeps strings and whole numbers apart).
ClassLabel = int | str


class EntitySpec(BaseModel):
    """One entity join key the event carries: its event field, Feast join key and value type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="Event field holding the key.")
    join_key: str = Field(description="Feast join key it fills.")
    dtype: EntityType = Field(default="string", description="Feast value type of the join key.")


class ModelMetadata(BaseModel):
    """Everything the worker needs to serve a model, and what a person needs to trust it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: str
    created_at: datetime
    feature_service: str = Field(description="Feast FeatureService the model was trained on.")
    features: list[FeatureSpec] = Field(description="Model inputs in column order.")
    entities: list[EntitySpec] = Field(description="Entity keys the event carries, typed.")
    request_fields: list[FeatureSpec] = Field(
        default_factory=list,
        description="Event fields Feast's on-demand feature views read (request sources); not model columns.",
    )
    task: Task = "binary"
    input_format: InputFormat = Field(
        default="matrix",
        description="matrix: floats, categorical levels as codes (driftline.features). frame: a pandas "
        "DataFrame with the features' names and raw categorical strings, for Pipelines that encode them.",
    )
    classes: list[ClassLabel] | None = Field(
        default=None, description="The estimator's classes_, in predict_proba column order (classifiers)."
    )
    positive_class: ClassLabel | None = Field(
        default=None, description="Binary: the class whose probability is the score."
    )
    threshold: float | None = Field(default=None, gt=0, lt=1, description="Binary: decision threshold.")
    training_window: tuple[datetime, datetime]
    metrics: dict[str, float] = Field(description="Held-out evaluation: roc_auc, pr_auc, brier, ...")
    library_versions: dict[str, str]
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reference: DriftReference | None = Field(
        default=None, description="Reference sketches of inputs and score, for drift monitoring."
    )
    reference_sample: list[dict[str, float | str | None]] = Field(
        default_factory=list,
        description="A few input rows (FeatureSpec.name -> raw value) and nothing else: serving scores them "
        "before it switches to this version, so a model that fails on its own inputs never serves.",
    )

    @model_validator(mode="before")
    @classmethod
    def _entities_from_v1(cls, data: object) -> object:
        # Metadata written before entity types existed kept ``entity_fields`` (event field -> join key)
        # and a binary 0/1 classifier implicitly.
        if isinstance(data, dict) and "entity_fields" in data and "entities" not in data:
            data = dict(data)
            fields: dict[str, str] = data.pop("entity_fields")
            data["entities"] = [{"field": f, "join_key": k} for f, k in fields.items()]
            data.setdefault("classes", [0, 1])
            data.setdefault("positive_class", 1)
        return data

    @model_validator(mode="after")
    def _task_is_complete(self) -> ModelMetadata:
        classes = self.classes or []
        if self.task == "regression":
            if self.classes or self.threshold is not None or self.positive_class is not None:
                raise ValueError("a regression model has no classes, positive class or threshold")
            return self
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"a {self.task} classifier needs two or more distinct classes, got {classes}")
        if self.task == "binary":
            if len(classes) != 2 or self.positive_class not in classes or self.threshold is None:
                raise ValueError(
                    "a binary classifier needs exactly two classes, a positive class among them and a threshold"
                )
        elif self.threshold is not None or self.positive_class is not None:
            raise ValueError("a multiclass model decides by argmax: no threshold or positive class")
        return self

    @property
    def entity_fields(self) -> dict[str, str]:
        """Event field -> Feast join key, in the metadata's order."""
        return {e.field: e.join_key for e in self.entities}

    @property
    def positive_index(self) -> int:
        """Binary: the predict_proba column of the positive class."""
        if self.classes is None or self.positive_class is None:
            raise ValueError(f"model {self.name} is not a binary classifier")
        return self.classes.index(self.positive_class)

    @field_validator("reference", mode="before")
    @classmethod
    def _empty_reference_is_none(cls, value: object) -> object:
        # Metadata written before the reference was typed stored "no reference" as {}.
        return None if value == {} else value

    @property
    def feature_refs(self) -> list[str]:
        """Feast references of the feast features, in column order."""
        return [f.ref for f in self.features if f.source == "feast" and f.ref]

    @property
    def feature_views(self) -> list[str]:
        """The distinct feature views the model reads, in first-use order."""
        return list(dict.fromkeys(f.feature_view for f in self.features if f.feature_view))


class LoadedModel(BaseModel):
    """A verified, deserialized model and its metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, protected_namespaces=())

    metadata: ModelMetadata
    estimator: Any


def estimator_problems(estimator: object, metadata: ModelMetadata) -> list[str]:
    """What keeps ``estimator`` from serving as ``metadata`` says (empty: nothing).

    Checked when a model is registered and again when it is loaded: the task's method, the classes
    in ``predict_proba``'s column order, and the input width and names the estimator was fitted on.
    """
    problems: list[str] = []
    method = "predict" if metadata.task == "regression" else "predict_proba"
    if not callable(getattr(estimator, method, None)):
        problems.append(f"a {metadata.task} model needs {method}(), which {type(estimator).__name__} lacks")
    if metadata.task != "regression":
        fitted = getattr(estimator, "classes_", None)
        classes = [c.item() if hasattr(c, "item") else c for c in fitted] if fitted is not None else None
        if classes != metadata.classes:
            problems.append(f"the estimator's classes are {classes}, the metadata says {metadata.classes}")
    names = [f.name for f in metadata.features]
    width = getattr(estimator, "n_features_in_", None)
    if width is not None and width != len(names):
        problems.append(f"the estimator was fitted on {width} inputs, the feature list has {len(names)}")
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None and list(fitted_names) != names:
        missing = [n for n in fitted_names if n not in names]
        detail = f"missing {missing}" if missing else f"order {list(fitted_names)}"
        problems.append(f"the estimator's input columns differ from the feature list ({detail})")
    if fitted_names is not None and metadata.input_format != "frame":
        problems.append("the estimator was fitted on a DataFrame; register it with input_format 'frame'")
    return problems


def sha256_of(data: bytes) -> str:
    """Return the hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` in one step (creating its folder), so a reader sees the old bytes or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: Aliases serving reads: the model in production, a canary taking a share of traffic, a shadow scored aside.
ALIASES = ("production", "canary", "shadow")
#: Registered-model tag prefix of the alias history (MLflow keeps no history of its own).
HISTORY_TAG = "driftline.alias_move."
#: Model-version tag holding the SHA-256 of the artifact's model.pkl.
SHA_TAG = "driftline.artifact_sha256"
#: The run's artifact folder holding the MLflow model (MLmodel, model.pkl) and metadata.json.
MODEL_DIR = "model"


class AliasMove(BaseModel):
    """One move of an alias: append-only, kept as a registered-model tag in MLflow."""

    model_config = ConfigDict(frozen=True)

    sequence: int
    at: datetime
    model: str
    alias: str
    from_version: str | None
    to_version: str | None  # None: the alias was removed
    by: str
    reason: str


class VersionInfo(BaseModel):
    """One registered version as ``driftline model list`` shows it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model: str
    version: str
    run_id: str | None
    created_at: datetime
    aliases: list[str]
    metrics: dict[str, float]
    feature_service: str | None
    task: str | None


def _actor() -> str:
    import getpass

    try:
        return os.environ.get("DRIFTLINE_ACTOR") or getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


class ModelRegistry:
    """Versions, aliases and alias history in MLflow's Model Registry; artifacts verified before unpickling.

    The tracking store is ``MLFLOW_TRACKING_URI`` when set, else a SQLite file under the driftline home
    (no server). Each version's artifact folder is an MLflow sklearn model (``mlflow.pyfunc`` loads
    ``models:/<name>@<alias>`` too) plus driftline's ``metadata.json``; its model-version tags carry
    the SHA-256 of ``model.pkl`` and what a person needs to see without downloading it.
    """

    def __init__(self, settings: ModelSettings) -> None:
        # MLflow draws a progress bar on stderr for every artifact download, which is every model load.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # MLflow's HTTP client retries for minutes by default: a server that is down would hang a worker's
        # start, every poll and every command. Fail in seconds instead, with the reason (one line).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow import MlflowClient

        self.tracking_uri = settings.tracking_uri
        self.artifact_root = settings.mlflow_artifact_root
        if settings.mlflow_tracking_uri is None:
            settings.mlflow_dir.mkdir(parents=True, exist_ok=True)
        self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    @property
    def client(self) -> Any:
        """The MLflow client (training logs its runs through it)."""
        return self._client

    def where(self) -> str:
        """The tracking store, without credentials."""
        return mask_url(self.tracking_uri)

    def experiment_id(self, name: str) -> str:
        """The experiment of model ``name`` (created on first use; embedded: artifacts under the home)."""
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = self.artifact_root.resolve().as_uri() if self.artifact_root is not None else None
        return str(self._client.create_experiment(name, artifact_location=location))

    # ---- writing
    def register(self, estimator: object, metadata: ModelMetadata, run_id: str) -> ModelMetadata:
        """Log ``estimator`` and its metadata to run ``run_id`` and make them a new version of the model.

        Returns the metadata with the version MLflow assigned and the artifact's checksum.
        """
        import mlflow.sklearn
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / MODEL_DIR
            # Naming the requirements skips MLflow's inference of them (a subprocess, ~3 s per version).
            requirements = [f"{name}=={version}" for name, version in metadata.library_versions.items()
                            if name in ("scikit-learn", "numpy", "pandas")]
            mlflow.sklearn.save_model(
                estimator, str(folder), serialization_format="pickle", pip_requirements=requirements or None
            )
            checksum = sha256_of((folder / ARTIFACT_FILE).read_bytes())
            metadata = metadata.model_copy(update={"artifact_sha256": checksum})
            (folder / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
            self._client.log_artifacts(run_id, str(folder), MODEL_DIR)
        source = f"{self._client.get_run(run_id).info.artifact_uri}/{MODEL_DIR}"
        with contextlib.suppress(MlflowException):  # it exists already
            self._client.create_registered_model(metadata.name)
        tags = {
            SHA_TAG: checksum,
            "driftline.feature_service": metadata.feature_service,
            "driftline.task": metadata.task,
            "driftline.entities": ",".join(f"{e.field}:{e.dtype}" for e in metadata.entities),
            "driftline.request_fields": ",".join(f.name for f in metadata.request_fields),
            "driftline.threshold": "" if metadata.threshold is None else f"{metadata.threshold:g}",
            "driftline.positive_class": "" if metadata.positive_class is None else str(metadata.positive_class),
        }
        version = self._client.create_model_version(metadata.name, source, run_id=run_id, tags=tags)
        return metadata.model_copy(update={"version": str(version.version)})

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move of ``name``, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self._client.get_registered_model(name).tags
        except MlflowException:
            return []
        moves = [AliasMove.model_validate_json(v) for k, v in tags.items() if k.startswith(HISTORY_TAG)]
        return sorted(moves, key=lambda m: m.sequence)

    def _record(self, name: str, alias: str, before: str | None, after: str | None, reason: str) -> AliasMove:
        sequence = max((m.sequence for m in self.history(name)), default=0) + 1
        move = AliasMove(
            sequence=sequence, at=datetime.now(UTC), model=name, alias=alias, from_version=before,
            to_version=after, by=_actor(), reason=reason,
        )
        self._client.set_registered_model_tag(name, f"{HISTORY_TAG}{sequence:06d}", move.model_dump_json())
        return move

    def set_alias(self, name: str, alias: str, version: str, reason: str) -> AliasMove:
        """Point ``alias`` at ``version`` and record the move (who, when, why)."""
        if alias not in ALIASES:
            raise ModelLoadError(f"alias {alias!r} is not one of {', '.join(ALIASES)}")
        self._require_version(name, version)
        before = self.aliases(name).get(alias)
        self._client.set_registered_model_alias(name, alias, version)
        return self._record(name, alias, before, version, reason)

    def remove_alias(self, name: str, alias: str, reason: str) -> AliasMove | None:
        """Remove ``alias`` (when set) and record the move."""
        before = self.aliases(name).get(alias)
        if before is None:
            return None
        self._client.delete_registered_model_alias(name, alias)
        return self._record(name, alias, before, None, reason)

    def rollback(self, name: str, reason: str, alias: str = "production") -> AliasMove:
        """Point ``alias`` back at the version it held before its last move."""
        current = self.aliases(name).get(alias)
        moves = [m for m in self.history(name) if m.alias == alias and m.to_version == current]
        previous = moves[-1].from_version if moves else None
        if previous is None:
            raise ModelLoadError(f"model {name}: {alias} has no earlier version to roll back to")
        return self.set_alias(name, alias, previous, reason)

    # ---- reading
    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version of ``name``: one registry call, what a worker polls."""
        from mlflow.exceptions import MlflowException

        try:
            model = self._client.get_registered_model(name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise ModelLoadError(f"the model registry {self.where()} cannot be read: {exc}") from exc
        except Exception as exc:  # a server that is down: connection errors, timeouts
            raise ModelLoadError(f"the model registry {self.where()} cannot be read: {exc}") from exc
        return {alias: str(version) for alias, version in model.aliases.items()}

    def production_version(self, name: str) -> str | None:
        """The version the production alias names, or None."""
        return self.aliases(name).get("production")

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest first, with its run's metrics and its aliases."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in self.aliases(name).items():
            by_version.setdefault(version, []).append(alias)
        out: list[VersionInfo] = []
        for mv in sorted(found, key=lambda v: int(v.version)):
            metrics = dict(self._client.get_run(mv.run_id).data.metrics) if mv.run_id else {}
            out.append(
                VersionInfo(
                    model=name, version=str(mv.version), run_id=mv.run_id,
                    created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                    aliases=sorted(by_version.get(str(mv.version), [])), metrics=metrics,
                    feature_service=mv.tags.get("driftline.feature_service"), task=mv.tags.get("driftline.task"),
                )
            )
        return out

    def lineage(self, name: str, version: str) -> dict[str, str]:
        """Where a version came from: its run, the data it saw (MLflow dataset digests), the code revision."""
        mv = self._require_version(name, version)
        out = {"tracking store": self.where(), "source": str(mv.source)}
        if not mv.run_id:
            return out
        run = self._client.get_run(mv.run_id)
        out["run"] = f"{run.info.run_name} ({mv.run_id}), {run.info.status}"
        out["run page"] = f"#/experiments/{run.info.experiment_id}/runs/{mv.run_id} in the MLflow UI"
        for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
            context = next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), "data")
            dataset = dataset_input.dataset
            out[f"{context} data"] = f"{dataset.name} digest {dataset.digest}, from {dataset.source}"[:300]
        revision = run.data.tags.get("mlflow.source.git.commit")
        if revision:
            out["code revision"] = revision
        return out

    def _require_version(self, name: str, version: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_model_version(name, version)
        except MlflowException as exc:
            raise ModelLoadError(f"model {name} has no version {version} in {self.where()}") from exc
        except Exception as exc:
            raise ModelLoadError(f"the model registry {self.where()} cannot be read: {exc}") from exc

    def resolve(self, name: str, version_or_alias: str | None = None) -> str:
        """A version number from a version, an alias, or None (production)."""
        wanted = version_or_alias or "production"
        if wanted.isdigit():
            return wanted
        version = self.aliases(name).get(wanted)
        if version is None:
            hint = "; run `driftline train` or `driftline model promote`" if wanted == "production" else ""
            raise ModelLoadError(f"model {name} has no {wanted} version in {self.where()}{hint}")
        return version

    def _download(self, name: str, version: str, into: Path) -> Path:
        import mlflow.artifacts

        source = self._client.get_model_version_download_uri(name, version)
        try:
            # A server's mlflow-artifacts: URI resolves against the tracking URI given, not MLflow's global one.
            return Path(mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=str(into), tracking_uri=self.tracking_uri
            ))
        except Exception as exc:
            raise ModelLoadError(
                f"model {name} version {version}: artifacts at {source} cannot be read: {exc}"
            ) from exc

    def read_metadata(self, name: str, version: str) -> ModelMetadata:
        """Read and validate one version's metadata; its version is MLflow's."""
        self._require_version(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            return _metadata(self._download(name, version, Path(tmp)), name, version)

    def load(
        self,
        name: str,
        version_or_alias: str | None = None,
        check: Callable[[ModelMetadata], None] | None = None,
    ) -> LoadedModel:
        """Load a version or alias (default: production), verifying the checksum tag before unpickling.

        ``check`` sees the metadata first and may refuse the version (raise) before anything is unpickled.
        """
        version = self.resolve(name, version_or_alias)
        recorded = self._require_version(name, version).tags.get(SHA_TAG)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self._download(name, version, Path(tmp))
            metadata = _metadata(folder, name, version)
            if check is not None:
                check(metadata)
            try:
                data = (folder / ARTIFACT_FILE).read_bytes()
            except FileNotFoundError as exc:
                raise ModelLoadError(f"model {name} version {version}: artifact {ARTIFACT_FILE} is missing") from exc
        actual = sha256_of(data)
        if actual != recorded:
            raise ChecksumMismatchError(
                f"model {name} version {version}: {ARTIFACT_FILE} has SHA-256 {actual}, "
                f"the registry recorded {recorded}; refusing to load it"
            )
        try:
            estimator = pickle.loads(data)
        except Exception as exc:
            raise ModelLoadError(f"model {name} version {version}: artifact cannot be read: {exc}") from exc
        problems = estimator_problems(estimator, metadata)
        if problems:
            raise ModelLoadError(f"model {name} version {version}: {'; '.join(problems)}")
        return LoadedModel(metadata=metadata, estimator=estimator)


def _metadata(folder: Path, name: str, version: str) -> ModelMetadata:
    path = folder / METADATA_FILE
    try:
        metadata = ModelMetadata.model_validate_json(path.read_bytes())
    except FileNotFoundError as exc:
        raise ModelLoadError(f"model {name} version {version}: no {METADATA_FILE} in its artifacts") from exc
    except ValidationError as exc:
        raise ModelLoadError(f"model {name} version {version}: invalid metadata: {exc}") from exc
    return metadata.model_copy(update={"version": version})
