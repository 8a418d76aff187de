"""The two Grafana dashboards, built with Grafana's own builder: service overview and drift/freshness.

Built in code (grafana-foundation-sdk) so panel ids, grid positions and the datasource are right by
construction. Editing a dashboard in Grafana's UI does not persist (the provider disallows it): change it
here and run ``python -m monitoring.render``. Every panel and query names the provisioned Prometheus
datasource; rate windows use ``$__rate_interval`` so they follow the scrape interval set on the datasource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    Dashboard,
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    Threshold,
    ThresholdsConfig,
    ThresholdsMode,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode, HeatmapColorScale
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from monitoring import DATASOURCE_UID, WORKER_JOB
from monitoring.alerts import (
    DEAD_LETTER_RATIO_MAX,
    E2E_P99_SLO_SECONDS,
    LABELS_REJECTED_RATIO_MAX,
    LABELS_REJECTED_WINDOW,
    LIVE_MIN_LABELS,
    LIVE_PR_AUC_MIN_FRACTION,
    STALE_FEATURE_RATIO_MAX,
)

OVERVIEW_UID = "driftline-overview"
DRIFT_UID = "driftline-drift"
TAG = "driftline"
RATE = "$__rate_interval"
QUANTILES = (0.5, 0.95, 0.99)
# PSI conventions: below 0.1 stable, 0.1-0.25 moderate shift, above 0.25 a significant shift.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


class _PanelBuilder(Protocol):
    """What every SDK panel builder (timeseries, stat, heatmap, state timeline) offers and we use."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: DataSourceRef) -> Self: ...
    def with_target(self, target: Builder[Dataquery]) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def thresholds(self, thresholds: Builder[ThresholdsConfig]) -> Self: ...
    def span(self, w: int) -> Self: ...
    def height(self, h: int) -> Self: ...


P = TypeVar("P", bound=_PanelBuilder)
# The panel kinds the dashboards use; each is also the SDK's Builder[Panel] that Dashboard.with_panel takes.
AnyPanel = timeseries.Panel | stat.Panel | statetimeline.Panel | heatmap.Panel


def _datasource() -> DataSourceRef:
    return DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


def _query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().datasource(_datasource()).expr(expr).legend_format(legend).range()


def _quantiles(metric: str, by: str = "", qs: tuple[float, ...] = QUANTILES) -> list[prometheus.Dataquery]:
    group = f"le, {by}" if by else "le"
    prefix = f"{{{{{by}}}}} " if by else ""
    return [
        _query(
            f"histogram_quantile({q:g}, sum by ({group}) (rate({metric}_bucket[{RATE}])))",
            f"{prefix}p{round(q * 100)}",
        )
        for q in qs
    ]


def _panel(
    panel: P,
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    thresholds: Sequence[tuple[float, str]] = (),
    width: int = 12,
    height: int = 8,
) -> P:
    """Set what every panel shares: text, datasource, queries (refIds A, B, ...), unit, thresholds, size."""
    steps = [Threshold(value=None, color="green"), *(Threshold(value=v, color=c) for v, c in thresholds)]
    panel = (
        panel.title(title)
        .description(description)
        .datasource(_datasource())
        .unit(unit)
        .thresholds(dashboard_builder.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps))
        .span(width)
        .height(height)
    )
    for index, query in enumerate(queries):
        panel = panel.with_target(query.ref_id(chr(ord("A") + index)))
    return panel


def _timeseries(
    title: str,
    description: str,
    queries: Sequence[prometheus.Dataquery],
    *,
    unit: str = "short",
    thresholds: Sequence[tuple[float, str]] = (),
    width: int = 12,
) -> timeseries.Panel:
    """A time series panel; its thresholds (alert lines, SLOs) are drawn dashed."""
    panel = _panel(timeseries.Panel(), title, description, queries, unit=unit, thresholds=thresholds, width=width)
    if thresholds:
        dashed = common_builder.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        panel = panel.thresholds_style(dashed)
    return panel


def _dashboard(uid: str, title: str, description: str, panels: Sequence[AnyPanel]) -> Dashboard:
    """Number the panels 1, 2, ...; ``with_panel`` lays them out left to right, wrapping at 24 columns.

    The SDK wraps only once a row is full, so each row's widths must add up to 24 (they do).
    """
    board = (
        dashboard_builder.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG])
        .timezone("browser")
        .version(1)
        .readonly()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("10s")
        .time("now-1h", "now")
        .link(
            dashboard_builder.DashboardLink("Driftline")
            .type(DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(False)
            .include_vars(False)
            .keep_time(True)
        )
        .annotations([])
        .variables([])
    )
    for panel_id, panel in enumerate(panels, start=1):
        board = board.with_panel(panel.id(panel_id))
    return board.build()


def overview() -> Dashboard:
    """Throughput, outcomes, latency, model and partitions: is the worker doing its job?"""
    panels: list[AnyPanel] = [
        _timeseries(
            "Events per second",
            "Consumed events and handled events by outcome, all workers.",
            [
                _query(f"sum(rate(driftline_events_received_total[{RATE}]))", "received"),
                _query(f"sum by (outcome) (rate(driftline_events_processed_total[{RATE}]))", "{{outcome}}"),
            ],
            unit="ops",
        ),
        _timeseries(
            "Dead letters by type",
            "Dead letters per second by error_type; `driftline tail --topic dead-letters` shows the reasons.",
            [_query(f"sum by (error_type) (rate(driftline_dead_letters_total[{RATE}]))", "{{error_type}}")],
            unit="ops",
        ),
        _timeseries(
            "Dead-letter ratio",
            "Share of handled events that became dead letters (alert line dashed).",
            [
                _query(
                    f'sum(rate(driftline_events_processed_total{{outcome="dead_lettered"}}[{RATE}])) '
                    f"/ sum(rate(driftline_events_processed_total[{RATE}]))",
                    "dead-letter ratio",
                ),
            ],
            unit="percentunit",
            thresholds=[(DEAD_LETTER_RATIO_MAX, "red")],
        ),
        _timeseries(
            "End-to-end latency",
            "event_time to prediction acknowledged by the broker; the SLO on p99 is dashed.",
            _quantiles("driftline_end_to_end_latency_seconds"),
            unit="s",
            thresholds=[(E2E_P99_SLO_SECONDS, "red")],
        ),
        _timeseries(
            "Stage latency per batch",
            "Time per micro-batch in decode, features (Feast/Redis read), predict, output (ids, encoding, hand-over) "
            "and publish (the broker's acknowledgement, overlapping later batches).",
            _quantiles("driftline_stage_duration_seconds", by="stage"),
            unit="s",
            width=24,
        ),
        _timeseries(
            "Batch size",
            "Events per micro-batch: median, p95 and mean.",
            [
                *_quantiles("driftline_batch_size_events", qs=(0.5, 0.95)),
                _query(
                    f"sum(rate(driftline_batch_size_events_sum[{RATE}])) "
                    f"/ sum(rate(driftline_batch_size_events_count[{RATE}]))",
                    "mean",
                ),
            ],
        ),
        _panel(
            stat.Panel(),
            "Model served",
            "Model name and version each worker serves (more than one row during a rollout).",
            [_query("count by (model_name, model_version) (driftline_model_info == 1)",
                    "{{model_name}} {{model_version}}")],
            width=6,
        )
        .reduce_options(common_builder.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE),
        _timeseries(
            "Model reloads",
            "Alias moves the workers followed, by result; refused means a version failed its checks.",
            [_query(f"sum by (result) (increase(driftline_model_reloads_total[{RATE}]))", "{{result}}")],
            width=6,
        ),
        _timeseries(
            "Versions by alias",
            "Workers serving each version as production, canary or shadow.",
            [_query("count by (alias, model_version) (driftline_model_info == 1)", "{{alias}} {{model_version}}")],
            width=8,
        ),
        _timeseries(
            "Refused versions and canary rollbacks",
            "Versions an alias named that workers refused to serve (by reason), and canaries the guard moved back.",
            [
                _query(f"sum by (version, reason) (increase(driftline_model_load_failures_total[{RATE}]))",
                       "refused {{version}}: {{reason}}"),
                _query(f"sum by (version) (increase(driftline_canary_rollbacks_total[{RATE}]))",
                       "canary {{version}} rolled back"),
            ],
            width=8,
        ),
        _timeseries(
            "Shadow: decision agreement",
            "Share of events whose shadow decision equals the served one, by version pair.",
            [_query(
                "sum by (model_version, shadow_version) "
                f'(rate(driftline_shadow_decisions_total{{agree="true"}}[{RATE}])) '
                f"/ sum by (model_version, shadow_version) (rate(driftline_shadow_decisions_total[{RATE}]))",
                "{{model_version}} vs shadow {{shadow_version}}",
            )],
            unit="percentunit",
            width=8,
        ),
        _timeseries(
            "Shadow: score difference",
            "|shadow score - served score| per event: median and p99, by shadow version.",
            _quantiles("driftline_shadow_score_difference", qs=(0.5, 0.99), by="shadow_version"),
            width=12,
        ),
        _timeseries(
            "Shadow: latency and skipped batches",
            "Time the shadow takes per batch (off the critical path), and batches it skipped while busy.",
            [
                *_quantiles("driftline_shadow_batch_seconds", qs=(0.5, 0.99), by="shadow_version"),
                _query(f"sum(rate(driftline_shadow_skipped_batches_total[{RATE}]))", "skipped batches/s"),
            ],
            width=12,
        ),
        _timeseries(
            "Workers and partitions",
            "Workers answering scrapes, and events-topic partitions each holds.",
            [
                _query(f'sum(up{{job="{WORKER_JOB}"}})', "workers up"),
                _query("sum by (instance) (driftline_assigned_partitions)", "{{instance}} partitions"),
            ],
        ),
        _timeseries(
            "Consumer lag",
            "Messages behind the end of each partition. Exact on Apache Kafka only: the embedded broker "
            "reports wrong end offsets.",
            [
                _query("sum by (partition) (driftline_consumer_lag_messages)", "partition {{partition}}"),
                _query("sum(driftline_consumer_lag_messages)", "total"),
            ],
        ),
        _timeseries(
            "Degraded predictions and feature read failures",
            "Predictions scored without store features, and batches whose feature read failed or timed out.",
            [
                _query(f"sum(rate(driftline_degraded_predictions_total[{RATE}]))", "degraded predictions/s"),
                _query(f"sum(rate(driftline_feature_read_failures_total[{RATE}]))", "failed reads/s"),
            ],
            unit="ops",
        ),
        _timeseries(
            "Output delivery",
            "Sends of predictions and dead letters the broker did not acknowledge (each retried or replaced by "
            "a dead letter), and workers whose outputs are blocked (they hold their inputs and consume nothing).",
            [
                _query(f"sum by (output, error) (rate(driftline_output_send_failures_total[{RATE}]))",
                       "{{output}} {{error}}"),
                _query("sum by (instance) (driftline_output_blocked)", "{{instance}} blocked"),
            ],
        ),
        _timeseries(
            "Missing store features",
            "Scored events that lacked a store feature (unknown entities), by feature.",
            [_query(f"sum by (feature) (rate(driftline_missing_features_total[{RATE}]))", "{{feature}}")],
            unit="ops",
        ),
    ]
    return _dashboard(
        OVERVIEW_UID, "Driftline / Overview",
        "Streaming fraud scoring: throughput, outcomes, latency, model and partitions.", panels,
    )


def drift() -> Dashboard:
    """Input and output drift against the training reference, and the freshness of store features."""
    panels: list[AnyPanel] = [
        _timeseries(
            "Feature PSI",
            "Population stability index of each input in the drift window against the training reference "
            "(0.1 moderate, 0.25 significant). The largest across workers.",
            [_query("max by (feature, model_version) (driftline_feature_psi)", "{{feature}} ({{model_version}})")],
            thresholds=[(PSI_MODERATE, "orange"), (PSI_SIGNIFICANT, "red")],
        ),
        _panel(
            statetimeline.Panel(),
            "Feature drift flags",
            "1 when a feature's drift test is significant after Benjamini-Hochberg.",
            [_query("max by (feature, model_version) (driftline_feature_drift_flagged)",
                    "{{feature}} ({{model_version}})")],
            thresholds=[(1, "red")],
        )
        .show_value(common.VisibilityMode.NEVER)
        .merge_values(True)
        .row_height(0.8)
        # The SDK writes showLegend false unless told; keep Grafana's default legend (the flag colours).
        .legend(
            common_builder.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
        ),
        _timeseries(
            "Feature drift p-values",
            "Raw p-value of each feature's drift test (log scale); the smallest across workers.",
            [_query("min by (feature, model_version) (driftline_feature_drift_pvalue)",
                    "{{feature}} ({{model_version}})")],
        ).scale_distribution(common_builder.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)),
        _timeseries(
            "Missing ratio per feature",
            "Share of events in the drift window with the feature missing.",
            [_query("max by (feature, model_version) (driftline_feature_missing_ratio)",
                    "{{feature}} ({{model_version}})")],
            unit="percentunit",
        ),
        _timeseries(
            "Prediction drift",
            "PSI and p-value of the score distribution against the model's reference, and its flag.",
            [
                _query("max by (model_version) (driftline_prediction_psi)", "PSI ({{model_version}})"),
                _query("min by (model_version) (driftline_prediction_drift_pvalue)", "p-value ({{model_version}})"),
                _query("max by (model_version) (driftline_prediction_drift_flagged)", "flagged ({{model_version}})"),
            ],
        ),
        _timeseries(
            "Drift window",
            "Events in each worker's drift window; statistics are computed once it holds enough events.",
            [_query("sum by (instance, model_version) (driftline_drift_window_events)",
                    "{{instance}} ({{model_version}})")],
        ),
        _timeseries(
            "Drift evaluation time",
            "Time each drift evaluation takes (off the hot path, once per DRIFTLINE_DRIFT_INTERVAL_S).",
            _quantiles("driftline_drift_evaluation_duration_seconds", qs=(0.5, 0.99)),
            unit="s",
        ),
        _timeseries(
            "Feature age at prediction time",
            "Age of the store values read for each prediction, by feature view.",
            _quantiles("driftline_feature_age_seconds", by="feature_view", qs=(0.5, 0.99)),
            unit="s",
        ),
        _timeseries(
            "Stale feature values",
            "Values per second older than their feature view's TTL, and their share (alert line dashed).",
            [
                _query(f"sum by (feature_view) (rate(driftline_stale_features_total[{RATE}]))",
                       "{{feature_view}} stale/s"),
                _query(
                    f"sum by (feature_view) (rate(driftline_stale_features_total[{RATE}])) "
                    f"/ sum by (feature_view) (rate(driftline_feature_age_seconds_count[{RATE}]))",
                    "{{feature_view}} stale share",
                ),
            ],
            thresholds=[(STALE_FEATURE_RATIO_MAX, "red")],
        ),
        _panel(
            heatmap.Panel(),
            "Score distribution",
            "Predicted fraud probabilities per interval, by score bucket.",
            [_query(f"sum by (le) (increase(driftline_prediction_score_bucket[{RATE}]))", "{{le}}")
             .format(PromQueryFormat.HEATMAP)],
        )
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("short"))
        .cell_gap(1)
        .color(
            heatmap.HeatmapColorOptions()
            .mode(HeatmapColorMode.SCHEME)
            .scheme("Oranges")
            .scale(HeatmapColorScale.EXPONENTIAL)
            .exponent(0.5)
            # Grafana's defaults, spelt out: the SDK otherwise writes steps 0 and an empty fill.
            .steps(64)
            .fill("dark-orange")
        ),
        _timeseries(
            "Score quantiles",
            "Median, p90 and p99 of the predicted fraud probability.",
            _quantiles("driftline_prediction_score", qs=(0.5, 0.9, 0.99)),
            width=24,  # closes the drift rows, so the performance panels start on a row of their own
        ),
        *performance(),
    ]
    return _dashboard(
        DRIFT_UID, "Driftline / Drift, freshness and performance",
        "Input and score drift against the training reference; age and staleness of store features; the "
        "model's realised performance from delayed labels, its CBPE estimate and its test metric.",
        panels,
    )


def _realised_vs_estimated(metric: str, name: str, *, alert_line: bool = False) -> timeseries.Panel:
    """One metric per version: realised on labels, CBPE-estimated on all scores, and held-out test."""
    queries = [
        _query(f'max by (model_version) (driftline_live_performance{{metric="{metric}"}})', "live {{model_version}}"),
        _query(f'max by (model_version) (driftline_cbpe_estimate{{metric="{metric}"}})',
               "estimated {{model_version}}"),
        _query(f'max by (model_version) (driftline_model_test_performance{{metric="{metric}"}})',
               "test {{model_version}}"),
    ]
    description = (
        f"{name} per model version: realised on the labelled predictions of the rolling window (live; the "
        "best worker, as the alert reads it), estimated by CBPE from every score of the window (estimated), "
        "and on the held-out test set at training (test). The estimate is there before the labels are; a gap "
        "between estimate and live says the fraud itself changed, which CBPE cannot see."
    )
    if alert_line:
        queries.append(_query(
            f"{LIVE_PR_AUC_MIN_FRACTION:g} * max by (model_version) "
            f'(driftline_model_test_performance{{metric="{metric}"}})',
            "alert below {{model_version}}",
        ))
        description += (
            f" The alert line is {LIVE_PR_AUC_MIN_FRACTION:.0%} of the test value (with at least "
            f"{LIVE_MIN_LABELS} labels in the window)."
        )
    return _timeseries(f"{name}: live, estimated and test", description, queries).min(0).max(1)


def performance() -> list[AnyPanel]:
    """The model performance panels: realised metrics from delayed labels next to CBPE and the test metric."""
    return [
        _realised_vs_estimated("pr_auc", "PR-AUC", alert_line=True),
        _realised_vs_estimated("roc_auc", "ROC-AUC"),
        _timeseries(
            "Precision and recall: live and estimated",
            "At the decision threshold, per model version: realised on labels (live) and CBPE-estimated.",
            [
                _query('max by (model_version, metric) (driftline_live_performance{metric=~"precision|recall"})',
                       "live {{metric}} {{model_version}}"),
                _query('max by (model_version, metric) (driftline_cbpe_estimate{metric=~"precision|recall"})',
                       "estimated {{metric}} {{model_version}}"),
            ],
        ).min(0).max(1),
        _timeseries(
            "Labels in the window",
            f"Labelled predictions in each worker's performance window (below {LIVE_MIN_LABELS}, dashed, the "
            "live metrics are too noisy to alert on).",
            [_query("sum by (instance, model_version) (driftline_live_labelled)", "{{instance}} ({{model_version}})")],
            thresholds=[(LIVE_MIN_LABELS, "blue")],
            width=6,
        ),
        _timeseries(
            "Label coverage",
            "Labels per scored prediction over the window, per version: it lags the scoring rate by the label "
            "delay, and a share of events is never labelled.",
            [_query("max by (model_version) (driftline_label_coverage)", "{{model_version}}")],
            unit="percentunit",
            width=6,
        ),
        _timeseries(
            "Label delay",
            "label_time - scored_at of the joined labels: median, p95 and p99. Near the join window, labels "
            "start to expire.",
            _quantiles("driftline_label_delay_seconds"),
            unit="s",
        ),
        _timeseries(
            "Join store latency",
            "Time per join store operation (writing predictions, reading and marking them on a label).",
            _quantiles("driftline_join_store_seconds", by="op", qs=(0.5, 0.99)),
            unit="s",
        ),
        _timeseries(
            "Labels by outcome",
            "Labels per second: joined to a prediction, or the reason they were refused.",
            [_query(f"sum by (outcome) (rate(driftline_labels_total[{RATE}]))", "{{outcome}}")],
            unit="ops",
        ),
        _timeseries(
            "Rejected label share",
            "Share of received labels refused instead of joined (alert line dashed; the alert reads "
            f"{LABELS_REJECTED_WINDOW}).",
            [_query(
                f'sum(rate(driftline_labels_total{{outcome!="joined"}}[{RATE}])) '
                f"/ sum(rate(driftline_labels_total[{RATE}]))",
                "rejected share",
            )],
            unit="percentunit",
            thresholds=[(LABELS_REJECTED_RATIO_MAX, "red")],
        ),
    ]
