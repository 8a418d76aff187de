"""Every dashboard and alert query answers on a real Prometheus scraping a real worker.

A real ``prometheus`` binary (Debian package; .ci/run installs it) scrapes one worker every second and
loads the generated rule file. After a few hundred events (some invalid, one with unknown entities)
every PromQL expression of both dashboards and of the alert rules is evaluated through the HTTP API
and must return at least one series; and every metric name any of them uses must be known to
Prometheus, so a misspelt name hidden behind ``or vector(0)`` or a ratio still fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from kafka import KafkaProducer

from drift.log import read_records
from driftline.kafka import kafka_python_options
from driftline_tools.runner import WorkerProcess, metric_value
from driftline_tools.stack import free_port
from monitoring import DATASOURCE_UID, WORKER_JOB
from tests.support import require_binary

from .conftest import ServedWorld, TopicSet
from .test_stream_e2e import publish

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULE_FILES = [ROOT / "prometheus" / "alerts.yml"]
# Metrics that legitimately have no series on a short healthy run. An expression may come back empty
# only if it uses one of them, and then each of its metric names must still be known to Prometheus
# (from the scrape's HELP/TYPE metadata when there is no sample yet).
MAY_BE_EMPTY = {
    # Counted only when a store value is older than its view's TTL; freshly materialized test data
    # never is, and the counter has no child until the first stale value.
    "driftline_stale_features_total": "no value is stale in a freshly materialized store",
    # Counted per failed send, labelled by the broker's error; a healthy run has none.
    "driftline_output_send_failures_total": "a healthy broker acknowledges every send",
    # Counted only when a version is refused or a canary rolled back; this run's versions are sound.
    "driftline_model_load_failures_total": "every version this run serves loads",
    "driftline_canary_rollbacks_total": "the canary guard is off in this run",
    # Set per model version only once a label has joined one of its predictions. This run publishes no
    # labels (the feedback-loop tests do: test_label_join.py checks these gauges on a worker), so the live
    # panels and DriftlineLivePerformanceLow stay empty here.
    # The feedback loop's other series are required here: the test metric exists once a version loads,
    # the CBPE estimate, labelled count and coverage once its first batch is scored (exported every 5 s),
    # and the label counters and histograms from the start.
    "driftline_live_performance": "no label is published in this run",
}
METRIC_NAME = re.compile(r"\b(driftline_[a-z0-9_]+|up)\b(?!\s*\()")
# Grafana's interval variables, replaced by a window that holds many 1 s scrapes.
GRAFANA_VARIABLE = re.compile(r"\$__(rate_interval|interval|range)\b")
SCRAPE_INTERVAL = "1s"


class PrometheusProcess:
    """A throwaway Prometheus on a free loopback port, with its own data folder."""

    def __init__(self, folder: Path, targets: list[str]) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / "prometheus.log"
        config = {
            "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [{"job_name": WORKER_JOB, "static_configs": [{"targets": targets}]}],
        }
        self.config_path = folder / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> PrometheusProcess:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [
                    require_binary("prometheus"),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"prometheus exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"prometheus not ready within {timeout_s:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def api(self, path: str, **params: str) -> Any:
        """GET/POST an /api/v1 endpoint and return its data (fails the test on an API error)."""
        body = urllib.parse.urlencode(params).encode() if params else None
        request = urllib.request.Request(f"{self.url}/api/v1/{path}", data=body)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            answer = json.loads(error.read())
        assert answer["status"] == "success", f"{path} {params}: {answer.get('error')}"
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data["result"]]
        return result

    def scalar(self, expr: str) -> float:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else float("nan")


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[list[str]], PrometheusProcess]]:
    require_binary("prometheus")
    started: list[PrometheusProcess] = []

    def start(targets: list[str]) -> PrometheusProcess:
        folder = tmp_path / f"prometheus-{len(started)}"
        folder.mkdir()
        process = PrometheusProcess(folder, targets)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


def _dashboard_exprs() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        stack = list(dashboard["panels"])
        while stack:
            panel = stack.pop()
            stack += panel.get("panels", [])
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"]))
    return found


def _alert_exprs() -> list[tuple[str, str]]:
    rules = yaml.safe_load((ROOT / "grafana" / "provisioning" / "alerting" / "rules.yaml").read_text())
    return [
        (f"alert {rule['title']} [{query['refId']}]", query["model"]["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
        for query in rule["data"]
        if query["datasourceUid"] == DATASOURCE_UID
    ]


def _publish_unknown_entity(topics: TopicSet) -> None:
    """One event whose customer and merchant are not in the store: its features are missing."""
    settings = topics.kafka()
    event = {
        "event_id": "monitoring-stranger", "event_time": datetime.now(UTC).isoformat(), "customer_id": "C-NEW",
        "merchant_id": "M-NEW", "amount": 42.0, "channel": "online", "hour_of_day": 3,
    }
    producer = KafkaProducer(**kafka_python_options(settings), acks="all")
    try:
        producer.send(settings.events_topic, value=orjson.dumps(event))
        producer.flush(timeout=30)
    finally:
        producer.close()


def _wait(what: str, condition: Callable[[], bool], timeout_s: float, detail: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout_s:.0f}s\n{detail()}")


def test_every_dashboard_and_alert_query_returns_series(
    topics: TopicSet,
    start_worker: Callable[..., WorkerProcess],
    prometheus_factory: Callable[[list[str]], PrometheusProcess],
    served_world: ServedWorld,
    unique: str,
) -> None:
    # A model of this test's own with a canary and a shadow, so the lifecycle panels have series too.
    model = f"fraud-mon-{unique}"
    first = served_world.register_copy(model)
    second = served_world.register_copy(model, threshold=0.05)
    registry = served_world.registry()
    registry.set_alias(model, "production", first.version, "monitoring test")
    registry.set_alias(model, "canary", second.version, "monitoring test")
    registry.set_alias(model, "shadow", second.version, "monitoring test")
    # Drift is evaluated every second over a small window, so its gauges exist within the test.
    worker = start_worker(
        DRIFTLINE_DRIFT_INTERVAL_S="1", DRIFTLINE_DRIFT_MIN_EVENTS="50", DRIFTLINE_MODEL_NAME=model,
        DRIFTLINE_CANARY_PERCENT="30", DRIFTLINE_CANARY_GUARD="false",
    )
    worker.wait_assigned()
    target = urllib.parse.urlsplit(worker.metrics_url).netloc
    prometheus = prometheus_factory([target])

    events, bad = publish(topics, valid=400, invalid=40, seed=21)
    _publish_unknown_entity(topics)
    total = len(events) + len(bad) + 1
    _wait(
        f"worker did not handle {total} events",
        lambda: metric_value(worker.scrape(), "driftline_events_processed_total") >= total,
        90, worker.log_tail,
    )
    # Give the drift monitor a few evaluations (1 s apart) after the last batch.
    time.sleep(3)
    _wait(
        "prometheus did not scrape the worker's final counts several times",
        lambda: prometheus.scalar("sum(driftline_events_processed_total)") >= total
        and prometheus.scalar(f'count_over_time(up{{job="{WORKER_JOB}"}}[5m])') >= 10,
        60, prometheus.log_tail,
    )
    assert prometheus.scalar(f'up{{job="{WORKER_JOB}"}}') == 1

    # The rule file is loaded and every rule evaluates without error.
    groups = prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {rule["name"] for rule in rules} >= {"DriftlineWorkerDown", "DriftlineEndToEndLatencyHigh"}
    _wait(
        "alert rules were not evaluated",
        lambda: all(r["health"] == "ok" for g in prometheus.api("rules")["groups"] for r in g["rules"]),
        30, lambda: json.dumps(prometheus.api("rules"), indent=1)[:4000],
    )

    names = set(prometheus.api("label/__name__/values"))
    metadata = set(prometheus.api("metadata"))
    exprs = _dashboard_exprs() + _alert_exprs()
    assert len(exprs) > 30
    failures: list[str] = []
    for where, expr in exprs:
        query = GRAFANA_VARIABLE.sub("1m", expr)
        assert "$" not in query, f"{where}: unknown variable in {expr}"
        used = set(METRIC_NAME.findall(query))
        exempt = used & set(MAY_BE_EMPTY)
        for name in sorted(used):
            family = re.sub(r"_(bucket|sum|count|total)$", "", name)
            known = name in names or (name in exempt and (name in metadata or family in metadata))
            if not known:
                failures.append(f"{where}: metric {name} unknown to Prometheus")
        if not prometheus.query(query) and not exempt:
            failures.append(f"{where}: no series for {query}")
    lifecycle = "\n".join(line for line in worker.scrape().splitlines() if "shadow" in line or "model_info" in line)
    assert not failures, "\n".join(failures) + f"\n--- lifecycle metrics ---\n{lifecycle}\n{worker.log_tail(40)}"

    # The worker also logs each evaluation, with freshness, for `driftline drift report`.
    drift_dir = Path(topics.env["DRIFTLINE_HOME"]) / "drift"
    _wait("the worker wrote no drift log", lambda: any(drift_dir.glob(f"{model}-*.jsonl")), 20, worker.log_tail)
    logs = list(drift_dir.glob(f"{model}-*.jsonl"))
    records, skipped = read_records(logs[0].read_text())
    assert records and skipped == 0
    assert records[-1].report.window_events > 0
    assert records[-1].model_name == model and logs[0].name == f"{model}-{records[-1].model_version}.jsonl"
    assert {"customer_stats", "merchant_stats"} <= set(records[-1].freshness)
