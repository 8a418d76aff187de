"""The CLI renders the data its commands get back: rich tables for people, ``--json`` for scripts (no services)."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from typer.testing import CliRunner

from driftline.contracts import DeadLetter
from driftline.errors import ModelLoadError
from driftline.registry import AliasMove, VersionInfo
from driftline_tools import cli
from driftline_tools.bench.measure import BenchReport, ContenderResult, LoadResult
from driftline_tools.demo import DemoResult
from driftline_tools.scenarios import (
    P99Comparison,
    ScenarioResult,
    SoakResult,
    SoakSample,
    compare_p99,
    write_soak_files,
)
from driftline_tools.stack import ServiceStatus, free_port
from producers.admin import TopicOutcome
from producers.deadletters import DeadLetterReport, ReplayResult
from producers.publish import PublishSummary

# A table under CliRunner is 200 wide (a pipe) unless COLUMNS says otherwise, as pytest-xdist workers do.
runner = CliRunner(env={"COLUMNS": None})


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
    shown = json.loads(result.stdout)
    assert shown["broker"] is None  # not running: nothing to count
    assert shown["services"] == [
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


# --- model list, history ---------------------------------------------------------------------------

CREATED = datetime(2026, 11, 21, 8, 30, 5, tzinfo=UTC)
VERSIONS = [
    VersionInfo(
        model="fraud", version="1", run_id="0f3c2a9e4b1d4c7a8e6f5a4b3c2d1e0f", created_at=CREATED, aliases=[],
        metrics={"roc_auc": 0.91, "brier": 0.05, "train_seconds": 3.0}, feature_service="fraud_v1", task="binary",
    ),
    VersionInfo(
        model="fraud", version="2", run_id="a1b2c3d4e5f60718293a4b5c6d7e8f90", created_at=CREATED + timedelta(days=1),
        aliases=["canary", "production"], metrics={"roc_auc": 0.93456}, feature_service="fraud_v1", task="binary",
    ),
    VersionInfo(
        model="fraud", version="3", run_id=None, created_at=CREATED + timedelta(days=2), aliases=[], metrics={},
        feature_service=None, task=None,
    ),
]
MOVES = [
    AliasMove(sequence=1, at=CREATED, model="fraud", alias="production", from_version=None, to_version="1",
              by="alice", reason="first model"),
    AliasMove(sequence=2, at=CREATED + timedelta(hours=1), model="fraud", alias="canary", from_version=None,
              to_version="2", by="bob", reason="[bold]try[/bold] 2"),
    AliasMove(sequence=3, at=CREATED + timedelta(hours=2), model="fraud", alias="canary", from_version="2",
              to_version=None, by="bob", reason="done"),
]


def test_models_table_shows_runs_aliases_and_the_headline_metrics() -> None:
    table = cli.models_table(VERSIONS)
    # Headline metrics only, in a fixed order (not every metric a run logged).
    assert headers(table) == ["version", "aliases", "run", "created (UTC)", "feature service", "roc_auc", "brier"]
    assert cells(table) == [
        ["1", "", "0f3c2a9e4b1d", "2026-11-21 08:30:05", "fraud_v1", "0.9100", "0.0500"],
        ["2", "canary, production", "a1b2c3d4e5f6", "2026-11-22 08:30:05", "fraud_v1", "0.9346", ""],
        ["3", "", "", "2026-11-23 08:30:05", "", "", ""],
    ]


def test_history_table_shows_every_move_and_removals() -> None:
    table = cli.history_table(MOVES)
    assert headers(table) == ["#", "at (UTC)", "alias", "from", "to", "by", "reason"]
    assert cells(table) == [
        ["1", "2026-11-21 08:30:05", "production", "-", "1", "alice", "first model"],
        ["2", "2026-11-21 09:30:05", "canary", "-", "2", "bob", "[bold]try[/bold] 2"],  # not read as markup
        ["3", "2026-11-21 10:30:05", "canary", "2", "(removed)", "bob", "done"],
    ]


class _Registry:
    """Stands in for driftline.registry.ModelRegistry: records the alias calls the commands make."""

    calls: list[tuple[object, ...]] = []

    def __init__(self, settings: object) -> None:
        self.model_name = getattr(settings, "model_name", None)

    def versions(self, name: str) -> list[VersionInfo]:
        self.calls.append(("versions", name))
        return VERSIONS

    def history(self, name: str) -> list[AliasMove]:
        self.calls.append(("history", name))
        return MOVES

    def set_alias(self, name: str, alias: str, version: str, reason: str) -> AliasMove:
        self.calls.append(("set_alias", name, alias, version, reason))
        return MOVES[0].model_copy(update={"alias": alias, "to_version": version, "reason": reason})

    def rollback(self, name: str, reason: str, alias: str = "production") -> AliasMove:
        self.calls.append(("rollback", name, reason, alias))
        return MOVES[0].model_copy(update={"alias": alias, "from_version": "2", "to_version": "1", "reason": reason})

    def remove_alias(self, name: str, alias: str, reason: str) -> AliasMove | None:
        self.calls.append(("remove_alias", name, alias, reason))
        return None


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[object, ...]]:
    import driftline.registry

    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_MODEL_NAME", "fraud")
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(_Registry, "calls", calls)
    monkeypatch.setattr(driftline.registry, "ModelRegistry", _Registry)
    return calls


def test_model_list_command(fake_registry: list[tuple[object, ...]]) -> None:
    result = runner.invoke(cli.app, ["model", "list"])
    assert result.exit_code == 0, result.output
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in result.stdout.splitlines() if "│" in line]
    assert ["2", "canary, production", "a1b2c3d4e5f6"] in [row[:3] for row in rows], result.stdout
    as_json = runner.invoke(cli.app, ["model", "list", "--json"])
    assert [VersionInfo.model_validate(v) for v in json.loads(as_json.stdout)] == VERSIONS
    assert fake_registry == [("versions", "fraud")] * 2


def test_model_alias_commands_pass_the_reason_and_print_the_move(fake_registry: list[tuple[object, ...]]) -> None:
    promoted = runner.invoke(cli.app, ["model", "promote", "2", "--reason", "better recall", "--to", "canary"])
    assert promoted.exit_code == 0, promoted.output
    assert "better recall" in promoted.stdout and "canary" in promoted.stdout
    rolled = runner.invoke(cli.app, ["model", "rollback", "--reason", "alerts", "--json"])
    assert rolled.exit_code == 0, rolled.output
    move = AliasMove.model_validate_json(rolled.stdout)
    assert (move.alias, move.from_version, move.to_version, move.reason) == ("production", "2", "1", "alerts")
    unset = runner.invoke(cli.app, ["model", "unset", "shadow", "--reason", "experiment over"])
    assert unset.exit_code == 0 and "shadow was not set" in unset.stdout
    history = runner.invoke(cli.app, ["model", "history", "--json"])
    assert [AliasMove.model_validate(m) for m in json.loads(history.stdout)] == MOVES
    assert fake_registry == [
        ("set_alias", "fraud", "canary", "2", "better recall"),
        ("rollback", "fraud", "alerts", "production"),
        ("remove_alias", "fraud", "shadow", "experiment over"),
        ("history", "fraud"),
    ]
    # A move without a reason, and unsetting production, are refused before the registry is touched.
    assert runner.invoke(cli.app, ["model", "promote", "2"]).exit_code == 2
    assert runner.invoke(cli.app, ["model", "unset", "production", "--reason", "x"]).exit_code == 2
    assert len(fake_registry) == 4


def test_model_commands_on_an_empty_embedded_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = runner.invoke(cli.app, ["model", "list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
    assert (tmp_path / "mlflow" / "mlflow.db").is_file()
    history = runner.invoke(cli.app, ["model", "history", "--json"])
    assert history.exit_code == 0 and json.loads(history.stdout) == []
    # What the user can fix is a ModelLoadError (main() prints it as one line, exit 2), never a traceback.
    for args, message in [
        (["model", "show"], "model fraud has no production version in sqlite:///"),
        (["model", "show", "9"], "model fraud has no version 9 in sqlite:///"),
        (["model", "rollback", "--reason", "x"], "model fraud: production has no earlier version to roll back to"),
        (["model", "promote", "1", "--reason", "x"], "model fraud has no version 1 in sqlite:///"),
    ]:
        failed = runner.invoke(cli.app, args)
        assert isinstance(failed.exception, ModelLoadError), (args, failed.exception)
        assert str(failed.exception).startswith(message), args


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


# --- produce ----------------------------------------------------------------------------------------

PUBLISHED = PublishSummary(
    topic="transactions", attempted=10, sent=9, invalid_sent=1, failed=1, seconds=2.0,
    first_event_id="e-1", last_event_id="e-10",
)


def test_publish_table_lists_every_figure() -> None:
    assert cells(cli.publish_table(PUBLISHED)) == [
        ["topic", "transactions"],
        ["attempted", "10"],
        ["sent (acknowledged)", "9 (1 invalid)"],
        ["failed", "1"],
        ["seconds", "2.00"],
        ["rate", "4 events/s"],
        ["event ids", "e-1 .. e-10"],
        ["aborted", "no"],
    ]
    aborted = PublishSummary("transactions", 5, 0, 0, 5, 0.0, aborted=True)
    rows = dict(cells(cli.publish_table(aborted)))  # type: ignore[arg-type]
    assert (rows["event ids"], rows["rate"], rows["aborted"]) == ("", "0 events/s", "YES: the producer kept failing")


def test_produce_renders_the_summary_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import producers.publish

    calls: list[dict[str, object]] = []

    def publish_generated(settings: object, **kwargs: object) -> PublishSummary:
        calls.append(kwargs)
        return PUBLISHED

    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setattr(producers.publish, "publish_generated", publish_generated)
    result = runner.invoke(cli.app, ["produce", "--count", "10", "--rate", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert calls == [{"count": 10, "rate": 0.0, "invalid_fraction": 0.0, "drift": "none", "progress": False}]
    assert any("sent (acknowledged)" in line and "9 (1 invalid)" in line for line in result.stdout.splitlines())
    as_json = runner.invoke(cli.app, ["produce", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == {
        "topic": "transactions", "attempted": 10, "sent": 9, "invalid_sent": 1, "failed": 1, "seconds": 2.0,
        "first_event_id": "e-1", "last_event_id": "e-10", "aborted": False,
    }


# --- soak -------------------------------------------------------------------------------------------


def _samples(p99s: list[float], every: float = 15.0, late: float = 0.05) -> list[SoakSample]:
    """One sample per interval of ``every`` seconds, each taken ``late`` seconds after its boundary."""
    return [
        SoakSample(elapsed_s=every * i + late, scored_total=1500 * i, rss_mb=300.0 + i / 10, e2e_mean_ms=30.0 + i,
                   e2e_p99_ms=p99, broker_rss_mb=40.0 + i)
        for i, p99 in enumerate(p99s, start=1)
    ]


def test_compare_p99_over_a_ten_minute_run() -> None:
    # 40 samples: the first 20 intervals lie in the first five minutes, the last 20 in the last five,
    # even though each sample is taken a moment after its boundary (300.05 s still closes the first window).
    samples = _samples([100.0] * 19 + [50.0] + [100.0] * 10 + [250.0] + [100.0] * 9)
    assert compare_p99(samples) == P99Comparison(300.0, 100.0, 250.0, 2.5)


def test_compare_p99_takes_each_windows_worst_interval_and_skips_empty_ones() -> None:
    p99s = [25.0, math.nan, 50.0, 25.0, 25.0, 25.0, 25.0, 25.0, math.nan, 100.0, 50.0, 25.0]
    assert compare_p99(_samples(p99s), window_s=60.0) == P99Comparison(60.0, 50.0, 100.0, 2.0)


def test_compare_p99_gives_no_ratio_when_the_windows_overlap() -> None:
    # A three-minute run: its first five minutes and its last five are the same samples.
    comparison = compare_p99(_samples([100.0] * 11 + [250.0]))
    assert comparison == P99Comparison(300.0, 250.0, 250.0, None)


def test_compare_p99_gives_no_ratio_without_latencies() -> None:
    first, last = compare_p99(_samples([math.nan] * 20 + [100.0] * 20)), compare_p99([])
    assert math.isnan(first.first_p99_ms) and first.last_p99_ms == 100.0 and first.ratio is None
    assert math.isnan(last.first_p99_ms) and math.isnan(last.last_p99_ms) and last.ratio is None


def test_p99_comparison_text() -> None:
    assert cli.p99_comparison_text(P99Comparison(300.0, 100.0, 250.0, 2.5)) == (
        "e2e p99, last 5 min / first 5 min: 250 / 100 ms = 2.50x"
    )
    assert cli.p99_comparison_text(P99Comparison(300.0, 250.0, 250.0, None)) == (
        "e2e p99, last 5 min / first 5 min: n/a (a run under 10 min: the windows overlap)"
    )
    assert cli.p99_comparison_text(P99Comparison(60.0, math.nan, 100.0, None)) == (
        "e2e p99, last 1 min / first 1 min: n/a (100 / n/a ms: a window saw no events)"
    )


SOAK_START = datetime(2026, 1, 1, tzinfo=UTC)


def test_soak_table_has_a_row_per_sample_and_the_p99_ratio_below() -> None:
    result = SoakResult.of(SOAK_START, 0.75, 100.0, 15.0, _samples([100.0, math.nan, 250.0]))
    table = cli.soak_table(result)
    assert table.title == "soak: 100 events/s through one worker for 0.75 min, a sample every 15s"
    assert headers(table) == ["elapsed s", "scored", "worker RSS MB", "broker RSS MB", "e2e mean ms", "e2e p99 ms"]
    assert cells(table) == [
        ["15", "1500", "300.1", "41", "31.0", "100"],
        ["30", "3000", "300.2", "42", "32.0", "n/a"],
        ["45", "4500", "300.3", "43", "33.0", "250"],
    ]
    assert str(table.caption) == "e2e p99, last 5 min / first 5 min: n/a (a run under 10 min: the windows overlap)"


def test_soak_sample_text() -> None:
    [sample] = _samples([math.nan])
    assert cli.soak_sample_text(sample) == (
        "15s: 1500 scored, worker RSS 300.1 MB, broker RSS 41 MB, e2e mean 31.0 ms, p99 n/a ms"
    )


def test_soak_progress_logs_each_sample_when_stderr_is_not_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=cli.logger.name)
    with cli._soak_progress(45.0) as show:
        for sample in _samples([100.0, 250.0]):
            show(sample)
    assert [r.getMessage() for r in caplog.records if r.name == cli.logger.name] == [
        "soak 15s: 1500 scored, worker RSS 300.1 MB, broker RSS 41 MB, e2e mean 31.0 ms, p99 100 ms",
        "soak 30s: 3000 scored, worker RSS 300.2 MB, broker RSS 42 MB, e2e mean 32.0 ms, p99 250 ms",
    ]


def test_soak_command_shows_the_table_writes_json_and_png(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import driftline_tools.scenarios

    samples = _samples([100.0] * 20 + [250.0] * 20)
    asked: list[tuple[float, float, float]] = []

    def fake_soak(
        minutes: float, rate: float, every: float, on_sample: Callable[[SoakSample], None]
    ) -> ScenarioResult:
        asked.append((minutes, rate, every))
        for sample in samples:
            on_sample(sample)
        return ScenarioResult("soak", sent=60_000, scored=60_000, dead_lettered=0, duplicated=0, lost=0)

    monkeypatch.setattr(driftline_tools.scenarios, "soak", fake_soak)
    out = tmp_path / "soak"
    result = runner.invoke(cli.app, ["soak", "--minutes", "10", "--rate", "100", "--out-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert asked == [(10.0, 100.0, 15.0)]
    assert "e2e p99, last 5 min / first 5 min: 250 / 100 ms = 2.50x" in result.stdout
    assert "sent 60,000: scored 60,000, dead-lettered 0, unaccounted 0, duplicates 0" in result.stdout
    [written] = out.glob("soak-*.json")
    [plot] = out.glob("soak-*.png")
    assert result.stdout.splitlines()[-2:] == [f"results: {written}", f"plot:    {plot}"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(written.read_text())
    assert [SoakSample(**s) for s in data["samples"]] == samples
    assert data["p99"] == {"window_s": 300.0, "first_p99_ms": 100.0, "last_p99_ms": 250.0, "ratio": 2.5}
    assert (data["minutes"], data["rate"], data["sample_every_s"]) == (10.0, 100.0, 15.0)

    as_json = runner.invoke(cli.app, ["soak", "--minutes", "10", "--json", "--out-dir", str(tmp_path / "again")])
    assert as_json.exit_code == 0, as_json.output
    printed = json.loads(as_json.stdout)
    assert printed["samples"] == data["samples"] and printed["p99"] == data["p99"]


def test_write_soak_files_names_them_by_start_time(tmp_path: Path) -> None:
    result = SoakResult.of(SOAK_START, 0.5, 50.0, 15.0, _samples([100.0, math.nan]))
    json_path, png_path = write_soak_files(result, tmp_path / "nested")
    assert (json_path.name, png_path.name) == ("soak-20260101T000000Z.json", "soak-20260101T000000Z.png")
    data = json.loads(json_path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["started_at"] == "2026-01-01T00:00:00Z"
    assert [s["e2e_p99_ms"] for s in data["samples"]] == [100.0, None]


# --- bench ------------------------------------------------------------------------------------------


def _bench_report() -> BenchReport:
    nan = math.nan
    skipped = LoadResult(0.5, 1458.0, 0, 0, nan, nan, nan, nan, note="skipped: above 90% of its max")

    def contender(name: str, rate: float, cpu: float, rss: float, start: float, load: LoadResult) -> ContenderResult:
        return ContenderResult(
            name=name,  # type: ignore[arg-type]
            processes=1, drain_events=6000, max_throughput_per_s=rate, cpu_s_per_1k=cpu, peak_rss_mb=rss,
            peak_rss_total_mb=rss, start_to_first_prediction_s=start, drain_seconds=2.0, loads=[load],
        )

    return BenchReport(
        started_at="2026-01-01T00:00:00+00:00", workers=1, partitions=4, smoke=False, machine={}, settings={},
        contenders=[
            contender("naive", 96.4, 11.153, 309.4, 11.321, skipped),
            contender("driftline", 2916.0, 0.362, 312.0, 11.9,
                      LoadResult(0.5, 1458.0, 21870, 21870, 148.1, 273.4, 387.0, 0.35)),
            contender("raw-floor", 5617.0, 0.162, 273.0, 9.7,
                      LoadResult(0.5, 1458.0, 21870, 21869, 107.0, 270.6, 356.8, 0.15)),
        ],
    )


def test_bench_tables_show_the_figures_loads_and_ratios() -> None:
    headline, loads, ratios = cli.bench_tables(_bench_report())
    assert headline.title == "bench: 1 process(es) per contender, 4 partitions"
    assert headers(headline) == [
        "contender", "procs", "max events/s", "CPU s / 1k events", "peak RSS MB", "start to first prediction s",
    ]
    assert cells(headline) == [
        ["naive", "1", "96", "11.153", "309", "11.32"],
        ["driftline", "1", "2,916", "0.362", "312", "11.90"],
        ["raw-floor", "1", "5,617", "0.162", "273", "9.70"],
    ]
    assert headers(loads) == [
        "contender", "load", "offered events/s", "scored/sent", "p50 ms", "p95 ms", "p99 ms", "CPU s / 1k", "note",
    ]
    assert cells(loads) == [
        ["naive", "50%", "1,458", "0/0", "n/a", "n/a", "n/a", "n/a", "skipped: above 90% of its max"],
        ["driftline", "50%", "1,458", "21870/21870", "148.1", "273.4", "387.0", "0.350", ""],
        ["raw-floor", "50%", "1,458", "21869/21870", "107.0", "270.6", "356.8", "0.150", ""],
    ]
    assert headers(ratios) == [
        "ratio", "throughput", "cpu_s_per_1k", "peak_rss", "start_to_first_prediction", "p99_at_50pct",
    ]
    assert cells(ratios) == [
        ["driftline/naive", "30.25", "0.03", "1.01", "1.05", "n/a"],
        ["driftline/raw-floor", "0.52", "2.23", "1.14", "1.23", "1.08"],
    ]


def test_bench_table_says_a_smoke_run_proves_nothing_about_speed() -> None:
    report = dataclasses.replace(_bench_report(), smoke=True)
    assert cli.bench_tables(report)[0].title == (
        "bench (smoke: tiny counts, figures meaningless): 1 process(es) per contender, 4 partitions"
    )


def test_bench_tables_keep_names_whole_on_a_narrow_console() -> None:
    for table in cli.bench_tables(_bench_report()):
        console = Console(width=80, file=io.StringIO())
        console.print(table)
        page = console.file.getvalue()  # type: ignore[attr-defined]
        for name in [str(cell) for cell in table.columns[0].cells]:
            assert name in page, name


def test_bench_command_renders_the_report_and_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import signal

    import driftline_tools.bench.run

    report = _bench_report()
    paths = (tmp_path / "bench.json", tmp_path / "bench.png")
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the command's SIGTERM handler: not in pytest
    monkeypatch.setattr(driftline_tools.bench.run, "run_bench", lambda config, out_dir: (report, *paths))
    result = runner.invoke(cli.app, ["bench", "--smoke"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("driftline/raw-floor" in line and "0.52" in line and "1.08" in line for line in lines)
    assert lines[-2:] == [f"results: {paths[0]}", f"plot:    {paths[1]}"]
    as_json = runner.invoke(cli.app, ["bench", "--smoke", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["ratios"]["driftline/raw-floor"]["p99_at_50pct"] == pytest.approx(387.0 / 356.8)
    assert data["ratios"]["driftline/naive"]["p99_at_50pct"] is None  # NaN: naive skipped that load
    assert [c["name"] for c in data["contenders"]] == ["naive", "driftline", "raw-floor"]


# --- demo -------------------------------------------------------------------------------------------

DEMO = DemoResult(
    sent=3000, invalid_sent=60, scored=2940, flagged=12, dead_lettered=60,
    dead_letters_by_type={"invalid_field": 42, "missing_field": 6, "not_json": 12}, unaccounted=0, waited_s=0.2,
    latency_p50_ms=83.9, latency_p99_ms=143.8, metrics_url="http://127.0.0.1:9108/metrics", metrics_scored=2940.0,
    metrics_dead_lettered=60.0, model="fraud", model_version="20260101T000000Z",
    worker_log=Path("/home/demo/worker.log"), stack_running=True,
)


def test_demo_summary_keeps_the_readme_facts() -> None:
    summary, next_steps = cli.demo_renderables(DEMO)
    assert isinstance(summary, Table)
    assert summary.title == "driftline demo summary"
    assert cells(summary) == [
        ["sent", "3000 (60 deliberately invalid)"],
        ["scored", "2940 (flagged as fraud: 12)"],
        ["dead-lettered", "60 (invalid_field 42, missing_field 6, not_json 12)"],
        ["unaccounted", "0 (after waiting 0.2s)"],
        ["latency event_time -> scored", "p50 83.9 ms, p99 143.8 ms"],
        [
            "worker metrics",
            "http://127.0.0.1:9108/metrics: driftline_events_processed_total scored=2940 dead_lettered=60",
        ],
        ["model", "fraud (see `driftline model list`)"],
    ]
    assert str(next_steps).splitlines() == [
        "tail the output with `driftline tail --from-beginning --limit 5`",
        "the embedded stack is still up; stop it with `driftline stack down`",
    ]


def test_readme_quotes_the_demo_summary_as_rendered() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    table = cli.demo_renderables(DEMO)[0]
    assert isinstance(table, Table)
    summary = "\n".join(line.rstrip() for line in rendered(table).splitlines())
    assert f"```\n{summary}\n```" in readme


def test_demo_summary_without_dead_letters_or_latencies() -> None:
    quiet = dataclasses.replace(
        DEMO, dead_lettered=0, dead_letters_by_type={}, scored=0, latency_p50_ms=math.nan,
        latency_p99_ms=math.nan, stack_running=False,
    )
    summary, next_steps = cli.demo_renderables(quiet)
    rows = dict(cells(summary))  # type: ignore[arg-type]
    assert (rows["dead-lettered"], rows["latency event_time -> scored"]) == ("0", "p50 n/a ms, p99 n/a ms")
    assert str(next_steps) == "tail the output with `driftline tail --from-beginning --limit 5`"


def test_demo_command_renders_and_prints_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import driftline_tools.demo

    def run_demo(**kwargs: object) -> DemoResult:
        print("Materializing 2 feature views")  # as Feast does, on stdout
        return DEMO

    monkeypatch.setattr(driftline_tools.demo, "run_demo", run_demo)
    result = runner.invoke(cli.app, ["demo"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].strip() == "driftline demo summary"
    as_json = runner.invoke(cli.app, ["demo", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert "Materializing 2 feature views" in as_json.stderr  # the job's own chatter goes to stderr
    data = json.loads(as_json.stdout)
    assert DemoResult(**{**data, "worker_log": Path(data["worker_log"])}) == DEMO


def test_soak_capacity_check_refuses_a_run_past_the_brokers_limit_and_names_the_settings() -> None:
    from driftline.settings import ProducerSettings, WorkerSettings
    from driftline_tools.scenarios import soak_capacity_problem

    producer = ProducerSettings(DRIFTLINE_PRODUCER_LINGER_MS=100, DRIFTLINE_TOPIC_PARTITIONS=4)
    worker = WorkerSettings(DRIFTLINE_FETCH_MAX_WAIT_MS=50)
    assert soak_capacity_problem(30, 200, producer, worker) is None  # 18,000 of 50,000 batches per partition
    problem = soak_capacity_problem(120, 200, producer, worker)  # 72,000
    assert problem is not None
    assert "72,000 batches" in problem and "DRIFTLINE_PRODUCER_LINGER_MS" in problem
    assert "DRIFTLINE_FETCH_MAX_WAIT_MS=50" in problem


def test_partition_warnings_start_at_half_the_limit() -> None:
    from driftline_tools.stack import PartitionLoad, load_warnings

    parts = [PartitionLoad("t", 0, 24_999, 30_000, 1, 0.49998), PartitionLoad("t", 1, 25_000, 30_000, 1, 0.5)]
    [warning] = load_warnings(parts, 50_000, 50)
    assert warning.startswith("t[1] holds 25,000 batches, 50% of the 50,000") and "driftline topics reset" in warning


def test_p99_of_an_interval_is_interpolated_within_its_bucket() -> None:
    from driftline_tools.scenarios import _p99_of_delta

    before = [(0.1, 0.0), (0.2, 0.0), (float("inf"), 0.0)]
    after = [(0.1, 90.0), (0.2, 100.0), (float("inf"), 100.0)]
    # 99 of 100 events: 90 below 0.1 s, so 9 of the 10 in (0.1, 0.2]: 0.1 + 0.1 * 9/10.
    assert _p99_of_delta(before, after) == pytest.approx(0.19)
