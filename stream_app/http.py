"""``driftline serve``: score events over HTTP with the stream worker's own code path.

``POST /v1/score`` takes one event (a JSON object: the bytes a producer would send to the events
topic) or a JSON list of them. Each event becomes a ``RawRecord`` with its bytes as sent and the key
producers give it (its first entity field, as text), and the records go through
``stream_app.adapters.serving.score_routed``: ``process_batch`` with production, and with the canary
for the canary's share of keys, exactly as in the stream. Answers:

- one event: 200 with its ``Prediction``; 400 with ``{error_type, reason, event_id}`` when the stream
  would dead-letter it (the dead letter's type and reason; a body that is not JSON is such an event);
  500 when the model raised on it (``scoring_failed``);
- a list: 200 with one item per event, in the request's order: its ``Prediction``, or
  ``{error_type, reason, event_id}`` when the stream would dead-letter it;
- a body above DRIFTLINE_BATCH_SIZE x DRIFTLINE_MAX_EVENT_BYTES bytes, or a list of more than
  DRIFTLINE_BATCH_SIZE events: 413;
- while no model can be loaded: 503 with the reason; the load is retried every DRIFTLINE_MODEL_POLL_S.

Nothing is published to Kafka: the caller gets the prediction or the reason. The worker's metrics
are fed as the worker feeds them; the "publish" stage is the time to build the response.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field
from pydantic_core import to_json

from driftline.contracts import DeadLetterType, Prediction
from driftline.errors import DriftlineError
from driftline.settings import WorkerSettings, mask_url
from stream_app.adapters.metrics import HttpMetrics, WorkerMetrics
from stream_app.adapters.models import ModelHolder
from stream_app.adapters.serving import follow_aliases, score_routed, serving_versions
from stream_app.core.pipeline import BatchResult, Clock, RawRecord
from stream_app.core.validation import event_json_schema

logger = logging.getLogger(__name__)

#: The source topic of a request's records and their refusals; a record's offset is its position in the request.
HTTP_SOURCE = "http"

RequestErrorType = DeadLetterType | Literal["too_many_events", "model_unavailable"]


class Refusal(BaseModel):
    """Why an event, or a whole request, is not scored: for an event, the stream's dead-letter type and reason."""

    error_type: RequestErrorType = Field(
        description="A dead-letter type (too_large, not_json, missing_field, invalid_field, duplicate_field, "
        "scoring_failed), or for a whole request too_many_events or model_unavailable."
    )
    reason: str = Field(description="Readable reason, naming the field and the rule it broke.")
    event_id: str | None = Field(default=None, description="The event id, when it could be read.")


class Health(BaseModel):
    """Whether a model is served (the versions by alias), or why none is."""

    status: Literal["ok", "unavailable"]
    model_name: str
    versions: dict[str, str] = Field(default_factory=dict, description="Alias -> version served.")
    reason: str | None = Field(default=None, description="Why no model is served.")


# --- the request body as the records the stream would consume (pure) -----------------------------

# A JSON string (escapes included) or one structural character; strings are matched whole, so a
# bracket or comma inside one is never taken for structure.
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
_QUOTE, _OPENING, _CLOSING = ord('"'), b"[{", b"]}"


def array_elements(raw: bytes) -> list[bytes]:
    """The bytes of each element of ``raw``, a valid JSON array, as written (surrounding spaces cut).

    Each event keeps the bytes its sender wrote, so the stream's rules that read bytes judge what a
    producer would have sent: the size limit, and a key repeated in an object (a parser keeps the
    last value silently, so re-serializing would hide the repeat).
    """
    elements: list[bytes] = []
    depth = 0
    start = 0
    for match in _STRUCTURE.finditer(raw):
        token = raw[match.start()]
        if token == _QUOTE:
            continue
        if token in _OPENING:
            depth += 1
            if depth == 1:
                start = match.end()
        elif token in _CLOSING:
            if depth == 1:
                last = raw[start : match.start()].strip()
                if last or elements:  # "[]" has no element
                    elements.append(last)
            depth -= 1
        elif depth == 1:  # a comma between two elements of the array
            elements.append(raw[start : match.start()].strip())
            start = match.end()
    return elements


def event_key(event: object, key_field: str | None) -> bytes | None:
    """The key producers give ``event``: its ``key_field`` (a string or a whole number) as text, else None."""
    if key_field is None or not isinstance(event, dict):
        return None
    value = event.get(key_field)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).encode()


@dataclass(frozen=True, slots=True)
class ScoringRequest:
    """A request body as the records the stream would consume, and whether the body was a list."""

    records: list[RawRecord]
    is_list: bool


def _record(key: bytes | None, value: bytes, position: int) -> RawRecord:
    return RawRecord(key=key, value=value, topic=HTTP_SOURCE, partition=0, offset=position)


def request_records(body: bytes, key_field: str | None) -> ScoringRequest:
    """One record per event of ``body``: a JSON list's elements, else the whole body as one event.

    A body that is not JSON, or JSON but not an object, is one event that the stream's validation
    refuses with its own reason.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ScoringRequest([_record(None, body, 0)], is_list=False)
    if not isinstance(doc, list):
        return ScoringRequest([_record(event_key(doc, key_field), body, 0)], is_list=False)
    raws = array_elements(body)
    if len(raws) != len(doc):  # cannot happen for valid JSON; the parsed events are scored all the same
        logger.warning("could not cut a list of %d events into its elements; re-serializing them", len(doc))
        raws = [orjson.dumps(item) for item in doc]
    records = [_record(event_key(item, key_field), raw, i) for i, (item, raw) in enumerate(zip(doc, raws, strict=True))]
    return ScoringRequest(records, is_list=True)


def answers(result: BatchResult, count: int) -> list[Prediction | Refusal]:
    """One answer per record of a request of ``count`` records, in order: its prediction or its refusal."""
    found: list[Prediction | Refusal | None] = [None] * count
    for prediction, source in zip(result.predictions, result.prediction_sources, strict=True):
        found[source.offset] = prediction
    for letter in result.dead_letters:
        found[letter.source_offset] = Refusal(
            error_type=letter.error_type, reason=letter.reason, event_id=letter.event_id
        )
    out = [answer for answer in found if answer is not None]
    if len(out) != count:  # process_batch answers every record exactly once
        raise RuntimeError(f"{count - len(out)} of {count} events got no answer from the pipeline")
    return out


def single_status(answer: Prediction | Refusal) -> int:
    """The HTTP status of a one-event request: scored 200, refused 400, the model failed on it 500."""
    if isinstance(answer, Prediction):
        return 200
    return 500 if answer.error_type == "scoring_failed" else 400


# --- the app ----------------------------------------------------------------------------------------


class _Serving:
    """The model holder once a model has loaded, or why none has."""

    def __init__(self) -> None:
        self.holder: ModelHolder | None = None
        self.problem = "the model is not loaded yet"


class _ScoringApp(FastAPI):
    """FastAPI whose OpenAPI page documents the event the served model expects (it changes with the model)."""

    event_schema: Callable[[], dict[str, Any]]

    def openapi(self) -> dict[str, Any]:
        """The cached schema, with the served model's event in ``components.schemas.Event``."""
        schema = copy.deepcopy(super().openapi())
        schema.setdefault("components", {}).setdefault("schemas", {})["Event"] = self.event_schema()
        return schema


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to be above ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(
    settings: WorkerSettings,
    store: Any,
    *,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    load: Callable[[], ModelHolder] | None = None,
) -> FastAPI:
    """The scoring API for ``settings``' model, read through ``store`` (Feast).

    Nothing is loaded until the app starts: its lifespan loads the model (``load``, default a
    ``ModelHolder``), then follows the aliases every ``model_poll_s``, or retries the load while none loads.
    """
    registry = registry if registry is not None else CollectorRegistry()
    metrics = WorkerMetrics(registry)
    http_metrics = HttpMetrics(registry)
    clock = clock or Clock(now=lambda: datetime.now(UTC), perf=time.perf_counter)
    load_holder = load or (lambda: ModelHolder(settings, store))
    serving = _Serving()
    body_limit = settings.batch_size * settings.max_event_bytes

    async def try_load() -> None:
        try:
            # MLflow round trips, the checksum and unpickling: off the event loop.
            holder = await asyncio.to_thread(load_holder)
        except DriftlineError as exc:
            if str(exc) != serving.problem:
                logger.error("no model to serve (answering 503, retrying every %gs): %s", settings.model_poll_s, exc)
            serving.problem = str(exc)
            return
        meta = holder.current.model.metadata
        logger.info("serving %s version %s (%d features)", meta.name, meta.version, len(meta.features))
        metrics.serving(meta.name, serving_versions(holder))
        serving.holder = holder
        await follow_aliases(holder, metrics)  # the canary and shadow aliases at once, not a poll later

    async def poll() -> None:
        while True:
            await asyncio.sleep(settings.model_poll_s)
            try:
                if serving.holder is None:
                    await try_load()
                else:
                    await follow_aliases(serving.holder, metrics)
            except Exception:
                logger.exception("model poll failed; scoring goes on and the next poll retries")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await try_load()
        except Exception as exc:  # not a DriftlineError: a bug or a library's own error; start and retry
            logger.exception("loading the model failed; answering 503 and retrying every %gs", settings.model_poll_s)
            serving.problem = f"{type(exc).__name__}: {exc}"
        task = asyncio.create_task(poll(), name="follow-model-aliases")
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    app = _ScoringApp(
        title="driftline",
        summary="Score events with the stream worker's code path: same validation, features, model and routing.",
        version="1",
        lifespan=lifespan,
    )

    def event_schema() -> dict[str, Any]:
        holder = serving.holder
        if holder is None:
            return {"type": "object", "description": f"No model is served yet ({serving.problem})."}
        rules, meta = holder.current.rules, holder.current.model.metadata
        schema = event_json_schema(rules, f"{meta.name} version {meta.version} event")
        schema.pop("$schema", None)
        return schema

    app.event_schema = event_schema
    event_ref = {"$ref": "#/components/schemas/Event"}
    request_body = {
        "required": True,
        "description": "One event, or a JSON list of at most DRIFTLINE_BATCH_SIZE events.",
        "content": {"application/json": {"schema": {"oneOf": [
            event_ref, {"type": "array", "items": event_ref, "maxItems": settings.batch_size},
        ]}}},
    }

    async def answer(request: Request) -> tuple[int, int, bytes]:
        holder = serving.holder
        if holder is None:
            return 503, 0, to_json(Refusal(error_type="model_unavailable", reason=serving.problem))
        body = await _read_body(request, body_limit)
        if body is None:
            reason = (f"the request body is above {body_limit} bytes "
                      "(DRIFTLINE_BATCH_SIZE x DRIFTLINE_MAX_EVENT_BYTES)")
            return 413, 0, to_json(Refusal(error_type="too_large", reason=reason))
        # Each slot is read once: a model swap never splits a request.
        production, canary = holder.current, holder.canary
        entities = production.rules.entities
        parsed = request_records(body, entities[0].field if entities else None)
        count = len(parsed.records)
        if parsed.is_list and count > settings.batch_size:
            reason = f"the request holds {count} events, more than DRIFTLINE_BATCH_SIZE={settings.batch_size}"
            return 413, count, to_json(Refusal(error_type="too_many_events", reason=reason))
        if count == 0:
            return 200, 0, b"[]"
        routed = await score_routed(parsed.records, production, canary, settings.canary_percent, clock)
        result = routed.result
        built = clock.perf()
        items = answers(result, count)
        status = 200 if parsed.is_list else single_status(items[0])
        content = to_json(items if parsed.is_list else items[0])
        answered_at = clock.now().timestamp()
        metrics.observe_batch(
            result, count, clock.perf() - built, 0.0,
            (answered_at - p.event_time.timestamp() for p in result.predictions),
        )
        metrics.observe_freshness(result.feature_ages, production.view_ttls)
        return status, count, content

    @app.post(
        "/v1/score",
        response_model=Prediction | list[Prediction | Refusal],
        responses={
            400: {"model": Refusal, "description": "The event is refused as the stream would dead-letter it."},
            413: {"model": Refusal, "description": "The body or the list is above its limit."},
            500: {"model": Refusal, "description": "The model failed on the event (scoring_failed)."},
            503: {"model": Refusal, "description": "No model can be loaded yet."},
        },
        openapi_extra={"requestBody": request_body},
        summary="Score one event, or a list of events",
    )
    async def score(request: Request) -> Response:
        """Answer one event with its prediction, a list with one prediction or refusal per event, in order."""
        started = clock.perf()
        status, events = 500, 0  # an unexpected error is counted as a 500
        try:
            status, events, content = await answer(request)
        finally:
            http_metrics.observe(status, events, clock.perf() - started)
        return Response(content, status_code=status, media_type="application/json")

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Response:
        """200 while a model is served, 503 with the reason while none can be loaded."""
        holder = serving.holder
        if holder is None:
            down = Health(status="unavailable", model_name=settings.model_name, reason=serving.problem)
            return Response(to_json(down), status_code=503, media_type="application/json")
        up = Health(status="ok", model_name=settings.model_name, versions=serving_versions(holder))
        return Response(to_json(up), media_type="application/json")

    @app.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    async def prometheus_metrics() -> Response:
        """The worker's metrics fed by this server, and the HTTP request counts and durations."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def serve(settings: WorkerSettings, store: Any, host: str, port: int) -> None:
    """Serve the scoring API until SIGINT or SIGTERM (uvicorn lets requests in flight finish)."""
    import uvicorn

    # No Kafka here: features from Redis (or Feast), models from MLflow. No secrets in the log.
    logger.info(
        "features from Redis %s (%s), model %s from %s", mask_url(settings.redis_url.get_secret_value()),
        settings.redis_source, settings.model_name, mask_url(settings.tracking_uri),
    )
    app = create_app(settings, store)
    # Logging is configured by the entry point; uvicorn's access log would be a line per request.
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
    logger.info("scoring API on http://%s:%d/v1/score (docs on /docs)", host, port)
    uvicorn.Server(config).run()
