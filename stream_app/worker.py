"""Entry point of the stream worker: load and verify the model, serve metrics, join labels, run Faust."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

import faust
from prometheus_client import CollectorRegistry, start_http_server
from pydantic import ValidationError

from driftline.errors import DriftlineError
from driftline.logs import configure_logging
from driftline.settings import WorkerSettings
from stream_app.adapters.join_store import RedisJoinStore
from stream_app.adapters.labels import LabelJoiner
from stream_app.adapters.metrics import WorkerMetrics
from stream_app.adapters.models import ModelHolder
from stream_app.adapters.serving import serving_versions
from stream_app.agents import register_agents
from stream_app.app import create_app
from stream_app.core.pipeline import Clock

logger = logging.getLogger(__name__)


def check_online_store(settings: WorkerSettings, project: str) -> None:
    """Read Redis once with the configured credentials and TLS files, so a refusal stops the start.

    Wrong credentials, an ACL user without read rights or an untrusted certificate raise
    FeatureStoreAccessError (exit 2, one line). A Redis that does not answer yet is only logged: the
    worker scores degraded until it does, as it would after an outage. Skipped when REDIS_URL serves
    neither reader (a user's repo read through Feast, which connects as its own YAML says).
    """
    from feature_repo.redis_reader import check_redis_access

    if settings.feast_repo is not None and settings.feature_reader == "feast":
        return
    unreachable = check_redis_access(settings, project)
    if unreachable:
        logger.warning("%s; features are read degraded until it answers", unreachable)


def build_worker(settings: WorkerSettings) -> faust.Worker:
    """Wire everything; raises DriftlineError when no servable model can be loaded."""
    from feature_repo.store import feature_store

    # First line: where it connects and why (env, dev stack record, default); secrets print as '**********'.
    logger.info("using %s; settings: %r", settings.describe_connections(), settings)
    store = feature_store(settings)
    check_online_store(settings, store.project)
    holder = ModelHolder(settings, store)
    meta = holder.current.model.metadata
    logger.info(
        "serving %s version %s (%s, feature service %s, %d features, threshold %s)",
        meta.name, meta.version, meta.task, meta.feature_service, len(meta.features), meta.threshold,
    )
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    metrics.serving(meta.name, serving_versions(holder))
    start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    logger.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)

    app, topics = create_app(settings)
    clock = Clock(now=lambda: datetime.now(UTC), perf=time.perf_counter)
    # The join store's client connects lazily, inside the worker's event loop.
    joiner = (
        LabelJoiner(RedisJoinStore.from_settings(settings), metrics, settings, clock) if settings.label_join else None
    )
    if joiner is None:
        logger.info("label join off (DRIFTLINE_LABEL_JOIN=false): the labels topic is not read, no prediction is kept")
    else:
        logger.info(
            "joining labels from %s to the predictions kept in Redis under %s* for %.0fs (window %.0fs + grace %.0fs)",
            settings.labels_topic, settings.join_prefix, settings.label_window_s + settings.label_grace_s,
            settings.label_window_s, settings.label_grace_s,
        )
    register_agents(app, topics, holder, metrics, clock, settings, drift_log_home=settings.home, joiner=joiner)
    return faust.Worker(app, loglevel=settings.log_level, quiet=True)


def main() -> None:
    """Run the worker until SIGTERM/SIGINT; exit 2 with the reason when it cannot start."""
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        configure_logging("INFO")
        logger.error("worker cannot start: invalid setting: %s", problems)
        sys.exit(2)
    configure_logging(settings.log_level)
    try:
        worker = build_worker(settings)
    except DriftlineError as exc:
        logger.error("worker cannot start: %s", exc)
        sys.exit(2)
    worker.execute_from_commandline()
