"""The raw floor: the least Python that does the worker's job, to show what the stack itself costs.

aiokafka consumer in a group, ``getmany`` batches, one pipelined redis.asyncio HMGET read of
Feast's hashes per batch (keys computed once per entity, values decoded without Feast), one
``predict_proba`` per batch, one aiokafka send per prediction, wait for the acks, commit. No
validation, no dead letters, no metrics, no drift: whatever driftline costs above this is the price
of those. Run as ``python -m driftline_tools.bench.raw_floor --layout FILE`` with the worker's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from driftline.contracts import prediction_id
from driftline.errors import ConfigError
from driftline.features import build_matrix
from driftline.logs import configure_logging
from driftline.registry import ModelRegistry
from driftline.settings import WorkerSettings
from feature_repo.redis_reader import RedisLayout, RedisOnlineReader
from stream_app.adapters.models import limit_model_threads

logger = logging.getLogger(__name__)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


async def run(settings: WorkerSettings, layout: RedisLayout, stop: asyncio.Event) -> None:
    """Score batches until ``stop`` is set."""
    import redis.asyncio as aioredis
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    model = ModelRegistry(settings).load(settings.model_name)
    meta, estimator = model.metadata, model.estimator
    limit_model_threads(settings.model_threads)  # the floor gets the thread setting driftline uses
    request = [(s.name, s.field) for s in meta.features if s.source == "request" and s.field]
    entity_fields = list(meta.entity_fields.items())  # event field -> join key
    if meta.threshold is None:
        raise ConfigError(f"the benchmark serves a binary classifier; {meta.name} is a {meta.task} model")
    threshold, positive = meta.threshold, meta.positive_index
    servers = settings.bootstrap_servers.split(",")
    consumer = AIOKafkaConsumer(
        settings.events_topic, bootstrap_servers=servers, group_id=settings.group_id,
        enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=settings.fetch_max_wait_ms,
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(min(1.0, settings.session_timeout_s / 3) * 1000),
    )
    # No idempotence: the embedded broker refuses InitProducerId.
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, acks="all", linger_ms=settings.output_linger_ms,
        max_batch_size=settings.output_batch_bytes, enable_idempotence=False,
    )
    client: Any = aioredis.from_url(settings.redis_url.get_secret_value())
    reader = RedisOnlineReader(client, layout, settings.feature_timeout_s)
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=settings.batch_size)
            records = [record for part in batches.values() for record in part]
            if not records:
                continue
            t0 = time.perf_counter()
            events: list[dict[str, Any]] = [orjson.loads(record.value) for record in records]
            t1 = time.perf_counter()
            rows = (await reader([layout.entity_row(event) for event in events])).values
            t2 = time.perf_counter()
            for row, event in zip(rows, events, strict=True):
                for name, field in request:
                    row[name] = event.get(field)
            proba = estimator.predict_proba(build_matrix(meta.features, rows))
            scores = np.asarray(proba[:, positive], dtype=np.float64)
            t3 = time.perf_counter()
            scored_at = _iso(datetime.now(UTC))
            timings = {"decode_s": t1 - t0, "features_s": t2 - t1, "predict_s": t3 - t2}
            pending = []
            for event, row, score in zip(events, rows, scores.tolist(), strict=True):
                entities = {join_key: event[field] for field, join_key in entity_fields}
                value = orjson.dumps({
                    "event_id": event["event_id"],
                    "prediction_id": prediction_id(event["event_id"], meta.name, meta.version),
                    "entities": entities, "model_name": meta.name, "model_version": meta.version,
                    "score": score, "threshold": threshold, "decision": score >= threshold,
                    "missing_features": [c for c in row if row[c] is None], "degraded": False,
                    "event_time": event["event_time"], "scored_at": scored_at, "timings": timings,
                })
                key = str(next(iter(entities.values()), event["event_id"])).encode()
                pending.append(await producer.send(settings.predictions_topic, value=value, key=key))
            await asyncio.gather(*pending)
            await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
        await client.aclose()


async def _main(settings: WorkerSettings, layout: RedisLayout) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, layout, stop)


def main() -> None:
    """Entry point: ``python -m driftline_tools.bench.raw_floor --layout FILE``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layout", type=Path, required=True, help="RedisLayout JSON written by the bench.")
    args = parser.parse_args()
    settings = WorkerSettings()
    configure_logging(settings.log_level)
    asyncio.run(_main(settings, RedisLayout.read(args.layout)))


if __name__ == "__main__":
    main()
