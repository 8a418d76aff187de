"""Register a model trained anywhere: check it against a Feast feature service, sketch its drift reference, version it.

``driftline train`` ends here too, so a model fitted by driftline and one fitted elsewhere are held to
the same checks. What serving needs is derived, never assumed: the entity keys and their types and
the on-demand views' request fields come from the feature service; the task, classes and input
columns come from the estimator; the drift reference comes from a sample scored by the estimator.
"""

from __future__ import annotations

import logging
import pickle
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift.reference import build_reference
from driftline.errors import ConfigError, DriftlineError
from driftline.features import build_frame, build_matrix, build_matrix_from_columns
from driftline.registry import (
    ClassLabel,
    EntitySpec,
    FeatureSpec,
    InputFormat,
    ModelMetadata,
    ModelRegistry,
    Task,
    estimator_problems,
)
from driftline.settings import TrainingSettings
from feature_repo.online import ENTITY_DTYPES, check_model_against_store
from feature_repo.store import feature_store
from stream_app.core.scoring import score_batch
from training.evaluate import evaluate, evaluate_multiclass, evaluate_regression
from training.tracking import estimator_params, log_version, tracked_run

logger = logging.getLogger(__name__)

#: Feast feature dtypes a model column can hold: numbers (and bools) as floats, strings as categories.
NUMERIC_DTYPES = {"Int32", "Int64", "Float32", "Float64", "Bool"}
#: Input rows kept with a version, scored by serving before it switches to the version.
REFERENCE_SAMPLE_ROWS = 50
#: Event timestamp column of an entity dataframe, as Feast names it.
TIMESTAMP = "event_timestamp"


@dataclass(frozen=True)
class ServiceSchema:
    """What a feature service gives a model and what its events must carry."""

    feature_service: str
    features: list[FeatureSpec]  # Feast's order: view by view, schema order; names view__feature
    entities: list[EntitySpec]  # join keys of the service's views, typed as Feast types them
    request_fields: list[FeatureSpec]  # request-source fields its on-demand views read


def _request_spec(name: str, dtype: str) -> FeatureSpec:
    if dtype == "String":
        return FeatureSpec(name=name, source="request", kind="categorical")
    if dtype in NUMERIC_DTYPES:
        return FeatureSpec(name=name, source="request", integer=dtype in {"Int32", "Int64"})
    raise ConfigError(f"request field {name} has type {dtype}; events carry string and number fields")


def service_schema(store: Any, service_name: str) -> ServiceSchema:
    """Read a feature service's features, typed entity keys and request fields from the Feast registry."""
    try:
        service = store.get_feature_service(service_name)
    except Exception as exc:
        names = sorted(s.name for s in store.list_feature_services())
        raise ConfigError(
            f"feature service {service_name!r} is not in Feast project {store.project} "
            f"(it has: {', '.join(names) or 'none'}); run `driftline feast apply`"
        ) from exc
    odfvs = {view.name: view for view in store.list_on_demand_feature_views()}
    features: list[FeatureSpec] = []
    entities: dict[str, EntitySpec] = {}
    request: dict[str, FeatureSpec] = {}
    for projection in service.feature_view_projections:
        view = projection.name_to_use()
        for field in projection.features:
            dtype, ref = str(field.dtype), f"{view}:{field.name}"
            if dtype == "String":
                features.append(FeatureSpec(name=f"{view}__{field.name}", source="feast", ref=ref, kind="categorical"))
            elif dtype in NUMERIC_DTYPES:
                features.append(FeatureSpec(name=f"{view}__{field.name}", source="feast", ref=ref))
            else:
                raise ConfigError(f"feature {ref} has type {dtype}; a model input must be a number or a string")
        stored_views = [projection.name]
        if projection.name in odfvs:
            odfv = odfvs[projection.name]
            for source in odfv.source_request_sources.values():
                for field in source.schema:
                    request[field.name] = _request_spec(field.name, str(field.dtype))
            stored_views = [p.name for p in odfv.source_feature_view_projections.values()]
        for name in stored_views:
            for column in store.get_feature_view(name).entity_columns:
                dtype = str(column.dtype)
                if dtype not in ENTITY_DTYPES:
                    raise ConfigError(
                        f"join key {column.name} has Feast type {dtype}; driftline reads {', '.join(ENTITY_DTYPES)}"
                    )
                entities[column.name] = EntitySpec(field=column.name, join_key=column.name, dtype=ENTITY_DTYPES[dtype])
    return ServiceSchema(service_name, features, list(entities.values()), list(request.values()))


def load_estimator(path: Path) -> object:
    """Unpickle a model file (pickle or joblib). Like any pickle, it runs code: load only files you trust."""
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    try:
        if path.suffix == ".joblib":
            import joblib

            return joblib.load(path)
        with path.open("rb") as handle:
            return pickle.load(handle)
    except Exception as exc:
        raise ConfigError(f"model file {path} cannot be loaded: {type(exc).__name__}: {exc}") from exc


def task_of(estimator: object) -> Task:
    """binary, multiclass or regression, from scikit-learn's own estimator tags."""
    from sklearn.base import is_classifier, is_regressor

    if is_regressor(estimator):
        return "regression"
    if is_classifier(estimator):
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise ConfigError(f"{type(estimator).__name__} is a classifier that has not been fitted (no classes_)")
        return "binary" if len(classes) == 2 else "multiclass"
    raise ConfigError(f"{type(estimator).__name__} is neither a scikit-learn classifier nor a regressor")


def _plain(value: object) -> ClassLabel:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, bool | int | str):
        return int(value) if isinstance(value, bool) else value
    raise ConfigError(f"class label {value!r} is neither a string nor a whole number")


def positive_class_of(classes: Sequence[ClassLabel], given: str | None) -> ClassLabel:
    """The binary positive class: as given (matched as text), or 1 when the classes are 0 and 1."""
    if given is not None:
        for label in classes:
            if str(label) == given:
                return label
        raise ConfigError(f"positive class {given!r} is not one of the model's classes {list(classes)}")
    if sorted(str(c) for c in classes) == ["0", "1"]:
        return next(c for c in classes if str(c) == "1")
    raise ConfigError(f"name the positive class (one of {list(classes)}) with --positive-class")


def model_columns(estimator: object, schema: ServiceSchema) -> tuple[list[FeatureSpec], InputFormat]:
    """The model's input columns as feature specs, and its input format.

    An estimator fitted on a DataFrame names its columns: each must be a service feature, by its full
    name (``view__feature``) or its bare name when that is unambiguous, in the estimator's order. One
    fitted on an array takes the service's features in Feast's order, and string features need a
    Pipeline that encodes them.
    """
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        strings = [s.ref for s in schema.features if s.kind == "categorical"]
        if strings:
            raise ConfigError(
                f"string features {', '.join(str(s) for s in strings)} need a Pipeline fitted on a DataFrame "
                "that encodes them"
            )
        return list(schema.features), "matrix"
    by_name: dict[str, list[FeatureSpec]] = {}
    for spec in [*schema.features, *schema.request_fields]:
        by_name.setdefault(spec.name, []).append(spec)
        if spec.ref:
            by_name.setdefault(spec.ref.split(":", 1)[1], []).append(spec)
    specs: list[FeatureSpec] = []
    missing: list[str] = []
    for name in map(str, names):
        found = by_name.get(name, [])
        if len(found) != 1:
            missing.append(name if not found else f"{name} (ambiguous: {', '.join(str(s.ref) for s in found)})")
            continue
        spec = found[0]
        if spec.source == "request":
            specs.append(spec.model_copy(update={"field": spec.name}))
        else:
            specs.append(spec.model_copy(update={"name": name}))
    if missing:
        raise ConfigError(
            f"the model's inputs {', '.join(missing)} are not features of service {schema.feature_service}"
        )
    return specs, "frame"


def sample_frame(
    store: Any, schema: ServiceSchema, specs: Sequence[FeatureSpec], entity_df: pd.DataFrame
) -> pd.DataFrame:
    """Feast's point-in-time features for ``entity_df`` rows, columns named as the model's inputs."""
    try:
        joined = store.get_historical_features(
            entity_df=entity_df, features=store.get_feature_service(schema.feature_service), full_feature_names=True
        ).to_df()
    except Exception as exc:
        raise ConfigError(f"Feast historical features for the sample failed: {type(exc).__name__}: {exc}") from exc
    renames = {str(s.ref).replace(":", "__", 1): s.name for s in specs if s.ref}
    return joined.rename(columns=renames).sort_values(TIMESTAMP, kind="stable").reset_index(drop=True)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the artifact and its inputs."""
    versions = {name: package_version(name) for name in ("scikit-learn", "numpy", "pandas", "feast")}
    versions["python"] = platform.python_version()
    return versions


def model_version(now: datetime) -> str:
    """A version that sorts by creation time, e.g. ``20261122T073000Z``."""
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def held_out_metrics(
    meta: ModelMetadata, estimator: Any, model_input: Any, labels: Sequence[object]
) -> dict[str, float]:
    """The task's metrics of ``estimator`` on a labelled sample."""
    if meta.task == "regression":
        return evaluate_regression(np.asarray(labels, dtype=np.float64), estimator.predict(model_input))
    proba = np.asarray(estimator.predict_proba(model_input), dtype=np.float64)
    if meta.task == "multiclass":
        return evaluate_multiclass([_plain(y) for y in labels], proba, meta.classes or [])
    positive = [_plain(y) == meta.positive_class for y in labels]
    return evaluate(np.asarray(positive, dtype=np.int64), proba[:, meta.positive_index], meta.threshold or 0.5)


@dataclass(frozen=True)
class RegisterRequest:
    """What ``driftline model register`` was asked to register."""

    model_file: Path | None
    name: str
    feature_service: str
    sample: Path | None = None  # entity dataframe (parquet): join keys, event_timestamp, request fields
    label: str | None = None  # label column in the sample, for held-out metrics
    positive_class: str | None = None
    threshold: float = 0.5
    stratify_by: str | None = None
    stratum_edges: tuple[float, ...] = ()
    promote: bool = True


@dataclass(frozen=True)
class RegisterResult:
    """A registered version: what it serves and how it scored on the sample."""

    model: str
    version: str
    run_id: str
    dataset_digest: str  # MLflow's fingerprint of the sample
    task: Task
    feature_service: str
    input_format: str
    features: list[str]
    entities: list[EntitySpec]
    request_fields: list[str]
    metrics: dict[str, float]
    reference_rows: int
    promoted: bool


def build_metadata(
    store: Any,
    estimator: Any,
    request: RegisterRequest,
    sample: pd.DataFrame,
    seed: int = 0,
    metrics: dict[str, float] | None = None,
    specs: list[FeatureSpec] | None = None,
    input_format: InputFormat | None = None,
) -> ModelMetadata:
    """Check ``estimator`` against the feature service and ``sample`` and describe it for serving.

    ``sample`` holds the model's input columns (and event_timestamp); it is scored here, so a model that
    fails on its own reference rows is refused before it is registered. ``specs`` and ``input_format``
    are the estimator's inputs when the caller built them (training); else they are derived from it.
    """
    schema = service_schema(store, request.feature_service)
    if specs is None or input_format is None:
        specs, input_format = model_columns(estimator, schema)
    task = task_of(estimator)
    classes = [_plain(c) for c in getattr(estimator, "classes_", [])] if task != "regression" else None
    positive = positive_class_of(classes or [], request.positive_class) if task == "binary" else None
    created = datetime.now(UTC)
    window = (
        (sample[TIMESTAMP].min().to_pydatetime(), sample[TIMESTAMP].max().to_pydatetime())
        if TIMESTAMP in sample and len(sample)
        else (created, created)
    )
    try:
        meta = ModelMetadata(
            name=request.name,
            version=model_version(created),
            created_at=created,
            feature_service=request.feature_service,
            features=specs,
            entities=schema.entities,
            # Every field the on-demand views read goes to Feast, even one that is also a model input.
            request_fields=schema.request_fields,
            task=task,
            input_format=input_format,
            classes=classes,
            positive_class=positive,
            threshold=request.threshold if task == "binary" else None,
            training_window=window,
            metrics=metrics or {},
            library_versions=library_versions(),
            artifact_sha256="0" * 64,
        )
    except ValueError as exc:
        raise ConfigError(f"model {request.name}: {exc}") from exc
    problems = estimator_problems(estimator, meta)
    if problems:
        raise ConfigError(f"{request.model_file or 'model ' + request.name}: {'; '.join(problems)}")
    check_model_against_store(store, meta)
    lacking = [s.name for s in specs if s.name not in sample.columns]
    if lacking:
        raise ConfigError(f"the sample lacks the model's input columns {', '.join(lacking)}")
    rows = sample.to_dict("records")
    matrix = build_matrix_from_columns(specs, {s.name: sample[s.name].tolist() for s in specs}, len(sample))
    model_input = build_frame(specs, rows) if input_format == "frame" else matrix
    try:
        if task == "regression":
            scores = np.asarray(estimator.predict(model_input), dtype=np.float64)
        else:
            proba = np.asarray(estimator.predict_proba(model_input), dtype=np.float64)
            scores = proba[:, meta.positive_index] if task == "binary" else proba.max(axis=1)
        if request.label is not None and not metrics:
            metrics = held_out_metrics(meta, estimator, model_input, sample[request.label].tolist())
    except DriftlineError:
        raise
    except Exception as exc:
        raise ConfigError(f"the model fails on its sample: {type(exc).__name__}: {exc}") from exc
    reference = build_reference(
        specs, matrix, scores, seed=seed, stratify_by=request.stratify_by, stratum_edges=request.stratum_edges
    )
    sample_rows = [
        {s.name: _raw(row.get(s.name)) for s in specs} for row in rows[:: max(1, len(rows) // REFERENCE_SAMPLE_ROWS)]
    ][:REFERENCE_SAMPLE_ROWS]
    return meta.model_copy(
        update={"reference": reference, "metrics": metrics or {}, "reference_sample": sample_rows}
    )


def _raw(value: object) -> float | str | None:
    """A feature value as JSON keeps it: a number, a string, or None for missing."""
    if value is None or isinstance(value, str):
        return value
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # pandas' NA and friends
    return None if number != number else number


def register(settings: TrainingSettings, request: RegisterRequest) -> RegisterResult:
    """Register ``request.model_file`` as a new version of ``request.name`` (and promote it)."""
    if request.model_file is None:
        raise ConfigError("give the model file to register")
    estimator = load_estimator(request.model_file)
    store = feature_store(settings)
    if request.sample is None:
        raise ConfigError("give a sample (parquet of entity rows: join keys, event_timestamp, request fields)")
    try:
        entity_df = pd.read_parquet(request.sample)
    except Exception as exc:
        raise ConfigError(f"sample {request.sample} cannot be read as parquet: {exc}") from exc
    schema = service_schema(store, request.feature_service)
    specs, _ = model_columns(estimator, schema)
    frame = sample_frame(store, schema, specs, entity_df)
    meta = build_metadata(store, estimator, request, frame, seed=settings.seed)
    rows = frame.to_dict("records")
    model_input = (
        build_frame(meta.features, rows) if meta.input_format == "frame" else build_matrix(meta.features, rows)
    )
    registry = ModelRegistry(settings)
    tags = {"driftline.kind": "register", "driftline.feature_service": request.feature_service}
    with tracked_run(registry, request.name, f"register {request.model_file.name}", tags) as tracked:
        tracked.params({
            **estimator_params(estimator), "feature_service": request.feature_service,
            "model_file": request.model_file, "sample": request.sample, "label": request.label,
            "threshold": request.threshold if meta.task == "binary" else None, "features": len(meta.features),
        })
        digest = tracked.dataset(frame, request.feature_service, str(request.sample), "reference", request.label)
        scores = score_batch(estimator, meta, model_input).score
        saved = log_version(tracked, estimator, meta, frame, request.label, scores)
    if request.promote:
        reason = f"registered by driftline model register (run {tracked.record.run_id})"
        registry.set_alias(saved.name, "production", saved.version, reason)
    logger.info("registered %s %s (%s, %d features)", saved.name, saved.version, saved.task, len(saved.features))
    return RegisterResult(
        model=saved.name,
        version=saved.version,
        run_id=tracked.record.run_id,
        dataset_digest=digest,
        task=saved.task,
        feature_service=saved.feature_service,
        input_format=saved.input_format,
        features=[s.name for s in saved.features],
        entities=saved.entities,
        request_fields=[s.name for s in saved.request_fields],
        metrics=saved.metrics,
        reference_rows=len(frame),
        promoted=request.promote,
    )
