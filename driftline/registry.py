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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class ModelMetadata(BaseModel):
    """Everything the worker needs to serve a model, and what a person needs to trust it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str
    version: str
    created_at: datetime
    feature_service: str = Field(description="Feast FeatureService the model was trained on.")
    features: list[FeatureSpec] = Field(description="Model inputs in column order.")
    entity_fields: dict[str, str] = Field(description="Event field -> Feast join key.")
    threshold: float = Field(gt=0, lt=1)
    training_window: tuple[datetime, datetime]
    metrics: dict[str, float] = Field(description="Held-out evaluation: roc_auc, pr_auc, brier, ...")
    library_versions: dict[str, str]
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    reference: DriftReference | None = Field(
        default=None, description="Reference sketches of inputs and score, for drift monitoring."
    )

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
        if not hasattr(estimator, "predict_proba"):
            raise ModelLoadError(f"model {name} version {version}: estimator has no predict_proba")
        return LoadedModel(metadata=metadata, estimator=estimator)
