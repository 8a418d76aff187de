"""The CLI renders the data its commands get back: rich tables for people, ``--json`` for scripts (no services)."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from driftline.contracts import DeadLetter
from driftline_tools import cli
from driftline_tools.scenarios import ScenarioResult
from driftline_tools.stack import ServiceStatus, free_port
from producers.admin import TopicOutcome
from producers.deadletters import DeadLetterReport, ReplayResult

runner = CliRunner()


def cells(table: Table) -> list[list[str]]:
    """The table's rows as plain strings, column by column."""
    columns = [[str(cell) for cell in column.cells] for column in table.columns]
    return [list(row) for row in zip(*columns, strict=True)]


def headers(table: Table) -> list[str]:
    return [str(column.header) for column in table.columns]


def rendered(table: Table) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def stack_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A stack home with nothing running, on ports nobody uses."""
    kafka_port, redis_port = free_port(), free_port()
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_STACK_KAFKA_PORT", str(kafka_port))
    monkeypatch.setenv("DRIFTLINE_STACK_REDIS_PORT", str(redis_port))
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return kafka_port, redis_port


# --- stack ------------------------------------------------------------------------------------------


def test_services_table_has_a_row_per_service() -> None:
    services = [
        ServiceStatus("broker", "running", 41, "127.0.0.1:9092", True, None, Path("/h/stack/broker.log")),
        ServiceStatus("redis", "running", 42, "127.0.0.1:6379", False, "no Redis answer", Path("/h/stack/redis.log")),
    ]
    table = cli.services_table(services)
    assert headers(table) == ["service", "state", "pid", "address", "answering", "problem", "log"]
    assert cells(table) == [
        ["broker", "running", "41", "127.0.0.1:9092", "yes", "", "/h/stack/broker.log"],
        ["redis", "running", "42", "127.0.0.1:6379", "NO", "no Redis answer", "/h/stack/redis.log"],
    ]


def test_cell_text_is_never_read_as_markup() -> None:
    table = cli.services_table([ServiceStatus("broker", "stopped", problem="[bold]port[/bold] in use")])
    assert "[bold]port[/bold] in use" in rendered(table)


def test_stack_status_shows_a_table_of_stopped_services(stack_env: tuple[int, int]) -> None:
    result = runner.invoke(cli.app, ["stack", "status"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("broker" in line and "stopped" in line and f"127.0.0.1:{stack_env[0]}" in line for line in lines)
    assert any("redis" in line and "stopped" in line and f"127.0.0.1:{stack_env[1]}" in line for line in lines)


def test_stack_status_json_matches_the_data(stack_env: tuple[int, int], tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["stack", "status", "--json"])
    assert result.exit_code == 0, result.output
    kafka_port, redis_port = stack_env
    assert json.loads(result.stdout) == [
        {
            "name": "broker", "state": "stopped", "pid": None, "address": f"127.0.0.1:{kafka_port}",
            "answering": None, "problem": None, "log": str(tmp_path / "stack" / "broker.log"), "start_s": None,
        },
        {
            "name": "redis", "state": "stopped", "pid": None, "address": f"127.0.0.1:{redis_port}",
            "answering": None, "problem": None, "log": str(tmp_path / "stack" / "redis.log"), "start_s": None,
        },
    ]


def test_stack_down_json_with_nothing_running(stack_env: tuple[int, int]) -> None:
    result = runner.invoke(cli.app, ["stack", "down", "--json"])
    assert result.exit_code == 0, result.output
    assert [(s["name"], s["state"]) for s in json.loads(result.stdout)] == [
        ("redis", "not running"),
        ("broker", "not running"),
    ]


def test_stack_env_prints_export_lines_a_shell_can_eval(stack_env: tuple[int, int]) -> None:
    kafka_port, redis_port = stack_env
    result = runner.invoke(cli.app, ["stack", "env"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:{kafka_port}",
        f"export REDIS_URL=redis://127.0.0.1:{redis_port}/0",
    ]
    as_json = runner.invoke(cli.app, ["stack", "env", "--json"])
    assert json.loads(as_json.stdout) == {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
    }


# --- topics -----------------------------------------------------------------------------------------

TOPICS = [
    TopicOutcome("events", "created", 3),
    TopicOutcome("predictions", "existed", 1, "DRIFTLINE_TOPIC_PARTITIONS is 3; left unchanged"),
]


@pytest.fixture
def fake_topics(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import producers.admin

    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setattr(producers.admin, "ensure_topics", lambda settings: TOPICS)


def test_topics_table() -> None:
    table = cli.topics_table(TOPICS)
    assert headers(table) == ["topic", "outcome", "partitions", "note"]
    assert cells(table) == [
        ["events", "created", "3", ""],
        ["predictions", "existed", "1", "DRIFTLINE_TOPIC_PARTITIONS is 3; left unchanged"],
    ]


def test_topics_command_renders_a_table_and_json(fake_topics: None) -> None:
    result = runner.invoke(cli.app, ["topics"])
    assert result.exit_code == 0, result.output
    assert any("predictions" in line and "existed" in line and "left unchanged" in line
               for line in result.stdout.splitlines())
    as_json = runner.invoke(cli.app, ["topics", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == [
        {"name": "events", "outcome": "created", "partitions": 3, "note": ""},
        {
            "name": "predictions", "outcome": "existed", "partitions": 1,
            "note": "DRIFTLINE_TOPIC_PARTITIONS is 3; left unchanged",
        },
    ]


# --- dead letters -----------------------------------------------------------------------------------


def _letter(offset: int, value: bytes) -> DeadLetter:
    return DeadLetter.for_input(
        b"k", value, error_type="invalid_field", reason="amount must be >= 0.01 [got -1]",
        source_topic="events", source_partition=2, source_offset=offset, failed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


REPORT = DeadLetterReport(
    topic="dead-letters",
    total=3,
    by_error_type={"invalid_field": 2, "not_json": 1},
    by_reason={"amount must be >= 0.01 [got -1]": 2, "not JSON": 1},
    sample=(_letter(7, b'{"amount": -1}'), _letter(8, b"\xff\xfe")),
)


@pytest.fixture
def fake_dead_letters(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import producers.deadletters

    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setattr(producers.deadletters, "inspect", lambda settings, selection, sample: REPORT)
    monkeypatch.setattr(
        producers.deadletters, "replay", lambda settings, selection: ReplayResult("events", 4, 1)
    )


def test_dead_letter_tables() -> None:
    by_type, by_reason, sample = cli.dead_letter_tables(REPORT)
    assert cells(by_type) == [["invalid_field", "2"], ["not_json", "1"]]
    assert cells(by_reason) == [["amount must be >= 0.01 [got -1]", "2"], ["not JSON", "1"]]
    assert cells(sample) == [
        ["events[2]@7", "invalid_field", "amount must be >= 0.01 [got -1]", '{"amount": -1}'],
        ["events[2]@8", "invalid_field", "amount must be >= 0.01 [got -1]", "\ufffd\ufffd"],
    ]


def test_dead_letters_inspect_renders_and_json_round_trips(fake_dead_letters: None) -> None:
    result = runner.invoke(cli.app, ["dead-letters", "inspect"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "3 dead letters on dead-letters match"
    assert "events[2]@7" in result.stdout and "amount must be >= 0.01 [got -1]" in result.stdout

    as_json = runner.invoke(cli.app, ["dead-letters", "inspect", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert (data["topic"], data["total"], data["by_error_type"], data["by_reason"]) == (
        REPORT.topic, REPORT.total, REPORT.by_error_type, REPORT.by_reason,
    )
    assert [DeadLetter.model_validate(d) for d in data["sample"]] == list(REPORT.sample)
    assert base64.b64decode(data["sample"][1]["original_value"]) == b"\xff\xfe"


def test_dead_letters_replay_says_what_was_sent_and_skipped(fake_dead_letters: None) -> None:
    result = runner.invoke(cli.app, ["dead-letters", "replay"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "replayed 4 dead letters onto events"
    assert lines[1].startswith("skipped 1 dead letters that keep only the first bytes")
    as_json = runner.invoke(cli.app, ["dead-letters", "replay", "--json"])
    assert json.loads(as_json.stdout) == {"topic": "events", "sent": 4, "skipped_truncated": 1}


def test_replay_lines_without_truncated_letters() -> None:
    assert cli.replay_lines(ReplayResult("events", 0, 0)) == ["replayed 0 dead letters onto events"]


# --- model list -------------------------------------------------------------------------------------

VERSIONS = [
    cli.RegisteredVersion("fraud", "v1", False, "fraud_v1", {"roc_auc": 0.91, "brier": 0.05}),
    cli.RegisteredVersion("fraud", "v2", True, "fraud_v1", {"roc_auc": 0.93456}),
]


def test_models_table_has_a_column_per_metric() -> None:
    table = cli.models_table(VERSIONS)
    assert headers(table) == ["production", "model", "version", "feature service", "brier", "roc_auc"]
    assert cells(table) == [
        ["", "fraud", "v1", "fraud_v1", "0.0500", "0.9100"],
        ["*", "fraud", "v2", "fraud_v1", "", "0.9346"],
    ]


def test_model_list_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setattr(cli, "registered_versions", lambda settings: VERSIONS)
    result = runner.invoke(cli.app, ["model", "list"])
    assert result.exit_code == 0, result.output
    assert any(line.count("v2") == 1 and "*" in line and "0.9346" in line for line in result.stdout.splitlines())
    as_json = runner.invoke(cli.app, ["model", "list", "--json"])
    assert json.loads(as_json.stdout) == [
        {"model": "fraud", "version": "v1", "production": False, "feature_service": "fraud_v1",
         "metrics": {"roc_auc": 0.91, "brier": 0.05}},
        {"model": "fraud", "version": "v2", "production": True, "feature_service": "fraud_v1",
         "metrics": {"roc_auc": 0.93456}},
    ]


def test_model_list_with_an_empty_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    result = runner.invoke(cli.app, ["model", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []


# --- faults -----------------------------------------------------------------------------------------

RESULTS = [
    ScenarioResult("baseline", 100, 95, 5, 0, 0, seconds=12.34),
    ScenarioResult("redis-down", 100, 95, 5, 2, 0, degraded=40, seconds=20.0, note="store paused 5s"),
]


def test_scenarios_table() -> None:
    table = cli.scenarios_table(RESULTS)
    assert headers(table) == [
        "scenario", "sent", "scored", "dead-lettered", "duplicated", "lost", "degraded", "seconds", "note",
    ]
    assert cells(table) == [
        ["baseline", "100", "95", "5", "0", "0", "0", "12.3", ""],
        ["redis-down", "100", "95", "5", "2", "0", "40", "20.0", "store paused 5s"],
    ]


def test_faults_command_renders_the_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline_tools.scenarios

    monkeypatch.setattr(driftline_tools.scenarios, "run_all", lambda names, count, rate: iter(RESULTS))
    result = runner.invoke(cli.app, ["faults"])
    assert result.exit_code == 0, result.output
    assert any("redis-down" in line and "store paused 5s" in line for line in result.stdout.splitlines())
    as_json = runner.invoke(cli.app, ["faults", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert [ScenarioResult(**row) for row in json.loads(as_json.stdout)] == RESULTS
