"""One micro-batch from raw records to predictions and dead letters.

Pure apart from the injected ``fetch`` coroutine, so the whole flow is unit-tested with a fake
store and integration-tested with Feast on Redis. Bad input becomes a dead letter here; nothing in
this module raises on an event's content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from driftline.contracts import DeadLetter, Prediction, StageTimings, prediction_id
from driftline.errors import FeatureStoreError
from driftline.features import FetchFeatures, OnlineRows, build_frame, build_matrix
from driftline.registry import LoadedModel
from stream_app.core.scoring import score_outcomes
from stream_app.core.validation import EventRules, Rejection, ValidEvent, validate_event

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed message and where it came from."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class BatchResult:
    """What a batch produced, plus what metrics need to know about it."""

    predictions: list[Prediction] = field(default_factory=list)
    prediction_sources: list[RawRecord] = field(default_factory=list)  # the input of each prediction
    dead_letters: list[DeadLetter] = field(default_factory=list)
    timings: StageTimings = field(default_factory=lambda: StageTimings(decode_s=0, features_s=0, predict_s=0))
    feature_error: str | None = None  # set when the store failed and the batch was scored degraded
    missing_counts: dict[str, int] = field(default_factory=dict)  # feature name -> rows missing it
    # feature view -> age in seconds of its values, one entry per scored event that had them
    feature_ages: dict[str, list[float]] = field(default_factory=dict)
    # the scored rows and their scores, for the drift monitor
    matrix: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty((0, 0)))
    scores: npt.NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    # building the prediction records (ids included): the first part of the worker's output stage
    records_s: float = 0.0

    @property
    def stage_s(self) -> float:
        """Time in this result's timed stages: decode, features, predict and building the records."""
        t = self.timings
        return t.decode_s + t.features_s + t.predict_s + self.records_s


@dataclass(frozen=True, slots=True)
class Clock:
    """Wall clock for timestamps and a monotonic timer for durations."""

    now: Callable[[], datetime]
    perf: Callable[[], float]


def _dead_letter(record: RawRecord, rejection: Rejection, model_version: str, at: datetime) -> DeadLetter:
    return DeadLetter.for_input(
        record.key,
        record.value,
        error_type=rejection.error_type,
        reason=rejection.reason,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        event_id=rejection.event_id,
        model_version=model_version,
        failed_at=at,
    )


async def process_batch(
    records: Sequence[RawRecord],
    rules: EventRules,
    model: LoadedModel,
    fetch: FetchFeatures,
    clock: Clock,
) -> BatchResult:
    """Validate, fetch features once for the batch, score, and build the output records."""
    meta = model.metadata
    result = BatchResult()
    t0 = clock.perf()
    now = clock.now()

    valid: list[tuple[RawRecord, ValidEvent]] = []
    for record in records:
        checked = validate_event(record.value, rules, now, record.key)
        if isinstance(checked, Rejection):
            result.dead_letters.append(_dead_letter(record, checked, meta.version, now))
        else:
            valid.append((record, checked))
    t1 = clock.perf()
    if not valid:
        result.timings = StageTimings(decode_s=t1 - t0, features_s=0.0, predict_s=0.0)
        return result

    # One read per distinct entity combination (with its on-demand views' request fields, if any):
    # hot customers repeat within a batch.
    row_index: dict[tuple[tuple[str, object], ...], int] = {}
    entity_rows: list[dict[str, object]] = []
    positions: list[int] = []
    for _, event in valid:
        entity_row: dict[str, object] = (
            {**event.entities, **event.online_request} if event.online_request else dict(event.entities)
        )
        key = tuple(entity_row.items())
        pos = row_index.get(key)
        if pos is None:
            pos = row_index[key] = len(entity_rows)
            entity_rows.append(entity_row)
        positions.append(pos)

    feast_specs = [s for s in meta.features if s.source == "feast"]
    try:
        online = await fetch(entity_rows)
    except FeatureStoreError as exc:
        # Score anyway with every store feature missing, and say so on each prediction.
        logger.warning("feature read failed, scoring %d events degraded: %s", len(valid), exc)
        result.feature_error = str(exc)
        online = OnlineRows(values=[dict.fromkeys((s.name for s in feast_specs), None) for _ in entity_rows])
    fetched = online.values
    t2 = clock.perf()
    now_s = now.timestamp()
    if online.view_timestamps:
        for pos in positions:
            for view, stamp in online.view_timestamps[pos].items():
                result.feature_ages.setdefault(view, []).append(now_s - stamp)

    rows: list[dict[str, object]] = []
    missing_per_event: list[list[str]] = []
    for (_, event), pos in zip(valid, positions, strict=True):
        store_values = fetched[pos]
        missing = [s.name for s in feast_specs if store_values.get(s.name) is None]
        for name in missing:
            result.missing_counts[name] = result.missing_counts.get(name, 0) + 1
        missing_per_event.append(missing)
        rows.append({**store_values, **event.request})
    matrix = build_matrix(meta.features, rows)  # also what the drift monitor compares
    model_input = build_frame(meta.features, rows) if meta.input_format == "frame" else matrix

    outcomes = score_outcomes(model.estimator, meta, model_input)
    ok = np.array([not isinstance(x, str) for x in outcomes], dtype=bool)
    result.matrix = matrix if ok.all() else matrix[ok]
    result.scores = np.array([x[0] for x in outcomes if not isinstance(x, str)], dtype=np.float64)
    t3 = clock.perf()

    timings = StageTimings(decode_s=t1 - t0, features_s=t2 - t1, predict_s=t3 - t2)
    result.timings = timings
    scored_at = clock.now()
    degraded = result.feature_error is not None
    for (record, event), outcome, missing in zip(valid, outcomes, missing_per_event, strict=True):
        if isinstance(outcome, str):
            rejection = Rejection("scoring_failed", f"the model failed on this event: {outcome}", event.event_id)
            result.dead_letters.append(_dead_letter(record, rejection, meta.version, scored_at))
            continue
        score, class_scores, decision = outcome
        result.predictions.append(
            Prediction(
                event_id=event.event_id,
                prediction_id=prediction_id(event.event_id, meta.name, meta.version),
                entities=event.entities,
                model_name=meta.name,
                model_version=meta.version,
                score=score,
                class_scores=class_scores,
                threshold=meta.threshold,
                decision=decision,
                missing_features=missing,
                degraded=degraded,
                event_time=event.event_time,
                scored_at=scored_at,
                timings=timings,
            )
        )
        result.prediction_sources.append(record)
    result.records_s = clock.perf() - t3
    return result


def merge_results(results: Sequence[BatchResult]) -> BatchResult:
    """One batch's results scored by several models (production and canary), as one result to publish.

    Predictions, dead letters, missing counts, feature ages and scores are combined; stage timings are
    the sum. The scored matrix is left empty: each model's drift monitor takes its own part.
    """
    merged = BatchResult()
    decode = features = predict = 0.0
    for part in results:
        merged.predictions.extend(part.predictions)
        merged.prediction_sources.extend(part.prediction_sources)
        merged.dead_letters.extend(part.dead_letters)
        merged.feature_error = merged.feature_error or part.feature_error
        for name, count in part.missing_counts.items():
            merged.missing_counts[name] = merged.missing_counts.get(name, 0) + count
        for view, ages in part.feature_ages.items():
            merged.feature_ages.setdefault(view, []).extend(ages)
        decode += part.timings.decode_s
        features += part.timings.features_s
        predict += part.timings.predict_s
        merged.records_s += part.records_s
    merged.timings = StageTimings(decode_s=decode, features_s=features, predict_s=predict)
    merged.scores = np.concatenate([part.scores for part in results]) if results else np.empty(0)
    return merged
