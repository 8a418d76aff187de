"""Drift simulation: a stationary then drifted stream through the worker's scoring path, monitored.

Given the events, their online store values and the model (``driftline drift simulate`` takes the
events from the seeded example world and the values from the Feast online store, the values the
worker reads), the matrix comes from ``driftline.features.build_matrix`` and the scores from the
model, batch by batch as in the worker; a :class:`~drift.monitor.DriftMonitor` observes every batch
and is evaluated every ``every`` events. The age of the store's values (event time minus the
view's feature timestamp) goes through a :class:`~drift.freshness.FreshnessWindow` as in the
worker, and each evaluation carries its summary. The run (every evaluation) is written as JSON
for ``driftline drift report``.

Event time is compressed: the stationary part spans ``hours`` of event time (a whole day by
default, so windows of night traffic are part of the test for false alarms). Event time is also
synthetic while the store's timestamps are those of the last materialization, so ages can be
negative (values stamped after the event) early in a run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drift.freshness import FreshnessWindow
from drift.monitor import SCORE, DriftMonitor, DriftReport
from driftline.features import Matrix, OnlineRows, build_matrix
from driftline.registry import FeatureSpec, LoadedModel

logger = logging.getLogger(__name__)

#: Scores a matrix with the model (the worker's ``score_matrix`` bound to the estimator).
Score = Callable[[Matrix], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate and how to monitor it."""

    stationary: int = 40_000
    drifted: int = 10_000
    drift: str = "amount_shift"  # one of the example world's drifts
    window: int = 2_000
    every: int = 500
    alpha: float = 0.01
    min_events: int = 1_000
    min_psi: float = 0.1
    batch: int = 200  # the worker's default DRIFTLINE_BATCH_SIZE
    hours: float = 24.0
    seed: int = 11
    start: datetime | None = None  # event time of the first event; default the latest 12:00 UTC
    version: str | None = None  # model version; default production


def default_start(now: datetime) -> datetime:
    """The latest 12:00 UTC at or before ``now``: a day from noon puts the night mid-run."""
    noon = now.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    return noon if noon <= now else noon - timedelta(days=1)


def feature_ages(events: Sequence[Mapping[str, Any]], stamps: Sequence[dict[str, float]]) -> dict[str, list[float]]:
    """Per feature view, the age (seconds) of each event's store values at the event's time."""
    ages: dict[str, list[float]] = {}
    for event, row in zip(events, stamps, strict=True):
        at = _epoch(event["event_time"])
        for view, stamp in row.items():
            ages.setdefault(view, []).append(at - stamp)
    return ages


def _epoch(event_time: str) -> float:
    return datetime.fromisoformat(event_time).timestamp()


def _row(event: Mapping[str, Any], store_values: dict[str, object], specs: Sequence[FeatureSpec]) -> dict[str, object]:
    request = {s.name: event.get(s.field) for s in specs if s.source == "request" and s.field}
    return {**store_values, **request}


def _evaluation(
    report: DriftReport, event: Mapping[str, Any], stationary: int, freshness: dict[str, dict[str, float]]
) -> dict[str, Any]:
    # "events", "event_time", "report" and "freshness" are also the keys of the worker's drift log.
    return {
        "events": report.events_seen,
        "after_drift": max(0, report.events_seen - stationary),
        "window_drifted": max(0, min(report.window_events, report.events_seen - stationary)),
        "event_time": event["event_time"],
        "report": report.to_dict(),
        "freshness": freshness,
    }


def _fmt(value: float | None, spec: str) -> str:
    width = spec.split(".", 1)[0]
    return "-".rjust(int(width) if width.isdigit() else 1) if value is None else format(value, spec)


def summarize(run: dict[str, Any]) -> Iterator[str]:
    """The printed summary of a run: false alarms, detection delays and the final evaluation."""
    stationary = run["config"]["stationary"]
    evaluations = [e for e in run["evaluations"] if e["report"]["ready"]]
    before = [e for e in evaluations if e["events"] <= stationary]
    after = [e for e in evaluations if e["events"] > stationary]
    alarms = [e for e in before if e["report"]["flagged"]]
    share = len(alarms) / len(before) if before else 0.0
    yield (
        f"stationary part: {len(alarms)}/{len(before)} evaluations with any flag ({share:.1%}; "
        f"alpha {run['config']['alpha']:g}, min PSI {run['config'].get('min_psi', 0):g})"
    )
    by_name: dict[str, int] = {}
    for e in alarms:
        for name in e["report"]["flagged"]:
            by_name[name] = by_name.get(name, 0) + 1
    if by_name:
        yield "  false alarms by column: " + ", ".join(f"{k} {v}" for k, v in sorted(by_name.items()))
    yield f"drift {run['config']['drift']} from event {stationary} ({len(after)} evaluations after it):"
    first: dict[str, int] = {}
    flagged_count: dict[str, int] = {}
    for e in after:
        for name in e["report"]["flagged"]:
            first.setdefault(name, e["after_drift"])
            flagged_count[name] = flagged_count.get(name, 0) + 1
    if not first:
        yield "  nothing flagged after the drift started"
    for name, delay in sorted(first.items(), key=lambda item: item[1]):
        yield (
            f"  {name}: first flagged {delay} events after the drift started; "
            f"flagged in {flagged_count[name]}/{len(after)} evaluations after it"
        )
    if run["evaluations"]:
        yield from final_lines(run["evaluations"][-1])


def final_lines(evaluation: dict[str, Any]) -> Iterator[str]:
    """The last evaluation as a table, then the freshness of the store's values at that point."""
    final = evaluation["report"]
    yield f"final evaluation at event {final['events_seen']} (window {final['window_events']}):"
    yield f"  {'column':38} {'test':4} {'statistic':>9} {'p-value':>9} {'PSI':>7} {'missing':>7}  flagged"
    for c in [*final["features"], *([final["score"]] if final["score"] else [])]:
        test = c["statistic_name"] if c["tested"] else "-"
        yield (
            f"  {c['name']:38} {test:4} {_fmt(c['statistic'], '9.4f')} {_fmt(c['p_value'], '9.2e')} "
            f"{_fmt(c['psi'], '7.4f')} {c['missing_rate']:7.2%}  {'YES' if c['flagged'] else ''}"
        )
    freshness = evaluation.get("freshness") or {}
    if freshness:
        yield "freshness of the store's values over the window (age when scored):"
    for view, f in freshness.items():
        ttl = f"TTL {f['ttl_s'] / 3600:.0f} h" if f["ttl_s"] else "no TTL"
        yield (
            f"  {view:38} p50 {f['p50_s'] / 3600:6.1f} h, p99 {f['p99_s'] / 3600:6.1f} h, {ttl}, "
            f"older than TTL {f['stale_share']:.1%} of {f['events']:.0f} events"
        )


@dataclass(frozen=True)
class SimulationResult:
    """A finished simulation: the run record (as written to ``out``) and what the summary adds to it."""

    record: dict[str, Any]  # model, config, strata, timing and every evaluation: ``driftline drift report`` reads it
    reference_version: int | None
    reference_n: int
    strata_feature: str | None
    fraud_rate: tuple[float, float]  # stationary, drifted
    mean_score: tuple[float, float]  # stationary, drifted
    total_s: float
    out: Path | None


def render(result: SimulationResult) -> Iterator[str]:
    """The printed summary of a simulation: reference, false alarms, delays, final evaluation, cost."""
    record = result.record
    model = record["model"]
    strata = f"strata by {result.strata_feature})" if result.strata_feature else "no time-of-day strata)"
    version = "?" if result.reference_version is None else result.reference_version
    yield f"model {model['name']} {model['version']}: reference sketch v{version} (n={result.reference_n}; " + strata
    yield from summarize(record)
    yield (
        f"fraud rate / mean score: stationary {result.fraud_rate[0]:.2%} / {result.mean_score[0]:.2%}, "
        f"drifted {result.fraud_rate[1]:.2%} / {result.mean_score[1]:.2%}"
    )
    timing = record["timing"]
    yield (
        f"cost: observe {_fmt(timing['observe_ms_per_batch'], '.3f')} ms per batch of {record['config']['batch']}, "
        f"evaluate {_fmt(timing['evaluate_ms'], '.1f')} ms; total {result.total_s:.1f}s"
    )
    if result.out is not None:
        yield f"evaluations -> {result.out}"


def _mean(values: npt.NDArray[Any]) -> float:
    return float(values.mean()) if len(values) else float("nan")


def run(
    model: LoadedModel,
    events: Sequence[Mapping[str, Any]],
    online: OnlineRows,
    ttls: Mapping[str, float],
    config: SimulationConfig,
    start: datetime,
    score: Score,
    out: Path | None,
) -> SimulationResult:
    """Monitor ``events`` (with their store values ``online``), write every evaluation to ``out``, return the run."""
    started = time.perf_counter()
    meta = model.metadata
    reference = meta.reference
    strata = reference.strata if reference is not None else None
    store_rows, stamps = online.values, online.view_timestamps

    monitor = DriftMonitor(
        meta.features,
        reference,
        window_size=config.window,
        alpha=config.alpha,
        min_events=config.min_events,
        min_psi=config.min_psi,
    )
    freshness = FreshnessWindow(config.window)  # the worker keeps as many ages as its drift window
    evaluations: list[dict[str, Any]] = []
    observe_s: list[float] = []
    evaluate_s: list[float] = []
    labels: list[int] = []
    scores_all: list[float] = []
    next_evaluation = config.every
    for i in range(0, len(events), config.batch):
        batch = events[i : i + config.batch]
        rows = [_row(e, v, meta.features) for e, v in zip(batch, store_rows[i : i + config.batch], strict=True)]
        matrix = build_matrix(meta.features, rows)
        scores = score(matrix)
        t0 = time.perf_counter()
        monitor.observe(matrix, scores)
        observe_s.append(time.perf_counter() - t0)
        freshness.observe(feature_ages(batch, stamps[i : i + config.batch]))
        scores_all += scores.tolist()
        labels += [int(e["is_fraud"]) for e in batch]
        while monitor.events_seen >= next_evaluation:
            t1 = time.perf_counter()
            report = monitor.evaluate()
            evaluate_s.append(time.perf_counter() - t1)
            evaluations.append(_evaluation(report, batch[-1], config.stationary, freshness.summary(ttls)))
            next_evaluation += config.every

    record: dict[str, Any] = {
        "model": {"name": meta.name, "version": meta.version},
        "config": {**asdict(config), "start": start.isoformat(), "version": meta.version},
        "drift_start_event": config.stationary,
        "strata": {
            "feature": strata.feature if strata else None,
            "edges": list(strata.edges) if strata else [],
        },
        "score_column": SCORE,
        "timing": {
            "observe_ms_per_batch": float(np.mean(observe_s) * 1e3) if observe_s else None,
            "evaluate_ms": float(np.mean(evaluate_s) * 1e3) if evaluate_s else None,
        },
        "evaluations": evaluations,
    }
    y, s = np.asarray(labels, dtype=np.float64), np.asarray(scores_all, dtype=np.float64)
    cut = config.stationary
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return SimulationResult(
        record=record,
        reference_version=reference.version if reference is not None else None,
        reference_n=reference.n if reference is not None else 0,
        strata_feature=strata.feature if strata else None,
        fraud_rate=(_mean(y[:cut]), _mean(y[cut:])),
        mean_score=(_mean(s[:cut]), _mean(s[cut:])),
        total_s=time.perf_counter() - started,
        out=out,
    )
