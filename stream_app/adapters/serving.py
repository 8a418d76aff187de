"""What every serving mode does with the model holder: score records, follow the aliases.

The stream worker's agent, ``driftline serve`` and a batch scorer answer the same records the same
way: production scores every record except the canary's stable share of entity keys
(``stream_app.core.routing``), and each part goes through ``stream_app.core.pipeline.process_batch``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftline.registry import ALIASES
from stream_app.adapters.metrics import WorkerMetrics
from stream_app.adapters.models import AliasChange, ModelHolder, ServingModel
from stream_app.core.pipeline import BatchResult, Clock, RawRecord, merge_results, process_batch
from stream_app.core.routing import split


@dataclass(frozen=True, slots=True)
class RoutedResult:
    """The records' results as one, and each model's own part (for its drift and freshness windows)."""

    result: BatchResult
    parts: list[tuple[ServingModel, BatchResult]]


async def score_routed(
    records: Sequence[RawRecord], production: ServingModel, canary: ServingModel | None, canary_percent: float,
    clock: Clock,
) -> RoutedResult:
    """Score ``records`` with production, and the canary's share of keys with the canary when it is set.

    The caller reads the holder's slots once and passes them, so a swap never splits one batch.
    """
    parts: list[tuple[ServingModel, Sequence[RawRecord]]] = [(production, records)]
    if canary is not None and canary_percent > 0:
        stay, move = split([r.key for r in records], canary_percent)
        parts = [(production, [records[i] for i in stay]), (canary, [records[i] for i in move])]
    scored = [
        (model, await process_batch(part, model.rules, model.model, model.reader, clock))
        for model, part in parts
        if part
    ]
    if not scored:  # no records at all
        return RoutedResult(result=BatchResult(), parts=[])
    result = merge_results([r for _, r in scored]) if len(scored) != 1 else scored[0][1]
    return RoutedResult(result=result, parts=scored)


def serving_versions(holder: ModelHolder) -> dict[str, str]:
    """Alias -> version of every model the holder serves now."""
    return {alias: model.model.metadata.version for alias in ALIASES if (model := holder.slot(alias)) is not None}


async def follow_aliases(holder: ModelHolder, metrics: WorkerMetrics) -> list[AliasChange]:
    """Poll the registry once: load what moved, and count swaps, refusals and what is served."""
    changes = await holder.refresh()
    for change in changes:
        if change.outcome == "refused" and change.version is not None:
            metrics.model_reloads.labels("refused").inc()
            metrics.model_load_failures.labels(change.version, change.reason).inc()
        elif change.outcome == "swapped":
            metrics.model_reloads.labels("swapped").inc()
            if change.alias == "production":
                metrics.clear_drift()
    if changes:
        metrics.serving(holder.current.model.metadata.name, serving_versions(holder))
    return changes
