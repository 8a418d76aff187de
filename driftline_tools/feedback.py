"""``driftline scenario feedback``: concept drift, the live metric falling, a gated retrain, recovery.

On throwaway services (:func:`driftline_tools.scenarios.world`) one worker serves the small world's
model. Events and their labels are published (:mod:`producers.labels`, with delays of seconds), first
with the original fraud pattern, then with another one (``fraud_pattern``: the mechanism changes, not
only the inputs). The run samples the worker's ``/metrics`` every second: the serving version's live
metric, its CBPE estimate and its label coverage. When the live-performance alert's condition holds
(:func:`alert_holds`, the same comparison as ``DriftlineLivePerformanceLow`` without its ``for``), it
runs :func:`training.retrain.retrain` on the window since the onset, which promotes the challenger only
through the gate (turned down, it is tried again on more labels, as a cooldown would); the worker
hot-swaps to it, and the run waits for its live metric to recover.

The pure part (sampling a page, the alert condition, phase means, the timeline) is unit-tested; the
run itself is an integration test at small scale.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from producers.labels import LabelDelays

if TYPE_CHECKING:
    from producers.labels import LabelledPublishSummary
    from producers.publish import OutgoingMessage
    from training.retrain import RetrainReport

logger = logging.getLogger(__name__)

#: Label delays of the scenario, in seconds: chargebacks after a median of 3 s, negatives confirmed after 5 s.
FEEDBACK_DELAYS = LabelDelays(median_s=3.0, sigma=0.5, negative_after_s=5.0, unlabelled_share=0.05, scale=1.0)
#: The alert's fraction: live below this share of the version's test metric (as DriftlineLivePerformanceLow).
ALERT_FRACTION = 0.8
#: Samples in a row the condition must hold: the scenario's short stand-in for the alert's ``for: 5m``.
ALERT_SAMPLES = 3
#: While the alert holds, a retrain the gate turned down is tried again this much later, on more labels
#: (the scenario's cooldown), at most MAX_RETRAINS times in all.
RETRY_AFTER_S = 30.0
MAX_RETRAINS = 4
#: Seconds the run goes on watching once recovered, so the figure after recovery is a mean, not one sample.
AFTER_RECOVERY_S = 30.0


@dataclass(frozen=True)
class FeedbackSample:
    """One look at the worker: the serving version and its metrics (None where not yet defined)."""

    elapsed_s: float
    version: str | None
    live: float | None
    cbpe: float | None
    test: float | None
    coverage: float | None
    labelled: int
    live_roc_auc: float | None = None  # beside the main metric: ROC-AUC does not move with the base rate


@dataclass(frozen=True)
class FeedbackMark:
    """A moment on the timeline: drift onset, alert, retrain started, promoted, recovered."""

    elapsed_s: float
    what: str
    detail: str = ""


@dataclass(frozen=True)
class FeedbackResult:
    """A whole run: its samples and marks, the metric before, during and after, and the times between."""

    started_at: datetime
    metric: str
    rate: float
    samples: tuple[FeedbackSample, ...]
    marks: tuple[FeedbackMark, ...]
    before: float | None
    during: float | None
    after: float | None
    onset_to_alert_s: float | None
    alert_to_recovery_s: float | None
    retrain_outcome: str | None
    retrain_reason: str | None
    champion_version: str | None
    challenger_version: str | None
    events_sent: int = 0
    labels_sent: int = 0
    min_labels: int = 1  # below this many labels in the window, the live metric is not shown (nor trusted)
    roc_auc: tuple[float | None, float | None, float | None] = (None, None, None)  # live ROC-AUC before/during/after
    files: tuple[str, ...] = field(default=())

    def mark(self, what: str) -> FeedbackMark | None:
        """The first mark named ``what``."""
        return next((m for m in self.marks if m.what == what), None)


# --- pure: reading a page, the alert, phases --------------------------------------------------------


def _series(page: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def _value(series: Mapping[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    for have, value in series.get(name, []):
        if all(have.get(k) == v for k, v in labels.items()):
            return None if math.isnan(value) else value
    return None


def sample_page(page: str, elapsed_s: float, metric: str = "pr_auc") -> FeedbackSample:
    """What one ``/metrics`` page says about the production version being served."""
    series = _series(page)
    version = next(
        (labels["model_version"] for labels, value in series.get("driftline_model_info", [])
         if labels.get("alias") == "production" and value == 1),
        None,
    )
    if version is None:
        return FeedbackSample(elapsed_s, None, None, None, None, None, 0)
    labelled = _value(series, "driftline_live_labelled", model_version=version)
    return FeedbackSample(
        elapsed_s=elapsed_s,
        version=version,
        live=_value(series, "driftline_live_performance", model_version=version, metric=metric),
        cbpe=_value(series, "driftline_cbpe_estimate", model_version=version, metric=metric),
        test=_value(series, "driftline_model_test_performance", model_version=version, metric=metric),
        coverage=_value(series, "driftline_label_coverage", model_version=version),
        labelled=int(labelled or 0),
        live_roc_auc=_value(series, "driftline_live_performance", model_version=version, metric="roc_auc"),
    )


def alert_holds(sample: FeedbackSample, min_labels: int, fraction: float = ALERT_FRACTION) -> bool:
    """The live-performance alert's condition on one sample: enough labels, live below ``fraction`` x test."""
    return (
        sample.live is not None and sample.test is not None and sample.labelled >= min_labels
        and sample.live < fraction * sample.test
    )


def recovered(sample: FeedbackSample, version: str, min_labels: int, fraction: float = ALERT_FRACTION) -> bool:
    """The promoted ``version`` serves with enough labels and its live metric no longer trips the alert."""
    return (
        sample.version == version and sample.live is not None and sample.test is not None
        and sample.labelled >= min_labels and sample.live >= fraction * sample.test
    )


def phase_mean(
    samples: Sequence[FeedbackSample], start_s: float, end_s: float, min_labels: int, attr: str = "live"
) -> float | None:
    """The mean live metric (``attr``) of samples in [start_s, end_s) with enough labels; None without any."""
    values = [float(getattr(s, attr)) for s in samples
              if start_s <= s.elapsed_s < end_s and getattr(s, attr) is not None and s.labelled >= min_labels]
    return sum(values) / len(values) if values else None


# --- the run ------------------------------------------------------------------------------------------


def _page(port: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _until(messages: Iterator[OutgoingMessage], stop: threading.Event) -> Iterator[OutgoingMessage]:
    for message in messages:
        if stop.is_set():
            return
        yield message


def _chained(parts: Sequence[Iterator[OutgoingMessage]], onset: threading.Event) -> Iterator[OutgoingMessage]:
    for index, part in enumerate(parts):
        if index == 1:
            onset.set()  # the first drifted event is about to be taken for sending
        yield from part


def feedback(
    out_dir: Path,
    *,
    rate: float = 400.0,
    clean_s: float = 60.0,
    drifted_s: float = 240.0,
    performance_window: int = 4000,
    min_labels: int = 150,
    min_drift_s: float = 90.0,
    metric: str = "pr_auc",
    seed: int = 7,
) -> FeedbackResult:
    """Run the scenario (see the module docstring); write its JSON and PNG into ``out_dir``.

    The first retrain waits until ``min_drift_s`` of the new pattern have been streamed: the new fraud is
    rarer (about 1% of events at night, UTC, against 6% before), and a challenger fitted on a few dozen
    positives passes a lenient gate yet does not recover live.
    """
    from driftline.settings import ProducerSettings, RetrainSettings
    from driftline_tools.scenarios import world
    from producers.kafka_clients import create_producer
    from producers.labels import LabelSchedule, labelled_messages, send_with_labels
    from training.retrain import RetrainPolicy, retrain

    started_at = datetime.now(UTC)
    samples: list[FeedbackSample] = []
    marks: list[FeedbackMark] = []
    report: RetrainReport | None = None
    with world() as served:
        env = {
            **served.topic_env(),
            "DRIFTLINE_PERFORMANCE_WINDOW": str(performance_window),
            "DRIFTLINE_PERFORMANCE_MIN_LABELS": str(min_labels),
            "DRIFTLINE_CBPE_WINDOW": str(4 * performance_window),
            "DRIFTLINE_CBPE_MIN_SCORES": str(min_labels),
            "DRIFTLINE_MODEL_POLL_S": "1",
        }
        worker = served.start_worker(env)
        port = worker.env["DRIFTLINE_METRICS_PORT"]
        producer_settings = ProducerSettings(**env)  # type: ignore[arg-type]
        schedule = LabelSchedule(FEEDBACK_DELAYS, seed)
        onset = threading.Event()
        messages = _chained([
            iter(labelled_messages(producer_settings, int(rate * clean_s), schedule, rate=rate)),
            iter(labelled_messages(producer_settings, int(rate * drifted_s), schedule, rate=rate,
                                   drift="fraud_pattern", part=1)),
        ], onset)
        summary: list[LabelledPublishSummary] = []
        stop = threading.Event()

        def send() -> None:
            try:
                producer = create_producer(producer_settings, client_id="driftline-feedback")
                try:
                    summary.append(send_with_labels(
                        producer, producer_settings.events_topic, producer_settings.labels_topic,
                        _until(messages, stop), schedule, rate=rate, drain_s=2 * FEEDBACK_DELAYS.negative_after_s,
                    ))
                finally:
                    producer.close(timeout=10)
            except Exception as exc:  # the run reports what it measured; one line says why sending ended
                logger.warning("the scenario's producer stopped: %s", exc)

        sender = threading.Thread(target=send, name="feedback-sender", daemon=True)
        t0 = time.monotonic()
        sender.start()
        onset_at: float | None = None
        alerted = False
        retrain_thread: threading.Thread | None = None
        reports: list[RetrainReport] = []
        promoted: str | None = None
        streak, attempts, next_try = 0, 0, 0.0
        recovered_at: float | None = None
        deadline = t0 + clean_s + drifted_s + 120
        while time.monotonic() < deadline:
            time.sleep(1.0)
            elapsed = time.monotonic() - t0
            try:
                sample = sample_page(_page(port), elapsed, metric)
            except OSError as exc:
                logger.warning("metrics not readable: %s", exc)
                continue
            samples.append(sample)
            if onset_at is None and onset.is_set():
                onset_at = elapsed
                marks.append(FeedbackMark(elapsed, "drift onset", "fraud pattern changes"))
            if onset_at is not None and not alerted:
                streak = streak + 1 if alert_holds(sample, min_labels) else 0
                if streak >= ALERT_SAMPLES:
                    alerted, next_try = True, elapsed
                    marks.append(FeedbackMark(elapsed, "alert", f"live {metric} {sample.live:.3f} < "
                                              f"{ALERT_FRACTION} x test {sample.test:.3f}"))
            if (onset_at is not None and alerted and promoted is None and retrain_thread is None
                    and elapsed >= max(next_try, onset_at + min_drift_s) and attempts < MAX_RETRAINS):
                # The window starts at the onset: the challenger learns the new pattern only.
                window_h = (elapsed - onset_at) / 3600.0
                settings = RetrainSettings(**env)  # type: ignore[arg-type]
                policy = RetrainPolicy.from_settings(settings, window_hours=window_h, min_labels=min_labels,
                                                     cooldown_minutes=0.0, margin=0.0)

                def run_retrain(settings: RetrainSettings = settings, policy: RetrainPolicy = policy) -> None:
                    try:
                        reports.append(retrain(settings, policy, trigger="scenario"))
                    except Exception:  # reported as 'not promoted' below; the worker keeps serving
                        logger.exception("the retrain failed")

                attempts += 1
                retrain_thread = threading.Thread(target=run_retrain, name="feedback-retrain", daemon=True)
                retrain_thread.start()
                marks.append(FeedbackMark(elapsed, "retrain", f"attempt {attempts}, window {window_h * 60:.1f} min"))
            if retrain_thread is not None and not retrain_thread.is_alive():
                retrain_thread = None
                report = reports[-1] if reports else None
                if report is not None and report.outcome == "promoted":
                    promoted = report.challenger_version
                    marks.append(FeedbackMark(elapsed, "promoted", f"version {promoted}: {report.reason}"))
                else:
                    reason = report.reason if report is not None else "the retrain raised (see the log)"
                    marks.append(FeedbackMark(elapsed, "not promoted", reason))
                    next_try = elapsed + RETRY_AFTER_S  # the alert still holds: try again on more labels
                    if attempts >= MAX_RETRAINS:
                        break
            if recovered_at is None and promoted is not None and recovered(sample, promoted, min_labels):
                recovered_at = elapsed
                marks.append(FeedbackMark(elapsed, "recovered", f"live {metric} {sample.live:.3f}"))
            if recovered_at is not None and elapsed >= recovered_at + AFTER_RECOVERY_S:
                break  # watched the promoted version long enough for the figure after recovery
            if not sender.is_alive() and retrain_thread is None and (promoted is None or not alerted):
                break  # everything sent, and nothing more to wait for
        stop.set()
        served.stop_workers()
        sender.join(timeout=30)
    sent = summary[0] if summary else None

    def at(what: str) -> float | None:
        return next((m.elapsed_s for m in marks if m.what == what), None)

    onset_s, alert_s, promoted_s, recovered_s = at("drift onset"), at("alert"), at("promoted"), at("recovered")
    end_s = samples[-1].elapsed_s + 1 if samples else 0.0
    phases = (
        (0.0, onset_s if onset_s is not None else end_s),
        (alert_s, promoted_s or end_s) if alert_s is not None else None,
        (recovered_s, end_s) if recovered_s is not None else None,
    )

    def means(attr: str) -> list[float | None]:
        return [phase_mean(samples, p[0], p[1], min_labels, attr) if p is not None else None for p in phases]

    before, during, after = means("live")
    roc = means("live_roc_auc")
    result = FeedbackResult(
        started_at=started_at, metric=metric, rate=rate, samples=tuple(samples), marks=tuple(marks),
        before=before, during=during, after=after, roc_auc=(roc[0], roc[1], roc[2]),
        onset_to_alert_s=alert_s - onset_s if alert_s is not None and onset_s is not None else None,
        alert_to_recovery_s=recovered_s - alert_s if recovered_s is not None and alert_s is not None else None,
        retrain_outcome=report.outcome if report else None,
        retrain_reason=report.reason if report else None,
        champion_version=report.champion_version if report else None,
        challenger_version=report.challenger_version if report else None,
        events_sent=sent.events.sent if sent else 0,
        labels_sent=sent.labels.sent if sent else 0,
        min_labels=min_labels,
    )
    return write_feedback_files(result, out_dir)


def write_feedback_files(result: FeedbackResult, out_dir: Path) -> FeedbackResult:
    """Write the result as JSON and its timeline as PNG into ``out_dir``; return it with both paths."""
    from dataclasses import replace

    from pydantic_core import to_json

    from driftline_tools.bench.plot import write_feedback_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"feedback-{result.started_at.strftime('%Y%m%dT%H%M%SZ')}"
    json_path, png_path = out_dir / f"{stem}.json", out_dir / f"{stem}.png"
    result = replace(result, files=(str(json_path), str(png_path)))
    json_path.write_bytes(to_json(result, indent=2, inf_nan_mode="null") + b"\n")
    write_feedback_plot(png_path, result)
    return result
