"""The feedback scenario's pure part: reading a worker's page, the alert condition, recovery, phase means, the plot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from driftline_tools.feedback import (
    FeedbackMark,
    FeedbackResult,
    FeedbackSample,
    alert_holds,
    phase_mean,
    recovered,
    sample_page,
    write_feedback_files,
)
from stream_app.adapters.metrics import WorkerMetrics


def _page(version: str = "3", live: float = 0.1, labelled: int = 400) -> str:
    metrics = WorkerMetrics(CollectorRegistry())
    metrics.model_info.labels("fraud", "2", "shadow").set(1)
    metrics.model_info.labels("fraud", version, "production").set(1)
    metrics.live_performance.labels(version, "pr_auc").set(live)
    metrics.live_performance.labels("2", "pr_auc").set(0.99)  # another version: ignored
    metrics.cbpe_estimate.labels(version, "pr_auc").set(0.3)
    metrics.model_test_performance.labels(version, "pr_auc").set(0.25)
    metrics.live_labelled.labels(version).set(labelled)
    metrics.label_coverage.labels(version).set(0.6)
    return generate_latest(metrics.registry).decode()


def test_a_page_gives_the_production_versions_metrics() -> None:
    sample = sample_page(_page(), 12.0)
    assert sample == FeedbackSample(12.0, "3", 0.1, 0.3, 0.25, 0.6, 400)


def test_a_page_without_a_served_version_gives_an_empty_sample() -> None:
    sample = sample_page(generate_latest(WorkerMetrics(CollectorRegistry()).registry).decode(), 1.0)
    assert sample.version is None and sample.live is None and sample.labelled == 0


def test_nan_means_undefined() -> None:
    assert sample_page(_page(live=float("nan")), 1.0).live is None


def test_the_alert_needs_enough_labels_and_live_below_the_fraction_of_test() -> None:
    low = FeedbackSample(1.0, "3", 0.1, None, 0.25, 0.5, 400)
    assert alert_holds(low, min_labels=200)
    assert not alert_holds(low, min_labels=500)  # too few labels to mean it
    assert not alert_holds(FeedbackSample(1.0, "3", 0.21, None, 0.25, 0.5, 400), min_labels=200)  # 0.21 >= 0.2
    assert not alert_holds(FeedbackSample(1.0, "3", None, None, 0.25, 0.5, 400), min_labels=200)
    assert not alert_holds(FeedbackSample(1.0, "3", 0.1, None, None, 0.5, 400), min_labels=200)


def test_recovery_is_the_promoted_version_back_above_the_threshold() -> None:
    good = FeedbackSample(1.0, "4", 0.3, None, 0.35, 0.5, 300)
    assert recovered(good, "4", min_labels=200)
    assert not recovered(good, "5", min_labels=200)
    assert not recovered(good, "4", min_labels=301)
    assert not recovered(FeedbackSample(1.0, "4", 0.2, None, 0.35, 0.5, 300), "4", min_labels=200)


def test_phase_mean_uses_only_samples_in_the_phase_with_enough_labels() -> None:
    samples = [
        FeedbackSample(0.0, "1", 0.5, None, 0.4, 0.1, 10),  # too few labels
        FeedbackSample(1.0, "1", 0.4, None, 0.4, 0.5, 300),
        FeedbackSample(2.0, "1", 0.2, None, 0.4, 0.5, 300),
        FeedbackSample(3.0, "1", 0.9, None, 0.4, 0.5, 300),  # after the phase
    ]
    assert phase_mean(samples, 0.0, 3.0, min_labels=100) == 0.30000000000000004
    assert phase_mean(samples, 5.0, 6.0, min_labels=100) is None


def test_the_result_is_written_as_json_and_png(tmp_path: Path) -> None:
    samples = tuple(FeedbackSample(float(t), "1" if t < 6 else "2", 0.3 if t < 3 else 0.1, 0.28, 0.35, t / 10, 300)
                    for t in range(10))
    result = FeedbackResult(
        started_at=datetime(2026, 12, 7, tzinfo=UTC), metric="pr_auc", rate=100.0, samples=samples,
        marks=(FeedbackMark(3.0, "drift onset"), FeedbackMark(5.0, "alert")), before=0.3, during=0.1, after=None,
        onset_to_alert_s=2.0, alert_to_recovery_s=None, retrain_outcome=None, retrain_reason=None,
        champion_version="1", challenger_version=None,
    )
    written = write_feedback_files(result, tmp_path)
    json_path, png_path = (Path(p) for p in written.files)
    assert json_path.read_text().count('"elapsed_s"') == 12
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
