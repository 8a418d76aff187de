"""The two Grafana dashboards, built as data: service overview and drift/freshness.

Built in code so panel ids, grid positions and the datasource are right by construction. Editing a
dashboard in Grafana's UI does not persist (the provider disallows it): change it here and run
``python -m monitoring.render``. Every panel queries the provisioned Prometheus datasource; rate
windows use ``$__rate_interval`` so they follow the scrape interval set on the datasource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitoring import DATASOURCE_UID, WORKER_JOB
from monitoring.alerts import DEAD_LETTER_RATIO_MAX, E2E_P99_SLO_SECONDS, STALE_FEATURE_RATIO_MAX

SCHEMA_VERSION = 39
OVERVIEW_UID = "driftline-overview"
DRIFT_UID = "driftline-drift"
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)
_DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
# PSI conventions: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a significant shift.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel, with its legend."""

    expr: str
    legend: str = ""
    heatmap: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel before layout."""

    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[float, str], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)


def _quantiles(metric: str, by: str = "", qs: tuple[float, ...] = QUANTILES) -> tuple[Target, ...]:
    group = f"le, {by}" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return tuple(
        Target(
            f"histogram_quantile({q:g}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in qs
    )


def _panel_json(panel_id: int, panel: Panel, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in panel.thresholds]
    custom = dict(panel.custom)
    if panel.thresholds and panel.kind == "timeseries":
        custom.setdefault("thresholdsStyle", {"mode": "dashed"})
    targets = []
    for index, target in enumerate(panel.targets):
        item: dict[str, Any] = {
            "refId": chr(ord("A") + index),
            "datasource": _DATASOURCE,
            "expr": target.expr,
            "legendFormat": target.legend or "__auto",
            "range": True,
        }
        if target.heatmap:
            item["format"] = "heatmap"
        targets.append(item)
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {
                "unit": panel.unit,
                "custom": custom,
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": panel.options,
        "targets": targets,
    }


def _dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    laid_out: list[dict[str, Any]] = []
    x = y = row_height = 0
    for panel_id, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        laid_out.append(_panel_json(panel_id, panel, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["driftline"],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "links": [
            {"type": "dashboards", "tags": ["driftline"], "asDropdown": False, "title": "Driftline",
             "includeVars": False, "keepTime": True}
        ],
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": laid_out,
    }


def overview() -> dict[str, Any]:
    """Throughput, outcomes, latency, model and partitions: is the worker doing its job?"""
    panels = [
        Panel(
            "Events per second",
            "Consumed events and handled events by outcome, all workers.",
            (
                Target(f"sum(rate(driftline_events_received_total[{RATE}]))", "received"),
                Target(f"sum by (outcome) (rate(driftline_events_processed_total[{RATE}]))", "{{outcome}}"),
            ),
            unit="ops",
        ),
        Panel(
            "Dead letters by type",
            "Dead letters per second by error_type; `driftline tail --topic dead-letters` shows the reasons.",
            (Target(f"sum by (error_type) (rate(driftline_dead_letters_total[{RATE}]))", "{{error_type}}"),),
            unit="ops",
        ),
        Panel(
            "Dead-letter ratio",
            "Share of handled events that became dead letters (alert line dashed).",
            (
                Target(
                    f'sum(rate(driftline_events_processed_total{{outcome="dead_lettered"}}[{RATE}])) '
                    f"/ sum(rate(driftline_events_processed_total[{RATE}]))",
                    "dead-letter ratio",
                ),
            ),
            unit="percentunit",
            thresholds=((DEAD_LETTER_RATIO_MAX, "red"),),
        ),
        Panel(
            "End-to-end latency",
            "event_time to prediction acknowledged by the broker; the SLO on p99 is dashed.",
            _quantiles("driftline_end_to_end_latency_seconds"),
            unit="s",
            thresholds=((E2E_P99_SLO_SECONDS, "red"),),
        ),
        Panel(
            "Stage latency per batch",
            "Time per micro-batch in decode, features (Feast/Redis read), predict and publish.",
            _quantiles("driftline_stage_duration_seconds", by="stage"),
            unit="s",
            width=24,
        ),
        Panel(
            "Batch size",
            "Events per micro-batch: median, p95 and mean.",
            (
                *_quantiles("driftline_batch_size_events", qs=(0.5, 0.95)),
                Target(
                    f"sum(rate(driftline_batch_size_events_sum[{RATE}])) "
                    f"/ sum(rate(driftline_batch_size_events_count[{RATE}]))",
                    "mean",
                ),
            ),
        ),
        Panel(
            "Model served",
            "Model name and version each worker serves (more than one row during a rollout).",
            (Target("count by (model_name, model_version) (driftline_model_info == 1)",
                    "{{model_name}} {{model_version}}"),),
            kind="stat",
            width=6,
            options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                     "textMode": "value_and_name", "colorMode": "none", "graphMode": "none"},
        ),
        Panel(
            "Model reloads",
            "Hot swaps of the served model by result; refused means a version failed its checks.",
            (Target(f"sum by (result) (increase(driftline_model_reloads_total[{RATE}]))", "{{result}}"),),
            width=6,
        ),
        Panel(
            "Workers and partitions",
            "Workers answering scrapes, and events-topic partitions each holds.",
            (
                Target(f'sum(up{{job="{WORKER_JOB}"}})', "workers up"),
                Target("sum by (instance) (driftline_assigned_partitions)", "{{instance}} partitions"),
            ),
        ),
        Panel(
            "Consumer lag",
            "Messages behind the end of each partition. Exact on Apache Kafka only: the embedded broker "
            "reports wrong end offsets.",
            (
                Target("sum by (partition) (driftline_consumer_lag_messages)", "partition {{partition}}"),
                Target("sum(driftline_consumer_lag_messages)", "total"),
            ),
        ),
        Panel(
            "Degraded predictions and feature read failures",
            "Predictions scored without store features, and batches whose feature read failed or timed out.",
            (
                Target(f"sum(rate(driftline_degraded_predictions_total[{RATE}]))", "degraded predictions/s"),
                Target(f"sum(rate(driftline_feature_read_failures_total[{RATE}]))", "failed reads/s"),
            ),
            unit="ops",
        ),
        Panel(
            "Output delivery",
            "Sends of predictions and dead letters the broker did not acknowledge (each retried or replaced by "
            "a dead letter), and workers whose outputs are blocked (they hold their inputs and consume nothing).",
            (
                Target(f"sum by (output, error) (rate(driftline_output_send_failures_total[{RATE}]))",
                       "{{output}} {{error}}"),
                Target("sum by (instance) (driftline_output_blocked)", "{{instance}} blocked"),
            ),
        ),
        Panel(
            "Missing store features",
            "Scored events that lacked a store feature (unknown entities), by feature.",
            (Target(f"sum by (feature) (rate(driftline_missing_features_total[{RATE}]))", "{{feature}}"),),
            unit="ops",
        ),
    ]
    return _dashboard(
        OVERVIEW_UID, "Driftline / Overview",
        "Streaming fraud scoring: throughput, outcomes, latency, model and partitions.", panels,
    )


def drift() -> dict[str, Any]:
    """Input and output drift against the training reference, and the freshness of store features."""
    panels = [
        Panel(
            "Feature PSI",
            "Population stability index of each input in the drift window against the training reference "
            "(0.1 moderate, 0.25 significant). The largest across workers.",
            (Target("max by (feature, model_version) (driftline_feature_psi)", "{{feature}} ({{model_version}})"),),
            thresholds=((PSI_MODERATE, "orange"), (PSI_SIGNIFICANT, "red")),
        ),
        Panel(
            "Feature drift flags",
            "1 when a feature's drift test is significant after Benjamini-Hochberg.",
            (Target("max by (feature, model_version) (driftline_feature_drift_flagged)",
                    "{{feature}} ({{model_version}})"),),
            kind="state-timeline",
            thresholds=((1, "red"),),
            options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
        ),
        Panel(
            "Feature drift p-values",
            "Raw p-value of each feature's drift test (log scale); the smallest across workers.",
            (Target("min by (feature, model_version) (driftline_feature_drift_pvalue)",
                    "{{feature}} ({{model_version}})"),),
            custom={"scaleDistribution": {"type": "log", "log": 10}},
        ),
        Panel(
            "Missing ratio per feature",
            "Share of events in the drift window with the feature missing.",
            (Target("max by (feature, model_version) (driftline_feature_missing_ratio)",
                    "{{feature}} ({{model_version}})"),),
            unit="percentunit",
        ),
        Panel(
            "Prediction drift",
            "PSI and p-value of the score distribution against the model's reference, and its flag.",
            (
                Target("max by (model_version) (driftline_prediction_psi)", "PSI ({{model_version}})"),
                Target("min by (model_version) (driftline_prediction_drift_pvalue)", "p-value ({{model_version}})"),
                Target("max by (model_version) (driftline_prediction_drift_flagged)", "flagged ({{model_version}})"),
            ),
        ),
        Panel(
            "Drift window",
            "Events in each worker's drift window; statistics are computed once it holds enough events.",
            (Target("sum by (instance, model_version) (driftline_drift_window_events)",
                    "{{instance}} ({{model_version}})"),),
        ),
        Panel(
            "Drift evaluation time",
            "Time each drift evaluation takes (off the hot path, once per DRIFTLINE_DRIFT_INTERVAL_S).",
            _quantiles("driftline_drift_evaluation_duration_seconds", qs=(0.5, 0.99)),
            unit="s",
        ),
        Panel(
            "Feature age at prediction time",
            "Age of the store values read for each prediction, by feature view.",
            _quantiles("driftline_feature_age_seconds", by="feature_view", qs=(0.5, 0.99)),
            unit="s",
        ),
        Panel(
            "Stale feature values",
            "Values per second older than their feature view's TTL, and their share (alert line dashed).",
            (
                Target(f"sum by (feature_view) (rate(driftline_stale_features_total[{RATE}]))",
                       "{{feature_view}} stale/s"),
                Target(
                    f"sum by (feature_view) (rate(driftline_stale_features_total[{RATE}])) "
                    f"/ sum by (feature_view) (rate(driftline_feature_age_seconds_count[{RATE}]))",
                    "{{feature_view}} stale share",
                ),
            ),
            thresholds=((STALE_FEATURE_RATIO_MAX, "red"),),
        ),
        Panel(
            "Score distribution",
            "Predicted fraud probabilities per interval, by score bucket.",
            (Target(f"sum by (le) (increase(driftline_prediction_score_bucket[{RATE}]))", "{{le}}",
                    heatmap=True),),
            kind="heatmap",
            options={"calculate": False, "yAxis": {"unit": "short"}, "cellGap": 1,
                     "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5}},
        ),
        Panel(
            "Score quantiles",
            "Median, p90 and p99 of the predicted fraud probability.",
            _quantiles("driftline_prediction_score", qs=(0.5, 0.9, 0.99)),
        ),
    ]
    return _dashboard(
        DRIFT_UID, "Driftline / Drift and freshness",
        "Input and score drift against the training reference; age and staleness of store features.", panels,
    )
