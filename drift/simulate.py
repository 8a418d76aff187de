"""Drift simulation: a stationary then drifted stream through the worker's scoring path, monitored.

Given the events, their online store values and the model (``driftline drift simulate`` takes the
events from the seeded example world and the values from the Feast online store, the values the
worker reads), the matrix comes from ``driftline.features.build_matrix`` and the scores from the
model, batch by batch as in the worker; a :class:`~drift.monitor.DriftMonitor` observes every batch
and is evaluated every ``every`` events. The age of the store's values (event time minus the
view's feature timestamp) goes through a :class:`~drift.freshness.FreshnessWindow` as in the
worker, and each evaluation carries its summary. The run (every evaluation) is a
:class:`~drift.records.SimulationRun`, written as JSON for ``driftline drift report``;
:func:`summarize` counts its false alarms and detection delays.

Event time is compressed: the stationary part spans ``hours`` of event time (a whole day by
default, so windows of night traffic are part of the test for false alarms). Event time is also
synthetic while the store's timestamps are those of the last materialization, so ages can be
negative (values stamped after the event) early in a run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from drift.freshness import FreshnessWindow
from drift.monitor import SCORE, DriftMonitor
from drift.records import (
    DriftEvaluation,
    FreshnessSummary,
    ModelRef,
    RunEvaluation,
    RunStrata,
    SimulationConfig,
    SimulationRun,
    SimulationTiming,
)
from driftline.features import Matrix, OnlineRows, build_matrix
from driftline.registry import FeatureSpec, LoadedModel

logger = logging.getLogger(__name__)

#: Scores a matrix with the model (the worker's ``score_matrix`` bound to the estimator).
Score = Callable[[Matrix], npt.NDArray[np.float64]]


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
    report: DriftEvaluation, event: Mapping[str, Any], stationary: int, freshness: dict[str, FreshnessSummary]
) -> RunEvaluation:
    return RunEvaluation(
        events=report.events_seen,
        after_drift=max(0, report.events_seen - stationary),
        window_drifted=max(0, min(report.window_events, report.events_seen - stationary)),
        event_time=datetime.fromisoformat(event["event_time"]),
        report=report,
        freshness=freshness,
    )


@dataclass(frozen=True)
class Detection:
    """One column flagged after the drift started: how soon, and how often."""

    column: str
    first_after: int  # events after the drift started, at the first evaluation that flagged it
    flagged: int  # evaluations after the drift started that flagged it


@dataclass(frozen=True)
class SimulationSummary:
    """False alarms before the drift and detections after it, over the ready evaluations of a run."""

    drift: str
    drift_start_event: int
    alpha: float
    min_psi: float
    stationary_evaluations: int
    false_alarms: int  # stationary evaluations with any flag
    false_alarms_by_column: dict[str, int]  # by column name, sorted
    drifted_evaluations: int
    detections: tuple[Detection, ...]  # soonest first

    @property
    def false_alarm_share(self) -> float:
        """Share of the stationary evaluations with any flag (0 when there were none)."""
        return self.false_alarms / self.stationary_evaluations if self.stationary_evaluations else 0.0


def summarize(run: SimulationRun) -> SimulationSummary:
    """False alarms before the drift starts and, per column, the detection delay and rate after it."""
    stationary = run.drift_start_event
    ready = [e for e in run.evaluations if e.report.ready]
    before = [e for e in ready if e.events <= stationary]
    after = [e for e in ready if e.events > stationary]
    alarms: dict[str, int] = {}
    for e in before:
        for name in e.report.flagged:
            alarms[name] = alarms.get(name, 0) + 1
    first: dict[str, int] = {}
    counts: dict[str, int] = {}
    for e in after:
        for name in e.report.flagged:
            first.setdefault(name, e.events - stationary)
            counts[name] = counts.get(name, 0) + 1
    return SimulationSummary(
        drift=run.config.drift,
        drift_start_event=stationary,
        alpha=run.config.alpha,
        min_psi=run.config.min_psi,
        stationary_evaluations=len(before),
        false_alarms=sum(1 for e in before if e.report.any_flagged),
        false_alarms_by_column=dict(sorted(alarms.items())),
        drifted_evaluations=len(after),
        detections=tuple(
            Detection(name, delay, counts[name]) for name, delay in sorted(first.items(), key=lambda item: item[1])
        ),
    )


@dataclass(frozen=True)
class SimulationResult:
    """A finished simulation: the run (as written to ``out``), its summary, and what else a person wants to see."""

    run: SimulationRun  # model, config, strata, timing and every evaluation: ``driftline drift report`` reads it
    summary: SimulationSummary
    reference_version: int | None
    reference_n: int
    fraud_rate: tuple[float, float]  # stationary, drifted
    mean_score: tuple[float, float]  # stationary, drifted
    total_s: float
    out: Path | None


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
    evaluations: list[RunEvaluation] = []
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

    record = SimulationRun(
        model=ModelRef(name=meta.name, version=meta.version),
        config=config.model_copy(update={"start": start, "version": meta.version}),
        drift_start_event=config.stationary,
        strata=RunStrata(
            feature=strata.feature if strata else None, edges=tuple(strata.edges) if strata else ()
        ),
        score_column=SCORE,
        timing=SimulationTiming(
            observe_ms_per_batch=float(np.mean(observe_s) * 1e3) if observe_s else None,
            evaluate_ms=float(np.mean(evaluate_s) * 1e3) if evaluate_s else None,
        ),
        evaluations=tuple(evaluations),
    )
    y, s = np.asarray(labels, dtype=np.float64), np.asarray(scores_all, dtype=np.float64)
    cut = config.stationary
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(record.model_dump_json(indent=1), encoding="utf-8")
    return SimulationResult(
        run=record,
        summary=summarize(record),
        reference_version=reference.version if reference is not None else None,
        reference_n=reference.n if reference is not None else 0,
        fraud_rate=(_mean(y[:cut]), _mean(y[cut:])),
        mean_score=(_mean(s[:cut]), _mean(s[cut:])),
        total_s=time.perf_counter() - started,
        out=out,
    )
