"""A secret set in the environment never appears in the worker's log output or metrics."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from driftline_tools.runner import WorkerProcess

from .conftest import TopicSet
from .test_stream_e2e import publish, read_outputs

pytestmark = pytest.mark.integration

SENTINEL = "never-log-me-5b0c2e"


def test_secret_stays_out_of_logs_and_metrics(topics: TopicSet, start_worker: Callable[..., WorkerProcess]) -> None:
    # PLAINTEXT, so the SASL password is configured but unused: the point is where it could leak.
    worker = start_worker(KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD=SENTINEL, DRIFTLINE_LOG_LEVEL="DEBUG")
    worker.wait_assigned()
    events, bad = publish(topics, valid=50, invalid=10)
    read_outputs(topics, len(events), len(bad))
    page = worker.scrape()
    worker.stop()
    log = worker.log_path.read_text(errors="replace")
    assert "settings:" in log and "**********" in log, "the settings line should show the secret masked"
    assert SENTINEL not in log
    assert SENTINEL not in page
