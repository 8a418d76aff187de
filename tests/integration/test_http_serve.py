"""``driftline serve`` as a process on the served world: scores equal Feast's features through the model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftline.features import build_frame, build_matrix
from driftline.registry import LoadedModel, ModelRegistry
from driftline.settings import WorkerSettings
from driftline_tools.runner import metric_value
from driftline_tools.stack import free_port
from feature_repo.store import feature_store
from stream_app.core.validation import EventRules, Rejection, validate_event
from tests.integration.conftest import ServedWorld
from training.dataset import load_transactions

pytestmark = pytest.mark.integration


@dataclass
class Server:
    """A ``driftline serve`` child process and its log."""

    url: str
    popen: subprocess.Popen[bytes]
    log: Path

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def score(self, payload: object) -> tuple[int, Any]:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        status, answer = self.request("POST", "/v1/score", body)
        return status, orjson.loads(answer)

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        return metric_value(self.request("GET", "/metrics")[1].decode(), name, labels)

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def child_env(env: dict[str, str]) -> dict[str, str]:
    # Importing feast in this process set Prometheus' multi-process variables: not the child's to inherit.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    return {**inherited, **env}


def start_server(env: dict[str, str], log: Path, expect_health: int = 200) -> Server:
    port = free_port()
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "driftline_tools.cli", "serve", "--port", str(port)],
            env=child_env(env), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    server = Server(f"http://127.0.0.1:{port}", popen, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert popen.poll() is None, f"serve exited with {popen.returncode}:\n{server.log_tail()}"
        try:
            status, _ = server.request("GET", "/healthz")
        except OSError:
            time.sleep(0.2)
            continue
        assert status == expect_health, server.log_tail()
        return server
    stop(server)
    pytest.fail(f"serve did not answer within 120s:\n{server.log_tail()}")


def stop(server: Server) -> None:
    server.popen.send_signal(signal.SIGTERM)
    try:
        server.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.popen.kill()
        server.popen.wait()


@pytest.fixture(scope="module")
def server(served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(served_world.env, tmp_path_factory.mktemp("serve") / "serve.log")
    yield running
    stop(running)


@pytest.fixture(scope="module")
def model(served_world: ServedWorld) -> LoadedModel:
    settings = served_world.training()
    return ModelRegistry(settings).load(settings.model_name)


@pytest.fixture(scope="module")
def pairs(served_world: ServedWorld) -> list[tuple[str, str]]:
    """Customer and merchant of the world's latest transactions: entities the online store holds."""
    frame = load_transactions(served_world.training().data_dir).tail(100)
    return list(zip(frame["customer_id"], frame["merchant_id"], strict=True))


def event(i: int, customer: str, merchant: str, **fields: object) -> dict[str, object]:
    at = (datetime.now(UTC) - timedelta(seconds=2)).isoformat().replace("+00:00", "Z")
    return {"event_id": f"http-{i}", "event_time": at, "customer_id": customer, "merchant_id": merchant,
            "amount": 42.5 + i, "channel": ("online", "pos", "atm")[i % 3], "hour_of_day": i % 24, **fields}


def feast_scores(served_world: ServedWorld, model: LoadedModel, events: list[dict[str, object]]) -> list[float]:
    """The model on Feast's ``get_online_features`` for each event's entities plus its request fields."""
    meta = model.metadata
    store = feature_store(served_world.training())
    entity_rows = [{join_key: e[field] for field, join_key in meta.entity_fields.items()} for e in events]
    columns = store.get_online_features(
        features=meta.feature_refs, entity_rows=entity_rows, full_feature_names=True
    ).to_dict()
    rows: list[dict[str, object]] = []
    for i, e in enumerate(events):
        row: dict[str, object] = {
            s.name: columns[s.ref.replace(":", "__", 1)][i] for s in meta.features if s.source == "feast" and s.ref
        }
        row.update({s.name: e[s.field or s.name] for s in meta.features if s.source == "request"})
        rows.append(row)
    x = build_frame(meta.features, rows) if meta.input_format == "frame" else build_matrix(meta.features, rows)
    return [float(p) for p in model.estimator.predict_proba(x)[:, meta.positive_index]]


def test_one_event_scores_what_feast_and_the_model_say(
    server: Server, served_world: ServedWorld, model: LoadedModel, pairs: list[tuple[str, str]]
) -> None:
    one = event(0, *pairs[0])
    status, answer = server.score(one)
    assert status == 200, answer
    assert answer["event_id"] == "http-0" and answer["model_version"] == model.metadata.version
    assert answer["entities"] == {"customer_id": pairs[0][0], "merchant_id": pairs[0][1]}
    assert answer["missing_features"] == [] and answer["degraded"] is False
    [expected] = feast_scores(served_world, model, [one])
    assert answer["score"] == pytest.approx(expected, abs=1e-12)
    assert answer["decision"] == (answer["score"] >= model.metadata.threshold)


def test_a_list_of_100_answers_100_predictions_in_order(
    server: Server, served_world: ServedWorld, model: LoadedModel, pairs: list[tuple[str, str]]
) -> None:
    events = [event(i, c, m) for i, (c, m) in enumerate(pairs)]
    assert len(events) == 100
    status, answer = server.score(events)
    assert status == 200
    assert [a["event_id"] for a in answer] == [e["event_id"] for e in events]
    expected = feast_scores(served_world, model, events)
    assert [a["score"] for a in answer] == pytest.approx(expected, abs=1e-12)


def test_a_refused_event_is_400_with_the_streams_reason(
    server: Server, served_world: ServedWorld, model: LoadedModel, pairs: list[tuple[str, str]]
) -> None:
    bad = orjson.dumps(event(1, *pairs[1], amount=-5))
    settings = WorkerSettings(**served_world.env)  # type: ignore[arg-type]
    meta = model.metadata
    rules = EventRules.for_model(meta.entities, meta.features, settings.max_event_bytes, settings.max_future_skew_s,
                                 settings.max_event_age_s, meta.request_fields)
    expected = validate_event(bad, rules, datetime.now(UTC), pairs[1][0].encode())
    assert isinstance(expected, Rejection)
    status, answer = server.score(bad)
    assert status == 400
    assert answer == {"error_type": expected.error_type, "reason": expected.reason, "event_id": "http-1"}

    status, answer = server.score(b"this is not JSON")
    assert status == 400 and answer["error_type"] == "not_json"
    assert answer["reason"].startswith("the message is not valid UTF-8 JSON")

    # In a list, the refusal takes the event's place and the others are scored.
    status, answer = server.score([event(2, *pairs[2]), orjson.loads(bad)])
    assert status == 200
    assert "prediction_id" in answer[0] and answer[1]["reason"] == expected.reason


def test_metrics_count_the_requests(server: Server, pairs: list[tuple[str, str]]) -> None:
    ok, refused = server.metric("driftline_http_requests_total", {"status": "200"}), server.metric(
        "driftline_http_requests_total", {"status": "400"})
    received = server.metric("driftline_events_received_total")
    server.score(event(3, *pairs[3]))
    server.score([event(4, *pairs[4]), event(5, *pairs[5])])
    server.score(b"nope")
    assert server.metric("driftline_http_requests_total", {"status": "200"}) == ok + 2
    assert server.metric("driftline_http_requests_total", {"status": "400"}) == refused + 1
    assert server.metric("driftline_events_received_total") == received + 4
    assert server.metric("driftline_http_request_seconds_count", {"events": "2-10"}) >= 1
    assert server.metric("driftline_stage_duration_seconds_count", {"stage": "features"}) >= 3


def test_docs_and_openapi_answer(server: Server) -> None:
    status, page = server.request("GET", "/docs")
    assert status == 200 and b"swagger" in page.lower()
    status, spec = server.request("GET", "/openapi.json")
    assert status == 200
    openapi = orjson.loads(spec)
    assert "/v1/score" in openapi["paths"]
    schemas = openapi["components"]["schemas"]
    assert "score" in schemas["Prediction"]["properties"]
    assert {"customer_id", "merchant_id", "amount", "channel", "hour_of_day"} <= set(schemas["Event"]["properties"])


def test_without_a_model_it_answers_503_with_the_reason(served_world: ServedWorld, tmp_path: Path) -> None:
    env = {**served_world.env, "DRIFTLINE_MODEL_NAME": "no-such-model", "DRIFTLINE_MODEL_POLL_S": "0.5"}
    down = start_server(env, tmp_path / "serve.log", expect_health=503)
    try:
        status, answer = down.score(event(0, "C00001", "M0001"))
        assert status == 503 and answer["error_type"] == "model_unavailable"
        assert "no-such-model" in answer["reason"]
        status, health = down.request("GET", "/healthz")
        assert status == 503 and orjson.loads(health)["reason"] == answer["reason"]
        assert down.popen.poll() is None
    finally:
        stop(down)
