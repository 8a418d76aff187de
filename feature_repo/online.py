"""Online feature reads through Feast's own API: async for the worker, sync for offline tools.

Also the model/feature-service compatibility check and the views' TTLs; the fast reader of Feast's
Redis layout is ``feature_repo.redis_reader``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from feast.online_response import TIMESTAMP_POSTFIX

from driftline.errors import FeatureStoreError, ModelLoadError
from driftline.features import OnlineRows
from driftline.registry import EntityType, FeatureSpec, ModelMetadata

logger = logging.getLogger(__name__)

T = TypeVar("T")


async def bounded_read(read: Awaitable[T], timeout_s: float, rows: int) -> T:
    """Await one online read; a timeout or any store error becomes a FeatureStoreError."""
    try:
        return await asyncio.wait_for(read, timeout_s)
    except TimeoutError as exc:
        raise FeatureStoreError(f"online feature read of {rows} rows timed out after {timeout_s}s") from exc
    except Exception as exc:
        raise FeatureStoreError(f"online feature read failed: {type(exc).__name__}: {exc}") from exc


def check_model_against_store(store: Any, metadata: ModelMetadata) -> None:
    """Refuse a model whose feast features its feature service cannot supply."""
    try:
        service = store.get_feature_service(metadata.feature_service)
    except Exception as exc:
        raise ModelLoadError(
            f"model {metadata.name} version {metadata.version} needs feature service "
            f"{metadata.feature_service!r}, which the Feast registry does not have ({exc}); run `driftline feast apply`"
        ) from exc
    offered = {
        f"{projection.name_to_use()}:{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    }
    lacking = [ref for ref in metadata.feature_refs if ref not in offered]
    if lacking:
        raise ModelLoadError(
            f"model {metadata.name} version {metadata.version} needs features that feature service "
            f"{metadata.feature_service!r} does not supply: {', '.join(lacking)}"
        )
    problems = entity_problems(store, metadata) + request_problems(store, metadata)
    if problems:
        raise ModelLoadError(f"model {metadata.name} version {metadata.version}: {'; '.join(problems)}")


#: Feast join-key dtypes (``str(field.dtype)``) and the entity type an event carries for them.
ENTITY_DTYPES: dict[str, EntityType] = {"String": "string", "Int64": "int64", "Int32": "int32"}


def entity_problems(store: Any, metadata: ModelMetadata) -> list[str]:
    """Join keys whose type in Feast differs from the model's, or that the model does not carry.

    A string key sent for an Int64 entity reads nothing, silently: refusing the model is the only
    honest answer.
    """
    odfvs = {view.name for view in store.list_on_demand_feature_views()}
    declared = {e.join_key: e for e in metadata.entities}
    problems: list[str] = []
    for view_name in metadata.feature_views:
        if view_name in odfvs:
            continue
        for column in store.get_feature_view(view_name).entity_columns:
            feast_type = str(column.dtype)
            entity = declared.get(column.name)
            if entity is None:
                problems.append(f"feature view {view_name} needs join key {column.name}, which the model's events lack")
            elif feast_type not in ENTITY_DTYPES:
                problems.append(
                    f"join key {column.name} has Feast type {feast_type}; "
                    f"driftline reads {', '.join(ENTITY_DTYPES)} keys"
                )
            elif ENTITY_DTYPES[feast_type] != entity.dtype:
                problems.append(
                    f"join key {column.name} is {feast_type} in Feast but the model declares {entity.dtype}"
                )
    return list(dict.fromkeys(problems))


def request_problems(store: Any, metadata: ModelMetadata) -> list[str]:
    """Request-source fields the model's on-demand views read that its events do not declare."""
    declared = {s.name for s in metadata.request_fields} | {
        (s.field or s.name) for s in metadata.features if s.source == "request"
    }
    wanted = set(metadata.feature_views)
    problems: list[str] = []
    for view in store.list_on_demand_feature_views():
        if view.name not in wanted:
            continue
        for source in view.source_request_sources.values():
            for field in source.schema:
                if field.name not in declared:
                    problems.append(
                        f"on-demand view {view.name} reads request field {field.name}, which the model's "
                        "metadata does not declare (request_fields)"
                    )
    return problems


class FeastOnlineReader:
    """Reads one model's feast features for a batch of entity rows in one non-blocking call."""

    def __init__(self, store: Any, specs: Sequence[FeatureSpec], timeout_s: float) -> None:
        self._store = store
        self._timeout_s = timeout_s
        feast_specs = [s for s in specs if s.source == "feast" and s.ref]
        self._refs = [s.ref for s in feast_specs if s.ref]
        # Feast's full feature name is "view__feature"; map it back to the model's column name.
        self._names = {s.ref.replace(":", "__", 1): s.name for s in feast_specs if s.ref}
        # All features of a view share its timestamp: read it from the view's first feature.
        self._view_stamp_columns = {
            str(s.feature_view): s.ref.replace(":", "__", 1) + TIMESTAMP_POSTFIX
            for s in reversed(feast_specs)
            if s.ref
        }

    async def __call__(self, entity_rows: list[dict[str, object]]) -> OnlineRows:
        """Return per entity row the model's feast features by column name, and per view their timestamp."""
        if not self._refs:
            return OnlineRows(values=[{} for _ in entity_rows])
        response = await bounded_read(
            self._store.get_online_features_async(
                features=self._refs, entity_rows=entity_rows, full_feature_names=True
            ),
            self._timeout_s,
            len(entity_rows),
        )
        columns = response.to_dict(include_event_timestamps=True)
        out: list[dict[str, object]] = [{} for _ in entity_rows]
        for full_name, name in self._names.items():
            values = columns.get(full_name)
            if values is None:
                raise FeatureStoreError(f"Feast returned no column {full_name!r}")
            for row, value in zip(out, values, strict=True):
                row[name] = value
        stamps: list[dict[str, float]] = [{} for _ in entity_rows]
        for view, column in self._view_stamp_columns.items():
            for row_stamps, seconds in zip(stamps, columns.get(column, ()), strict=False):
                if seconds:  # 0 when the store has no row for the entity
                    row_stamps[view] = float(seconds)
        return OnlineRows(values=out, view_timestamps=stamps)


def view_ttls(store: Any, metadata: ModelMetadata) -> dict[str, float]:
    """TTL in seconds of each stored feature view the model reads (0 when the view has none)."""
    ttls: dict[str, float] = {}
    odfvs = {view.name for view in store.list_on_demand_feature_views()}
    for view in metadata.feature_views:
        if view in odfvs:
            continue  # computed at read time: never stale by itself
        ttl = store.get_feature_view(view).ttl
        ttls[view] = ttl.total_seconds() if ttl else 0.0
    return ttls


#: Entity rows per synchronous online read (distinct entity-key combinations).
READ_CHUNK = 1_000


def read_online_sync(
    store: Any,
    specs: Sequence[FeatureSpec],
    entity_fields: dict[str, str],
    events: Sequence[Mapping[str, Any]],
    request_fields: Sequence[str] = (),
) -> OnlineRows:
    """Per event, its store features by column name and per view their timestamp: Feast's own synchronous read.

    For offline tools (the drift simulation): one ``get_online_features`` call per ``READ_CHUNK``
    distinct entity rows, the same values and timestamps the worker's readers return.
    """
    feast_specs = [s for s in specs if s.source == "feast" and s.ref]
    refs = [s.ref for s in feast_specs if s.ref]
    names = {s.ref.replace(":", "__", 1): s.name for s in feast_specs if s.ref}
    # All features of a view share its timestamp: read it from the view's first feature (as the worker does).
    stamp_columns = {
        str(s.feature_view): s.ref.replace(":", "__", 1) + TIMESTAMP_POSTFIX for s in reversed(feast_specs) if s.ref
    }
    # Request fields (on-demand views' inputs) travel with the entity row, as the worker sends them.
    names_in_row = [*entity_fields.values(), *request_fields]
    keys = [tuple(e[field] for field in [*entity_fields, *request_fields]) for e in events]
    distinct = list(dict.fromkeys(keys))
    values: dict[tuple[object, ...], dict[str, object]] = {}
    stamps: dict[tuple[object, ...], dict[str, float]] = {}
    for i in range(0, len(distinct), READ_CHUNK):
        chunk = distinct[i : i + READ_CHUNK]
        rows = [dict(zip(names_in_row, key, strict=True)) for key in chunk]
        response = store.get_online_features(features=refs, entity_rows=rows, full_feature_names=True)
        columns = response.to_dict(include_event_timestamps=True)
        for r, key in enumerate(chunk):
            values[key] = {name: columns[full][r] for full, name in names.items()}
            # 0 when the store has no row for the entity: no age then, as in the worker.
            stamps[key] = {
                view: float(columns[col][r])
                for view, col in stamp_columns.items()
                if col in columns and columns[col][r]
            }
    return OnlineRows(values=[values[key] for key in keys], view_timestamps=[stamps[key] for key in keys])
