"""Jobs return typed results; the CLI renders them with rich or as ``--json`` (no services)."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from drift.records import (
    DriftEvaluation,
    FeatureDrift,
    FreshnessSummary,
    ModelRef,
    RunEvaluation,
    RunStrata,
    SimulationConfig,
    SimulationRun,
    SimulationTiming,
)
from drift.report import ReportWritten
from drift.simulate import SimulationResult, summarize
from driftline_tools import cli
from driftline_tools.simulation import DriftSimulation
from feature_repo.store import AppliedObject, ApplyResult, MaterializeResult
from training.data import GeneratedFile, GenerateResult
from training.train import TrainResult

runner = CliRunner()

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 21, tzinfo=UTC)


def text(*renderables: Any) -> str:
    console = Console(width=200, file=io.StringIO())
    for renderable in renderables:
        console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def generated(tmp_path: Path) -> GenerateResult:
    files = tuple(
        GeneratedFile(name, tmp_path / name, rows, digit * 64)
        for name, rows, digit in [("transactions.parquet", 8000, "a"), ("customer_stats.parquet", 6300, "b")]
    )
    return GenerateResult(
        seed=7,
        n_customers=300,
        n_merchants=50,
        n_transactions=8000,
        history_start=START,
        history_end=END,
        start_given=True,
        fraud_rate=0.0125,
        parquet_writer="parquet-cpp-arrow version 26.0.1",
        files=files,
    )


@pytest.fixture
def applied(tmp_path: Path) -> ApplyResult:
    objects = (AppliedObject("Entity", "customer"), AppliedObject("FeatureService", "fraud_v1"))
    return ApplyResult("driftline", tmp_path / "registry.db", objects)


RUN_ID = "0f3c2a9e4b1d4c7a8e6f5a4b3c2d1e0f"
TRACKING_URI = "sqlite:////var/lib/driftline/mlflow/mlflow.db"


@pytest.fixture
def trained() -> TrainResult:
    return TrainResult(
        model="fraud",
        version="3",
        run_id=RUN_ID,
        tracking_uri=TRACKING_URI,
        dataset_digest="5d1b9a3c",
        promoted=True,
        task="binary",
        feature_service="fraud_v1",
        features=12,
        threshold=0.5,
        metrics={"roc_auc": 0.91234, "pr_auc": 0.5},
        train_rows=6400,
        test_rows=1600,
        train_window=(START, END),
        test_start=END,
        join_s=1.5,
        fit_s=2.25,
        total_s=4.0,
    )


def simulation_result(out: Path | None) -> SimulationResult:
    amount = FeatureDrift(
        name="amount", kind="numeric", statistic_name="ks", statistic=0.3, p_value=1e-9, psi=0.4, missing_rate=0.0,
        reference_missing_rate=0.0, n=1000, flagged=True, tested=True, bins=("<1", ">=1"), reference=(0.5, 0.5),
        current=(0.2, 0.8),
    )
    report = DriftEvaluation(
        events_seen=1500, window_events=1000, window_size=1000, alpha=0.01, ready=True, strata=(),
        features=(amount,), score=None,
    )
    ages = FreshnessSummary(events=1000, p50_s=7200.0, p99_s=36000.0, ttl_s=0.0, stale_share=0.0)
    freshness = {"customer_stats": ages}
    run = SimulationRun(
        model=ModelRef(name="fraud", version="v1"),
        config=SimulationConfig(stationary=1000, drifted=500, window=1000, start=START, version="v1"),
        drift_start_event=1000,
        strata=RunStrata(feature=None, edges=()),
        score_column="score",
        timing=SimulationTiming(observe_ms_per_batch=0.5, evaluate_ms=None),
        evaluations=(
            RunEvaluation(events=1500, after_drift=500, window_drifted=500, event_time=START, report=report,
                          freshness=freshness),
        ),
    )
    return SimulationResult(run, summarize(run), 2, 5000, (0.01, 0.02), (0.03, 0.04), 1.25, out)


def test_generate_renders_the_world_and_one_row_per_file(generated: GenerateResult) -> None:
    world, table = cli.generate_renderables(generated)
    assert isinstance(table, Table)
    page = text(world, table)
    assert "seed 7, 300 customers, 50 merchants, 8000 transactions" in page
    assert f"history {START.isoformat()} .. {END.isoformat()};" in page
    assert "fraud rate 1.25%" in page and "parquet-cpp-arrow version 26.0.1" in page
    assert "transactions.parquet" in page and "8000" in page and "a" * 64 in page
    summary = "generated transactions.parquet 8000, customer_stats.parquet 6300 rows (fraud rate 1.25%)"
    assert generated.summary() == summary


def test_data_generate_json(monkeypatch: pytest.MonkeyPatch, generated: GenerateResult) -> None:
    monkeypatch.setattr("training.data.generate", lambda settings: generated)
    result = runner.invoke(cli.app, ["data", "generate", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"][0] == {
        "name": "transactions.parquet",
        "path": str(generated.files[0].path),
        "rows": 8000,
        "sha256": "a" * 64,
    }
    assert data["fraud_rate"] == 0.0125 and data["seed"] == 7 and data["start_given"] is True
    assert datetime.fromisoformat(data["history_start"]) == START
    assert datetime.fromisoformat(data["history_end"]) == END


def test_feast_apply_renders_and_prints_json(monkeypatch: pytest.MonkeyPatch, applied: ApplyResult) -> None:
    page = text(*cli.apply_renderables(applied))
    assert "Feast project driftline" in page and "FeatureService" in page and "fraud_v1" in page
    monkeypatch.setattr("feature_repo.store.apply", lambda settings: applied)
    result = runner.invoke(cli.app, ["feast", "apply", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["objects"] == [{"kind": "Entity", "name": "customer"}, {"kind": "FeatureService", "name": "fraud_v1"}]


def test_feast_materialize_lines_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    materialized = MaterializeResult("driftline", ("customer_stats", "merchant_stats"), START, END)
    lines = cli.materialize_lines(materialized)
    assert lines[0] == "Feast project driftline: materialized customer_stats, merchant_stats"
    assert START.isoformat() in lines[1] and END.isoformat() in lines[1]
    monkeypatch.setattr("feature_repo.store.materialize", lambda settings: materialized)
    result = runner.invoke(cli.app, ["feast", "materialize", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["views"] == ["customer_stats", "merchant_stats"]


def test_train_renders_metrics_and_prints_json(monkeypatch: pytest.MonkeyPatch, trained: TrainResult) -> None:
    lines = [line.rstrip() for line in text(*cli.train_renderables(trained)).splitlines()]
    assert lines[:5] == [
        f"model fraud version 3 (production), MLflow run {RUN_ID} in {TRACKING_URI}",
        "training set: 8000 rows, 12 features from fraud_v1 (MLflow dataset digest 5d1b9a3c)",
        "train 6400 rows (2026-11-01 00:00 .. 2026-11-21 00:00), test 1600 rows from 2026-11-21 00:00",
        "join 1.5s, fit 2.2s, total 4.0s",
        "held-out metrics of the binary model (decision threshold 0.5):",
    ]
    page = "\n".join(lines)
    assert re.search(r"│ pr_auc\s+│\s+0.5000 │", page) and re.search(r"│ roc_auc\s+│\s+0.9123 │", page)
    assert trained.summary() == (
        "model fraud version 3 (production): roc_auc 0.9123 on 1600 held-out rows, trained on 6400 in 4.0s"
    )
    calls: list[tuple[object, bool, object]] = []

    def run(settings: object, promote: bool, request: object) -> TrainResult:
        calls.append((settings, promote, request))
        return trained

    monkeypatch.setattr("training.train.run", run)
    result = runner.invoke(cli.app, ["train", "--no-promote", "--json"])
    assert result.exit_code == 0, result.output
    ((_, promote, request),) = calls
    assert promote is False and request is None  # no feature service given: the fraud example
    data = json.loads(result.stdout)
    assert (data["version"], data["run_id"], data["tracking_uri"], data["dataset_digest"]) == (
        "3", RUN_ID, TRACKING_URI, "5d1b9a3c"
    )
    assert data["metrics"]["roc_auc"] == 0.91234 and data["promoted"] is True and data["test_rows"] == 1600
    assert "path" not in data


def test_drift_simulate_renders_events_summary_and_final_evaluation(tmp_path: Path) -> None:
    simulation = DriftSimulation(
        1500, 1000, 500, "amount_shift", "t0", "t1", 0.5, 3, simulation_result(tmp_path / "run.json")
    )
    renderables = cli.simulation_renderables(simulation)
    tables = [r for r in renderables if isinstance(r, Table)]
    assert [t.title for t in tables] == [
        "flagged after the drift started",
        "final evaluation at event 1500 (window 1000)",
        "freshness of the store's values over the window (age when scored)",
    ]
    lines = [line.rstrip() for line in text(*renderables).splitlines()]
    assert lines[0].startswith("1500 events (1000 stationary + 500 amount_shift)") and "(3 missing values)" in lines[0]
    assert lines[1] == "model fraud v1: reference sketch v2 (n=5000; no strata)"
    assert lines[2] == "stationary part: 0/0 evaluations with any flag (0.0%; alpha 0.01, min PSI 0.1)"
    assert lines[3] == "drift amount_shift from event 1000 (1 evaluations after it)"
    page = "\n".join(lines)
    assert re.search(r"│ amount\s+│ 500\s+│ 1/1\s+│", page)  # first flagged 500 events after the drift
    assert re.search(r"│ amount\s+│ ks\s+│\s+0.3000 │\s+1.00e-09 │\s+0.4000 │\s+0.00% │ YES\s+│", page)
    assert re.search(r"│ customer_stats\s+│\s+2.0 │\s+10.0 │\s+no TTL │\s+0.0% │\s+1000 │", page)
    assert "fraud rate / mean score: stationary 1.00% / 3.00%, drifted 2.00% / 4.00%" in lines
    assert "cost: observe 0.500 ms per batch of 200, evaluate - ms; total 1.2s" in lines
    assert lines[-1] == f"evaluations -> {tmp_path / 'run.json'}"
    without_out = DriftSimulation(1500, 1000, 500, "amount_shift", "t0", "t1", 0.5, 3, simulation_result(None))
    assert "evaluations ->" not in text(*cli.simulation_renderables(without_out))


def test_drift_simulate_json(monkeypatch: pytest.MonkeyPatch) -> None:
    simulation = DriftSimulation(1500, 1000, 500, "amount_shift", "t0", "t1", 0.5, 3, simulation_result(None))
    monkeypatch.setattr("driftline_tools.simulation.run", lambda settings, config, out: simulation)
    result = runner.invoke(cli.app, ["drift", "simulate", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["events"] == 1500 and data["missing_values"] == 3
    summary = data["result"]["summary"]
    assert summary["detections"] == [{"column": "amount", "first_after": 500, "flagged": 1}]
    assert summary["stationary_evaluations"] == 0 and summary["drift_start_event"] == 1000
    run = data["result"]["run"]
    assert run["source"] == "simulate" and run["model"] == {"name": "fraud", "version": "v1"}
    assert run["evaluations"][0]["report"]["flagged"] == ["amount"]


def test_drift_report_line_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source, target = tmp_path / "drift" / "fraud-v1.jsonl", tmp_path / "report.html"
    written = ReportWritten(source, "worker", 3, 1, target, 40_960)
    monkeypatch.setattr("drift.report.write_report", lambda source, output, x_axis: written)
    result = runner.invoke(cli.app, ["drift", "report", "--input", str(source), "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"report of 3 evaluations (worker: {source}, 1 unreadable lines skipped) -> {target} (40 KiB)"
    )
    result = runner.invoke(cli.app, ["drift", "report", "--input", str(source), "--output", str(target), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "source": str(source), "kind": "worker", "evaluations": 3, "skipped_lines": 1, "target": str(target),
        "size_bytes": 40_960,
    }


def test_progress_is_silent_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with cli._progress("working"):
        pass
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
