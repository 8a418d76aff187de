"""Batch scoring: a file of events scored by the worker's own validation, matrix builder and scorer.

``driftline score`` reads events (JSON lines, or parquet with one column per event field), validates
each with the worker's rules, joins Feast's features as of each event's ``event_time`` from the offline
store (point-in-time correct, as training joins them) and scores with the same matrix builder and scorer
as the stream. Every input event is one output row: scored, or refused with the error type and reason
the worker would dead-letter it with. Bad events are rows, never exceptions.

Validation differs from the stream in one rule only: events are historical, so there is no age limit.
The future-skew limit stays, measured from the run's start (``now``): an event stamped after the run
has no features yet, and the worker would refuse it too, with the same reason.

Everything but :func:`score_file` is pure: the Feast read is passed in, as the worker's ``fetch`` is.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from driftline.contracts import DeadLetterType, prediction_id, utc_now
from driftline.errors import ConfigError, FeatureStoreError
from driftline.features import build_frame, build_matrix
from driftline.registry import LoadedModel, ModelMetadata
from stream_app.core.scoring import Decision, score_outcomes
from stream_app.core.validation import EventRules, Rejection, ValidEvent, validate_event

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from driftline.settings import WorkerSettings

logger = logging.getLogger(__name__)

InputFormat = Literal["jsonl", "parquet"]
#: File suffixes of each input format.
SUFFIXES: dict[str, InputFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}

#: Event timestamp column of an entity dataframe, as Feast names it.
TIMESTAMP = "event_timestamp"
#: Entity-dataframe column carrying each lookup's position: Feast's join reorders rows.
LOOKUP = "driftline_lookup"
#: pandas dtype of a join key column, by the metadata's entity type (as Feast types the key).
ENTITY_PANDAS_DTYPES = {"string": "object", "int64": "int64", "int32": "int32"}
#: Event times a point-in-time join can use: pandas keeps timestamps in nanoseconds.
JOINABLE = (datetime(1677, 9, 22, tzinfo=UTC), datetime(2262, 4, 11, tzinfo=UTC))

#: Feast's historical retrieval: an entity dataframe in, the same rows joined with the service's features out.
HistoricalFetch = Callable[["pd.DataFrame"], "pd.DataFrame"]


# --- reading events -----------------------------------------------------------------------------------


def input_format(path: Path) -> InputFormat:
    """The format of an input file, by its suffix."""
    found = SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise ConfigError(f"input {path}: expected a .jsonl (or .ndjson) or .parquet (or .pq) file")
    return found


def jsonl_events(data: bytes) -> list[bytes]:
    """Each line of a JSON-lines file as the bytes of one event (blank lines are not events)."""
    return [line.removesuffix(b"\r") for line in data.split(b"\n") if line.strip()]


def _json_value(value: object) -> object:
    """A parquet value JSON has no type for, as the event contract writes it."""
    if isinstance(value, datetime | date | day_time):
        # Timezone-aware timestamps keep their offset; a naive one gets none and is refused, as in JSON.
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def parquet_events(table: pa.Table) -> list[bytes]:
    """Each row of a parquet table (a column per event field) as the JSON bytes of one event.

    A null, or a NaN, is JSON null: the validator reads it as an absent field, as in a JSON event.
    """
    option = orjson.OPT_PASSTHROUGH_DATETIME
    return [orjson.dumps(row, default=_json_value, option=option) for row in table.to_pylist()]


def read_events(path: Path) -> list[bytes]:
    """The events of a JSON-lines or parquet file, each as the bytes the worker would validate."""
    kind = input_format(path)
    if not path.is_file():
        raise ConfigError(f"input {path} does not exist")
    if kind == "jsonl":
        try:
            return jsonl_events(path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"input {path} cannot be read: {exc}") from exc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own errors and OSError for a file that is not parquet
        raise ConfigError(f"input {path} cannot be read as parquet: {exc}") from exc
    return parquet_events(table)


# --- validation -----------------------------------------------------------------------------------------


def batch_rules(meta: ModelMetadata, settings: WorkerSettings) -> EventRules:
    """The worker's rules for ``meta``, without the age limit: batch events are historical by design."""
    rules = EventRules.for_model(
        meta.entities, meta.features, settings.max_event_bytes, settings.max_future_skew_s,
        settings.max_event_age_s, meta.request_fields,
    )
    return dataclasses.replace(rules, max_event_age=timedelta.max)


def check_event(raw: bytes, rules: EventRules, now: datetime) -> ValidEvent | Rejection:
    """The worker's verdict on ``raw``, plus the one limit of the offline join: a time pandas can hold."""
    checked = validate_event(raw, rules, now)
    if isinstance(checked, ValidEvent) and not JOINABLE[0] <= checked.event_time <= JOINABLE[1]:
        return Rejection(
            "invalid_field",
            f"event_time {checked.event_time.isoformat()!r} is outside the years a point-in-time join can use "
            f"({JOINABLE[0]:%Y-%m-%d} .. {JOINABLE[1]:%Y-%m-%d})",
            checked.event_id,
        )
    return checked


# --- point-in-time lookups ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookups:
    """The distinct point-in-time lookups of the valid events, as entity dataframes Feast answers whole.

    Feast's offline join keeps one row per join key and timestamp (the file store drops the others,
    by the keys of the feature views joined so far), whatever other columns a row carries. So events
    that share a join key value and a timestamp go into separate rounds: one Feast call each.
    """

    rounds: list[pd.DataFrame]  # entity dataframes; LOOKUP numbers their rows 0..size-1 across rounds
    positions: list[int]  # per valid event: the LOOKUP of its row
    size: int  # distinct lookups


def _request_columns(meta: ModelMetadata, event: ValidEvent) -> dict[str, object]:
    """The event fields on-demand views read, by field name: request features and request fields."""
    columns: dict[str, object] = {}
    for spec in meta.features:
        if spec.source == "request" and spec.name in event.request:
            columns[spec.field or spec.name] = event.request[spec.name]
    columns.update(event.online_request)
    return columns


def plan_lookups(meta: ModelMetadata, events: Sequence[ValidEvent]) -> Lookups:
    """One lookup per distinct (join keys, request fields, event time), in rounds Feast keeps whole."""
    import pandas as pd

    join_keys = [e.join_key for e in meta.entities]
    index: dict[tuple[tuple[str, object], ...], int] = {}
    distinct: list[dict[str, object]] = []
    positions: list[int] = []
    for event in events:
        lookup = {**event.entities, **_request_columns(meta, event), TIMESTAMP: event.event_time}
        key = tuple(lookup.items())
        position = index.get(key)
        if position is None:
            position = index[key] = len(distinct)
            distinct.append(lookup)
        positions.append(position)

    # Greedy: each lookup goes into the first round where none of its (join key, value, time) is taken.
    taken: list[set[tuple[str, object, object]]] = []
    members: list[list[int]] = []
    for position, lookup in enumerate(distinct):
        stamp = lookup[TIMESTAMP]
        marks = [(k, lookup[k], stamp) for k in join_keys] or [(TIMESTAMP, None, stamp)]
        r = 0
        while r < len(taken) and any(mark in taken[r] for mark in marks):
            r += 1
        if r == len(taken):
            taken.append(set())
            members.append([])
        taken[r].update(marks)
        members[r].append(position)

    columns = dict.fromkeys(column for lookup in distinct for column in lookup)
    extra = [c for c in columns if c not in join_keys and c != TIMESTAMP]  # the request fields
    rounds: list[pd.DataFrame] = []
    for chosen in members:
        rows = [distinct[p] for p in chosen]
        frame: dict[str, Any] = {
            e.join_key: pd.Series([row[e.join_key] for row in rows], dtype=ENTITY_PANDAS_DTYPES[e.dtype])
            for e in meta.entities
        }
        frame[TIMESTAMP] = pd.to_datetime([row[TIMESTAMP] for row in rows], utc=True)
        for column in extra:
            frame[column] = [row.get(column) for row in rows]
        frame[LOOKUP] = pd.Series(chosen, dtype="int64")
        rounds.append(pd.DataFrame(frame))
    return Lookups(rounds=rounds, positions=positions, size=len(distinct))


def _plain(value: object) -> object:
    """A value from Feast's frame: None for every kind of missing (None, NaN, pandas NA/NaT)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in {"NAType", "NaTType"}:
        return None
    return value


def align(joined: pd.DataFrame, meta: ModelMetadata, size: int) -> list[dict[str, object]]:
    """Per lookup (in LOOKUP order), the model's Feast features by column name; None where Feast had no value.

    ``joined`` is Feast's answer to every round, in any order, with full feature names (``view__feature``).
    A lookup missing or repeated means rows were dropped or duplicated: the scores could not be trusted.
    """
    columns = {s.name: s.ref.replace(":", "__", 1) for s in meta.features if s.source == "feast" and s.ref}
    lacking = [full for full in columns.values() if full not in joined.columns]
    if lacking:
        raise FeatureStoreError(f"Feast's historical features lack the columns {', '.join(lacking)}")
    lookups = [int(x) for x in joined[LOOKUP].tolist()]
    if len(lookups) != size or set(lookups) != set(range(size)):
        raise FeatureStoreError(
            f"Feast's point-in-time join returned {len(lookups)} rows ({len(set(lookups))} distinct) "
            f"for {size} lookups; refusing to score rows it may have mixed up"
        )
    values = {name: joined[full].tolist() for name, full in columns.items()}
    out: list[dict[str, object]] = [{} for _ in range(size)]
    for i, lookup in enumerate(lookups):
        out[lookup] = {name: _plain(column[i]) for name, column in values.items()}
    return out


# --- scoring -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoredRow:
    """One input event in the output: its score, or why it was refused."""

    row: int  # position of the event in the input, from 0
    event_id: str | None
    prediction_id: str | None
    model_name: str
    model_version: str
    score: float | None
    decision: Decision
    class_scores: str | None  # multi-class: JSON object class -> probability
    missing_features: list[str] | None  # scored: the features Feast had no value for
    error_type: DeadLetterType | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class BatchScores:
    """Every input event's output row, in input order, and how many Feast joins it took."""

    rows: list[ScoredRow]
    lookups: int  # distinct point-in-time lookups
    joins: int  # Feast historical retrievals (rounds)


def refused_row(row: int, rejection: Rejection, meta: ModelMetadata) -> ScoredRow:
    """The output row of an event that cannot be scored: what the worker's dead letter would say."""
    return ScoredRow(
        row=row, event_id=rejection.event_id, prediction_id=None, model_name=meta.name, model_version=meta.version,
        score=None, decision=None, class_scores=None, missing_features=None, error_type=rejection.error_type,
        reason=rejection.reason,
    )


def score_events(
    raws: Sequence[bytes], rules: EventRules, model: LoadedModel, fetch: HistoricalFetch, now: datetime
) -> BatchScores:
    """Validate, join Feast's features as of each event's time, score; one output row per event, in order."""
    import pandas as pd

    meta = model.metadata
    checked = [check_event(raw, rules, now) for raw in raws]
    valid = [(i, c) for i, c in enumerate(checked) if isinstance(c, ValidEvent)]
    out: list[ScoredRow | None] = [
        refused_row(i, c, meta) if isinstance(c, Rejection) else None for i, c in enumerate(checked)
    ]
    if not valid:
        return BatchScores(rows=[r for r in out if r is not None], lookups=0, joins=0)

    feast_specs = [s for s in meta.features if s.source == "feast"]
    events = [event for _, event in valid]
    if feast_specs:
        lookups = plan_lookups(meta, events)
        joined = pd.concat([fetch(frame) for frame in lookups.rounds], ignore_index=True)
        fetched = align(joined, meta, lookups.size)
        store_values = [fetched[p] for p in lookups.positions]
        size, joins = lookups.size, len(lookups.rounds)
    else:
        store_values, size, joins = [{} for _ in events], 0, 0
    logger.info("%d valid events: %d point-in-time lookups in %d Feast joins", len(events), size, joins)

    rows: list[dict[str, object]] = []
    missing_per_event: list[list[str]] = []
    for event, values in zip(events, store_values, strict=True):
        missing_per_event.append([s.name for s in feast_specs if values.get(s.name) is None])
        rows.append({**values, **event.request})
    matrix = build_matrix(meta.features, rows)
    model_input = build_frame(meta.features, rows) if meta.input_format == "frame" else matrix

    outcomes = score_outcomes(model.estimator, model.metadata, model_input)
    for (i, event), outcome, missing in zip(valid, outcomes, missing_per_event, strict=True):
        if isinstance(outcome, str):
            failed = Rejection("scoring_failed", f"the model failed on this event: {outcome}", event.event_id)
            out[i] = refused_row(i, failed, meta)
            continue
        score, class_scores, decision = outcome
        out[i] = ScoredRow(
            row=i, event_id=event.event_id, prediction_id=prediction_id(event.event_id, meta.name, meta.version),
            model_name=meta.name, model_version=meta.version, score=score, decision=decision,
            class_scores=None if class_scores is None else orjson.dumps(class_scores).decode(),
            missing_features=missing, error_type=None, reason=None,
        )
    return BatchScores(rows=[r for r in out if r is not None], lookups=size, joins=joins)


# --- output ----------------------------------------------------------------------------------------------------


def decision_type(meta: ModelMetadata) -> pa.DataType:
    """The decision column's type: bool (binary), the class label's (multi-class), null (regression)."""
    import pyarrow as pa

    if meta.task == "binary":
        return pa.bool_()
    if meta.task == "multiclass":
        return pa.int64() if all(isinstance(c, int) for c in meta.classes or []) else pa.string()
    return pa.null()


def scores_table(rows: Sequence[ScoredRow], meta: ModelMetadata, validated_at: datetime) -> pa.Table:
    """The output rows as an Arrow table; its metadata names the model and the validation clock."""
    import pyarrow as pa

    decision = decision_type(meta)
    schema = pa.schema(
        [
            ("row", pa.int64()),
            ("event_id", pa.string()),
            ("prediction_id", pa.string()),
            ("model_name", pa.string()),
            ("model_version", pa.string()),
            ("score", pa.float64()),
            ("decision", decision),
            ("class_scores", pa.string()),
            ("missing_features", pa.list_(pa.string())),
            ("error_type", pa.string()),
            ("reason", pa.string()),
        ],
        metadata={
            "driftline.model": meta.name,
            "driftline.model_version": meta.version,
            "driftline.feature_service": meta.feature_service,
            "driftline.validated_at": validated_at.astimezone(UTC).isoformat(),
        },
    )
    as_text = decision == pa.string()
    records = [
        {
            **dataclasses.asdict(r),
            "decision": str(r.decision) if as_text and r.decision is not None else r.decision,
        }
        for r in rows
    ]
    return pa.Table.from_pylist(records, schema=schema)


def write_scores(table: pa.Table, output: Path) -> None:
    """Write ``table`` to ``output`` atomically: a scheduled reader never sees half a file."""
    import pyarrow.parquet as pq

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(output)
    except OSError as exc:
        raise ConfigError(f"output {output} cannot be written: {exc}") from exc


# --- the job ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult:
    """What ``driftline score`` did: rows in, scored and refused (by error type), the model, the output."""

    input: Path
    output: Path
    model: str
    model_version: str
    rows: int
    scored: int
    refused: dict[str, int]  # error type -> rows, most common first
    missing_features: int  # scored rows with a feature Feast had no value for (scored as NaN)
    lookups: int  # distinct point-in-time lookups
    joins: int  # Feast historical retrievals
    validated_at: datetime  # the clock of the future-skew rule
    seconds: float


def summarize(
    scores: BatchScores, meta: ModelMetadata, input_path: Path, output: Path, now: datetime, seconds: float
) -> ScoreResult:
    """The job's result from its rows."""
    refused: dict[str, int] = {}
    for r in scores.rows:
        if r.error_type is not None:
            refused[r.error_type] = refused.get(r.error_type, 0) + 1
    return ScoreResult(
        input=input_path,
        output=output,
        model=meta.name,
        model_version=meta.version,
        rows=len(scores.rows),
        scored=sum(r.error_type is None for r in scores.rows),
        refused=dict(sorted(refused.items(), key=lambda item: (-item[1], item[0]))),
        missing_features=sum(bool(r.missing_features) for r in scores.rows),
        lookups=scores.lookups,
        joins=scores.joins,
        validated_at=now,
        seconds=seconds,
    )


def historical_fetch(store: Any, feature_service: str) -> HistoricalFetch:
    """Feast's point-in-time join of the service's features; a failure becomes a FeatureStoreError."""
    service = store.get_feature_service(feature_service)

    def fetch(entity_df: pd.DataFrame) -> pd.DataFrame:
        try:
            job = store.get_historical_features(entity_df=entity_df, features=service, full_feature_names=True)
            frame: pd.DataFrame = job.to_df()
        except Exception as exc:
            raise FeatureStoreError(
                f"Feast historical features of {len(entity_df)} rows from service {feature_service} "
                f"(project {store.project}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        return frame

    return fetch


def score_file(
    settings: WorkerSettings,
    input_path: Path,
    output: Path,
    model: str | None = None,
    now: datetime | None = None,
) -> ScoreResult:
    """Score the events of ``input_path`` with ``model`` (a version or alias; default production) into ``output``.

    ``now`` is the clock of the future-skew rule (default: the run's start).
    """
    from driftline.registry import ModelRegistry
    from feature_repo.online import check_model_against_store
    from feature_repo.store import feature_store

    started = time.perf_counter()
    now = now if now is not None else utc_now()
    if output.resolve() == input_path.resolve():
        raise ConfigError(f"--output {output} is the input file; write the scores elsewhere")
    raws = read_events(input_path)  # before the model: a bad file fails fast
    store = feature_store(settings)
    loaded = ModelRegistry(settings).load(
        settings.model_name, model, check=lambda meta: check_model_against_store(store, meta)
    )
    meta = loaded.metadata
    logger.info("scoring %d events from %s with model %s version %s", len(raws), input_path, meta.name, meta.version)
    scores = score_events(raws, batch_rules(meta, settings), loaded, historical_fetch(store, meta.feature_service), now)
    write_scores(scores_table(scores.rows, meta, now), output)
    result = summarize(scores, meta, input_path, output, now, time.perf_counter() - started)
    logger.info("wrote %d rows (%d scored) to %s", result.rows, result.scored, output)
    return result
