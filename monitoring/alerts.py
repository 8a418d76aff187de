"""The worker's alerts, defined once and rendered for Prometheus and for Grafana-managed alerting.

Each alert watches one PromQL quantity (``value``: one series per thing that can break) and fires when
it crosses ``threshold`` for ``for_``. Prometheus gets ``value <op> threshold`` as the rule expression;
Grafana gets ``value`` as an instant query on the provisioned datasource and a threshold expression on
it, so both fire on the same condition. Annotations use only ``{{ $labels.x }}`` templates, which
both systems read the same way (and which Grafana's file provisioning does not env-expand).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from monitoring import DATASOURCE_UID, GRAFANA_FOLDER, WORKER_JOB

Severity = Literal["page", "ticket"]

# --- Thresholds: each alert below reads its number from here. ------------------------------------------
# End-to-end latency SLO: p99 of event_time -> prediction acknowledged. 0.5 s is a bucket edge of
# driftline_end_to_end_latency_seconds (so the quantile is not interpolated across a wide bucket) and
# leaves room above the p99 measured at half of one worker's maximum load by `driftline bench`
# (280 ms on a shared 2-core machine) and over a 30-minute soak at 200 events/s (at most 361 ms per
# 15 s interval once the test suite sharing the machine had finished).
E2E_P99_SLO_SECONDS = 0.5
E2E_FOR = "5m"
# Share of handled events that became dead letters. Producers send ~1-2% bad input in the demo and
# in compose; 5% means an upstream schema change or a broken producer, not the usual noise.
DEAD_LETTER_RATIO_MAX = 0.05
DEAD_LETTER_FOR = "10m"
# Drift flags are set after Benjamini-Hochberg on the drift window; a flag must hold for 15 minutes so
# that a short burst (a nightly batch of unusual merchants, a window just after a restart) does not page.
FEATURE_DRIFT_FOR = "15m"
PREDICTION_DRIFT_FOR = "15m"
# Share of scored events whose values of a feature view were older than the view's TTL at prediction
# time (driftline_stale_features_total over driftline_feature_age_seconds_count, both per event and view).
STALE_FEATURE_RATIO_MAX = 0.05
STALE_FOR = "10m"
# A worker is stalled when, over STALL_WINDOW, events arrived (or the consumer lags) but nothing was
# scored. The window must be longer than the worst normal gap between batches under light traffic.
STALL_WINDOW = "3m"
STALL_FOR = "2m"
# A worker whose outputs cannot be delivered holds its inputs and consumes nothing more. A broker
# restart or a leader move blocks it for seconds; a minute means the topic is gone or refuses it.
OUTPUT_BLOCKED_FOR = "1m"
# A worker target that does not answer its scrape (or no worker target at all).
WORKER_DOWN_FOR = "1m"
# Rate windows of the ratio and quantile alerts: several scrapes (5 s in compose) per window.
RATE_WINDOW = "5m"
# Live performance (issue 14): realised PR-AUC over the labels in a worker's rolling window, against the
# PR-AUC the version scored on its held-out test set. Below 80% of it is a degradation worth a ticket; a
# window of fewer than 200 labels (a few positives at a 3% fraud rate) is too noisy to judge. Labels come
# late and the window moves slowly, so a few minutes below it are already a trend, not a blip.
LIVE_PR_AUC_MIN_FRACTION = 0.8
LIVE_MIN_LABELS = 200
LIVE_PERFORMANCE_FOR = "5m"
# Share of labels the worker refused (expired, unknown_prediction, duplicate, malformed, ...) over a
# longer window than the other ratios: labels arrive in bursts (a chargeback batch), and one bad batch
# should not page. Above 10% the join window is too short, predictions are not stored, or a producer is broken.
LABELS_REJECTED_RATIO_MAX = 0.10
LABELS_REJECTED_WINDOW = "15m"
LABELS_REJECTED_FOR = "10m"


@dataclass(frozen=True)
class Alert:
    """One alert: the watched quantity, when it fires, and what the on-call reads."""

    name: str
    uid: str
    value: str
    op: Literal[">", "<"]
    threshold: float
    for_: str
    severity: Severity
    summary: str
    description: str
    runbook: str

    @property
    def expr(self) -> str:
        """The Prometheus rule expression: ``value`` compared with ``threshold``.

        ``value`` is parenthesised: comparison binds tighter than ``or``/``and``/``unless``.
        """
        return f"({self.value}) {self.op} {_number(self.threshold)}"

    @property
    def labels(self) -> dict[str, str]:
        """Labels shared by both renderings (the notification policy routes on ``severity``)."""
        return {"severity": self.severity, "service": "driftline"}

    @property
    def annotations(self) -> dict[str, str]:
        """Annotations shared by both renderings."""
        return {"summary": self.summary, "description": self.description, "runbook": self.runbook}


def _number(value: float) -> str:
    return f"{value:g}"


ALERTS: tuple[Alert, ...] = (
    Alert(
        name="DriftlineEndToEndLatencyHigh",
        uid="driftline-e2e-latency",
        value=(
            "histogram_quantile(0.99, sum by (le) "
            f"(rate(driftline_end_to_end_latency_seconds_bucket[{RATE_WINDOW}])))"
        ),
        op=">",
        threshold=E2E_P99_SLO_SECONDS,
        for_=E2E_FOR,
        severity="page",
        summary="End-to-end p99 latency is over the SLO",
        description=(
            f"p99 of event_time -> prediction acknowledged has been above {_number(E2E_P99_SLO_SECONDS)} s "
            f"for {E2E_FOR}."
        ),
        runbook=(
            "Open the Driftline overview dashboard: per-stage latency shows whether features (Redis/Feast), "
            "predict or publish (broker acks) grew; consumer lag and assigned partitions show a backlog or "
            "too few workers (scale with --scale worker=N)."
        ),
    ),
    Alert(
        name="DriftlineDeadLetterRatioHigh",
        uid="driftline-dead-letter-ratio",
        value=(
            f'sum(rate(driftline_events_processed_total{{outcome="dead_lettered"}}[{RATE_WINDOW}])) '
            f"/ sum(rate(driftline_events_processed_total[{RATE_WINDOW}]))"
        ),
        op=">",
        threshold=DEAD_LETTER_RATIO_MAX,
        for_=DEAD_LETTER_FOR,
        severity="ticket",
        summary="Too many events are dead-lettered",
        description=(
            f"More than {DEAD_LETTER_RATIO_MAX:.0%} of handled events became dead letters for {DEAD_LETTER_FOR}."
        ),
        runbook=(
            "Check driftline_dead_letters_total by error_type, then read a few records with "
            "`driftline tail --topic dead-letters`: the reason names the field and rule that failed."
        ),
    ),
    Alert(
        name="DriftlineFeatureDriftFlagged",
        uid="driftline-feature-drift",
        value="max by (feature, model_version) (driftline_feature_drift_flagged)",
        op=">",
        threshold=0,
        for_=FEATURE_DRIFT_FOR,
        severity="ticket",
        summary="Feature {{ $labels.feature }} drifted (model {{ $labels.model_version }})",
        description=(
            "The feature's distribution in the drift window differs from the training reference "
            f"(flagged after Benjamini-Hochberg) for {FEATURE_DRIFT_FOR}."
        ),
        runbook=(
            "Open the Driftline drift dashboard: compare the feature's PSI, p-value and missing ratio; "
            "a missing-ratio jump points at the feature pipeline, a PSI rise at the population; "
            "retrain (`driftline train`) only after the cause is understood."
        ),
    ),
    Alert(
        name="DriftlinePredictionDriftFlagged",
        uid="driftline-prediction-drift",
        value="max by (model_version) (driftline_prediction_drift_flagged)",
        op=">",
        threshold=0,
        for_=PREDICTION_DRIFT_FOR,
        severity="ticket",
        summary="Score distribution drifted (model {{ $labels.model_version }})",
        description=(
            "The served model's score distribution in the drift window differs from its training reference "
            f"for {PREDICTION_DRIFT_FOR}."
        ),
        runbook=(
            "Open the Driftline drift dashboard: find the flagged features behind the shift and check the "
            "score quantiles and the fraud-decision rate before deciding to retrain or roll back."
        ),
    ),
    Alert(
        name="DriftlineStaleFeatures",
        uid="driftline-stale-features",
        value=(
            f"sum by (feature_view) (rate(driftline_stale_features_total[{RATE_WINDOW}])) "
            f"/ sum by (feature_view) (rate(driftline_feature_age_seconds_count[{RATE_WINDOW}]))"
        ),
        op=">",
        threshold=STALE_FEATURE_RATIO_MAX,
        for_=STALE_FOR,
        severity="ticket",
        summary="Feature view {{ $labels.feature_view }} serves stale values",
        description=(
            f"For more than {STALE_FEATURE_RATIO_MAX:.0%} of scored events, the view's values read at prediction "
            f"time were older than its TTL, for {STALE_FOR}."
        ),
        runbook=(
            "Materialization has stopped or lags: check the last `driftline feast materialize` run and the "
            "feature age panel of the Driftline drift dashboard, then materialize again."
        ),
    ),
    Alert(
        name="DriftlineWorkerStalled",
        uid="driftline-worker-stalled",
        value=(
            f"((sum(rate(driftline_events_received_total[{STALL_WINDOW}])) > bool 0) "
            f'* (sum(rate(driftline_events_processed_total{{outcome="scored"}}[{STALL_WINDOW}])) == bool 0)) '
            f"+ (((sum(driftline_consumer_lag_messages) > bool 0) "
            f"* (sum(rate(driftline_events_processed_total[{STALL_WINDOW}])) == bool 0)) or vector(0))"
        ),
        op=">",
        threshold=0,
        for_=STALL_FOR,
        severity="page",
        summary="Events arrive but none are scored",
        description=(
            f"Over {STALL_WINDOW}, events were received but none scored, or the consumer lags while no "
            "event is processed."
        ),
        runbook=(
            "Read the worker logs (model reload refused? feature reads failing? broker unreachable?), check "
            "driftline_assigned_partitions and the dead-letter reasons; restart the worker if it hangs."
        ),
    ),
    Alert(
        name="DriftlineOutputBlocked",
        uid="driftline-output-blocked",
        value="max by (instance) (driftline_output_blocked)",
        op=">",
        threshold=0,
        for_=OUTPUT_BLOCKED_FOR,
        severity="page",
        summary="Worker {{ $labels.instance }} cannot deliver its outputs",
        description=(
            f"Predictions or dead letters have not been acknowledged by the broker for {OUTPUT_BLOCKED_FOR}: "
            "the worker holds their inputs, consumes nothing more and commits nothing past them."
        ),
        runbook=(
            "The worker log's 'output blocked' line names the topic and the broker's error: recreate a deleted "
            "topic, grant the worker write access, or bring the broker back. Nothing is lost meanwhile."
        ),
    ),
    Alert(
        name="DriftlineWorkerDown",
        uid="driftline-worker-down",
        value=f'(1 - up{{job="{WORKER_JOB}"}}) or absent(up{{job="{WORKER_JOB}"}})',
        op=">",
        threshold=0,
        for_=WORKER_DOWN_FOR,
        severity="page",
        summary=(
            "{{ with $labels.instance }}Worker {{ . }} does not answer its scrape"
            "{{ else }}No driftline worker target is found{{ end }}"
        ),
        description=(
            f"Prometheus could not scrape a {WORKER_JOB} target (or finds none) for {WORKER_DOWN_FOR}."
        ),
        runbook=(
            "Check the worker container or process (`docker compose ps worker`, its logs); exit code 2 "
            "means no servable model (run `driftline model list`)."
        ),
    ),
    Alert(
        name="DriftlineLivePerformanceLow",
        uid="driftline-live-performance-low",
        # Per worker window, then the best worker per version: it fires when every worker that holds
        # enough labels sees the drop. An undefined metric (NaN: no positive label yet) never fires.
        value=(
            "max by (model_version) ("
            '(driftline_live_performance{metric="pr_auc"} / driftline_model_test_performance{metric="pr_auc"}) '
            f"and ignoring (metric) (driftline_live_labelled >= {LIVE_MIN_LABELS}))"
        ),
        op="<",
        threshold=LIVE_PR_AUC_MIN_FRACTION,
        for_=LIVE_PERFORMANCE_FOR,
        severity="ticket",
        summary=(
            "Live PR-AUC of model {{ $labels.model_version }} is below "
            f"{LIVE_PR_AUC_MIN_FRACTION:.0%} of its test PR-AUC"
        ),
        description=(
            f"With at least {LIVE_MIN_LABELS} labels in the window, the realised PR-AUC has been below "
            f"{LIVE_PR_AUC_MIN_FRACTION:.0%} of the PR-AUC the version scored on its held-out test set "
            f"for {LIVE_PERFORMANCE_FOR}."
        ),
        runbook=(
            "Open the model performance panels of the Driftline drift dashboard: a CBPE estimate that stays "
            "high while the realised metric falls means the fraud itself changed (concept drift), both falling "
            "means the inputs moved (check the feature drift panels). Run `driftline retrain`; meanwhile roll "
            "production back to the previous version with `driftline model rollback --reason R`."
        ),
    ),
    Alert(
        name="DriftlineLabelsRejected",
        uid="driftline-labels-rejected",
        value=(
            f'sum(rate(driftline_labels_total{{outcome!="joined"}}[{LABELS_REJECTED_WINDOW}])) '
            f"/ sum(rate(driftline_labels_total[{LABELS_REJECTED_WINDOW}]))"
        ),
        op=">",
        threshold=LABELS_REJECTED_RATIO_MAX,
        for_=LABELS_REJECTED_FOR,
        severity="ticket",
        summary="Too many labels are rejected",
        description=(
            f"More than {LABELS_REJECTED_RATIO_MAX:.0%} of the labels received over {LABELS_REJECTED_WINDOW} "
            f"were refused instead of joined to a prediction, for {LABELS_REJECTED_FOR}."
        ),
        runbook=(
            "Check the labels-by-outcome panel of the Driftline drift dashboard: expired or unknown_prediction "
            "means labels come later than the join window (or the store's TTL) allows, so lengthen it or check "
            "the label delay panel; malformed, bad_label or missing_id points at the label producer "
            "(`driftline tail --topic labels`); duplicate means a producer resends."
        ),
    ),
)

# Grafana evaluates its rule group on this interval; Prometheus uses its global evaluation_interval.
GRAFANA_EVALUATION_INTERVAL = "1m"
# The instant query looks back this far (seconds); longer than every rate window above.
GRAFANA_QUERY_RANGE_S = 600
_GRAFANA_OP = {">": "gt", "<": "lt"}


def prometheus_rules() -> dict[str, Any]:
    """The Prometheus rule file (prometheus/alerts.yml)."""
    return {
        "groups": [
            {
                "name": "driftline",
                "rules": [
                    {
                        "alert": alert.name,
                        "expr": alert.expr,
                        "for": alert.for_,
                        "labels": alert.labels,
                        "annotations": alert.annotations,
                    }
                    for alert in ALERTS
                ],
            }
        ]
    }


def _grafana_rule(alert: Alert) -> dict[str, Any]:
    return {
        "uid": alert.uid,
        "title": alert.name,
        "condition": "B",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": GRAFANA_QUERY_RANGE_S, "to": 0},
                "datasourceUid": DATASOURCE_UID,
                "model": {
                    "refId": "A",
                    "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
                    "expr": alert.value,
                    "instant": True,
                    "range": False,
                    "intervalMs": 1000,
                    "maxDataPoints": 43200,
                },
            },
            {
                "refId": "B",
                "relativeTimeRange": {"from": 0, "to": 0},
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "datasource": {"type": "__expr__", "uid": "__expr__"},
                    "type": "threshold",
                    "expression": "A",
                    "conditions": [{"evaluator": {"type": _GRAFANA_OP[alert.op], "params": [alert.threshold]}}],
                },
            },
        ],
        # No data means no traffic (NaN ratios, no drift window yet): not an incident. A worker that is
        # gone is still seen, through absent() in DriftlineWorkerDown.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": alert.for_,
        "annotations": alert.annotations,
        "labels": alert.labels,
        "isPaused": False,
    }


def grafana_rules() -> dict[str, Any]:
    """The Grafana alert-rule provisioning file (grafana/provisioning/alerting/rules.yaml)."""
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "driftline",
                "folder": GRAFANA_FOLDER,
                "interval": GRAFANA_EVALUATION_INTERVAL,
                "rules": [_grafana_rule(alert) for alert in ALERTS],
            }
        ],
    }
