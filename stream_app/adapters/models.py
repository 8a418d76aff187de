"""The model being served, and swapping it for a newly promoted version without a restart."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from drift.freshness import FreshnessWindow
from drift.monitor import DriftMonitor
from driftline.errors import DriftlineError
from driftline.features import FetchFeatures
from driftline.registry import LoadedModel, ModelRegistry
from driftline.settings import WorkerSettings
from feature_repo.online import FeastOnlineReader, check_model_against_store, view_ttls
from feature_repo.redis_reader import RedisOnlineReader, fast_read_problems, layout_from_store
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


class ModelHolder:
    """Holds the served model; a batch reads ``current`` once, so a swap never splits a batch."""

    def __init__(self, settings: WorkerSettings, store: Any) -> None:
        self._settings = settings
        self._store = store
        self._registry = ModelRegistry(settings.registry_dir)
        # One client for every model version; it connects lazily inside the worker's event loop.
        self._redis = redis.asyncio.Redis.from_url(settings.redis_url.get_secret_value())
        self._refused: str | None = None  # a version that failed to load is not retried every tick
        self.current = self._load(None)

    def _load(self, version: str | None) -> ServingModel:
        name = self._settings.model_name
        version = version or self._registry.production_version(name)
        if version is not None:
            # Metadata first: a model its feature service cannot serve is refused before unpickling.
            check_model_against_store(self._store, self._registry.read_metadata(name, version))
        model = self._registry.load(name, version)
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

    async def refresh(self) -> bool | None:
        """Swap to the production version if it changed: True swapped, False refused, None unchanged."""
        wanted = self._registry.production_version(self._settings.model_name)
        if wanted is None or wanted in (self.current.model.metadata.version, self._refused):
            return None
        try:
            # Unpickling and the checksum take tens of ms: keep them off the event loop.
            candidate = await asyncio.to_thread(self._load, wanted)
        except DriftlineError as exc:
            logger.error("not swapping to %s version %s: %s", self._settings.model_name, wanted, exc)
            self._refused = wanted
            return False
        old = self.current.model.metadata.version
        self.current = candidate
        logger.info("now serving %s version %s (was %s)", self._settings.model_name, wanted, old)
        return True
