"""The demo: everything on the embedded stack, then a summary of what happened.

Starts the broker and Redis, creates topics, generates data, applies and materializes Feast,
trains if no model is in production, runs a worker, publishes events (some deliberately
invalid), waits for every one to come out as a prediction or a dead letter, and returns the
figures as a :class:`DemoResult`. The steps on the way are logged; the CLI renders the result.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson

from driftline.registry import ModelRegistry
from driftline.settings import ProducerSettings, StackSettings, TrainingSettings, WorkerSettings
from driftline_tools.runner import WorkerProcess, metric_value

logger = logging.getLogger(__name__)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


@dataclass(frozen=True)
class DemoResult:
    """How every event the demo sent came out, and where to look next."""

    sent: int
    invalid_sent: int  # deliberately invalid, among ``sent``
    scored: int
    flagged: int  # predictions whose decision is fraud
    dead_lettered: int
    dead_letters_by_type: dict[str, int]  # error type -> count, sorted by type
    unaccounted: int  # sent, but neither scored nor dead-lettered when the wait ended
    waited_s: float
    latency_p50_ms: float  # event_time -> scored_at; NaN when nothing was scored
    latency_p99_ms: float
    metrics_url: str
    metrics_scored: float  # driftline_events_processed_total{outcome="scored"} on the worker's page
    metrics_dead_lettered: float
    model: str
    model_version: str | None  # in production when the worker started
    worker_log: Path
    stack_running: bool  # the embedded stack was left up


def run_demo(events: int, rate: float, invalid_fraction: float, keep_running: bool) -> DemoResult:
    """Run the demo end to end and return its figures; each step on the way is logged."""
    from driftline_tools import stack
    from feature_repo.store import apply, materialize
    from producers.admin import ensure_topics
    from producers.collect import collect
    from producers.publish import publish_generated
    from training.data import TRANSACTIONS_FILE, generate
    from training.train import run as train

    stack_settings = StackSettings()
    started_stack = stack.up(stack_settings)
    for service in started_stack.services:
        logger.info("%s: %s (pid %s) at %s; log %s", service.name, service.state, service.pid, service.address,
                    service.log)
    logger.info("addresses recorded in %s", started_stack.endpoints_file)

    # `up` recorded the stack's addresses: every settings class below, and the worker child, use
    # them unless the environment names other ones, which always wins.
    training = TrainingSettings()
    producer = ProducerSettings()
    worker_settings = WorkerSettings()
    logger.info("using %s", worker_settings.describe_connections())
    for topic in ensure_topics(producer):
        logger.info("topic %s: %s, %d partitions %s", topic.name, topic.outcome, topic.partitions, topic.note)
    if not (training.data_dir / TRANSACTIONS_FILE).exists():
        logger.info("%s", generate(training).summary())
    logger.info("%s", apply(training).summary())
    logger.info("%s", materialize(training).summary())
    registry = ModelRegistry(training)
    if registry.production_version(training.model_name) is None:
        logger.info("%s", train(training).summary())
    model_version = registry.production_version(training.model_name)
    logger.info("model %s version %s in production", training.model_name, model_version)

    log_path = training.home / "demo" / "worker.log"
    worker = WorkerProcess({}, log_path).start()
    try:
        worker.wait_assigned()
        logger.info("worker started (log %s); metrics on %s", log_path, worker.metrics_url)
        started = datetime.now(UTC)
        summary = publish_generated(producer, count=events, rate=rate, invalid_fraction=invalid_fraction)
        logger.info("published %d of %d events to %s (%d invalid) in %.2fs; %d failed", summary.sent,
                    summary.attempted, summary.topic, summary.invalid_sent, summary.seconds, summary.failed)
        expected_valid = summary.sent - summary.invalid_sent

        # This run's events carry event_time >= started (stamped at send); older events that an
        # earlier, crashed worker never committed may be redelivered now and are not counted.
        def _is_this_run(value: bytes, field: str) -> bool:
            stamp = orjson.loads(value).get(field, "")
            return datetime.fromisoformat(stamp) >= started

        def done(c: object) -> bool:
            from producers.collect import Collected

            assert isinstance(c, Collected)
            scored = sum(_is_this_run(v, "event_time") for v in c.values(producer.predictions_topic))
            dead = sum(_is_this_run(v, "failed_at") for v in c.values(producer.dead_letter_topic))
            return scored >= expected_valid and dead >= summary.invalid_sent

        logger.info("waiting for every event to come out as a prediction or a dead letter")
        t0 = time.monotonic()
        got = collect(producer, [producer.predictions_topic, producer.dead_letter_topic], done, timeout_s=120)
        waited = time.monotonic() - t0
        predictions = [
            orjson.loads(v) for v in got.values(producer.predictions_topic) if _is_this_run(v, "event_time")
        ]
        dead_letters = [
            orjson.loads(v) for v in got.values(producer.dead_letter_topic) if _is_this_run(v, "failed_at")
        ]
        # Latency as the worker saw it: event_time to the prediction being scored, in ms.
        latencies = [
            (datetime.fromisoformat(p["scored_at"]) - datetime.fromisoformat(p["event_time"])).total_seconds()
            * 1000
            for p in predictions
        ]
        page = worker.scrape()
    finally:
        code = worker.stop()
        logger.info("worker stopped with exit code %s", code)
    if not keep_running:
        for service in stack.down(stack_settings):
            logger.info("%s: %s", service.name, service.state)
    by_type = Counter(str(letter["error_type"]) for letter in dead_letters)
    return DemoResult(
        sent=summary.sent,
        invalid_sent=summary.invalid_sent,
        scored=len(predictions),
        flagged=sum(bool(p["decision"]) for p in predictions),
        dead_lettered=len(dead_letters),
        dead_letters_by_type=dict(sorted(by_type.items())),
        unaccounted=summary.sent - len(predictions) - len(dead_letters),
        waited_s=waited,
        latency_p50_ms=_percentile(latencies, 50),
        latency_p99_ms=_percentile(latencies, 99),
        metrics_url=worker.metrics_url,
        metrics_scored=metric_value(page, "driftline_events_processed_total", {"outcome": "scored"}),
        metrics_dead_lettered=metric_value(page, "driftline_events_processed_total", {"outcome": "dead_lettered"}),
        model=worker_settings.model_name,
        model_version=model_version,
        worker_log=log_path,
        stack_running=keep_running,
    )
