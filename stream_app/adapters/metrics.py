"""Every Prometheus instrument of the worker, in one place.

Names are ``driftline_<what>_<unit>``, durations in seconds. Labels are bounded: outcome, stage and
dead-letter type are closed sets, feature names come from the served model (tens, not thousands),
and no label ever carries an entity key or event id. The registry is a parameter, so tests get a
fresh one and nothing is registered at import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from drift.records import DriftEvaluation
from driftline.contracts import DeadLetterType, LabelRejectionType, Prediction
from driftline.registry import Task
from stream_app.core.pipeline import BatchResult

if TYPE_CHECKING:  # the windows' modules import scikit-learn; the HTTP server's metrics need neither
    from stream_app.core.cbpe import CbpeEstimate
    from stream_app.core.labels import JoinStatus
    from stream_app.core.performance import PerformanceReport

# Stage durations are per batch: a feature read of a few hundred keys takes ~1-20 ms on loopback,
# so the buckets are dense between 0.5 ms and 50 ms and reach 2.5 s to show timeouts.
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# End-to-end latency (event_time -> prediction acknowledged): dense from 50 to 500 ms, where a stream
# with a producer linger of 100 ms sits and the 0.5 s SLO ends, and still resolving backlogs of
# seconds to minutes after an outage.
E2E_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
               30.0, 60.0, 300.0)
# Batch sizes: powers of two up to the largest allowed batch setting.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 10000)
# Feature age: batch views are refreshed hourly to daily, TTLs are days; minutes to a week.
AGE_BUCKETS = (60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0, 86400.0, 2 * 86400.0,
               3 * 86400.0, 7 * 86400.0, 14 * 86400.0)
# Scores are probabilities: twenty equal bins show the distribution's shape.
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
#: |shadow - served| score: most pairs of similar models differ by less than a few hundredths.
SHADOW_DIFFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

# --- feedback loop (issue 14) buckets and label values ---
# Label delay (label_time - scored_at): a manual review answers in minutes to hours, a card chargeback
# in days to weeks, a dispute window ends at 30 to 120 days; from 1 s (a replayed or simulated label)
# to 30 days, dense where the reviews and chargebacks sit. Longer delays fall in +Inf.
LABEL_DELAY_BUCKETS = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 6 * 3600.0, 12 * 3600.0, 86400.0,
                       2 * 86400.0, 3 * 86400.0, 5 * 86400.0, 7 * 86400.0, 10 * 86400.0, 14 * 86400.0,
                       21 * 86400.0, 30 * 86400.0)
# A join-store round trip carries one batch (up to a few hundred records) to Redis on the network:
# 0.5-20 ms when healthy; the top buckets show DRIFTLINE_JOIN_TIMEOUT_S (2 s) being reached.
JOIN_STORE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: What a label became: ``joined`` (it took one or more predictions) or why it was refused.
LABEL_OUTCOMES: tuple[str, ...] = ("joined", *get_args(LabelRejectionType))
#: ``op`` of driftline_join_store_seconds: writing a batch's predictions, finding a batch's labels'
#: predictions, marking those that took a label.
JoinStoreOp = Literal["remember", "lookup", "mark"]
JOIN_STORE_OPS: tuple[JoinStoreOp, ...] = get_args(JoinStoreOp)
#: ``metric`` of driftline_live_performance and driftline_model_test_performance, by task. Accuracy
#: is added to the binary set (CBPE estimates it too) and is the only one of a multi-class model.
LIVE_METRICS: dict[Task, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "precision", "recall", "brier", "accuracy"),
    "multiclass": ("accuracy",),
    "regression": ("mae", "rmse"),
}
#: ``metric`` of driftline_cbpe_estimate: what stream_app.core.cbpe.estimate gives (binary only).
CBPE_METRICS = ("roc_auc", "pr_auc", "precision", "recall", "accuracy", "brier")
#: Held-out metric names (training.evaluate) that mean a live metric under another name.
_TEST_METRIC_NAMES = {"precision_at_threshold": "precision", "recall_at_threshold": "recall"}


def _gauge_value(value: float | None) -> float:
    """A metric the window cannot define (None) is exported as NaN, never as 0."""
    return math.nan if value is None else float(value)


#: decode, features and predict run on the scoring loop, and so does output (prediction ids, encoding,
#: handing the records to the producer); publish is the wait for the broker's acknowledgement, which
#: overlaps the next batches (up to DRIFTLINE_OUTPUTS_IN_FLIGHT) and so is not part of the loop's time.
#: held is the loop waiting because DRIFTLINE_OUTPUTS_IN_FLIGHT batches await acknowledgement.
STAGES = ("decode", "features", "predict", "output", "publish", "held")


def in_memory_values() -> None:
    """Keep metric values in memory, as a single-process exporter should.

    Importing feast sets ``PROMETHEUS_MULTIPROC_DIR``, which switches prometheus_client to file-backed
    multi-process values for every metric created afterwards (and to warnings on every label cleanup).
    A driftline process exports its own registry, so the metrics it creates next are plain values.
    """
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    values.ValueClass = values.MutexValue


class WorkerMetrics:
    """The worker's instruments, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        in_memory_values()
        self.registry = registry
        self.events_received = Counter(
            "driftline_events_received_total", "Events consumed from the events topic.", registry=registry
        )
        self.events_processed = Counter(
            "driftline_events_processed_total",
            "Events handled, by outcome (scored or dead_lettered).",
            ["outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "driftline_dead_letters_total", "Dead letters published, by error type.", ["error_type"],
            registry=registry,
        )
        self.output_send_failures = Counter(
            "driftline_output_send_failures_total",
            "Sends of a prediction or dead letter that the broker did not acknowledge (each is retried or "
            "replaced), by output and error.",
            ["output", "error"],
            registry=registry,
        )
        self.output_blocked = Gauge(
            "driftline_output_blocked",
            "1 while outputs cannot be delivered: the worker holds their inputs, consumes nothing more and "
            "commits nothing past them.",
            registry=registry,
        )
        self.degraded_predictions = Counter(
            "driftline_degraded_predictions_total",
            "Predictions scored without store features because the feature read failed.",
            registry=registry,
        )
        self.feature_read_failures = Counter(
            "driftline_feature_read_failures_total", "Batches whose online feature read failed or timed out.",
            registry=registry,
        )
        self.missing_features = Counter(
            "driftline_missing_features_total",
            "Scored events that lacked a store feature, by feature.",
            ["feature"],
            registry=registry,
        )
        self.stage_seconds = Histogram(
            "driftline_stage_duration_seconds",
            "Time per batch in each worker stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Histogram(
            "driftline_batch_duration_seconds",
            "Time the scoring loop spends on one micro-batch, from its arrival to the loop taking the next.",
            buckets=STAGE_BUCKETS, registry=registry,
        )
        self.end_to_end_seconds = Histogram(
            "driftline_end_to_end_latency_seconds",
            "From the event's event_time to its prediction acknowledged by the broker.",
            buckets=E2E_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "driftline_batch_size_events", "Events per micro-batch.", buckets=BATCH_BUCKETS, registry=registry
        )
        self.model_info = Gauge(
            "driftline_model_info",
            "1 for each model version being served, by the alias it serves as (production, canary, shadow).",
            ["model_name", "model_version", "alias"],
            registry=registry,
        )
        self.shadow_decisions = Counter(
            "driftline_shadow_decisions_total",
            "Events scored by both the serving version and the shadow, by whether their decisions agree.",
            ["model_version", "shadow_version", "agree"], registry=registry,
        )
        self.shadow_score_difference = Histogram(
            "driftline_shadow_score_difference",
            "|shadow score - served score| per event scored by both.",
            ["model_version", "shadow_version"], buckets=SHADOW_DIFFERENCE_BUCKETS, registry=registry,
        )
        self.shadow_seconds = Histogram(
            "driftline_shadow_batch_seconds", "Time the shadow version took to score a batch (off the critical path).",
            ["shadow_version"], buckets=STAGE_BUCKETS, registry=registry,
        )
        self.canary_rollbacks = Counter(
            "driftline_canary_rollbacks_total", "Canary versions the guard moved back, by version.",
            ["version"], registry=registry,
        )
        self.shadow_skipped = Counter(
            "driftline_shadow_skipped_batches_total",
            "Batches the shadow did not score because it was still busy with an earlier one.", registry=registry,
        )
        self.shadow_failures = Counter(
            "driftline_shadow_failures_total", "Batches the shadow version failed on.", ["shadow_version"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "driftline_assigned_partitions",
            "Events-topic partitions assigned to this worker (0 until it has joined the group).",
            registry=registry,
        )
        self.model_reloads = Counter(
            "driftline_model_reloads_total", "Model swaps, by result (swapped or refused).", ["result"],
            registry=registry,
        )
        self.model_load_failures = Counter(
            "driftline_model_load_failures_total",
            "Versions refused at a swap, by version and reason (checksum, feature_service, registry, load).",
            ["version", "reason"], registry=registry,
        )
        self.prediction_score = Histogram(
            "driftline_prediction_score", "Scores of published predictions.", buckets=SCORE_BUCKETS,
            registry=registry,
        )
        self.feature_age_seconds = Histogram(
            "driftline_feature_age_seconds",
            "Age of the store's feature values at prediction time, by feature view.",
            ["feature_view"],
            buckets=AGE_BUCKETS,
            registry=registry,
        )
        self.stale_features = Counter(
            "driftline_stale_features_total",
            "Scored events whose values of a feature view were older than the view's TTL.",
            ["feature_view"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "driftline_consumer_lag_messages",
            "Records in an assigned partition not yet fetched (exact only on real Kafka).",
            ["partition"],
            registry=registry,
        )
        # Drift gauges are set from the drift monitor's latest evaluation (see observe_drift).
        self.feature_psi = Gauge(
            "driftline_feature_psi", "Population stability index of a model input over the drift window.",
            ["feature", "model_version"], registry=registry,
        )
        self.feature_drift_pvalue = Gauge(
            "driftline_feature_drift_pvalue",
            "p-value of the two-sample test (KS numeric, chi-squared categorical) of a model input.",
            ["feature", "model_version"], registry=registry,
        )
        self.feature_drift_flagged = Gauge(
            "driftline_feature_drift_flagged",
            "1 when a model input's drift is significant after Benjamini-Hochberg across inputs and score.",
            ["feature", "model_version"], registry=registry,
        )
        self.feature_missing_ratio = Gauge(
            "driftline_feature_missing_ratio", "Share of events in the drift window missing a model input.",
            ["feature", "model_version"], registry=registry,
        )
        self.prediction_psi = Gauge(
            "driftline_prediction_psi", "Population stability index of the score over the drift window.",
            ["model_version"], registry=registry,
        )
        self.prediction_drift_pvalue = Gauge(
            "driftline_prediction_drift_pvalue", "p-value of the KS test of the score against its reference.",
            ["model_version"], registry=registry,
        )
        self.prediction_drift_flagged = Gauge(
            "driftline_prediction_drift_flagged", "1 when the score's drift is significant (after BH).",
            ["model_version"], registry=registry,
        )
        self.drift_window_events = Gauge(
            "driftline_drift_window_events", "Events in the drift window of the last evaluation.",
            ["model_version"], registry=registry,
        )
        self.drift_evaluation_seconds = Histogram(
            "driftline_drift_evaluation_duration_seconds", "Time to evaluate drift over the window.",
            buckets=STAGE_BUCKETS, registry=registry,
        )
        # --- feedback loop (issue 14): labels joined to predictions, live and estimated performance ---
        self.label_outcomes = Counter(
            "driftline_labels_total",
            "Labels consumed, by outcome: joined (to one or more predictions) or why it was dead-lettered.",
            ["outcome"], registry=registry,
        )
        self.label_delay_seconds = Histogram(
            "driftline_label_delay_seconds",
            "label_time - scored_at of each prediction that took a label (never below 0).",
            buckets=LABEL_DELAY_BUCKETS, registry=registry,
        )
        self.live_performance = Gauge(
            "driftline_live_performance",
            "Realised performance of a model version over its last labelled predictions (NaN where undefined).",
            ["model_version", "metric"], registry=registry,
        )
        self.live_labelled = Gauge(
            "driftline_live_labelled", "Labelled predictions in a model version's performance window.",
            ["model_version"], registry=registry,
        )
        self.label_coverage = Gauge(
            "driftline_label_coverage",
            "Labels joined / predictions published by this worker over the performance window's span.",
            ["model_version"], registry=registry,
        )
        self.cbpe_estimate = Gauge(
            "driftline_cbpe_estimate",
            "Confidence-based estimate of a binary model version's performance over its last scores "
            "(NaN where undefined).",
            ["model_version", "metric"], registry=registry,
        )
        self.model_test_performance = Gauge(
            "driftline_model_test_performance",
            "A served model version's held-out metric at training (from the registry).",
            ["model_version", "metric"], registry=registry,
        )
        self.join_store_seconds = Histogram(
            "driftline_join_store_seconds", "One round trip to the label join store, by operation.",
            ["op"], buckets=JOIN_STORE_BUCKETS, registry=registry,
        )
        self.join_store_failures = Counter(
            "driftline_join_store_failures_total",
            "Round trips to the label join store that failed or timed out, by operation (each is retried; "
            "the batch waits uncommitted meanwhile).",
            ["op"], registry=registry,
        )
        for outcome in LABEL_OUTCOMES:
            self.label_outcomes.labels(outcome)
        for op in JOIN_STORE_OPS:
            self.join_store_seconds.labels(op)
            self.join_store_failures.labels(op)
        # --- end of the feedback loop's instruments ---
        for outcome in ("scored", "dead_lettered"):
            self.events_processed.labels(outcome)
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        for result in ("swapped", "refused"):
            self.model_reloads.labels(result)

    def serving(self, name: str, versions: Mapping[str, str]) -> None:
        """Mark the versions being served, by alias (and no other)."""
        self.model_info.clear()
        for alias, version in versions.items():
            self.model_info.labels(name, version, alias).set(1)

    def observe_shadow(
        self, served: Sequence[Prediction], shadow: Sequence[Prediction], shadow_version: str, seconds: float
    ) -> None:
        """Compare the shadow's predictions with the served ones, event by event."""
        self.shadow_seconds.labels(shadow_version).observe(seconds)
        by_event = {p.event_id: p for p in served}
        for mine in shadow:
            theirs = by_event.get(mine.event_id)
            if theirs is None:
                continue  # dead-lettered by the served version (or the shadow's rules differ)
            agree = "true" if theirs.decision == mine.decision else "false"
            self.shadow_decisions.labels(theirs.model_version, shadow_version, agree).inc()
            self.shadow_score_difference.labels(theirs.model_version, shadow_version).observe(
                abs(mine.score - theirs.score)
            )

    def observe_batch(
        self, result: BatchResult, received: int, output_s: float, publish_s: float, latencies: Iterable[float],
        refused_predictions: int = 0, intake_s: float = 0.0,
    ) -> None:
        """Record one finished batch: counts, stage times and per-event end-to-end latency.

        ``intake_s`` (reading the messages, routing) counts as decode.

        ``refused_predictions`` were scored but published as ``output_failed`` dead letters instead.
        """
        self.events_received.inc(received)
        self.batch_size.observe(received)
        if len(result.predictions) > refused_predictions:
            self.events_processed.labels("scored").inc(len(result.predictions) - refused_predictions)
        if result.dead_letters or refused_predictions:
            self.events_processed.labels("dead_lettered").inc(len(result.dead_letters) + refused_predictions)
            counts: dict[DeadLetterType, int] = {}
            if refused_predictions:
                counts["output_failed"] = refused_predictions
            for letter in result.dead_letters:
                counts[letter.error_type] = counts.get(letter.error_type, 0) + 1
            for error_type, count in counts.items():
                self.dead_letters.labels(error_type).inc(count)
        if result.feature_error is not None:
            self.feature_read_failures.inc()
            self.degraded_predictions.inc(len(result.predictions))
        for feature, count in result.missing_counts.items():
            self.missing_features.labels(feature).inc(count)
        timings = result.timings
        self.stage_seconds.labels("decode").observe(timings.decode_s + intake_s)
        self.stage_seconds.labels("features").observe(timings.features_s)
        self.stage_seconds.labels("predict").observe(timings.predict_s)
        self.stage_seconds.labels("output").observe(output_s)
        self.stage_seconds.labels("publish").observe(publish_s)
        for latency in latencies:
            self.end_to_end_seconds.observe(latency)
        for score in result.scores.tolist():
            self.prediction_score.observe(score)

    def observe_freshness(self, ages: Mapping[str, Sequence[float]], ttls: Mapping[str, float]) -> None:
        """Record the age of each view's values per scored event, and count those past the view's TTL."""
        for view, view_ages in ages.items():
            stale_counter = self.stale_features.labels(view)  # exists at 0 from the first observation
            histogram = self.feature_age_seconds.labels(view)
            for age in view_ages:
                histogram.observe(age)
            ttl = ttls.get(view)
            if ttl:
                stale = sum(1 for age in view_ages if age > ttl)
                if stale:
                    stale_counter.inc(stale)

    def observe_drift(self, report: DriftEvaluation, model_version: str) -> None:
        """Publish the latest drift evaluation as gauges (untested columns are left out)."""
        self.drift_window_events.labels(model_version).set(report.window_events)
        for column in report.features:
            self.feature_missing_ratio.labels(column.name, model_version).set(column.missing_rate)
            if not column.tested:
                continue
            if column.psi is not None:
                self.feature_psi.labels(column.name, model_version).set(column.psi)
            if column.p_value is not None:
                self.feature_drift_pvalue.labels(column.name, model_version).set(column.p_value)
            self.feature_drift_flagged.labels(column.name, model_version).set(int(column.flagged))
        score = report.score
        if score is not None:
            if score.psi is not None:
                self.prediction_psi.labels(model_version).set(score.psi)
            if score.p_value is not None:
                self.prediction_drift_pvalue.labels(model_version).set(score.p_value)
            self.prediction_drift_flagged.labels(model_version).set(int(score.flagged))

    def clear_drift(self) -> None:
        """Forget drift gauges (on a model swap their version label changes)."""
        for gauge in (self.feature_psi, self.feature_drift_pvalue, self.feature_drift_flagged,
                      self.feature_missing_ratio, self.prediction_psi, self.prediction_drift_pvalue,
                      self.prediction_drift_flagged, self.drift_window_events):
            gauge.clear()

    # --- feedback loop (issue 14) ---

    def observe_labels(self, outcomes: Mapping[JoinStatus, int], delays: Iterable[float]) -> None:
        """Count a batch's labels by outcome, and the label delay of each prediction that took one."""
        for outcome, count in outcomes.items():
            if count:
                self.label_outcomes.labels(outcome).inc(count)
        for delay in delays:
            self.label_delay_seconds.observe(delay)

    def observe_join_store(self, op: JoinStoreOp, seconds: float) -> None:
        """Record one round trip to the join store."""
        self.join_store_seconds.labels(op).observe(seconds)

    def observe_performance(self, report: PerformanceReport, coverage: float | None) -> None:
        """Publish a version's realised performance, its labelled count and label coverage."""
        version = report.model_version
        for metric in LIVE_METRICS[report.task]:
            self.live_performance.labels(version, metric).set(_gauge_value(getattr(report, metric)))
        self.observe_label_window(version, report.labels, coverage)

    def observe_label_window(self, model_version: str, labelled: int, coverage: float | None) -> None:
        """Publish how many labels a version's window holds and their coverage (also before any label)."""
        self.live_labelled.labels(model_version).set(labelled)
        self.label_coverage.labels(model_version).set(_gauge_value(coverage))

    def observe_cbpe(self, model_version: str, estimate: CbpeEstimate) -> None:
        """Publish a binary version's confidence-based performance estimate."""
        for metric in CBPE_METRICS:
            self.cbpe_estimate.labels(model_version, metric).set(_gauge_value(getattr(estimate, metric)))

    def set_test_performance(self, model_version: str, metrics: Mapping[str, float]) -> None:
        """Publish a served version's held-out metrics (``ModelMetadata.metrics``) that have a live counterpart.

        Only the names of :data:`LIVE_METRICS` are kept (``precision_at_threshold`` is precision), so the
        label stays bounded and every test value has a live value to be compared with.
        """
        live = {metric for metrics in LIVE_METRICS.values() for metric in metrics}
        for name, value in metrics.items():
            metric = _TEST_METRIC_NAMES.get(name, name)
            if metric in live:
                self.model_test_performance.labels(model_version, metric).set(float(value))

    def forget_label_version(self, model_version: str) -> None:
        """Remove a retired version's feedback-loop series, so its last values stop being exported."""
        live = {metric for metrics in LIVE_METRICS.values() for metric in metrics}
        for gauge, metrics in ((self.live_performance, live), (self.model_test_performance, live),
                               (self.cbpe_estimate, set(CBPE_METRICS))):
            for metric in metrics:
                gauge.remove(model_version, metric)  # a series never set is ignored
        self.live_labelled.remove(model_version)
        self.label_coverage.remove(model_version)


# One event answers in a few ms on loopback, a list of hundreds in tens of ms: dense from 1 ms to
# 100 ms, reaching 5 s to show feature-store timeouts (DRIFTLINE_FEATURE_TIMEOUT_S is 1 s by default).
HTTP_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Statuses a scoring request is answered with (``driftline serve``): a closed set, so a bounded label.
HTTP_STATUSES = (200, 400, 413, 500, 503)
#: Events per scoring request as a bounded label; "0": the body was not read (no model, or too large).
HTTP_EVENT_COUNTS = ("0", "1", "2-10", "11-100", "101-1000", "1001+")


def events_label(count: int) -> str:
    """The ``events`` label of a scoring request of ``count`` events (one of :data:`HTTP_EVENT_COUNTS`)."""
    if count <= 1:
        return str(max(count, 0))
    for upper, label in ((10, "2-10"), (100, "11-100"), (1000, "101-1000")):
        if count <= upper:
            return label
    return "1001+"


class HttpMetrics:
    """The instruments of ``driftline serve`` beyond the worker's, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "driftline_http_requests", "Scoring requests (POST /v1/score) answered, by HTTP status.", ["status"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "driftline_http_request_seconds",
            "Time to answer a scoring request, from its first body byte read to its response built, by events "
            "in the request (1, 2-10, 11-100, 101-1000, 1001+; 0 when the body was not read).",
            ["events"], buckets=HTTP_BUCKETS, registry=registry,
        )
        for status in HTTP_STATUSES:
            self.requests.labels(str(status))

    def observe(self, status: int, events: int, seconds: float) -> None:
        """Record one answered scoring request."""
        self.requests.labels(str(status)).inc()
        self.request_seconds.labels(events_label(events)).observe(seconds)
