"""The naive contender: a Faust agent that does everything one event at a time.

Per event: Feast's synchronous ``get_online_features`` for that one entity row, one
``predict_proba`` on one row, one prediction sent and its acknowledgement awaited. It uses the same
Faust app and topics as the worker (``stream_app.app.create_app``, including the fetch wait the
embedded broker needs), so the difference measured is the agent, not the transport settings.
Run as ``python -m driftline_tools.bench.naive_app`` with the worker's environment.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from driftline.contracts import Prediction, StageTimings, prediction_id
from driftline.errors import ConfigError
from driftline.features import build_matrix
from driftline.logs import configure_logging
from driftline.registry import ModelRegistry
from driftline.settings import WorkerSettings

logger = logging.getLogger(__name__)


def build(settings: WorkerSettings) -> faust.Worker:
    """Wire the naive agent onto the worker's Faust app and topics."""
    from feature_repo.store import feature_store
    from stream_app.app import create_app

    store = feature_store(settings)
    model = ModelRegistry(settings).load(settings.model_name)
    meta, estimator = model.metadata, model.estimator
    if meta.threshold is None:
        raise ConfigError(f"the benchmark serves a binary classifier; {meta.name} is a {meta.task} model")
    threshold, positive = meta.threshold, meta.positive_index
    refs = meta.feature_refs
    full_names = {s.ref.replace(":", "__", 1): s.name for s in meta.features if s.source == "feast" and s.ref}
    request = [(s.name, s.field) for s in meta.features if s.source == "request" and s.field]
    app, topics = create_app(settings)

    async def score_each(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                event: dict[str, Any] = orjson.loads(value)
                t0 = time.perf_counter()
                entities: dict[str, str | int] = {e.join_key: event[e.field] for e in meta.entities}
                # Blocking on purpose: this is the per-event synchronous read a first version would write.
                columns = store.get_online_features(
                    features=refs, entity_rows=[entities], full_feature_names=True
                ).to_dict()
                t1 = time.perf_counter()
                row: dict[str, object] = {name: columns[full][0] for full, name in full_names.items()}
                for name, field in request:
                    row[name] = event.get(field)
                score = float(estimator.predict_proba(build_matrix(meta.features, [row]))[0, positive])
                t2 = time.perf_counter()
                prediction = Prediction(
                    event_id=event["event_id"],
                    prediction_id=prediction_id(event["event_id"], meta.name, meta.version),
                    entities=entities, model_name=meta.name, model_version=meta.version, score=score,
                    threshold=threshold, decision=score >= threshold,
                    missing_features=[n for n in full_names.values() if row.get(n) is None], degraded=False,
                    event_time=event["event_time"], scored_at=datetime.now(UTC),
                    timings=StageTimings(decode_s=0.0, features_s=t1 - t0, predict_s=t2 - t1),
                )
            except Exception:
                logger.exception("naive agent skipped an event")
                continue
            key = str(next(iter(entities.values()))).encode()
            ack = await topics.predictions.send(key=key, value=prediction.model_dump_json().encode())
            await ack

    app.agent(topics.events, name="score_each", concurrency=1)(score_each)
    return faust.Worker(app, loglevel=settings.log_level, quiet=True)


def main() -> None:
    """Entry point: ``python -m driftline_tools.bench.naive_app``."""
    settings = WorkerSettings()
    configure_logging(settings.log_level)
    build(settings).execute_from_commandline()


if __name__ == "__main__":
    main()
