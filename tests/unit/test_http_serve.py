"""``driftline serve`` without services: the body-to-records cut, the answers, and the app over ASGI.

The app is driven through its ASGI interface with a fake model holder (the real pipeline, a fake
store), so every answer is checked against what the stream's own validation says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, values
from sklearn.ensemble import HistGradientBoostingClassifier

from driftline.errors import ModelLoadError
from driftline.features import OnlineRows
from driftline.registry import FeatureSpec, LoadedModel, ModelMetadata
from driftline.settings import WorkerSettings
from driftline_tools.runner import metric_value
from stream_app.adapters.metrics import HTTP_EVENT_COUNTS, events_label
from stream_app.adapters.models import ServingModel
from stream_app.core.pipeline import BatchResult, RawRecord
from stream_app.core.routing import to_canary
from stream_app.core.validation import EventRules, Rejection, validate_event
from stream_app.http import (
    HTTP_SOURCE,
    Refusal,
    answers,
    array_elements,
    create_app,
    event_key,
    request_records,
    single_status,
)

SPECS = [
    FeatureSpec(name="avg_amount_30d", source="feast", ref="customer_stats:avg_amount_30d"),
    FeatureSpec(name="amount", source="request", field="amount", minimum=0.01, maximum=1_000_000),
]


def make_model(version: str) -> LoadedModel:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    estimator = HistGradientBoostingClassifier(max_iter=10).fit(x, (x[:, 1] > 0).astype(int))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    meta = ModelMetadata(
        name="fraud", version=version, created_at=now, feature_service="fraud_v1", features=SPECS,
        entity_fields={"customer_id": "customer_id"}, threshold=0.5,
        training_window=(now, now), metrics={}, library_versions={}, artifact_sha256="0" * 64,
    )
    return LoadedModel(metadata=meta, estimator=estimator)


class FakeStore:
    async def __call__(self, rows: list[dict[str, object]]) -> OnlineRows:
        return OnlineRows(values=[{"avg_amount_30d": 3.0 if r["customer_id"] != "C404" else None} for r in rows])


def serving_model(version: str) -> ServingModel:
    model = make_model(version)
    rules = EventRules.for_model(model.metadata.entities, SPECS, 4096, 300, 7 * 86_400)
    return ServingModel(model=model, rules=rules, reader=FakeStore(), view_ttls={}, drift=None,  # type: ignore[arg-type]
                        freshness=None)  # type: ignore[arg-type]


class FakeHolder:
    """What the app reads of a ModelHolder: the slots, and a refresh that follows the aliases."""

    def __init__(self, canary: ServingModel | None = None) -> None:
        self.current = serving_model("1")
        self.canary = canary
        self.shadow: ServingModel | None = None
        self.refreshes = 0

    def slot(self, alias: str) -> ServingModel | None:
        return {"production": self.current, "canary": self.canary, "shadow": self.shadow}[alias]

    async def refresh(self) -> list[Any]:
        self.refreshes += 1
        return []


def event(i: int, customer: str = "C1", amount: object = 12.5) -> dict[str, object]:
    at = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    return {"event_id": f"e{i}", "event_time": at, "customer_id": customer, "amount": amount}


# --- pure -------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
    | st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", '\\"', "\\\\", "é", "\n"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


@given(st.lists(json_values, max_size=6), st.sampled_from([None, 0, 2]), st.booleans())
def test_array_elements_cut_any_json_list_into_its_elements(
    items: list[object], indent: int | None, tight: bool
) -> None:
    separators = (",", ":") if tight else (" , ", " : ")
    raw = json.dumps(items, indent=indent, separators=separators, ensure_ascii=False).encode()
    pieces = array_elements(b" \n" + raw + b"\t ")
    # Each piece parses to the element the whole array parses to (orjson reads integers past 64 bits as
    # floats, so the parse of the whole, not the Python list, is the oracle).
    assert [orjson.loads(p) for p in pieces] == orjson.loads(raw)
    assert len(pieces) == len(items)
    assert all(p == p.strip() for p in pieces)


def test_array_elements_keep_each_event_as_written() -> None:
    raw = b'[ {"a": 1, "a": 2} ,{"s": "x,]}\\"["} , 7]'
    assert array_elements(raw) == [b'{"a": 1, "a": 2}', b'{"s": "x,]}\\"["}', b"7"]
    assert array_elements(b"[]") == [] and array_elements(b" [ ] ") == []


def test_event_key_is_what_producers_key_by() -> None:
    assert event_key({"customer_id": "C1"}, "customer_id") == b"C1"
    assert event_key({"customer_id": 42}, "customer_id") == b"42"
    assert event_key({"customer_id": True}, "customer_id") is None
    assert event_key({"customer_id": 1.5}, "customer_id") is None
    assert event_key({}, "customer_id") is None
    assert event_key(["C1"], "customer_id") is None
    assert event_key({"customer_id": "C1"}, None) is None


def test_request_records_one_event_keeps_the_body_whole() -> None:
    body = b'{"customer_id": "C7", "customer_id": "C8"}'
    parsed = request_records(body, "customer_id")
    assert not parsed.is_list
    assert parsed.records == [RawRecord(key=b"C8", value=body, topic=HTTP_SOURCE, partition=0, offset=0)]
    not_json = request_records(b"{nope", "customer_id")
    assert not_json.records == [RawRecord(key=None, value=b"{nope", topic=HTTP_SOURCE, partition=0, offset=0)]
    assert request_records(b"3", "customer_id").records[0].value == b"3"


def test_request_records_a_list_is_one_record_per_element_in_order() -> None:
    parsed = request_records(b'[{"customer_id": "C1"}, 5, {"customer_id": 9}]', "customer_id")
    assert parsed.is_list
    assert [(r.key, r.value, r.offset) for r in parsed.records] == [
        (b"C1", b'{"customer_id": "C1"}', 0), (None, b"5", 1), (b"9", b'{"customer_id": 9}', 2)
    ]
    assert request_records(b"[]", "customer_id").records == []


def test_answers_put_predictions_and_refusals_back_in_request_order() -> None:
    async def scored() -> BatchResult:
        from stream_app.core.pipeline import Clock, process_batch

        holder = FakeHolder()
        records = request_records(orjson.dumps([event(0), {"x": 1}, event(2, "C2")]), "customer_id").records
        clock = Clock(now=lambda: datetime.now(UTC), perf=lambda: 0.0)
        return await process_batch(records, holder.current.rules, holder.current.model, holder.current.reader, clock)

    result = asyncio.run(scored())
    got = answers(result, 3)
    assert [type(a).__name__ for a in got] == ["Prediction", "Refusal", "Prediction"]
    assert got[0].event_id == "e0" and got[2].event_id == "e2"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError):
        answers(result, 4)


def test_single_status() -> None:
    assert single_status(Refusal(error_type="invalid_field", reason="r")) == 400
    assert single_status(Refusal(error_type="not_json", reason="r")) == 400
    assert single_status(Refusal(error_type="scoring_failed", reason="r")) == 500


@pytest.mark.parametrize(("count", "label"), [
    (0, "0"), (1, "1"), (2, "2-10"), (10, "2-10"), (11, "11-100"), (100, "11-100"), (101, "101-1000"),
    (1000, "101-1000"), (1001, "1001+"), (10**6, "1001+"),
])
def test_events_label_is_bounded(count: int, label: str) -> None:
    assert events_label(count) == label and label in HTTP_EVENT_COUNTS


# --- the app over ASGI --------------------------------------------------------------------------------


async def call(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request through the app's ASGI interface."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def settings(tmp_path: Path, **extra: str) -> WorkerSettings:
    return WorkerSettings(**{"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_BATCH_SIZE": "5", **extra})  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _one_process_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in `driftline serve`: one process with its own registry. Importing feast sets Prometheus'
    # multi-process variable, and prometheus_client picks multi-process values when imported after it
    # (which this test session may have done): their counts are shared by every registry of the process.
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture
def holder() -> FakeHolder:
    return FakeHolder()


@pytest.fixture
def served(tmp_path: Path, holder: FakeHolder) -> Iterator[Any]:
    app = create_app(settings(tmp_path), store=None, registry=CollectorRegistry(), load=lambda: holder)  # type: ignore[arg-type,return-value]
    yield app


async def test_one_event_is_scored_as_the_stream_scores_it(served: Any) -> None:
    async with served.router.lifespan_context(served):
        status, body = await call(served, "POST", "/v1/score", orjson.dumps(event(1)))
    assert status == 200
    answer = orjson.loads(body)
    assert answer["event_id"] == "e1" and answer["model_version"] == "1" and 0 <= answer["score"] <= 1
    assert answer["missing_features"] == [] and answer["entities"] == {"customer_id": "C1"}


async def test_a_refused_event_is_400_with_the_streams_reason(served: Any, holder: FakeHolder) -> None:
    bad = orjson.dumps(event(1, amount=-3))
    expected = validate_event(bad, holder.current.rules, datetime.now(UTC), b"C1")
    assert isinstance(expected, Rejection)
    async with served.router.lifespan_context(served):
        status, body = await call(served, "POST", "/v1/score", bad)
        not_json_status, not_json = await call(served, "POST", "/v1/score", b"{nope")
        dup_status, dup = await call(served, "POST", "/v1/score", b'{"event_id": "a", "event_id": "b"}')
    assert status == 400
    assert orjson.loads(body) == {"error_type": expected.error_type, "reason": expected.reason, "event_id": "e1"}
    assert not_json_status == 400 and orjson.loads(not_json)["error_type"] == "not_json"
    assert dup_status == 400 and orjson.loads(dup)["error_type"] == "duplicate_field"


async def test_a_list_answers_each_event_in_order(served: Any) -> None:
    items = [event(0), event(1, amount="x"), event(2, "C404"), 7]
    body = b"[" + b",".join(orjson.dumps(i) for i in items[:3]) + b', {"event_id": "d", "event_id": "e"}, 7]'
    async with served.router.lifespan_context(served):
        status, answer = await call(served, "POST", "/v1/score", body)
        too_many_status, too_many = await call(served, "POST", "/v1/score", orjson.dumps([event(i) for i in range(6)]))
        empty_status, empty = await call(served, "POST", "/v1/score", b"[]")
    assert status == 200
    got = orjson.loads(answer)
    assert [a.get("event_id") for a in got] == ["e0", "e1", "e2", None, None]
    assert "prediction_id" in got[0] and got[1]["error_type"] == "invalid_field"
    assert got[2]["missing_features"] == ["avg_amount_30d"]
    assert got[3]["error_type"] == "duplicate_field" and got[4]["error_type"] == "not_json"
    assert too_many_status == 413 and orjson.loads(too_many)["error_type"] == "too_many_events"
    assert (empty_status, empty) == (200, b"[]")


async def test_metrics_count_requests_and_events(served: Any) -> None:
    names = [
        ("driftline_http_requests_total", {"status": "200"}), ("driftline_http_requests_total", {"status": "400"}),
        ("driftline_http_request_seconds_count", {"events": "2-10"}), ("driftline_events_received_total", None),
        ("driftline_events_processed_total", {"outcome": "scored"}),
        ("driftline_dead_letters_total", {"error_type": "not_json"}),
    ]

    async def scrape() -> list[float]:
        status, page = await call(served, "GET", "/metrics")
        assert status == 200
        return [metric_value(page.decode(), name, labels) for name, labels in names]

    async with served.router.lifespan_context(served):
        before = await scrape()
        await call(served, "POST", "/v1/score", orjson.dumps(event(1)))
        await call(served, "POST", "/v1/score", orjson.dumps([event(2), event(3), {"x": 1}]))
        await call(served, "POST", "/v1/score", b"nope")
        after = await scrape()
        _, page = await call(served, "GET", "/metrics")
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1, 5, 3, 1]
    assert metric_value(page.decode(), "driftline_model_info",
                        {"alias": "production", "model_name": "fraud", "model_version": "1"}) == 1


async def test_health_and_the_openapi_page_name_the_served_model(served: Any) -> None:
    async with served.router.lifespan_context(served):
        status, health = await call(served, "GET", "/healthz")
        _, spec = await call(served, "GET", "/openapi.json")
        docs_status, docs = await call(served, "GET", "/docs")
    assert status == 200 and orjson.loads(health) == {
        "status": "ok", "model_name": "fraud", "versions": {"production": "1"}, "reason": None
    }
    openapi = orjson.loads(spec)
    schemas = openapi["components"]["schemas"]
    assert {"Prediction", "Refusal", "Health", "Event"} <= set(schemas)
    assert set(schemas["Event"]["required"]) == {"event_id", "event_time", "customer_id", "amount"}
    post = openapi["paths"]["/v1/score"]["post"]
    assert set(post["responses"]) >= {"200", "400", "413", "500", "503"}
    assert post["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0] == {
        "$ref": "#/components/schemas/Event"
    }
    assert docs_status == 200 and b"swagger" in docs.lower()


async def test_canary_scores_its_share_of_keys_as_in_the_stream(tmp_path: Path) -> None:
    holder = FakeHolder(canary=serving_model("2"))
    app = create_app(settings(tmp_path, DRIFTLINE_CANARY_PERCENT="50", DRIFTLINE_BATCH_SIZE="100"),
                     store=None, registry=CollectorRegistry(), load=lambda: holder)  # type: ignore[arg-type,return-value]
    customers = [f"C{i}" for i in range(40)]
    async with app.router.lifespan_context(app):
        _, body = await call(app, "POST", "/v1/score", orjson.dumps([event(i, c) for i, c in enumerate(customers)]))
    versions = [p["model_version"] for p in orjson.loads(body)]
    assert versions == ["2" if to_canary(c.encode(), 50) else "1" for c in customers]
    assert set(versions) == {"1", "2"}


async def test_no_model_is_503_with_the_reason_until_a_poll_loads_one(tmp_path: Path, holder: FakeHolder) -> None:
    attempts: list[int] = []

    def load() -> FakeHolder:
        attempts.append(1)
        if len(attempts) < 3:
            raise ModelLoadError("no version of model fraud is registered")
        return holder

    app = create_app(settings(tmp_path, DRIFTLINE_MODEL_POLL_S="0.02"), store=None, registry=CollectorRegistry(),
                     load=load)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        status, body = await call(app, "POST", "/v1/score", orjson.dumps(event(1)))
        health_status, health = await call(app, "GET", "/healthz")
        assert status == 503 and health_status == 503
        assert orjson.loads(body) == {
            "error_type": "model_unavailable", "reason": "no version of model fraud is registered", "event_id": None
        }
        assert orjson.loads(health)["reason"] == "no version of model fraud is registered"
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(attempts) >= 3:
                break
        await asyncio.sleep(0.01)
        status, _ = await call(app, "POST", "/v1/score", orjson.dumps(event(1)))
        assert status == 200
        await asyncio.sleep(0.05)
    assert holder.refreshes >= 2  # once at load, then every poll
