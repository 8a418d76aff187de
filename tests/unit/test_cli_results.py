"""Jobs return typed results; the CLI renders them with rich or as ``--json`` (no services)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from drift.simulate import SimulationResult, render
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
        GeneratedFile(name, tmp_path / name, rows)
        for name, rows in [("transactions.parquet", 8000), ("customer_stats.parquet", 6300)]
    )
    return GenerateResult(7, 300, 50, START, END, 0.0125, files)


@pytest.fixture
def applied(tmp_path: Path) -> ApplyResult:
    objects = (AppliedObject("Entity", "customer"), AppliedObject("FeatureService", "fraud_v1"))
    return ApplyResult("driftline", tmp_path / "registry.db", objects)


@pytest.fixture
def trained(tmp_path: Path) -> TrainResult:
    return TrainResult(
        model="fraud",
        version="20261121T000000Z",
        path=tmp_path / "fraud" / "20261121T000000Z",
        promoted=True,
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
    report = {
        "ready": True,
        "flagged": ["amount"],
        "events_seen": 1500,
        "window_events": 1000,
        "features": [
            {
                "name": "amount",
                "statistic_name": "ks",
                "tested": True,
                "statistic": 0.3,
                "p_value": 1e-9,
                "psi": 0.4,
                "missing_rate": 0.0,
                "flagged": True,
            }
        ],
        "score": None,
    }
    record = {
        "model": {"name": "fraud", "version": "v1"},
        "config": {"stationary": 1000, "alpha": 0.01, "min_psi": 0.1, "drift": "amount_shift", "batch": 200},
        "timing": {"observe_ms_per_batch": 0.5, "evaluate_ms": None},
        "evaluations": [
            {"events": 1500, "after_drift": 500, "event_time": "t", "report": report, "freshness": {}},
        ],
    }
    return SimulationResult(record, 2, 5000, None, (0.01, 0.02), (0.03, 0.04), 1.25, out)


def test_generate_renders_the_world_and_one_row_per_file(generated: GenerateResult) -> None:
    world, table = cli.generate_renderables(generated)
    assert isinstance(table, Table)
    page = text(world, table)
    assert "seed 7, 300 customers, 50 merchants" in page
    assert "fraud rate 1.25%" in page
    assert "transactions.parquet" in page and "8000" in page
    summary = "generated transactions.parquet 8000, customer_stats.parquet 6300 rows (fraud rate 1.25%)"
    assert generated.summary() == summary


def test_data_generate_json(monkeypatch: pytest.MonkeyPatch, generated: GenerateResult) -> None:
    monkeypatch.setattr("training.data.generate", lambda settings: generated)
    result = runner.invoke(cli.app, ["data", "generate", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"][0] == {"name": "transactions.parquet", "path": str(generated.files[0].path), "rows": 8000}
    assert data["fraud_rate"] == 0.0125
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
    page = text(*cli.train_renderables(trained))
    assert "model fraud 20261121T000000Z (production)" in page
    assert "roc_auc" in page and "0.9123" in page
    assert "fit 2.2s" in page or "fit 2.3s" in page
    assert "roc_auc 0.9123" in trained.summary()
    monkeypatch.setattr("training.train.run", lambda settings, promote: trained)
    result = runner.invoke(cli.app, ["train", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["version"] == "20261121T000000Z" and data["metrics"]["roc_auc"] == 0.91234
    assert data["promoted"] is True and data["test_rows"] == 1600


def test_simulation_render_summarizes_the_run(tmp_path: Path) -> None:
    lines = list(render(simulation_result(tmp_path / "run.json")))
    assert lines[0] == "model fraud v1: reference sketch v2 (n=5000; no time-of-day strata)"
    assert any("amount: first flagged 500 events after the drift started" in line for line in lines)
    assert "fraud rate / mean score: stationary 1.00% / 3.00%, drifted 2.00% / 4.00%" in lines
    assert any(line.startswith("cost: observe 0.500 ms") and "evaluate - ms" in line for line in lines)
    assert lines[-1] == f"evaluations -> {tmp_path / 'run.json'}"
    assert not any(line.startswith("evaluations ->") for line in render(simulation_result(None)))


def test_drift_simulate_lines_start_with_the_events() -> None:
    simulation = DriftSimulation(1500, 1000, 500, "amount_shift", "t0", "t1", 0.5, 3, simulation_result(None))
    lines = cli.simulation_lines(simulation)
    assert lines[0].startswith("1500 events (1000 stationary + 500 amount_shift)")
    assert "(3 missing values)" in lines[0]
    assert lines[1].startswith("model fraud v1")


def test_progress_is_silent_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with cli._progress("working"):
        pass
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
