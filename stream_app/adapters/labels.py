"""The feedback loop's edge: remember published predictions, join labels to them, export live performance.

:class:`LabelJoiner` ties the pure core (``stream_app.core.labels``, ``performance``, ``cbpe``) to the
join store and the worker's metrics. It needs no Faust app: the worker calls :meth:`LabelJoiner.remember`
with each batch's served predictions while their outputs are being delivered (the batch's offsets wait
for both), :meth:`LabelJoiner.observe_scores` with a batch's scores, :meth:`LabelJoiner.process` with a
batch of ``labels`` messages, and on a timer :meth:`LabelJoiner.coverage` (on the event loop), then
:meth:`LabelJoiner.evaluate` (in a thread) and :meth:`LabelJoiner.publish`; :meth:`LabelJoiner.export` is
the three in one.

A bad label is data: it comes back as a dead letter with its reason, never as an exception. The store
failing is not the label's fault, so :class:`~stream_app.adapters.join_store.JoinStoreError` is raised
and nothing of the batch is counted; :meth:`LabelJoiner.retrying` runs a call again until the store
answers, which is how the worker holds a batch (uncommitted) through an outage rather than lose it. A
retry after a failed *mark* may find its predictions already marked and dead-letter those labels as
duplicates: a prediction is then counted once or not at all, never twice.

The windows live in this process. With several workers, each consumes a share of the labels and remembers
its own share of the predictions, so each worker's label coverage is labels it joined over predictions it
published: close to the truth when both topics are spread evenly, and not to be summed across workers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from driftline.contracts import DeadLetter, Label, Prediction
from driftline.registry import Task
from driftline.settings import WorkerSettings
from stream_app.adapters.join_store import JoinStore, JoinStoreError, MarkResult, join_window
from stream_app.adapters.metrics import JoinStoreOp, WorkerMetrics
from stream_app.adapters.publisher import backoff_s
from stream_app.core.cbpe import CbpeEstimate, CbpeWindow, LiveCbpe
from stream_app.core.labels import (
    JoinedPrediction,
    JoinOutcome,
    JoinStatus,
    LabelledPrediction,
    LabelRejection,
    join,
    validate_label,
)
from stream_app.core.performance import LivePerformance, PerformanceReport, PerformanceWindow
from stream_app.core.pipeline import Clock, RawRecord

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class LabelBatchResult:
    """What a batch of labels became: the dead letters to publish and what joined."""

    dead_letters: list[DeadLetter] = field(default_factory=list)
    labelled: list[LabelledPrediction] = field(default_factory=list)  # marked by this call, fed to the windows
    outcomes: dict[JoinStatus, int] = field(default_factory=dict)  # labels by outcome, as counted in metrics


@dataclass(slots=True)
class LabelExport:
    """One evaluation of every version's windows, to be set on the gauges."""

    reports: list[PerformanceReport] = field(default_factory=list)  # versions with labels
    unlabelled: list[tuple[str, int, float | None]] = field(default_factory=list)  # version, labels, coverage
    estimates: list[tuple[str, CbpeEstimate]] = field(default_factory=list)


class LabelCoverage:
    """Labels joined / predictions published per version, over the span of the performance window.

    The performance window holds a version's last ``max_labels`` labels; its span starts at the join
    time of the oldest of them once it is full, and when this object first heard of the version before
    that. Published predictions are counted in ``bucket_s`` buckets (the one holding the span's start
    counts pro rata over its elapsed part), so memory is one bucket per ``bucket_s`` of the span, whatever the rate.
    """

    def __init__(self, max_labels: int, bucket_s: float = 60.0) -> None:
        if max_labels < 1 or bucket_s <= 0:
            raise ValueError(f"max_labels must be at least 1 and bucket_s positive, got {max_labels}, {bucket_s}")
        self._max_labels = max_labels
        self._bucket_s = bucket_s
        self._since: dict[str, float] = {}  # version -> when it was first seen
        self._joined: dict[str, deque[float]] = {}  # version -> join times of the labels in the window
        self._scored: dict[str, deque[list[float]]] = {}  # version -> [bucket start, count], oldest first
        self._latest: dict[str, float] = {}  # version -> when its latest predictions were published

    def versions(self) -> list[str]:
        """Versions seen, in the order first seen."""
        return list(self._since)

    def forget(self, model_version: str) -> None:
        """Drop a version (retired)."""
        for kept in (self._since, self._joined, self._scored, self._latest):
            kept.pop(model_version, None)

    def scored(self, model_version: str, count: int, at: datetime) -> None:
        """Count ``count`` predictions published at ``at``."""
        if count <= 0:
            return
        t = at.timestamp()
        self._start(model_version, t)
        self._latest[model_version] = max(self._latest.get(model_version, t), t)
        buckets = self._scored[model_version]
        start = t - t % self._bucket_s
        if buckets and buckets[-1][0] >= start:  # the latest bucket (or a clock step back): add to it
            buckets[-1][1] += count
        else:
            buckets.append([start, float(count)])

    def labelled(self, model_version: str, at: datetime) -> None:
        """Count one prediction that took a label at ``at``."""
        self._start(model_version, at.timestamp())
        self._joined[model_version].append(at.timestamp())

    def coverage(self, model_version: str) -> tuple[int, int]:
        """Labels in the window and predictions published over its span (both 0 for an unknown version)."""
        if model_version not in self._since:
            return 0, 0
        joined = self._joined[model_version]
        buckets = self._scored[model_version]
        if len(joined) == self._max_labels:
            start = joined[0]
            while buckets and buckets[0][0] + self._bucket_s <= start:
                buckets.popleft()  # wholly before the span: never counted again
            # The bucket the span starts in counts pro rata, as if its predictions were spread evenly over
            # the part of it that has passed: counted whole, a window spanning seconds against 60-second
            # buckets reads as low coverage.
            latest = self._latest[model_version]
            inside = 0.0
            for begin, count in buckets:
                if begin >= start:
                    inside += count
                    continue
                end = min(begin + self._bucket_s, latest)  # the bucket's part that has passed
                if end > start:
                    inside += count * (end - start) / (end - begin)
            return len(joined), round(inside)
        return len(joined), int(sum(count for _, count in buckets))

    def _start(self, model_version: str, t: float) -> None:
        if model_version not in self._since:
            self._since[model_version] = t
            self._joined[model_version] = deque(maxlen=self._max_labels)
            self._scored[model_version] = deque()


def _joined_record(prediction: Prediction, task: Task) -> JoinedPrediction:
    return JoinedPrediction(
        prediction_id=prediction.prediction_id,
        event_id=prediction.event_id,
        model_version=prediction.model_version,
        score=prediction.score,
        decision=prediction.decision,
        scored_at=prediction.scored_at,
        threshold=prediction.threshold,
        task=task,
    )


class LabelJoiner:
    """Joins labels to remembered predictions and keeps each version's live and estimated performance."""

    def __init__(
        self, store: JoinStore, metrics: WorkerMetrics, settings: WorkerSettings, clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._sleep = sleep
        self._failing = False  # an outage under way: logged when it starts and when it ends, not per retry
        self._window = join_window(settings)
        self._max_future_skew_s = settings.max_future_skew_s
        self._label_max_bytes = settings.label_max_bytes
        self._performance = LivePerformance(
            PerformanceWindow(max_labels=settings.performance_window, min_labels=settings.performance_min_labels)
        )
        self._cbpe = LiveCbpe(CbpeWindow(max_scores=settings.cbpe_window, min_scores=settings.cbpe_min_scores))
        self._coverage = LabelCoverage(settings.performance_window)

    @property
    def performance(self) -> LivePerformance:
        """The realised-performance windows (read them for a report; feed them only through :meth:`process`)."""
        return self._performance

    @property
    def cbpe(self) -> LiveCbpe:
        """The score windows of the confidence-based estimate."""
        return self._cbpe

    def observe_scores(
        self, version: str, threshold: float | None, task: Task, scores: Iterable[float], at: datetime
    ) -> None:
        """Feed a batch's scores of ``version`` to its estimate (binary models only; others have none)."""
        if task == "binary" and threshold is not None:
            self._cbpe.add(version, threshold, scores, at)

    async def remember(self, predictions: Sequence[Prediction], task: Task | Mapping[str, Task]) -> None:
        """Keep the join records of served predictions, in one round trip for the whole batch.

        ``task`` is the models' task, or each model version's (production and canary in one batch).
        The predictions count as published (label coverage's denominator) once the store has them, so a
        call that raises :class:`~stream_app.adapters.join_store.JoinStoreError` may be made again.
        """
        if not predictions:
            return
        if isinstance(task, Mapping):
            records = [_joined_record(p, task[p.model_version]) for p in predictions]
        else:
            records = [_joined_record(p, task) for p in predictions]
        await self._timed("remember", self._store.remember(records))
        now = self._clock.now()
        per_version: dict[str, int] = {}
        for prediction in predictions:
            per_version[prediction.model_version] = per_version.get(prediction.model_version, 0) + 1
        for version, count in per_version.items():
            self._coverage.scored(version, count, now)

    async def retrying(self, call: Callable[[], Awaitable[T]], holding: str) -> T:
        """Await ``call()`` again, with backoff, until it no longer raises JoinStoreError.

        The caller holds what it is doing meanwhile (``holding`` says what, for the log): a store outage
        delays the batch's offsets and loses nothing. One warning when an outage starts, one line when
        the store answers again; each failed round trip is counted (driftline_join_store_failures_total).
        """
        attempt = 0
        while True:
            try:
                result = await call()
            except JoinStoreError as exc:
                attempt += 1
                if not self._failing:
                    logger.warning("%s; holding %s (uncommitted) and retrying until it answers", exc, holding)
                self._failing = True
                await self._sleep(backoff_s(attempt))
                continue
            if self._failing:
                logger.info("the join store answers again; %s is no longer held", holding)
                self._failing = False
            return result

    async def process(self, records: Sequence[RawRecord]) -> LabelBatchResult:
        """Validate, join and mark a batch of ``labels`` messages; feed the windows; count the outcomes.

        One store lookup and one mark for the whole batch. Two labels of one prediction in the batch,
        or a label another worker marked first, make the later one a duplicate.
        """
        result = LabelBatchResult()
        now = self._clock.now()
        valid: list[tuple[RawRecord, Label]] = []
        for record in records:
            checked = validate_label(record.value, now, self._max_future_skew_s, self._label_max_bytes)
            if isinstance(checked, LabelRejection):
                self._reject(result, record, checked, now)
            else:
                valid.append((record, checked))
        if valid:
            await self._join(result, valid, now)
        self._metrics.observe_labels(result.outcomes, (lp.label_delay_s for lp in result.labelled))
        return result

    async def _join(self, result: LabelBatchResult, valid: list[tuple[RawRecord, Label]], now: datetime) -> None:
        pending = await self._timed("lookup", self._store.pending([label for _, label in valid]))
        # Records as this batch leaves them, so a second label of a prediction here is a duplicate.
        current: dict[str, JoinedPrediction] = {}
        outcomes: list[JoinOutcome] = []
        for (_, label), found in zip(valid, pending, strict=True):
            outcome = join(label, [current.get(p.prediction_id, p) for p in found], now, self._window)
            for labelled in outcome.labelled:
                current[labelled.prediction.prediction_id] = labelled.marked
            outcomes.append(outcome)
        to_mark = [labelled.marked for outcome in outcomes for labelled in outcome.labelled]
        marks = iter(await self._timed("mark", self._store.mark(to_mark)) if to_mark else [])
        for (record, label), outcome in zip(valid, outcomes, strict=True):
            if outcome.rejection is not None:
                self._reject(result, record, outcome.rejection, now)
                continue
            taken: list[LabelledPrediction] = []
            lost: list[MarkResult] = []
            for labelled in outcome.labelled:
                mark = next(marks)
                if mark == "marked":
                    taken.append(labelled)
                else:
                    lost.append(mark)
            if not taken:  # another worker, or an earlier delivery, marked them between lookup and mark
                self._reject(result, record, _lost(label, lost), now)
                continue
            result.outcomes["joined"] = result.outcomes.get("joined", 0) + 1
            for labelled in taken:
                self._feed(labelled)
                result.labelled.append(labelled)

    def _feed(self, labelled: LabelledPrediction) -> None:
        prediction = labelled.prediction
        try:
            self._performance.add(
                prediction.model_version, prediction.task, prediction.score, prediction.decision, labelled.label,
                labelled.label_delay_s, labelled.labelled_at,
            )
        except ValueError as exc:  # a record the window cannot take (e.g. a version's task changed): log it
            logger.warning("prediction %s took its label but is not in the performance window: %s",
                           prediction.prediction_id, exc)
            return
        self._coverage.labelled(prediction.model_version, labelled.labelled_at)

    def _reject(self, result: LabelBatchResult, record: RawRecord, rejection: LabelRejection, now: datetime) -> None:
        result.outcomes[rejection.error_type] = result.outcomes.get(rejection.error_type, 0) + 1
        reason = rejection.reason
        if rejection.prediction_id is not None and rejection.prediction_id not in reason:
            reason = f"{reason} (prediction {rejection.prediction_id})"
        result.dead_letters.append(
            DeadLetter.for_input(
                record.key,
                record.value,
                error_type=rejection.error_type,
                reason=reason,
                source_topic=record.topic,
                source_partition=record.partition,
                source_offset=record.offset,
                event_id=rejection.event_id,
                failed_at=now,
            )
        )

    def export(self, now: datetime) -> None:
        """Evaluate every version's windows at ``now`` and set the gauges, all in the calling thread."""
        self.publish(self.evaluate(now, self.coverage()))

    def coverage(self) -> dict[str, tuple[int, int]]:
        """Version -> (labels in the window, predictions published over its span); call it on the event loop."""
        versions = dict.fromkeys([*self._coverage.versions(), *self._performance.versions(), *self._cbpe.versions()])
        return {version: self._coverage.coverage(version) for version in versions}

    def evaluate(self, now: datetime, coverage: Mapping[str, tuple[int, int]]) -> LabelExport:
        """Every version's realised performance and CBPE estimate at ``now`` (tens of ms at the default windows).

        Safe in a thread while the event loop feeds the windows: each evaluation copies its window in one
        call that holds the GIL (``list`` of a deque, ``numpy.fromiter``) before computing on the copy. The
        coverage buckets, iterated in Python, are read on the loop beforehand (:meth:`coverage`).
        """
        export = LabelExport()
        labelled_versions = set(self._performance.versions())
        for version, (labels, scored) in coverage.items():
            if version in labelled_versions:
                export.reports.append(self._performance.evaluate(version, now, scored or None))
            else:
                export.unlabelled.append((version, labels, 0.0 if scored else None))
        export.estimates.extend((version, self._cbpe.estimate(version, now)) for version in self._cbpe.versions())
        return export

    def publish(self, export: LabelExport) -> None:
        """Set the gauges of an evaluation."""
        for report in export.reports:
            self._metrics.observe_performance(report, report.label_coverage)
        for version, labels, coverage in export.unlabelled:
            self._metrics.observe_label_window(version, labels, coverage)
        for version, estimate in export.estimates:
            self._metrics.observe_cbpe(version, estimate)

    def set_test_performance(self, version: str, metrics: Mapping[str, float]) -> None:
        """Export a served version's held-out metrics (``ModelMetadata.metrics``) beside its live ones."""
        self._metrics.set_test_performance(version, metrics)

    def forget(self, version: str) -> None:
        """Drop a retired version's windows and its series."""
        self._performance.forget(version)
        self._cbpe.forget(version)
        self._coverage.forget(version)
        self._metrics.forget_label_version(version)

    async def _timed(self, op: JoinStoreOp, call: Awaitable[T]) -> T:
        started = self._clock.perf()
        try:
            return await call
        except JoinStoreError:
            self._metrics.join_store_failures.labels(op).inc()
            raise
        finally:
            self._metrics.observe_join_store(op, self._clock.perf() - started)


def _lost(label: Label, marks: list[MarkResult]) -> LabelRejection:
    """Why a label that joined in memory took no prediction at the mark."""
    if "labelled" in marks:
        return LabelRejection(
            "duplicate", "its predictions were labelled meanwhile (by another worker or an earlier delivery)",
            label.event_id, label.prediction_id,
        )
    return LabelRejection(
        "unknown_prediction", "its predictions left the join store (TTL) between lookup and mark",
        label.event_id, label.prediction_id,
    )
