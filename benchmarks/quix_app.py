"""Quix Streams peers of driftline in ``driftline bench``: what a user would write instead of driftline.

Two variants of one application, picked by ``--variant``:

* ``quix``: the shape Quix's documentation shows. ``Application`` -> ``app.dataframe(events)`` ->
  ``.apply(score)`` -> ``.to_topic(predictions)``; per event one Feast ``get_online_features`` for the
  event's entity keys (the served model's feature service) and one ``predict_proba`` on one row.
* ``quix-tuned``: the same pipeline as a competent Quix user would tune it. scikit-learn's OpenMP and
  BLAS pools are pinned to one thread (threadpoolctl): a one-row prediction gains nothing from threads
  and pays their start-up and contention. And feature values are cached per entity: each feature view's
  values are kept per join key for ``CACHE_TTL_S`` (1 s), and only the views that missed are read from
  Feast, in one call. **Staleness:** a prediction may use feature values up to 1 s older than the
  online store holds at that moment.

Both load the model from driftline's registry (``DRIFTLINE_MODEL_NAME``'s production version) and read
the same Feast repo, so every contender scores the same version on the same features; the records on the
predictions topic are driftline's ``Prediction`` contract. Transport settings are the ones the embedded
broker needs, the same the other contenders get: idempotence off (it refuses InitProducerId), the
worker's session timeout (a join takes about half of it there) and fetch wait (it holds every fetch for
the whole wait). Plaintext only: the benchmark runs on its own embedded stack.

Run as ``python benchmarks/quix_app.py --variant quix`` (or ``quix-tuned``) with the worker's environment.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from driftline.contracts import Prediction, StageTimings, prediction_id
from driftline.errors import ConfigError
from driftline.features import build_matrix
from driftline.logs import configure_logging
from driftline.registry import FeatureSpec, LoadedModel, ModelMetadata, ModelRegistry
from driftline.settings import WorkerSettings

if TYPE_CHECKING:
    from feast import FeatureStore
    from quixstreams import Application

logger = logging.getLogger(__name__)

Variant = Literal["quix", "quix-tuned"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)

#: How long quix-tuned serves a feature view's values for one join key before reading them again.
CACHE_TTL_S = 1.0
#: Entries kept at most; past it the expired ones are dropped (and all of them if none has expired).
CACHE_MAX_ENTRIES = 100_000

#: An event's entity row: Feast join key -> value.
EntityRow = dict[str, Any]
#: Reads one event's model inputs from the online store: FeatureSpec.name -> value (None when missing).
ReadRow = Callable[[EntityRow], dict[str, object]]


def _full_name(ref: str) -> str:
    """Feast's column name for ``view:feature`` with ``full_feature_names=True``."""
    return ref.replace(":", "__", 1)


class TtlCache:
    """Values per key for ``ttl_s`` seconds of ``clock``."""

    def __init__(self, ttl_s: float, max_entries: int = CACHE_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, dict[str, object]]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> dict[str, object] | None:
        """The value stored under ``key`` less than ``ttl_s`` ago, else None."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] < self.ttl_s:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: dict[str, object]) -> None:
        """Store ``value`` under ``key`` from now on."""
        now = self._clock()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: e for k, e in self._entries.items() if now - e[0] < self.ttl_s}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (now, value)


class FeastRows:
    """One Feast online read per event: the served model's feature service for the event's entity keys."""

    def __init__(self, store: FeatureStore, meta: ModelMetadata) -> None:
        self._store = store
        self._service = store.get_feature_service(meta.feature_service)
        self._columns = {_full_name(s.ref): s.name for s in meta.features if s.source == "feast" and s.ref}

    def __call__(self, entities: EntityRow) -> dict[str, object]:
        """The event's feast features by model column name."""
        columns = self._store.get_online_features(
            features=self._service, entity_rows=[entities], full_feature_names=True
        ).to_dict()
        return {name: columns[full][0] for full, name in self._columns.items()}


class CachedFeastRows:
    """Feast reads through a per-entity cache: each feature view's values per join key, for ``ttl_s``."""

    def __init__(self, store: FeatureStore, meta: ModelMetadata, ttl_s: float = CACHE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self.cache = TtlCache(ttl_s, clock=clock)
        specs: dict[str, list[FeatureSpec]] = {}
        for spec in meta.features:
            if spec.source == "feast" and spec.feature_view:
                specs.setdefault(spec.feature_view, []).append(spec)
        # view -> (its join keys, its model inputs); a view the store does not know as a plain feature
        # view (an on-demand view reads the event itself) fails here, at start, not per event.
        self._views = {view: (list(store.get_feature_view(view).join_keys), view_specs)
                       for view, view_specs in specs.items()}

    def __call__(self, entities: EntityRow) -> dict[str, object]:
        """The event's feast features by model column name, cached ones included."""
        row: dict[str, object] = {}
        missed: list[tuple[str, tuple[object, ...]]] = []
        for view, (join_keys, _) in self._views.items():
            key = (view, *(entities[k] for k in join_keys))
            cached = self.cache.get(key)
            if cached is None:
                missed.append((view, key))
            else:
                row.update(cached)
        if missed:
            refs = [s.ref for view, _ in missed for s in self._views[view][1] if s.ref]
            entity_row = {k: entities[k] for view, _ in missed for k in self._views[view][0]}
            columns = self._store.get_online_features(
                features=refs, entity_rows=[entity_row], full_feature_names=True
            ).to_dict()
            for view, key in missed:
                values = {s.name: columns[_full_name(s.ref)][0] for s in self._views[view][1] if s.ref}
                self.cache.put(key, values)
                row.update(values)
        return row


class Scorer:
    """Scores one decoded event into a ``Prediction`` record (a JSON-ready dict)."""

    def __init__(self, model: LoadedModel, read_row: ReadRow) -> None:
        meta = model.metadata
        if meta.threshold is None:
            raise ConfigError(f"the benchmark serves a binary classifier; {meta.name} is a {meta.task} model")
        self._meta, self._estimator, self._read_row = meta, model.estimator, read_row
        self._threshold, self._positive = meta.threshold, meta.positive_index
        self._request = [(s.name, s.field) for s in meta.features if s.source == "request" and s.field]
        self._feast_names = [s.name for s in meta.features if s.source == "feast"]

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        """The prediction for ``event``."""
        meta = self._meta
        t0 = time.perf_counter()
        entities: EntityRow = {e.join_key: event[e.field] for e in meta.entities}
        row = self._read_row(entities)
        t1 = time.perf_counter()
        for name, field in self._request:
            row[name] = event.get(field)
        score = float(self._estimator.predict_proba(build_matrix(meta.features, [row]))[0, self._positive])
        t2 = time.perf_counter()
        return Prediction(
            event_id=event["event_id"], prediction_id=prediction_id(event["event_id"], meta.name, meta.version),
            entities=entities, model_name=meta.name, model_version=meta.version, score=score,
            threshold=self._threshold, decision=score >= self._threshold,
            missing_features=[n for n in self._feast_names if row.get(n) is None], degraded=False,
            event_time=event["event_time"], scored_at=datetime.now(UTC),
            timings=StageTimings(decode_s=0.0, features_s=t1 - t0, predict_s=t2 - t1),
        ).model_dump(mode="json")


def _skip_failed_event(exc: Exception, row: object, logger_: logging.Logger) -> bool:
    """Quix's ``on_processing_error``: log the event that failed and go on (True: do not stop)."""
    logger_.exception("skipped an event that failed to score", exc_info=exc)
    return True


def build_app(settings: WorkerSettings, variant: Variant) -> Application:
    """The Quix application: events -> score -> predictions, on the worker's topics and group."""
    from quixstreams import Application

    from feature_repo.store import feature_store

    store = feature_store(settings)
    model = ModelRegistry(settings).load(settings.model_name)
    read_row: ReadRow = (CachedFeastRows(store, model.metadata) if variant == "quix-tuned"
                         else FeastRows(store, model.metadata))
    score = Scorer(model, read_row)
    app = Application(
        broker_address=settings.bootstrap_servers,
        consumer_group=settings.group_id,
        auto_offset_reset="earliest",
        consumer_extra_config={
            "session.timeout.ms": int(settings.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(min(1.0, settings.session_timeout_s / 3) * 1000),
            "fetch.wait.max.ms": settings.fetch_max_wait_ms,
        },
        producer_extra_config={"enable.idempotence": False},
        loglevel=settings.log_level,
        use_changelog_topics=False,
        state_dir=settings.home / "quix-state" / settings.group_id,
        on_processing_error=_skip_failed_event,
    )
    events = app.topic(settings.events_topic, value_deserializer="json")
    predictions = app.topic(settings.predictions_topic, value_serializer="json")
    sdf = app.dataframe(events)
    sdf = sdf.apply(score)
    sdf.to_topic(predictions)
    return app


def pin_threads() -> object:
    """Limit every OpenMP and BLAS pool of the process to one thread; keep the returned limiter alive."""
    from threadpoolctl import threadpool_info, threadpool_limits

    limiter = threadpool_limits(limits=1)
    logger.info("thread pools pinned to one thread: %s",
                ", ".join(f"{p['internal_api']}={p['num_threads']}" for p in threadpool_info()))
    return limiter


def main() -> None:
    """Entry point: ``python benchmarks/quix_app.py --variant quix|quix-tuned``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, default="quix", help="Which Quix application to run.")
    args = parser.parse_args()
    settings = WorkerSettings()
    configure_logging(settings.log_level)
    variant: Variant = args.variant
    app = build_app(settings, variant)
    _limiter = pin_threads() if variant == "quix-tuned" else None  # the limits hold while it lives
    logger.info("quix variant %s on %s -> %s", variant, settings.events_topic, settings.predictions_topic)
    app.run()


if __name__ == "__main__":
    main()
