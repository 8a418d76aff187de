"""The model being served, and swapping it for a newly promoted version without a restart."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from drift.freshness import FreshnessWindow
from drift.monitor import DriftMonitor
from driftline.errors import ChecksumMismatchError, DriftlineError, ModelLoadError
from driftline.features import FetchFeatures, build_frame, build_matrix
from driftline.registry import ALIASES, LoadedModel, ModelRegistry
from driftline.settings import WorkerSettings
from feature_repo.online import FeastOnlineReader, check_model_against_store, view_ttls
from feature_repo.redis_reader import RedisOnlineReader, fast_read_problems, layout_from_store, redis_client
from stream_app.core.scoring import score_batch
from stream_app.core.validation import EventRules

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ServingModel:
    """A verified model with what serving it needs: event rules and a feature reader."""

    model: LoadedModel
    rules: EventRules
    reader: FetchFeatures
    view_ttls: dict[str, float]  # feature view -> TTL in seconds (0 = none)
    drift: DriftMonitor  # this version's inputs and scores against this version's reference
    freshness: FreshnessWindow  # ages of store values over the same number of recent events


def check_reference_sample(model: LoadedModel) -> None:
    """Score the version's own reference rows; refuse a model that fails on them or scores non-finite."""
    meta = model.metadata
    if not meta.reference_sample:
        return
    rows = meta.reference_sample
    frame = meta.input_format == "frame"
    model_input = build_frame(meta.features, rows) if frame else build_matrix(meta.features, rows)
    try:
        scores = score_batch(model.estimator, meta, model_input).score
    except Exception as exc:
        raise ModelLoadError(
            f"model {meta.name} version {meta.version} fails on its reference sample: {type(exc).__name__}: {exc}"
        ) from exc
    if len(scores) != len(rows) or not np.isfinite(scores).all():
        raise ModelLoadError(f"model {meta.name} version {meta.version} scores its reference sample non-finite")


def refusal_reason(exc: DriftlineError) -> str:
    """A short label for why a version was refused (a metric label, so a small fixed set)."""
    if isinstance(exc, ChecksumMismatchError):
        return "checksum"
    text = str(exc)
    if "cannot be read" in text and "registry" in text:
        return "registry"
    if "feature service" in text or "join key" in text or "request field" in text:
        return "feature_service"
    return "load"


@dataclass(frozen=True, slots=True)
class AliasChange:
    """What one poll did to one alias: a new version serving, a version refused, or the alias gone."""

    alias: str
    version: str | None
    outcome: Literal["swapped", "refused", "removed"]
    reason: str = ""


def limit_model_threads(threads: int) -> None:
    """Cap the native thread pools (OpenMP, BLAS) behind scikit-learn's predict, for the whole process.

    A micro-batch is too small to split across threads: on a busy 2-core machine a
    HistGradientBoosting ``predict_proba`` of 150 rows took a median 1.6-1.8 ms (p90 3-5 ms) with one
    thread against 4-16 ms (p90 46-276 ms) with the default two, whose threads wait on each other
    and on everything else the machine runs.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    logger.info("model predict uses %d native thread%s (DRIFTLINE_MODEL_THREADS)", threads, "" if threads == 1 else "s")


class ModelHolder:
    """Holds the versions the aliases name; a batch reads each slot once, so a swap never splits a batch.

    ``current`` serves production; ``canary`` (a share of entity keys) and ``shadow`` (scored aside)
    are set while their aliases are.
    """

    def __init__(self, settings: WorkerSettings, store: Any) -> None:
        limit_model_threads(settings.model_threads)
        self._settings = settings
        self._store = store
        self._registry = ModelRegistry(settings)
        # One client for every model version; it connects lazily inside the worker's event loop.
        self._redis = redis_client(settings)
        self._refused: dict[str, str] = {}  # alias -> a version that failed to load (not retried each tick)
        self._registry_down: str | None = None  # the last registry error, logged once until it recovers
        self.current = self._load(None)
        self.canary: ServingModel | None = None
        self.shadow: ServingModel | None = None
        self._load_side_aliases()

    def _load_side_aliases(self) -> None:
        """At start, serve the canary and shadow the registry names already (a failure only logs)."""
        try:
            aliases = self._registry.aliases(self._settings.model_name)
        except DriftlineError as exc:
            logger.error("model registry unavailable: no canary or shadow for now: %s", exc)
            return
        for alias in ("canary", "shadow"):
            version = aliases.get(alias)
            if version is None:
                continue
            try:
                self._set(alias, self._load(version))
                logger.info("serving %s version %s as %s", self._settings.model_name, version, alias)
            except DriftlineError as exc:
                logger.error("not serving %s version %s as %s: %s", self._settings.model_name, version, alias, exc)
                self._refused[alias] = version

    def _load(self, version: str | None) -> ServingModel:
        # The metadata is checked against the feature service before anything is unpickled.
        model = self._registry.load(
            self._settings.model_name, version, check=lambda meta: check_model_against_store(self._store, meta)
        )
        check_reference_sample(model)
        meta = model.metadata
        rules = EventRules.for_model(
            meta.entities, meta.features, self._settings.max_event_bytes,
            self._settings.max_future_skew_s, self._settings.max_event_age_s, meta.request_fields,
        )
        reader: FetchFeatures
        problems = fast_read_problems(self._store, meta) if self._settings.feature_reader == "redis" else []
        if problems:
            logger.info(
                "model %s version %s reads its features through Feast's own reader: %s",
                meta.name, meta.version, "; ".join(problems),
            )
        if self._settings.feature_reader == "redis" and not problems:
            reader = RedisOnlineReader(
                self._redis, layout_from_store(self._store, meta), self._settings.feature_timeout_s
            )
        else:
            reader = FeastOnlineReader(self._store, meta.features, self._settings.feature_timeout_s)
        drift = DriftMonitor(
            meta.features, meta.reference, window_size=self._settings.drift_window,
            alpha=self._settings.drift_alpha, min_events=self._settings.drift_min_events,
            min_psi=self._settings.drift_min_psi,
        )
        return ServingModel(
            model=model, rules=rules, reader=reader, view_ttls=view_ttls(self._store, meta), drift=drift,
            freshness=FreshnessWindow(self._settings.drift_window),
        )

    async def retire_canary(self, reason: str) -> None:
        """Remove the canary alias in the registry (recorded with ``reason``); the next poll drops it."""
        await asyncio.to_thread(self._registry.remove_alias, self._settings.model_name, "canary", reason)

    def slot(self, alias: str) -> ServingModel | None:
        """The model an alias serves now (production is always set)."""
        return {"production": self.current, "canary": self.canary, "shadow": self.shadow}[alias]

    def _set(self, alias: str, model: ServingModel | None) -> None:
        if alias == "production":
            assert model is not None
            self.current = model
        elif alias == "canary":
            self.canary = model
        else:
            self.shadow = model

    async def refresh(self) -> list[AliasChange]:
        """Follow the aliases: load what moved, drop what was removed; return what changed.

        A version that fails to load is refused (logged once, reported once) and the alias's current
        model keeps serving. A registry that cannot be read (an MLflow server down) changes nothing;
        the error is logged once, and again when it changes, until the registry answers.
        """
        name = self._settings.model_name
        try:
            # The registry is a database or a server: keep its round trip off the event loop.
            aliases = await asyncio.to_thread(self._registry.aliases, name)
        except DriftlineError as exc:
            if str(exc) != self._registry_down:
                logger.error("model registry unavailable, still serving %s version %s: %s",
                             name, self.current.model.metadata.version, exc)
                self._registry_down = str(exc)
            return []
        if self._registry_down is not None:
            logger.info("model registry answers again")
            self._registry_down = None
        changes: list[AliasChange] = []
        for alias in ALIASES:
            wanted = aliases.get(alias)
            serving = self.slot(alias)
            have = serving.model.metadata.version if serving is not None else None
            if wanted is None:
                if alias != "production" and serving is not None:
                    self._set(alias, None)
                    logger.info("%s of %s removed (was version %s)", alias, name, have)
                    changes.append(AliasChange(alias, have, "removed"))
                continue
            if wanted in (have, self._refused.get(alias)):
                continue
            try:
                # Downloading, the checksum and unpickling take tens of ms: keep them off the event loop.
                candidate = await asyncio.to_thread(self._load, wanted)
            except DriftlineError as exc:
                logger.error("not serving %s version %s as %s: %s", name, wanted, alias, exc)
                self._refused[alias] = wanted
                changes.append(AliasChange(alias, wanted, "refused", refusal_reason(exc)))
                continue
            self._set(alias, candidate)
            self._refused.pop(alias, None)
            logger.info("now serving %s version %s as %s (was %s)", name, wanted, alias, have or "none")
            changes.append(AliasChange(alias, wanted, "swapped"))
        return changes
