"""Typed records of drift monitoring: one evaluation, the freshness beside it, and a run of evaluations.

Each has one writer and one reader. :class:`DriftEvaluation` is written by ``DriftMonitor.evaluate``;
the worker's drift log carries it (``drift.log.DriftLogRecord``) and so does a run. A run is written
by ``drift.simulate.run`` (:class:`SimulationRun`, the JSON of ``driftline drift simulate --out``) or
built from a worker's drift log by ``drift.report.worker_run`` (:class:`WorkerRun`), and read by
``drift.report.load_run``. The JSON is the shape these files had as plain dicts, so older logs and
runs still read; NaN statistics are None, in memory as on disk.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

StatisticName = Literal["ks", "chi2"]
ColumnKind = Literal["numeric", "categorical"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureDrift(_Record):
    """Drift of one model input (or of the score) in one evaluation."""

    name: str
    kind: ColumnKind
    statistic_name: StatisticName
    statistic: float | None  # None: not tested (context column, too few values, no reference sample)
    p_value: float | None
    psi: float | None
    missing_rate: float
    reference_missing_rate: float
    n: int  # non-missing values in the window
    flagged: bool
    tested: bool  # False for context columns (the stratum clock) and untestable columns
    bins: tuple[str, ...]  # bin or level labels
    reference: tuple[float, ...]  # reference shares per bin, mixed to the window's strata
    current: tuple[float, ...]  # window shares per bin (non-missing values)

    @field_validator("statistic", "p_value", "psi")
    @classmethod
    def _finite_or_none(cls, value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else value


class DriftEvaluation(_Record):
    """One evaluation of the monitor's window: every monitored input column and the score."""

    events_seen: int  # rows observed since the monitor started
    window_events: int  # rows in the window evaluated
    window_size: int
    alpha: float
    ready: bool  # the window held min_events rows; flags are only raised when True
    strata: tuple[float, ...]  # share of the window's rows per stratum of the reference; empty if none
    features: tuple[FeatureDrift, ...]
    score: FeatureDrift | None

    @model_validator(mode="before")
    @classmethod
    def _derive_flagged(cls, data: Any) -> Any:
        # "flagged" is written for readers of the JSON, and derived again from the columns on reading.
        if isinstance(data, dict) and "flagged" in data:
            return {key: value for key, value in data.items() if key != "flagged"}
        return data

    @computed_field  # type: ignore[prop-decorator]  # mypy does not follow pydantic's computed_field
    @property
    def flagged(self) -> tuple[str, ...]:
        """Names of the flagged columns (``"score"`` for prediction drift)."""
        return tuple(c.name for c in self.columns if c.flagged)

    @property
    def columns(self) -> tuple[FeatureDrift, ...]:
        """The input columns, then the score when there is one."""
        return (*self.features, *([self.score] if self.score else []))

    @property
    def any_flagged(self) -> bool:
        """Whether anything drifted in this evaluation."""
        return bool(self.flagged)


class FreshnessSummary(_Record):
    """Age of one feature view's store values over the recent scored events (``FreshnessWindow.summary``)."""

    events: int
    p50_s: float
    p99_s: float
    ttl_s: float  # 0: the view has no TTL
    stale_share: float


class RunEvaluation(_Record):
    """One evaluation of a run: where it happened, the drift evaluation and the freshness of the store's values."""

    events: int  # events the monitor had seen (a worker's count restarts with the worker)
    after_drift: int | None = None  # a simulation: events since the drift started (0 before it)
    window_drifted: int | None = None  # a simulation: drifted events in the window
    event_time: datetime  # a simulation: the last event's time; a worker: its clock at the evaluation
    report: DriftEvaluation
    freshness: dict[str, FreshnessSummary] = Field(default_factory=dict)  # per feature view


class ModelRef(_Record):
    """The model version a run monitored."""

    name: str
    version: str


class SimulationConfig(_Record):
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


class RunStrata(_Record):
    """How the model's reference is stratified: the clock feature and its block edges (None: not stratified)."""

    feature: str | None
    edges: tuple[float, ...]


class SimulationTiming(_Record):
    """Mean cost of the monitor during a simulation (None when it never ran)."""

    observe_ms_per_batch: float | None
    evaluate_ms: float | None


class SimulationRun(_Record):
    """A drift simulation: every evaluation of a stationary then drifted stream (``drift simulate --out``)."""

    source: Literal["simulate"] = "simulate"
    model: ModelRef
    config: SimulationConfig  # as run: ``start`` and ``version`` are the ones used
    drift_start_event: int  # events before the drift (``config.stationary``)
    strata: RunStrata
    score_column: str
    timing: SimulationTiming
    evaluations: tuple[RunEvaluation, ...]

    @property
    def alpha(self) -> float:
        """The Benjamini-Hochberg level of the run."""
        return self.config.alpha


class WorkerRun(_Record):
    """A running worker's drift log as a run: no drift start; window and alpha of its latest evaluation."""

    source: Literal["worker"] = "worker"
    log: str  # the log's file name
    skipped_lines: int  # lines that were not a record (a torn last line after a crash)
    model: ModelRef
    window: int
    alpha: float
    evaluations: tuple[RunEvaluation, ...]


#: What ``drift.report.load_run`` reads: a simulation or a worker's drift log.
DriftRun = SimulationRun | WorkerRun
