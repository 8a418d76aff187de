"""The model registry: versioned artifacts with metadata, and a pointer to the version in production.

Layout of a registry folder::

    <registry>/<model_name>/<version>/model.pkl       the fitted scikit-learn estimator (pickle)
    <registry>/<model_name>/<version>/metadata.json   ModelMetadata, including the artifact's SHA-256
    <registry>/<model_name>/production                the version in production, one line

Training (writes) and the stream worker (reads) share this module. Pickle runs code when it is
loaded, so an artifact is deserialized only after its SHA-256 matches the metadata's record:
a registry folder is trusted as much as the code that serves from it, and the checksum keeps a
corrupted or swapped file from ever reaching ``pickle.loads``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftline.errors import ChecksumMismatchError, ModelLoadError
from driftline.reference_types import DriftReference

ARTIFACT_FILE = "model.pkl"
METADATA_FILE = "metadata.json"
PRODUCTION_POINTER = "production"


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


class ModelRegistry:
    """A folder of versioned models."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def versions(self, name: str) -> list[str]:
        """Versions of ``name`` that have metadata, oldest first (versions sort by creation)."""
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / METADATA_FILE).is_file())

    def production_version(self, name: str) -> str | None:
        """The version the production pointer names, or None when there is none."""
        pointer = self.root / name / PRODUCTION_POINTER
        if not pointer.is_file():
            return None
        return pointer.read_text(encoding="utf-8").strip() or None

    def save(self, estimator: object, metadata: ModelMetadata) -> ModelMetadata:
        """Write a new version; the returned metadata carries the artifact's checksum."""
        data = pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)
        metadata = metadata.model_copy(update={"artifact_sha256": sha256_of(data)})
        target = self._dir(metadata.name, metadata.version)
        if (target / METADATA_FILE).exists():
            raise ModelLoadError(f"model {metadata.name} version {metadata.version} already exists")
        atomic_write(target / ARTIFACT_FILE, data)
        atomic_write(target / METADATA_FILE, metadata.model_dump_json(indent=2).encode())
        return metadata

    def promote(self, name: str, version: str) -> None:
        """Point production at ``version`` (atomic rename, so readers never see a half pointer)."""
        if version not in self.versions(name):
            raise ModelLoadError(f"model {name} has no version {version} in {self.root}")
        atomic_write(self.root / name / PRODUCTION_POINTER, f"{version}\n".encode())

    def read_metadata(self, name: str, version: str) -> ModelMetadata:
        """Read and validate one version's metadata."""
        path = self._dir(name, version) / METADATA_FILE
        try:
            return ModelMetadata.model_validate_json(path.read_bytes())
        except FileNotFoundError as exc:
            raise ModelLoadError(f"model {name} version {version}: no metadata at {path}") from exc
        except ValidationError as exc:
            raise ModelLoadError(f"model {name} version {version}: invalid metadata: {exc}") from exc

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load ``version`` (default: production), verifying the checksum before unpickling."""
        if version is None:
            version = self.production_version(name)
            if version is None:
                raise ModelLoadError(
                    f"model {name} has no production version in {self.root}; run `driftline train`"
                )
        metadata = self.read_metadata(name, version)
        path = self._dir(name, version) / ARTIFACT_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ModelLoadError(f"model {name} version {version}: artifact {path} is missing") from exc
        actual = sha256_of(data)
        if actual != metadata.artifact_sha256:
            raise ChecksumMismatchError(
                f"model {name} version {version}: artifact {path} has SHA-256 {actual}, "
                f"the registry recorded {metadata.artifact_sha256}; refusing to load it"
            )
        try:
            estimator = pickle.loads(data)
        except Exception as exc:
            raise ModelLoadError(f"model {name} version {version}: artifact cannot be read: {exc}") from exc
        problems = estimator_problems(estimator, metadata)
        if problems:
            raise ModelLoadError(f"model {name} version {version}: {'; '.join(problems)}")
        return LoadedModel(metadata=metadata, estimator=estimator)
