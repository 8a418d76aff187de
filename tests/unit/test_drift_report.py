"""The drift report page from a worker's drift log and from a simulation run (pure; no services)."""

from __future__ import annotations

import html
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from drift.freshness import FreshnessWindow
from drift.log import DriftLogRecord, append_record
from drift.monitor import DriftMonitor
from drift.records import (
    ModelRef,
    RunEvaluation,
    RunStrata,
    SimulationConfig,
    SimulationRun,
    SimulationTiming,
    WorkerRun,
)
from drift.reference import build_reference
from drift.report import (
    ColumnFlags,
    LogSummary,
    ReportWritten,
    latest_log,
    load_run,
    render,
    summarize_log,
    worker_run,
    write_report,
)
from drift.simulate import Detection, SimulationSummary, feature_ages, summarize
from drift.simulate import run as simulate
from driftline.errors import ConfigError
from driftline.features import OnlineRows
from driftline.registry import EntitySpec, FeatureSpec, LoadedModel, ModelMetadata

SPECS = [
    FeatureSpec(name="amount", source="request", field="amount"),
    FeatureSpec(name="channel", source="request", field="channel", kind="categorical", categories=["a", "b", "c"]),
    FeatureSpec(name="customer_stats__txn_count_7d", source="feast", ref="customer_stats:txn_count_7d"),
]
TTLS = {"customer_stats": 3 * 86_400.0}
START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
#: A run of `driftline drift simulate --out` as written while runs were plain dicts.
RUN_BEFORE_TYPED = Path(__file__).parent / "fixtures" / "drift-simulation-before-typed.json"


def _draw(rng: np.random.Generator, n: int, amount_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    amount = rng.lognormal(3.0, 0.5, n) * amount_scale
    channel = rng.choice(3, n, p=[0.2, 0.7, 0.1]).astype(float)
    count = rng.poisson(5, n).astype(float)
    score = 1 / (1 + np.exp(-(np.log(amount) - 4)))
    return np.column_stack([amount, channel, count]), score


@pytest.fixture(scope="module")
def records() -> list[DriftLogRecord]:
    """Three evaluations as the worker logs them; the amount shifts before the third."""
    rng = np.random.default_rng(1)
    reference = build_reference(SPECS, *_draw(rng, 5_000), seed=3)
    monitor = DriftMonitor(SPECS, reference, window_size=400, min_events=100)
    freshness = FreshnessWindow(400)
    out = []
    for k, scale in enumerate((1.0, 1.0, 3.0)):
        monitor.observe(*_draw(rng, 400, scale))
        freshness.observe({"customer_stats": list(rng.uniform(3_600.0, 7_200.0 * (k + 1), 400))})
        out.append(DriftLogRecord.of(
            "fraud", "20261122T082153Z", START + timedelta(seconds=30 * k), monitor.evaluate(), freshness.summary(TTLS)
        ))
    return out


@pytest.fixture(scope="module")
def evaluations(records: list[DriftLogRecord]) -> tuple[RunEvaluation, ...]:
    """The same evaluations as a run holds them."""
    return worker_run(records).evaluations


@pytest.fixture
def worker_log(tmp_path: Path, records: list[DriftLogRecord]) -> Path:
    path = tmp_path / "drift" / "fraud-20261122T082153Z.jsonl"
    for record in records:
        append_record(path, record)
    return path


def simulation_run(evaluations: tuple[RunEvaluation, ...]) -> SimulationRun:
    """The worker's evaluations as a simulation whose drift starts after the second one."""
    stationary = evaluations[1].events
    return SimulationRun(
        model=ModelRef(name="fraud", version="v3"),
        config=SimulationConfig(
            stationary=stationary, drifted=400, window=400, every=400, min_events=100,
            start=datetime(2026, 11, 21, 12, 0, tzinfo=UTC), version="v3",
        ),
        drift_start_event=stationary,
        strata=RunStrata(feature=None, edges=()),
        score_column="score",
        timing=SimulationTiming(observe_ms_per_batch=0.02, evaluate_ms=3.0),
        evaluations=tuple(
            e.model_copy(update={"after_drift": max(0, e.events - stationary), "window_drifted": 0})
            for e in evaluations
        ),
    )


@pytest.fixture
def simulation(tmp_path: Path, evaluations: tuple[RunEvaluation, ...]) -> Path:
    path = tmp_path / "drift-amount_shift.json"
    path.write_text(simulation_run(evaluations).model_dump_json(indent=1), encoding="utf-8")
    return path


COLUMNS = [*(spec.name for spec in SPECS), "score (prediction drift)"]


def text_of(page: str) -> str:
    """The page as read: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def columns_of(page: str) -> dict[str, str]:
    """Each column section's heading text, and its body (the notes and the figure)."""
    sections = re.findall(r'<section class="column">\s*<h2>(.*?)</h2>(.*?)</section>', page, re.S)
    return {text_of(heading).removesuffix(" flagged at the end"): body for heading, body in sections}


def assert_page(page: str) -> None:
    """The freshness section, one figure per column and the score, and nothing fetched from elsewhere."""
    assert '<section id="freshness">' in page and "<h2>Freshness of the store's values</h2>" in page
    assert "<h3>customer_stats</h3>" in page
    assert "TTL 72 h" in page and "share older than the TTL" in page
    freshness = page[page.index('<section id="freshness">') : page.index('<section class="column">')]
    assert freshness.count("<svg") == 1  # one feature view, one figure
    columns = columns_of(page)
    assert list(columns) == COLUMNS
    for body in columns.values():
        assert body.count("<svg") == 1
        drawn = text_of(body)  # the figures' words stay text in the SVG
        assert all(title in drawn for title in ("statistic", "-log10 p-value", "PSI", "missing rate", "share"))
    assert page.count("<svg") == len(COLUMNS) + 1
    # Self-contained: no URL anywhere (not even SVG namespaces), no scripts, stylesheets or images to load;
    # every reference inside the figures is to an element of the page.
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page and "<img" not in page and "@import" not in page
    assert all(ref.startswith("#") for ref in re.findall(r'(?:href|src)="([^"]*)"', page))
    assert all(ref.startswith("#") for ref in re.findall(r"url\(([^)]*)\)", page))
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page


def test_worker_log_renders_without_a_drift_start(worker_log: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    written = write_report(worker_log, target)
    assert written == ReportWritten(worker_log, "worker", 3, 0, target, len(target.read_bytes()))
    page = target.read_text(encoding="utf-8")
    assert_page(page)
    text = text_of(page)
    assert "fraud 20261122T082153Z, running worker" in text  # name and version from the records
    assert "window 400 events" in text and "alpha 0.01" in text  # config from the records
    assert "x-axis: events seen since the worker (re)started, 400 to 1,200" in text
    assert "drift starts" not in page
    columns = columns_of(page)
    assert re.search(r'<h2>amount <span class="flag">flagged at the end</span></h2>', page)  # the shifted amount
    # The flags are marked in the figure of the flagged column only, and its notes say where.
    assert "flagged evaluation" in columns["amount"]
    assert "first flagged at event 1,200, 11-22 08:01 UTC" in text_of(columns["amount"])
    assert "flagged evaluation" not in columns["channel"]
    assert "never flagged" in text_of(columns["channel"])
    for body in columns.values():
        assert "events seen since the worker (re)started" in body  # the x-axis label of every panel


def test_simulation_renders_with_the_drift_start(simulation: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    assert write_report(simulation, target).kind == "simulate"
    page = target.read_text(encoding="utf-8")
    assert_page(page)
    assert "drift starts" in page
    assert "fraud v3, amount_shift after 800 stationary events" in page
    columns = columns_of(page)
    for body in columns.values():  # the drift start in every column's figure, before the drift vs the end
        assert "drift starts" in body and "events seen" in body
        assert "before the drift (event 800)" in body and "end of run (event 1,200)" in body
    assert "flagged evaluation" in columns["amount"]
    assert "first flagged 400 events after the drift" in text_of(columns["amount"])
    assert "not flagged after the drift" in text_of(columns["channel"])


def test_a_simulation_can_be_drawn_against_event_time(simulation: Path) -> None:
    page = render(load_run(simulation), "time")
    assert "x-axis: event time (UTC), 11-22 08:00 to 11-22 08:01 UTC" in text_of(page)
    assert all("event time (UTC)" in body for body in columns_of(page).values())


def test_a_log_is_recognised_by_content_and_a_torn_line_is_skipped(worker_log: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "copied.log"
    renamed.write_text(worker_log.read_text(encoding="utf-8") + '{"events": 12', encoding="utf-8")
    run = load_run(renamed)
    assert isinstance(run, WorkerRun)
    assert run.skipped_lines == 1 and run.log == "copied.log"
    assert run.model == ModelRef(name="fraud", version="20261122T082153Z")  # from the records: the name has none
    assert len(run.evaluations) == 3
    assert (run.window, run.alpha) == (400, 0.01)  # from the latest evaluation
    assert run.evaluations[2].after_drift is None  # a worker log has no drift start


def test_an_empty_log_is_an_error_not_a_blank_page(tmp_path: Path) -> None:
    empty = tmp_path / "fraud-v1.jsonl"
    empty.touch()
    with pytest.raises(ConfigError, match="no evaluations"):
        load_run(empty)


def test_a_restarted_worker_is_drawn_against_time(records: list[DriftLogRecord]) -> None:
    restarted = [*records, records[0].model_copy(update={"event_time": START + timedelta(minutes=5)})]
    run = worker_run(restarted, log="fraud-v1.jsonl")
    page = render(run)
    assert "x-axis: the worker's clock (UTC), 11-22 08:00 to 11-22 08:05 UTC" in text_of(page)
    assert "restarted 1 time(s)" in page
    for body in columns_of(page).values():  # time labels on the panels, not event counts
        assert "the worker's clock (UTC)" in text_of(body) and ">11-22 08:05<" in body
    assert "x-axis: events seen" in render(run, "events")


def test_the_page_is_escaped_and_the_same_each_time(records: list[DriftLogRecord]) -> None:
    run = worker_run(records, log="fraud-v1.jsonl")
    run = run.model_copy(update={"model": ModelRef(name="<b>fraud</b>", version="v1")})
    page = render(run)
    assert "&lt;b&gt;fraud&lt;/b&gt; v1, running worker" in page and "<b>fraud" not in page
    assert render(run) == page  # fixed SVG ids: a report renders the same twice


def test_latest_picks_the_newest_log(tmp_path: Path) -> None:
    (tmp_path / "drift").mkdir()
    old, new = tmp_path / "drift" / "fraud-v1.jsonl", tmp_path / "drift" / "fraud-v2.jsonl"
    old.touch()
    new.touch()
    os.utime(old, (1_000_000_000, 1_000_000_000))
    assert latest_log(tmp_path) == new
    assert latest_log(tmp_path, "v1") == old
    with pytest.raises(ConfigError, match="no drift log"):
        latest_log(tmp_path, "v3")


def test_simulated_ages_are_relative_to_each_event_time() -> None:
    events = [{"event_time": "2026-11-22T10:00:00Z"}, {"event_time": "2026-11-22T06:00:00Z"}]
    stamp = datetime(2026, 11, 22, 8, 0, tzinfo=UTC).timestamp()
    ages = feature_ages(events, [{"customer_stats": stamp}, {"customer_stats": stamp, "merchant_stats": stamp}])
    assert ages == {"customer_stats": [7_200.0, -7_200.0], "merchant_stats": [-7_200.0]}



def test_a_worker_log_summary_is_data(records: list[DriftLogRecord]) -> None:
    at_1200 = START + timedelta(seconds=60)
    assert summarize_log(worker_run(records, log="fraud-v1.jsonl", skipped=2)) == LogSummary(
        evaluations=3,
        first_time=START,
        last_time=at_1200,
        restarts=0,
        skipped_lines=2,
        alpha=0.01,
        ready=3,
        flagged=1,
        columns=(ColumnFlags("amount", 1, 1_200, at_1200), ColumnFlags("score", 1, 1_200, at_1200)),
    )
    restarted = [*records, records[0].model_copy(update={"event_time": START + timedelta(minutes=5)})]
    assert summarize_log(worker_run(restarted)).restarts == 1


def test_a_simulation_summary_counts_false_alarms_and_detections(evaluations: tuple[RunEvaluation, ...]) -> None:
    run = simulation_run(evaluations)  # the drift starts at event 800; the third evaluation (1,200) flags
    assert summarize(run) == SimulationSummary(
        drift="amount_shift",
        drift_start_event=800,
        alpha=0.01,
        min_psi=0.1,
        stationary_evaluations=2,
        false_alarms=0,
        false_alarms_by_column={},
        drifted_evaluations=1,
        detections=(Detection("amount", 400, 1), Detection("score", 400, 1)),
    )
    # With the drift starting after the last evaluation, the same flags are false alarms.
    late = summarize(run.model_copy(update={"drift_start_event": 1_200}))
    assert (late.stationary_evaluations, late.false_alarms, late.false_alarm_share) == (3, 1, pytest.approx(1 / 3))
    assert late.false_alarms_by_column == {"amount": 1, "score": 1}
    assert (late.drifted_evaluations, late.detections) == (0, ())


def test_the_page_shows_the_summary_and_the_last_evaluation(simulation: Path, worker_log: Path) -> None:
    text = text_of(render(load_run(simulation)))
    assert "stationary part: 0/2 evaluations with any flag (0.0%; alpha 0.01, min PSI 0.1)" in text
    assert "drift amount_shift from event 800 (1 evaluations after it):" in text
    assert "amount 400 1/1" in text and "score 400 1/1" in text  # the detections table
    assert "final evaluation at event 1200 (window 400)" in text
    text = text_of(render(load_run(worker_log)))
    assert "3 evaluations from 2026-11-22T08:00:00+00:00 to 2026-11-22T08:01:00+00:00" in text
    assert "1/3 ready evaluations with any flag (alpha 0.01)" in text
    assert "amount 1/3 event 1,200, 11-22 08:01 UTC" in text


def test_a_run_written_before_the_typed_records_still_reads(tmp_path: Path) -> None:
    run = load_run(RUN_BEFORE_TYPED)
    assert isinstance(run, SimulationRun)
    assert run.model == ModelRef(name="fraud", version="v3")
    assert run.config == SimulationConfig(
        stationary=600, drifted=300, window=300, every=300, min_events=100, hours=10.0, start=START, version="v3"
    )
    assert run.strata == RunStrata(feature="hour_of_day", edges=(6.0, 12.0, 18.0))
    assert [(e.events, e.after_drift, e.report.flagged) for e in run.evaluations] == [
        (400, 0, ()), (600, 0, ()), (900, 300, ("amount", "score"))
    ]
    assert run.evaluations[-1].freshness["v"].events == 300
    assert summarize(run).detections == (Detection("amount", 300, 1), Detection("score", 300, 1))
    # Written back, it is the same document, plus its source; times are the same instants.
    old = json.loads(RUN_BEFORE_TYPED.read_text(encoding="utf-8"))
    new = json.loads(run.model_dump_json())
    assert new.pop("source") == "simulate"
    for document in (old, new):
        document["config"]["start"] = datetime.fromisoformat(document["config"]["start"])
        for evaluation in document["evaluations"]:
            evaluation["event_time"] = datetime.fromisoformat(evaluation["event_time"])
    assert new == old
    target = tmp_path / "report.html"
    assert write_report(RUN_BEFORE_TYPED, target).evaluations == 3
    assert "fraud v3, amount_shift after 600 stationary events" in text_of(target.read_text(encoding="utf-8"))


def test_a_file_that_is_no_run_is_a_config_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="neither JSON nor a drift log"):
        load_run(broken)
    other = tmp_path / "other.json"
    other.write_text('{"evaluations": []}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not a run of `driftline drift simulate --out` \(\d+ problems; model"):
        load_run(other)


def test_a_simulation_writes_the_run_that_load_run_reads(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    matrix, _ = _draw(rng, 1_000)
    reference = build_reference(SPECS, *_draw(rng, 3_000), seed=3)
    meta = ModelMetadata(
        name="fraud", version="v9", created_at=START, feature_service="fraud_v1", features=SPECS,
        entities=[EntitySpec(field="customer_id", join_key="customer_id")], classes=[0, 1], positive_class=1,
        threshold=0.5, training_window=(START - timedelta(days=2), START), metrics={}, library_versions={},
        artifact_sha256="0" * 64, reference=reference,
    )
    matrix[600:, 0] *= 3.0  # the amount drifts after 600 events
    events = [
        {"event_time": (START + timedelta(seconds=60 * i)).isoformat(), "amount": row[0], "channel": "abc"[int(row[1])],
         "is_fraud": i % 100 == 0}
        for i, row in enumerate(matrix)
    ]
    stamp = (START - timedelta(hours=1)).timestamp()
    online = OnlineRows(
        values=[{"customer_stats__txn_count_7d": row[2]} for row in matrix],
        view_timestamps=[{"customer_stats": stamp} for _ in matrix],
    )
    config = SimulationConfig(stationary=600, drifted=400, window=200, every=200, min_events=100, hours=10.0)
    out = tmp_path / "run.json"
    result = simulate(
        LoadedModel(metadata=meta, estimator=None), events, online, TTLS, config, START,
        lambda m: 1 / (1 + np.exp(-(np.log(m[:, 0]) - 4))), out,
    )
    run = result.run
    assert run.model == ModelRef(name="fraud", version="v9")  # a field of the run, not of the file name
    assert run.config == config.model_copy(update={"start": START, "version": "v9"})
    assert run.strata == RunStrata(feature=None, edges=())  # this reference has no strata
    assert [e.events for e in run.evaluations] == [200, 400, 600, 800, 1_000]
    assert [e.after_drift for e in run.evaluations] == [0, 0, 0, 200, 400]
    assert [e.window_drifted for e in run.evaluations] == [0, 0, 0, 200, 200]
    assert run.evaluations[0].event_time == START + timedelta(seconds=60 * 199)  # the batch's last event
    assert run.evaluations[0].freshness["customer_stats"].p50_s == pytest.approx(3_600.0 + 60 * 99.5)
    assert result.summary == summarize(run) and result.summary.detections[0] == Detection("amount", 200, 2)
    assert result.fraud_rate == (pytest.approx(6 / 600), pytest.approx(4 / 400))
    assert load_run(out) == run
