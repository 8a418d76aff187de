"""The drift report page from a worker's drift log and from a simulation run (pure; no services)."""

from __future__ import annotations

import html
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drift.freshness import FreshnessWindow
from drift.log import DriftLogRecord, append_record
from drift.monitor import DriftMonitor
from drift.reference import build_reference
from drift.report import latest_log, load_run, render, worker_run, write_report
from drift.simulate import feature_ages
from driftline.errors import ConfigError
from driftline.registry import FeatureSpec

SPECS = [
    FeatureSpec(name="amount", source="request", field="amount"),
    FeatureSpec(name="channel", source="request", field="channel", kind="categorical", categories=["a", "b", "c"]),
    FeatureSpec(name="customer_stats__txn_count_7d", source="feast", ref="customer_stats:txn_count_7d"),
]
TTLS = {"customer_stats": 3 * 86_400.0}
START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


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
def evaluations(records: list[DriftLogRecord]) -> list[dict[str, Any]]:
    """The same evaluations as a run holds them."""
    return worker_run(records)["evaluations"]


@pytest.fixture
def worker_log(tmp_path: Path, records: list[DriftLogRecord]) -> Path:
    path = tmp_path / "drift" / "fraud-20261122T082153Z.jsonl"
    for record in records:
        append_record(path, record)
    return path


@pytest.fixture
def simulation(tmp_path: Path, evaluations: list[dict[str, Any]]) -> Path:
    stationary = evaluations[1]["events"]
    run = {
        "model": {"name": "fraud", "version": "v3"},
        "config": {
            "stationary": stationary, "drifted": 400, "drift": "amount_shift", "window": 400, "every": 400,
            "alpha": 0.01, "min_events": 100, "min_psi": 0.1, "batch": 200, "hours": 24.0, "seed": 11,
            "start": "2026-11-21T12:00:00+00:00", "version": "v3",
        },
        "drift_start_event": stationary,
        "evaluations": [
            {**e, "after_drift": max(0, e["events"] - stationary), "window_drifted": 0} for e in evaluations
        ],
    }
    path = tmp_path / "drift-amount_shift.json"
    path.write_text(json.dumps(run, indent=1), encoding="utf-8")
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
    line = write_report(worker_log, target)
    assert "3 evaluations (worker" in line
    page = target.read_text(encoding="utf-8")
    assert_page(page)
    text = text_of(page)
    assert "fraud 20261122T082153Z, running worker" in text  # name and version from the file name
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
    write_report(simulation, target)
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
    assert run["source"] == "worker"
    assert run["skipped_lines"] == 1
    assert run["model"] == {"name": "fraud", "version": "20261122T082153Z"}  # from the records, not the name
    assert len(run["evaluations"]) == 3


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
    run["model"] = {"name": "<b>fraud</b>", "version": "v1"}
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

