"""The demo: everything on the embedded stack, then a summary of what happened.

Starts the broker and Redis, creates topics, generates data, applies and materializes Feast,
trains if no model is in production, runs a worker, publishes events (some deliberately
invalid), waits for every one to come out as a prediction or a dead letter, and reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import orjson

from driftline.registry import ModelRegistry
from driftline.settings import ProducerSettings, StackSettings, TrainingSettings, WorkerSettings
from driftline_tools.runner import WorkerProcess, metric_value

logger = logging.getLogger(__name__)


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def run_demo(events: int, rate: float, invalid_fraction: float, keep_running: bool) -> Iterator[str]:
    """Run the demo end to end and yield its report, line by line."""
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
        yield f"{service.name}: {service.state} (pid {service.pid}) at {service.address}; log {service.log}"
    yield f"addresses recorded in {started_stack.endpoints_file}"

    # `up` recorded the stack's addresses: every settings class below, and the worker child, use
    # them unless the environment names other ones, which always wins.
    training = TrainingSettings()
    producer = ProducerSettings()
    worker_settings = WorkerSettings()
    logger.info("using %s", worker_settings.describe_connections())
    for topic in ensure_topics(producer):
        yield f"{topic.name}: {topic.outcome}, {topic.partitions} partitions {topic.note}".rstrip()
    if not (training.data_dir / TRANSACTIONS_FILE).exists():
        yield generate(training).summary()
    yield apply(training).summary()
    yield materialize(training).summary()
    registry = ModelRegistry(training.registry_dir)
    if registry.production_version(training.model_name) is None:
        yield train(training).summary()
    else:
        yield f"model {training.model_name} version {registry.production_version(training.model_name)} in production"

    log_path = training.home / "demo" / "worker.log"
    worker = WorkerProcess({}, log_path).start()
    try:
        worker.wait_assigned()
        yield f"worker started (log {log_path}); metrics on {worker.metrics_url}"
        started = datetime.now(UTC)
        summary = publish_generated(producer, count=events, rate=rate, invalid_fraction=invalid_fraction)
        yield summary.describe()
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
        reasons: dict[str, int] = {}
        for letter in dead_letters:
            reasons[letter["error_type"]] = reasons.get(letter["error_type"], 0) + 1
        yield ""
        yield "=== driftline demo summary ==="
        yield f"sent            {summary.sent} ({summary.invalid_sent} deliberately invalid)"
        yield f"scored          {len(predictions)} (flagged as fraud: {sum(p['decision'] for p in predictions)})"
        yield f"dead-lettered   {len(dead_letters)} {dict(sorted(reasons.items()))}"
        yield f"unaccounted     {summary.sent - len(predictions) - len(dead_letters)} (after waiting {waited:.1f}s)"
        yield (
            f"latency event_time -> scored: p50 {_percentile(latencies, 50):.1f} ms, "
            f"p99 {_percentile(latencies, 99):.1f} ms"
        )
        scored_metric = metric_value(page, "driftline_events_processed_total", {"outcome": "scored"})
        dead_metric = metric_value(page, "driftline_events_processed_total", {"outcome": "dead_lettered"})
        yield (
            f"worker metrics  {worker.metrics_url}: driftline_events_processed_total "
            f"scored={scored_metric:.0f} dead_lettered={dead_metric:.0f}"
        )
        yield f"model           {worker_settings.model_name} (see `driftline model list`)"
        yield "tail the output with `driftline tail --from-beginning --limit 5`"
    finally:
        code = worker.stop()
        logger.info("worker stopped with exit code %s", code)
    if not keep_running:
        for service in stack.down(stack_settings):
            yield f"{service.name}: {service.state}"
    else:
        yield "the embedded stack is still up; stop it with `driftline stack down`"
