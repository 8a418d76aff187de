"""The ``driftline`` command: one entry point for every job.

Subcommands import their implementation lazily so ``driftline --help`` stays fast and a job
pulls in only what it needs (the worker never imports training code, for instance).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from drift.records import FreshnessSummary, RunEvaluation
    from drift.report import ReportWritten
    from driftline.registry import AliasMove, VersionInfo
    from driftline.settings import KafkaSettings, RedisSettings
    from driftline_tools.bench.measure import BenchReport
    from driftline_tools.demo import DemoResult
    from driftline_tools.feedback import FeedbackResult
    from driftline_tools.scenarios import P99Comparison, ScenarioResult, SoakResult, SoakSample
    from driftline_tools.simulation import DriftSimulation
    from driftline_tools.stack import BrokerLoad, ServiceStatus
    from feature_repo.store import ApplyResult, MaterializeResult
    from producers.admin import TopicOutcome
    from producers.deadletters import DeadLetterReport, ReplayResult
    from producers.publish import PublishSummary
    from training.data import GenerateResult
    from training.register import RegisterResult
    from training.retrain import RetrainReport
    from training.train import TrainResult

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
stack_app = typer.Typer(no_args_is_help=True, help="The embedded broker and Redis (machines without Docker).")
data_app = typer.Typer(no_args_is_help=True, help="Synthetic data of the worked example.")
feast_app = typer.Typer(no_args_is_help=True, help="The Feast feature repo.")
model_app = typer.Typer(no_args_is_help=True, help="The model registry.")
dead_app = typer.Typer(no_args_is_help=True, help="The dead-letter topic: inspect and replay.")
drift_app = typer.Typer(no_args_is_help=True, help="Drift monitoring: simulation and report.")
app.add_typer(stack_app, name="stack")
app.add_typer(data_app, name="data")
app.add_typer(feast_app, name="feast")
app.add_typer(model_app, name="model")
app.add_typer(dead_app, name="dead-letters")
app.add_typer(drift_app, name="drift")
topics_app = typer.Typer(help="driftline's topics: create (no subcommand) or reset.")
app.add_typer(topics_app, name="topics")
scenario_app = typer.Typer(no_args_is_help=True, help="End-to-end scenarios on throwaway services.")
app.add_typer(scenario_app, name="scenario")


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    from driftline.logs import configure_logging

    configure_logging("DEBUG" if verbose else "INFO")


def _log_connections(settings: KafkaSettings | RedisSettings) -> None:
    """Log, before connecting, the Kafka / Redis addresses a command uses and where each came from."""
    logger.info("using %s", settings.describe_connections())


# --- rendering: commands get data back and show it as rich tables, or as JSON with --json ---------

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON (for scripts).")]

#: Width of tables written to a pipe or file (no terminal to measure): wide enough that rows stay whole.
_PIPE_WIDTH = 200


def _console() -> Console:
    """A console on stdout (looked up when called, so a test runner's capture sees it)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = _PIPE_WIDTH
    return console


def _show(*renderables: RenderableType) -> None:
    console = _console()
    for renderable in renderables:
        console.print(renderable)


def _echo_json(data: object) -> None:
    """Print ``data`` (dataclasses, pydantic models, lists and dicts of them) as indented JSON.

    A NaN figure (a latency nothing was measured for) prints as null: ``NaN`` is not JSON, and jq refuses it.
    """
    from pydantic_core import to_json

    typer.echo(to_json(data, indent=2, inf_nan_mode="null").decode())


@contextmanager
def _progress(description: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while a long job runs; nothing unless stderr is a terminal.

    Logs and CI output stay clean: a pipe or file sees only the job's own log lines and result.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(description, total=None)
        yield


def _table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A table of plain-text cells: values are never read as rich markup, None shows as empty."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if value is None else str(value)) for value in row))
    return table


def services_table(services: Sequence[ServiceStatus]) -> Table:
    """One row per embedded service: state, pid, address, whether it answers, problem, log."""
    answering = {True: "yes", False: "NO", None: ""}
    return _table(
        None,
        ["service", "state", "pid", "address", "answering", "problem", "log"],
        [
            [s.name, s.state, s.pid, s.address, answering[s.answering], s.problem, s.log]
            for s in services
        ],
    )


def broker_load_table(load: BrokerLoad) -> Table:
    """One row per partition of the embedded broker: batches, records, memory, share of the fetch limit."""
    rss = f"{load.rss_bytes / 2**20:,.0f} MB resident" if load.rss_bytes is not None else "memory unknown"
    title = (f"embedded broker: {rss}; a partition stops answering past about {load.limit_batches:,} batches "
             f"(DRIFTLINE_FETCH_MAX_WAIT_MS={load.fetch_max_wait_ms})")
    return _table(
        title,
        ["topic", "partition", "batches", "records", "records/batch", "memory MB", "of limit"],
        [
            [p.topic, p.partition, f"{p.batches:,}", f"{p.records:,}",
             f"{p.records / p.batches:.1f}" if p.batches else "", f"{p.memory_bytes / 2**20:.1f}",
             f"{p.share_of_limit:.1%}"]
            for p in load.partitions
        ],
    )


def topics_table(topics: Sequence[TopicOutcome]) -> Table:
    """One row per driftline topic: created or existed, partitions, note."""
    return _table(
        None, ["topic", "outcome", "partitions", "note"], [[t.name, t.outcome, t.partitions, t.note] for t in topics]
    )


def dead_letter_tables(report: DeadLetterReport) -> list[Table]:
    """Counts by error type, the most common reasons, and the sample, as three tables."""
    sample_rows = [
        [
            f"{d.source_topic}[{d.source_partition}]@{d.source_offset}",
            d.error_type,
            d.reason,
            d.original_value[:120].decode("utf-8", "replace"),
        ]
        for d in report.sample
    ]
    return [
        _table("by error type", ["error type", "count"], list(report.by_error_type.items())),
        _table("most common reasons", ["reason", "count"], list(report.by_reason.items())),
        _table("sample", ["source", "error type", "reason", "original value (first 120 bytes)"], sample_rows),
    ]


def replay_lines(result: ReplayResult) -> list[str]:
    """What a person needs to know about a replay, as sentences."""
    lines = [f"replayed {result.sent} dead letters onto {result.topic}"]
    if result.skipped_truncated:
        lines.append(
            f"skipped {result.skipped_truncated} dead letters that keep only the first bytes of their input "
            "(original_truncated); their original_length and original_sha256 identify the input at its producer"
        )
    return lines


def models_table(versions: Sequence[VersionInfo]) -> Table:
    """One row per version: its run, aliases, creation time and headline metrics."""
    known = ("roc_auc", "pr_auc", "brier", "accuracy", "mae", "rmse")
    headline = [m for m in known if any(m in v.metrics for v in versions)]
    rows = [
        [
            v.version,
            ", ".join(v.aliases),
            v.run_id[:12] if v.run_id else "",
            f"{v.created_at:%Y-%m-%d %H:%M:%S}",
            v.feature_service or "",
            *(f"{v.metrics[name]:.4f}" if name in v.metrics else "" for name in headline),
        ]
        for v in versions
    ]
    return _table(None, ["version", "aliases", "run", "created (UTC)", "feature service", *headline], rows)


def history_table(moves: Sequence[AliasMove]) -> Table:
    """Every alias move, oldest first: when, which alias, from and to, by whom and why."""
    rows = [
        [m.sequence, f"{m.at:%Y-%m-%d %H:%M:%S}", m.alias, m.from_version or "-", m.to_version or "(removed)", m.by,
         m.reason]
        for m in moves
    ]
    return _table(None, ["#", "at (UTC)", "alias", "from", "to", "by", "reason"], rows)


def scenarios_table(results: Sequence[ScenarioResult]) -> Table:
    """One row per fault scenario: how every event sent came out."""
    columns = ["scenario", "sent", "scored", "dead-lettered", "duplicated", "lost", "degraded", "seconds", "note"]
    rows = [
        [r.name, r.sent, r.scored, r.dead_lettered, r.duplicated, r.lost, r.degraded, f"{r.seconds:.1f}", r.note]
        for r in results
    ]
    table = _table(None, columns, rows)
    for column in table.columns[1:8]:
        column.justify = "right"
    return table


def _number(value: float | None, digits: int) -> str:
    """``value`` with thousands separators and ``digits`` decimals; ``n/a`` for a missing or NaN figure."""
    return "n/a" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def _facts(title: str | None, rows: Sequence[Sequence[object]]) -> Table:
    """A two-column table of labelled facts, without a header row."""
    table = _table(title, ["", ""], rows)
    table.show_header = False
    table.columns[0].no_wrap = True  # labels are short: the values wrap on a narrow console
    return table


def publish_table(summary: PublishSummary) -> Table:
    """What ``driftline produce`` published: counts, duration, rate and the event-id range."""
    event_ids = f"{summary.first_event_id} .. {summary.last_event_id}" if summary.first_event_id is not None else ""
    return _facts(
        None,
        [
            ["topic", summary.topic],
            ["attempted", summary.attempted],
            ["sent (acknowledged)", f"{summary.sent} ({summary.invalid_sent} invalid)"],
            ["failed", summary.failed],
            ["seconds", f"{summary.seconds:.2f}"],
            ["rate", f"{summary.rate:.0f} events/s"],
            ["event ids", event_ids],
            ["aborted", "YES: the producer kept failing" if summary.aborted else "no"],
        ],
    )


def soak_sample_text(sample: SoakSample) -> str:
    """One soak sample as a line of progress."""
    return (
        f"{sample.elapsed_s:.0f}s: {sample.scored_total} scored, worker RSS {sample.rss_mb:.1f} MB, "
        f"broker RSS {_number(sample.broker_rss_mb, 0)} MB, "
        f"e2e mean {_number(sample.e2e_mean_ms, 1)} ms, p99 {_number(sample.e2e_p99_ms, 0)} ms"
    )


def p99_comparison_text(p99: P99Comparison) -> str:
    """The soak's last-window p99 against its first, or why there is no ratio."""
    minutes = f"{p99.window_s / 60:g} min"
    figures = f"{_number(p99.last_p99_ms, 0)} / {_number(p99.first_p99_ms, 0)} ms"
    if p99.ratio is not None:
        verdict = f"{figures} = {p99.ratio:.2f}x"
    elif math.isnan(p99.first_p99_ms) or math.isnan(p99.last_p99_ms):
        verdict = f"n/a ({figures}: a window saw no events)"
    else:
        verdict = f"n/a (a run under {2 * p99.window_s / 60:g} min: the windows overlap)"
    return f"e2e p99, last {minutes} / first {minutes}: {verdict}"


def soak_table(result: SoakResult) -> Table:
    """One row per soak sample; the caption compares the last window's p99 with the first's."""
    from rich.text import Text

    columns = ["elapsed s", "scored", "worker RSS MB", "broker RSS MB", "e2e mean ms", "e2e p99 ms"]
    rows = [
        [f"{s.elapsed_s:.0f}", s.scored_total, f"{s.rss_mb:.1f}", _number(s.broker_rss_mb, 0),
         _number(s.e2e_mean_ms, 1), _number(s.e2e_p99_ms, 0)]
        for s in result.samples
    ]
    table = _table(
        f"soak: {result.rate:g} events/s through one worker for {result.minutes:g} min, "
        f"a sample every {result.sample_every_s:g}s",
        columns,
        rows,
    )
    caption = p99_comparison_text(result.p99)
    if result.accounting is not None:
        a = result.accounting
        caption += (f"\nsent {a.sent:,}: scored {a.scored:,}, dead-lettered {a.dead_lettered:,}, "
                    f"unaccounted {a.lost:,}, duplicates {a.duplicated:,}")
    table.caption = Text(caption)
    table.caption_justify = "left"
    for column in table.columns:
        column.justify = "right"
    return table


def bench_tables(report: BenchReport) -> list[Table]:
    """The headline figures per contender, latency per offered load, and driftline's ratios to the others."""
    smoke = " (smoke: tiny counts, figures meaningless)" if report.smoke else ""
    headline = _table(
        f"bench{smoke}: {report.workers} process(es) per contender, {report.partitions} partitions",
        ["contender", "procs", "max events/s", "CPU s / 1k events", "peak RSS MB", "start to first prediction s"],
        [
            [
                c.name,
                c.processes,
                _number(c.max_throughput_per_s, 0),
                _number(c.cpu_s_per_1k, 3),
                _number(c.peak_rss_mb, 0),
                _number(c.start_to_first_prediction_s, 2),
            ]
            for c in report.contenders
        ],
    )
    loads = _table(
        "latency per offered load",
        ["contender", "load", "offered events/s", "scored/sent", "p50 ms", "p95 ms", "p99 ms", "CPU s / 1k", "note"],
        [
            [
                c.name,
                f"{load.fraction:.0%}",
                _number(load.offered_per_s, 0),
                f"{load.scored}/{load.sent}",
                _number(load.p50_ms, 1),
                _number(load.p95_ms, 1),
                _number(load.p99_ms, 1),
                _number(load.cpu_s_per_1k, 3),
                load.note,
            ]
            for c in report.contenders
            for load in c.loads
        ],
    )
    ratios = report.ratios()
    names = list(dict.fromkeys(name for values in ratios.values() for name in values))
    ratio_table = _table(
        "ratios",
        ["ratio", *names],
        [[label, *(_number(values[n], 2) if n in values else "" for n in names)] for label, values in ratios.items()],
    )
    for table, numeric in ((headline, slice(1, 6)), (loads, slice(1, 8)), (ratio_table, slice(1, None))):
        # Names stay whole on a narrow console (scripts grep for "driftline/raw-floor"); figures wrap first.
        table.columns[0].no_wrap = True
        for column in table.columns[numeric]:
            column.justify = "right"
    return [headline, loads, ratio_table]


def demo_renderables(result: DemoResult) -> list[RenderableType]:
    """The demo's summary table (sent, scored, dead-lettered, unaccounted, latency, metrics), then what next."""
    from rich.text import Text

    by_type = ", ".join(f"{name} {count}" for name, count in result.dead_letters_by_type.items())
    # The model version and the worker's log are in the log and the JSON; the table keeps to the figures.
    summary = _facts(
        "driftline demo summary",
        [
            ["sent", f"{result.sent} ({result.invalid_sent} deliberately invalid)"],
            ["scored", f"{result.scored} (flagged as fraud: {result.flagged})"],
            ["dead-lettered", f"{result.dead_lettered} ({by_type})" if by_type else result.dead_lettered],
            ["unaccounted", f"{result.unaccounted} (after waiting {result.waited_s:.1f}s)"],
            [
                "latency event_time -> scored",
                f"p50 {_number(result.latency_p50_ms, 1)} ms, p99 {_number(result.latency_p99_ms, 1)} ms",
            ],
            [
                "worker metrics",
                f"{result.metrics_url}: driftline_events_processed_total scored={result.metrics_scored:.0f} "
                f"dead_lettered={result.metrics_dead_lettered:.0f}",
            ],
            ["model", f"{result.model} (see `driftline model list`)"],
        ],
    )
    next_steps = ["tail the output with `driftline tail --from-beginning --limit 5`"]
    if result.stack_running:
        next_steps.append("the embedded stack is still up; stop it with `driftline stack down`")
    return [summary, Text("\n".join(next_steps))]


def generate_renderables(result: GenerateResult) -> list[RenderableType]:
    """The world, history and writer of ``driftline data generate``, then one row per file with its SHA-256."""
    from rich.text import Text

    start_note = "" if result.start_given else " (default start: ends today 00:00 UTC; --start fixes it)"
    world = Text(
        f"world: seed {result.seed}, {result.n_customers} customers, {result.n_merchants} merchants, "
        f"{result.n_transactions} transactions; "
        f"history {result.history_start.isoformat()} .. {result.history_end.isoformat()}{start_note}; "
        f"fraud rate {result.fraud_rate:.2%}\n"
        f"parquet by {result.parquet_writer}: the same seed, sizes, start and writer give the same bytes"
    )
    rows = [[f.name, f.rows, f.sha256, f.path] for f in result.files]
    table = _table(None, ["file", "rows", "sha256", "path"], rows)
    table.columns[1].justify = "right"
    return [world, table]


def apply_renderables(result: ApplyResult) -> list[RenderableType]:
    """The Feast project and registry of ``driftline feast apply``, then one row per object applied."""
    from rich.text import Text

    header = Text(f"Feast project {result.project} (registry {result.registry}): applied {len(result.objects)} objects")
    return [header, _table(None, ["kind", "name"], [[o.kind, o.name] for o in result.objects])]


def materialize_lines(result: MaterializeResult) -> list[str]:
    """What ``driftline feast materialize`` loaded, and over which window."""
    return [
        f"Feast project {result.project}: materialized {', '.join(result.views)}",
        f"window: {result.start.isoformat() if result.start else 'since the last run'} .. {result.end.isoformat()} "
        "into the online store",
    ]


def train_renderables(result: TrainResult) -> list[RenderableType]:
    """The model registered by ``driftline train``, its data, durations and held-out metrics."""
    from rich.text import Text

    production = " (production)" if result.promoted else ""
    start, end = result.train_window
    lines = Text(
        "\n".join(
            [
                f"model {result.model} version {result.version}{production}, MLflow run {result.run_id} "
                f"in {result.tracking_uri}",
                f"training set: {result.train_rows + result.test_rows} rows, {result.features} features "
                f"from {result.feature_service} (MLflow dataset digest {result.dataset_digest})",
                f"train {result.train_rows} rows ({start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}), "
                f"test {result.test_rows} rows from {result.test_start:%Y-%m-%d %H:%M}",
                f"join {result.join_s:.1f}s, fit {result.fit_s:.1f}s, total {result.total_s:.1f}s",
                f"held-out metrics of the {result.task} model"
                + (f" (decision threshold {result.threshold:g}):" if result.threshold is not None else ":"),
            ]
        )
    )
    metrics = _table(
        None,
        ["metric", "value"],
        [[name, f"{value:.4f}"] for name, value in sorted(result.metrics.items())],
    )
    metrics.columns[1].justify = "right"
    return [lines, metrics]


def _figure(value: float | None, spec: str) -> str:
    """``value`` formatted by ``spec`` (``.4f``, ``.2e``, ...); ``-`` for a figure there is none of."""
    return "-" if value is None else format(value, spec)


def drift_evaluation_table(evaluation: RunEvaluation, label: str = "evaluation") -> Table:
    """Every column of one drift evaluation (and the score): its test, statistic, p-value, PSI, missing rate, flag."""
    report = evaluation.report
    rows = [
        [
            c.name,
            c.statistic_name if c.tested else "-",
            _figure(c.statistic, ".4f"),
            _figure(c.p_value, ".2e"),
            _figure(c.psi, ".4f"),
            f"{c.missing_rate:.2%}",
            "YES" if c.flagged else "",
        ]
        for c in report.columns
    ]
    title = f"{label} at event {report.events_seen} (window {report.window_events})"
    table = _table(title, ["column", "test", "statistic", "p-value", "PSI", "missing", "flagged"], rows)
    for column in table.columns[2:6]:
        column.justify = "right"
    return table


def freshness_table(freshness: dict[str, FreshnessSummary]) -> Table:
    """Per feature view, the age of the store's values when scored: p50, p99, TTL and the share older than it."""
    rows = [
        [
            view,
            f"{f.p50_s / 3600:.1f}",
            f"{f.p99_s / 3600:.1f}",
            f"{f.ttl_s / 3600:.0f}" if f.ttl_s else "no TTL",
            f"{f.stale_share:.1%}",
            f.events,
        ]
        for view, f in freshness.items()
    ]
    title = "freshness of the store's values over the window (age when scored)"
    table = _table(title, ["feature view", "age p50 h", "age p99 h", "TTL h", "older than TTL", "events"], rows)
    for column in table.columns[1:]:
        column.justify = "right"
    return table


def simulation_renderables(simulation: DriftSimulation) -> list[RenderableType]:
    """``driftline drift simulate``: events, reference, false alarms, detections, the final evaluation, cost."""
    from rich.text import Text

    result = simulation.result
    run, summary = result.run, result.summary
    strata = f"strata by {run.strata.feature}" if run.strata.feature else "no strata"
    sketch = "?" if result.reference_version is None else result.reference_version
    head = [
        simulation.summary(),
        f"model {run.model.name} {run.model.version}: reference sketch v{sketch} (n={result.reference_n}; {strata})",
        f"stationary part: {summary.false_alarms}/{summary.stationary_evaluations} evaluations with any flag "
        f"({summary.false_alarm_share:.1%}; alpha {summary.alpha:g}, min PSI {summary.min_psi:g})",
    ]
    if summary.false_alarms_by_column:
        head.append(
            "false alarms by column: " + ", ".join(f"{k} {v}" for k, v in summary.false_alarms_by_column.items())
        )
    drift = f"drift {summary.drift} from event {summary.drift_start_event} ({summary.drifted_evaluations} evaluations"
    head.append(drift + (" after it)" if summary.detections else " after it): nothing flagged after the drift started"))
    renderables: list[RenderableType] = [Text("\n".join(head))]
    if summary.detections:
        columns = ["column", "first flagged (events after the drift started)", "flagged in evaluations after it"]
        rows = [[d.column, d.first_after, f"{d.flagged}/{summary.drifted_evaluations}"] for d in summary.detections]
        renderables.append(_table("flagged after the drift started", columns, rows))
    if run.evaluations:
        final = run.evaluations[-1]
        renderables.append(drift_evaluation_table(final, "final evaluation"))
        if final.freshness:
            renderables.append(freshness_table(final.freshness))
    tail = [
        f"fraud rate / mean score: stationary {result.fraud_rate[0]:.2%} / {result.mean_score[0]:.2%}, "
        f"drifted {result.fraud_rate[1]:.2%} / {result.mean_score[1]:.2%}",
        f"cost: observe {_figure(run.timing.observe_ms_per_batch, '.3f')} ms per batch of {run.config.batch}, "
        f"evaluate {_figure(run.timing.evaluate_ms, '.1f')} ms; total {result.total_s:.1f}s",
    ]
    if result.out is not None:
        tail.append(f"evaluations -> {result.out}")
    renderables.append(Text("\n".join(tail)))
    return renderables


def report_written_text(written: ReportWritten) -> str:
    """What ``driftline drift report`` wrote, from which run."""
    skipped = f", {written.skipped_lines} unreadable lines skipped" if written.skipped_lines else ""
    return (
        f"report of {written.evaluations} evaluations ({written.kind}: {written.source}{skipped}) -> "
        f"{written.target} ({written.size_bytes / 1024:.0f} KiB)"
    )


# --- embedded stack -------------------------------------------------------------------------------


def _show_services(services: Sequence[ServiceStatus], as_json: bool) -> None:
    if as_json:
        _echo_json(services)
    else:
        _show(services_table(services))


@stack_app.command("up")
def stack_up(as_json: JsonOption = False) -> None:
    """Start the embedded Kafka-protocol broker and Redis on loopback (idempotent)."""
    from driftline.settings import StackSettings
    from driftline_tools.stack import up

    result = up(StackSettings())
    if as_json:
        _echo_json(result)
        return
    _show(services_table(result.services))
    typer.echo(
        f"addresses recorded in {result.endpoints_file}: "
        "driftline commands use them unless the environment names others"
    )


@stack_app.command("down")
def stack_down(as_json: JsonOption = False) -> None:
    """Stop the embedded broker and Redis."""
    from driftline.settings import StackSettings
    from driftline_tools.stack import down

    _show_services(down(StackSettings()), as_json)


@stack_app.command("status")
def stack_status(as_json: JsonOption = False) -> None:
    """Say whether the embedded services run, where, and how full each broker partition is."""
    from driftline.settings import StackSettings, WorkerSettings
    from driftline_tools.stack import embedded_broker_load, status

    settings = StackSettings()
    services = status(settings)
    load = embedded_broker_load(settings, WorkerSettings().fetch_max_wait_ms)  # the wait the workers fetch with
    if as_json:
        _echo_json({"services": services, "broker": load})
        return
    _show(services_table(services))
    if load is not None:
        _show(broker_load_table(load))
        for warning in load.warnings:
            logger.warning("%s", warning)


@stack_app.command("env")
def stack_env(as_json: JsonOption = False) -> None:
    """Print ``export`` lines that point driftline at the embedded stack (for ``eval``)."""
    import shlex

    from driftline.settings import StackSettings
    from driftline_tools.stack import env_vars

    variables = env_vars(StackSettings())
    if as_json:
        _echo_json(variables)
        return
    for name, value in variables.items():
        typer.echo(f"export {name}={shlex.quote(value)}")


# --- data, Feast, training ------------------------------------------------------------------------


@data_app.command("generate")
def data_generate(
    seed: Annotated[int | None, typer.Option(help="Seed of the world (default: DRIFTLINE_SEED).")] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Start of the history: a date or RFC 3339 time, UTC (default: DRIFTLINE_DATA_START, else "
            "DRIFTLINE_HISTORY_DAYS before today's 00:00 UTC). Fixed, the files are the same bytes every run."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the offline parquet sources (customers, merchants, labelled transactions)."""
    from driftline.settings import TrainingSettings, utc_instant
    from training.data import generate

    settings = TrainingSettings()
    overrides: dict[str, object] = {} if seed is None else {"seed": seed}
    if start is not None:
        try:
            overrides["data_start"] = utc_instant(start)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--start") from None
    with _progress("generating the example world's data"):
        result = generate(settings.model_copy(update=overrides))
    if as_json:
        _echo_json(result)
    else:
        _show(*generate_renderables(result))


@feast_app.command("apply")
def feast_apply(as_json: JsonOption = False) -> None:
    """Register entities, sources, feature views and the feature service."""
    from driftline.settings import TrainingSettings
    from feature_repo.store import apply

    settings = TrainingSettings()
    _log_connections(settings)
    result = apply(settings)
    if as_json:
        _echo_json(result)
    else:
        _show(*apply_renderables(result))


@feast_app.command("materialize")
def feast_materialize(as_json: JsonOption = False) -> None:
    """Load the latest feature values into the Redis online store."""
    from driftline.settings import TrainingSettings
    from feature_repo.store import materialize

    settings = TrainingSettings()
    _log_connections(settings)
    with _progress("materializing feature views into Redis"):
        result = materialize(settings)
    if as_json:
        _echo_json(result)
    else:
        for line in materialize_lines(result):
            typer.echo(line)


def _edges(text: str | None) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",")) if text else ()
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None


@app.command("train")
def train(
    feature_service: Annotated[
        str | None, typer.Option(help="Feast feature service to train on (default: the example's fraud_v1).")
    ] = None,
    entity_df: Annotated[
        Path | None, typer.Option(help="Parquet of labelled rows: join keys, event_timestamp, request fields, label.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Label column of the entity dataframe.")] = None,
    estimator: Annotated[
        str, typer.Option(help="hgb-classifier, hgb-regressor, logistic, linear, forest-classifier, "
                          "forest-regressor, or a dotted path to a class.")
    ] = "hgb-classifier",
    request_feature: Annotated[
        list[str] | None, typer.Option(help="Entity-dataframe column the model reads from the event (repeatable).")
    ] = None,
    positive_class: Annotated[str | None, typer.Option(help="Binary: the positive class (default 1 for 0/1).")] = None,
    threshold: Annotated[float, typer.Option(help="Binary: decision threshold.")] = 0.5,
    stratify_by: Annotated[str | None, typer.Option(help="Drift: a numeric input whose blocks stratify.")] = None,
    stratum_edges: Annotated[str | None, typer.Option(help="Drift: block edges, e.g. 6,12,18.")] = None,
    promote: Annotated[bool, typer.Option(help="Point production at the new version.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Build a point-in-time-correct training set from Feast, train, evaluate, register.

    Without --feature-service, --entity-df and --label it trains the fraud example.
    """
    from driftline.settings import TrainingSettings
    from training.train import TrainRequest, request_specs, run

    settings = TrainingSettings()
    _log_connections(settings)
    request: TrainRequest | None = None
    given = [feature_service, entity_df, label]
    if any(given):
        if not all(given):
            raise typer.BadParameter("--feature-service, --entity-df and --label go together")
        assert feature_service is not None and entity_df is not None and label is not None
        import pandas as pd

        columns = request_feature or []
        sample = pd.read_parquet(entity_df, columns=columns) if columns else pd.DataFrame()
        request = TrainRequest(
            feature_service=feature_service, entity_df=entity_df, label=label, estimator=estimator,
            request_features=request_specs(sample, columns), positive_class=positive_class,
            threshold=threshold, stratify_by=stratify_by, stratum_edges=_edges(stratum_edges),
        )
    elif settings.feast_repo is not None:
        raise typer.BadParameter("with DRIFTLINE_FEAST_REPO set, give --feature-service, --entity-df and --label")
    with _progress("training: Feast training set, fit, evaluate, register"):
        result = run(settings, promote=promote, request=request)
    if as_json:
        _echo_json(result)
    else:
        _show(*train_renderables(result))


def retrain_headline(report: RetrainReport) -> str:
    """One line: what the retrain did (or would do, in a dry run) and why."""
    if report.outcome == "promoted":
        did = (f"would promote the challenger over version {report.champion_version}" if report.dry_run else
               f"promoted version {report.challenger_version} to production (was {report.champion_version})")
    elif report.outcome == "kept_champion":
        kept = f"kept version {report.champion_version} in production"
        did = kept if report.dry_run else f"{kept}; version {report.challenger_version} is shadow"
    elif report.outcome in ("cooldown", "too_few_labels"):
        did = f"held back ({report.outcome})"
    else:
        did = f"stopped ({report.outcome}), production untouched"
    dry = " (dry run)" if report.dry_run else ""
    return f"retrain of {report.model}{dry}: {did}: {report.reason}"


def retrain_renderables(report: RetrainReport) -> list[RenderableType]:
    """What ``driftline retrain`` decided and why: the headline, then the window, the gate, both models' metrics.

    A retrain stopped before reading anything (cooldown, no champion, a service out of reach) is its
    headline alone: there is nothing else to show.
    """
    from rich.text import Text

    renderables: list[RenderableType] = [Text(retrain_headline(report))]
    if report.labelled_rows is None:
        return renderables
    skipped = ", ".join(f"{k} {v}" for k, v in report.skipped_labels.items()) or "none"
    last = report.last_retrain
    rows: list[list[object]] = [
        ["model", f"{report.model}: champion (production) {report.champion_version or '-'}, "
                  f"challenger {report.challenger_version or '-'}"],
        ["window", f"{report.window_start:%Y-%m-%d %H:%M} .. {report.window_end:%Y-%m-%d %H:%M} UTC "
                   f"(topics: events + {report.labels_topic})"],
        ["labels", f"{report.labelled_rows} labelled rows ({report.positives} positive, {report.new_labels} new) "
                   f"from {report.events_read} events and {report.labels_read} labels read "
                   f"(read ended: {report.read_stopped}); labels skipped: {skipped}"],
        ["last retrain", f"run {last.run_id} at {last.started_at:%Y-%m-%d %H:%M} UTC on {last.labels} labels"
                         if last else "none"],
    ]
    if report.train_rows is not None:
        rows.append(["split", f"train {report.train_rows} rows, holdout {report.holdout_rows} rows from "
                              f"{report.holdout_start:%Y-%m-%d %H:%M}"])
    gate = report.gate
    if gate is not None and gate.ci_low is not None and gate.ci_high is not None and gate.difference is not None:
        rows.append(["gate", f"{gate.metric} difference {gate.difference:+.4f}, {gate.confidence:.0%} CI "
                             f"[{gate.ci_low:+.4f}, {gate.ci_high:+.4f}] vs margin {gate.margin:g} "
                             f"({gate.valid_samples}/{gate.samples} resamples, {gate.positives} positives "
                             f"in {gate.rows} rows)"])
    if report.run_id:
        rows.append(["MLflow run", report.run_id])
    rows.append(["trigger", f"{report.trigger}{' ' + report.request_id if report.request_id else ''}, "
                            f"{report.seconds:.1f}s"])
    renderables.append(_facts(None, rows))
    if report.challenger_metrics or report.champion_metrics:
        names = ("pr_auc", "roc_auc", "brier", "precision_at_threshold", "recall_at_threshold")
        metrics = _table(
            "holdout metrics (same rows)", ["metric", "challenger", "champion"],
            [[n, _figure(report.challenger_metrics.get(n), ".4f"), _figure(report.champion_metrics.get(n), ".4f")]
             for n in names],
        )
        for column in metrics.columns[1:]:
            column.justify = "right"
        renderables.append(metrics)
    if report.alias_moves:
        renderables.append(history_table(report.alias_moves))
    if report.outcome == "promoted" and not report.dry_run:
        renderables.append(Text("undo with `driftline model rollback --reason ...`"))
    return renderables


@app.command("retrain")
def retrain(
    window_hours: Annotated[
        float | None,
        typer.Option(min=0.01, help="Labelled events of the last H hours (DRIFTLINE_RETRAIN_WINDOW_HOURS)."),
    ] = None,
    min_labels: Annotated[
        int | None, typer.Option(min=1, help="Least new labels since the last retrain (DRIFTLINE_RETRAIN_MIN_LABELS).")
    ] = None,
    cooldown_minutes: Annotated[
        float | None, typer.Option(min=0, help="Least minutes since the last retrain "
                                   "(DRIFTLINE_RETRAIN_COOLDOWN_MINUTES).")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(min=0, max=0.99, help="The CI's lower bound must exceed it "
                                   "(DRIFTLINE_RETRAIN_MARGIN).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide, but register nothing and move no alias.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Retrain on recent labelled events; promote the challenger only if it beats production (paired bootstrap).

    Exit 0 when the gate decided (promoted or not), 3 when a guard held the retrain back (cooldown, too few
    new labels), 2 without a usable champion, 1 when the challenger failed.
    """
    from driftline.settings import RetrainSettings
    from training.retrain import RetrainPolicy
    from training.retrain import retrain as run_retrain

    settings = RetrainSettings()
    _log_connections(settings)
    policy = RetrainPolicy.from_settings(
        settings, window_hours=window_hours, min_labels=min_labels, cooldown_minutes=cooldown_minutes, margin=margin
    )
    with _progress("retraining: labelled window, Feast, challenger, gate"):
        report = run_retrain(settings, policy, dry_run=dry_run)
    if as_json:
        _echo_json(report)
    else:
        _show(*retrain_renderables(report))
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@app.command("webhook")
def webhook(
    host: Annotated[str | None, typer.Option(help="Address to listen on (DRIFTLINE_WEBHOOK_HOST).")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="Port to listen on (DRIFTLINE_WEBHOOK_PORT).")
    ] = None,
) -> None:
    """Serve POST /retrain for Grafana alerts (Bearer DRIFTLINE_WEBHOOK_SECRET) and GET /metrics."""
    from driftline.settings import RetrainSettings
    from driftline_tools.webhook import WebhookMetrics, WebhookServer
    from training.retrain import OUTCOMES
    from training.retrain import retrain as run_retrain

    settings = RetrainSettings()
    _log_connections(settings)

    def start_retrain(request_id: str) -> object:
        # Settings are read again per call: a changed ConfigMap applies to the next retrain.
        return run_retrain(RetrainSettings(), trigger="webhook", request_id=request_id)

    server = WebhookServer(
        settings.webhook_secret, start_retrain, host or settings.webhook_host,
        settings.webhook_port if port is None else port, WebhookMetrics(retrain_outcomes=OUTCOMES),
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def register_renderables(result: RegisterResult) -> list[RenderableType]:
    """The version ``driftline model register`` made: what it serves, its event keys and sample metrics."""
    from rich.text import Text

    production = " (production)" if result.promoted else ""
    carry = [f"{e.field} ({e.dtype})" for e in result.entities] + result.request_fields
    lines = Text(
        f"model {result.model} version {result.version}{production}: {result.task}, "
        f"{len(result.features)} inputs "
        f"({result.input_format}) from {result.feature_service}\n"
        f"events carry: {', '.join(carry)}\n"
        f"drift reference from {result.reference_rows} sample rows"
    )
    table = _table("inputs", ["#", "column"], [[i, name] for i, name in enumerate(result.features)])
    metrics = _table("metrics on the sample", ["metric", "value"],
                     [[k, f"{v:.4f}"] for k, v in sorted(result.metrics.items())])
    return [lines, table, metrics] if result.metrics else [lines, table]


@model_app.command("register")
def model_register(
    model_file: Annotated[Path, typer.Argument(help="A pickled (or .joblib) fitted scikit-learn estimator.")],
    name: Annotated[str, typer.Option(help="Model name (DRIFTLINE_MODEL_NAME serves it).")],
    feature_service: Annotated[str, typer.Option(help="The Feast feature service the model reads.")],
    sample: Annotated[
        Path, typer.Option("--sample", "--reference", help="Parquet of entity rows (join keys, event_timestamp, "
                           "request fields): Feast's features for them make the drift reference (and metrics "
                           "with --label).")
    ],
    label: Annotated[str | None, typer.Option(help="Label column of the sample, for metrics.")] = None,
    positive_class: Annotated[str | None, typer.Option(help="Binary: the positive class (default 1 for 0/1).")] = None,
    threshold: Annotated[float, typer.Option(help="Binary: decision threshold.")] = 0.5,
    stratify_by: Annotated[str | None, typer.Option(help="Drift: a numeric input whose blocks stratify.")] = None,
    stratum_edges: Annotated[str | None, typer.Option(help="Drift: block edges, e.g. 6,12,18.")] = None,
    promote: Annotated[bool, typer.Option(help="Point production at the new version.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Register a model trained anywhere: check it against the feature service, sketch its drift reference."""
    from driftline.settings import TrainingSettings
    from training.register import RegisterRequest, register

    settings = TrainingSettings()
    request = RegisterRequest(
        model_file=model_file, name=name, feature_service=feature_service, sample=sample, label=label,
        positive_class=positive_class, threshold=threshold, stratify_by=stratify_by,
        stratum_edges=_edges(stratum_edges), promote=promote,
    )
    with _progress(f"registering {model_file}"):
        result = register(settings, request)
    if as_json:
        _echo_json(result)
    else:
        _show(*register_renderables(result))


@app.command("schema")
def schema(
    version: Annotated[str | None, typer.Option(help="A registered version (default: production).")] = None,
) -> None:
    """Print the event the served model expects, as JSON Schema, for producers to validate against."""
    from driftline.registry import ModelRegistry
    from driftline.settings import WorkerSettings
    from stream_app.core.validation import EventRules, event_json_schema

    settings = WorkerSettings()
    meta = ModelRegistry(settings).load(settings.model_name, version).metadata
    rules = EventRules.for_model(
        meta.entities, meta.features, settings.max_event_bytes, settings.max_future_skew_s,
        settings.max_event_age_s, meta.request_fields,
    )
    _echo_json(event_json_schema(rules, f"event for model {meta.name} version {meta.version}"))


if TYPE_CHECKING:
    from stream_app.batch import ScoreResult


def score_table(result: ScoreResult) -> Table:
    """What ``driftline score`` read, scored, refused (by error type) and wrote."""
    refused = sum(result.refused.values())
    by_type = ", ".join(f"{name} {count}" for name, count in result.refused.items())
    return _facts(
        None,
        [
            ["input", result.input],
            ["model", f"{result.model} version {result.model_version}"],
            ["rows", result.rows],
            ["scored", f"{result.scored} ({result.missing_features} with a feature Feast had no value for)"],
            ["refused", f"{refused} ({by_type})" if by_type else refused],
            ["features", f"{result.lookups} point-in-time lookups in {result.joins} Feast join(s)"],
            ["seconds", f"{result.seconds:.2f}"],
            ["output", result.output],
        ],
    )


@app.command("score")
def score(
    input: Annotated[
        Path, typer.Option("--input", help="Events: .jsonl (one JSON event a line) or .parquet (a column per field).")
    ],
    output: Annotated[Path, typer.Option("--output", help="Parquet to write: one row per input event.")],
    model: Annotated[
        str | None, typer.Option("--model", help="A version number or alias (default: production).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a file of events as the worker would, with Feast's features as of each event's time.

    Every event is one output row: scored, or refused with the reason the worker would dead-letter it with.
    """
    from driftline.settings import WorkerSettings
    from stream_app.batch import score_file

    settings = WorkerSettings()
    with _job_output_to_stderr(), _progress(f"scoring {input}"):
        result = score_file(settings, input, output, model)
    if as_json:
        _echo_json(result)
    else:
        _show(score_table(result))


@model_app.command("list")
def model_list(as_json: JsonOption = False) -> None:
    """List the registered versions: run, aliases, creation time, metrics."""
    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    settings = ModelSettings()
    versions = ModelRegistry(settings).versions(settings.model_name)
    if as_json:
        _echo_json(versions)
    else:
        _show(models_table(versions))


@model_app.command("show")
def model_show(
    version: Annotated[str, typer.Argument(help="A version number or an alias.")] = "production",
    as_json: JsonOption = False,
) -> None:
    """One version's lineage: run, training data fingerprint, feature service, inputs, metrics."""
    from rich.text import Text

    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    settings = ModelSettings()
    registry = ModelRegistry(settings)
    number = registry.resolve(settings.model_name, version)
    meta = registry.read_metadata(settings.model_name, number)  # first: an unknown version is a ModelLoadError
    info = next(v for v in registry.versions(settings.model_name) if v.version == number)
    lineage = registry.lineage(settings.model_name, number)
    if as_json:
        summary = meta.model_dump(mode="json", exclude={"reference"})
        _echo_json({"version": info, "lineage": lineage, "metadata": summary})
        return
    lines = [
        f"model {meta.name} version {number} ({', '.join(info.aliases) or 'no alias'}), "
        f"created {info.created_at:%Y-%m-%d %H:%M:%S} UTC",
        f"{meta.task} on feature service {meta.feature_service}: {len(meta.features)} inputs ({meta.input_format})",
        f"events carry: {', '.join(f'{e.field} ({e.dtype})' for e in meta.entities)}"
        + "".join(f", {f.name}" for f in meta.request_fields),
        *(f"{k}: {v}" for k, v in lineage.items()),
    ]
    metrics = _table("metrics", ["metric", "value"], [[k, f"{v:.4f}"] for k, v in sorted(info.metrics.items())])
    _show(Text("\n".join(lines)), metrics)


@model_app.command("promote")
def model_promote(
    version: Annotated[str, typer.Argument(help="The version number to point the alias at.")],
    reason: Annotated[str, typer.Option(help="Why: recorded in the alias history.")],
    to: Annotated[str, typer.Option(help="production, canary or shadow.")] = "production",
    as_json: JsonOption = False,
) -> None:
    """Point an alias at VERSION; running workers pick it up without a restart."""
    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    settings = ModelSettings()
    move = ModelRegistry(settings).set_alias(settings.model_name, to, version, reason)
    if as_json:
        _echo_json(move)
    else:
        _show(history_table([move]))


@model_app.command("unset")
def model_unset(
    alias: Annotated[str, typer.Argument(help="canary or shadow (production cannot be unset: roll back).")],
    reason: Annotated[str, typer.Option(help="Why: recorded in the alias history.")],
) -> None:
    """Remove a canary or shadow alias."""
    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    if alias == "production":
        raise typer.BadParameter("production cannot be unset; use `driftline model rollback` or `model promote`")
    settings = ModelSettings()
    move = ModelRegistry(settings).remove_alias(settings.model_name, alias, reason)
    _show(history_table([move]) if move else _table(None, ["alias"], [[f"{alias} was not set"]]))


@model_app.command("rollback")
def model_rollback(
    reason: Annotated[str, typer.Option(help="Why: recorded in the alias history.")],
    alias: Annotated[str, typer.Option(help="The alias to move back.")] = "production",
    as_json: JsonOption = False,
) -> None:
    """Point production (or another alias) back at the version it held before its last move."""
    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    settings = ModelSettings()
    move = ModelRegistry(settings).rollback(settings.model_name, reason, alias)
    if as_json:
        _echo_json(move)
    else:
        _show(history_table([move]))


@model_app.command("history")
def model_history(as_json: JsonOption = False) -> None:
    """Every alias move: when, from, to, by whom, why (append-only, kept in the registry)."""
    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    settings = ModelSettings()
    moves = ModelRegistry(settings).history(settings.model_name)
    if as_json:
        _echo_json(moves)
    else:
        _show(history_table(moves))


# --- drift -----------------------------------------------------------------------------------------


@drift_app.command("simulate")
def drift_simulate(
    stationary: Annotated[int, typer.Option(help="Events before the drift starts.")] = 40_000,
    drifted: Annotated[int, typer.Option(help="Drifted events after them.")] = 10_000,
    drift: Annotated[str, typer.Option(help="amount_shift, merchant_mix or fraud_pattern.")] = "amount_shift",
    window: Annotated[int, typer.Option(help="Events in the monitored window.")] = 2_000,
    every: Annotated[int, typer.Option(help="Evaluate every this many events.")] = 500,
    alpha: Annotated[float, typer.Option(help="Benjamini-Hochberg level across columns and score.")] = 0.01,
    min_events: Annotated[int, typer.Option(help="No flags before the window holds this many.")] = 1_000,
    min_psi: Annotated[float, typer.Option(help="Flag only when PSI also reaches this (0 = tests only).")] = 0.1,
    hours: Annotated[float, typer.Option(help="Event-time span of the stationary part.")] = 24.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated events.")] = 11,
    version: Annotated[str | None, typer.Option(help="Model version; default production.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write every evaluation to this JSON file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Stream stationary then drifted events through features, model and drift monitor; summarize."""
    from drift.records import SimulationConfig
    from driftline.settings import TrainingSettings
    from driftline_tools.simulation import run

    config = SimulationConfig(
        stationary=stationary,
        drifted=drifted,
        drift=drift,  # checked against producers.generator.DRIFTS when the events are generated
        window=window,
        every=every,
        alpha=alpha,
        min_events=min_events,
        min_psi=min_psi,
        hours=hours,
        seed=seed,
        version=version,
    )
    settings = TrainingSettings()
    _log_connections(settings)
    with _progress(f"simulating {stationary} stationary + {drifted} {drift} events"):
        simulation = run(settings, config, out)
    if as_json:
        _echo_json(simulation)
    else:
        _show(*simulation_renderables(simulation))


@drift_app.command("report")
def drift_report(
    input: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="JSON of `driftline drift simulate --out`, or a worker's drift log (drift/<model>-<version>.jsonl).",
        ),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Use the newest worker drift log under $DRIFTLINE_HOME/drift.")
    ] = False,
    model_version: Annotated[
        str | None,
        typer.Option(help="With --latest: the newest log of this model version (default: of any version)."),
    ] = None,
    x_axis: Annotated[
        str,
        typer.Option(help="auto, events or time; auto: events seen, or time when a worker log's count restarts."),
    ] = "auto",
    output: Annotated[Path, typer.Option("--output", help="HTML file to write.")] = Path("drift-report.html"),
    as_json: JsonOption = False,
) -> None:
    """Render a simulation run or a running worker's drift log as a self-contained HTML page (inline SVG)."""
    from drift.report import latest_log, write_report
    from driftline.errors import ConfigError
    from driftline.settings import TrainingSettings

    if (input is None) == (not latest):
        raise ConfigError("give either --input FILE or --latest")
    source = input if input is not None else latest_log(TrainingSettings().home, model_version)
    written = write_report(source, output, x_axis)
    if as_json:
        _echo_json(written)
    else:
        typer.echo(report_written_text(written))


# --- streaming ------------------------------------------------------------------------------------


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Score events over HTTP with the worker's code: POST /v1/score, GET /healthz, /metrics and /docs."""
    multiproc_preset = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    # Before feast: prometheus_client picks single- or multi-process values when imported, and
    # importing feast sets the multi-process variables. This server is one process, as the worker is.
    import prometheus_client  # noqa: F401

    from driftline.settings import WorkerSettings
    from feature_repo.store import feature_store
    from stream_app.http import serve as serve_http

    if not multiproc_preset:
        # Importing feast sets this variable; the server is one process with its own registry (as the worker).
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    settings = WorkerSettings()
    serve_http(settings, feature_store(settings), host, port)


@app.command("worker")
def worker() -> None:
    """Run the stream worker: events -> features -> score -> predictions / dead letters."""
    from stream_app.worker import main

    main()


@topics_app.callback(invoke_without_command=True)
def topics(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Create the events, predictions and dead-letter topics if they do not exist."""
    if ctx.invoked_subcommand is not None:
        return
    from driftline.settings import ProducerSettings
    from producers.admin import ensure_topics

    settings = ProducerSettings()
    _log_connections(settings)
    outcomes = ensure_topics(settings)
    if as_json:
        _echo_json(outcomes)
    else:
        _show(topics_table(outcomes))


@topics_app.command("reset")
def topics_reset(
    yes: Annotated[bool, typer.Option("--yes", help="Drop every record in driftline's topics.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete driftline's topics and create them empty (long sessions on the embedded broker); stop workers first."""
    from driftline.errors import ConfigError
    from driftline.settings import ProducerSettings
    from producers.admin import reset_topics

    if not yes:
        raise ConfigError("`driftline topics reset` drops every record in driftline's topics: add --yes")
    settings = ProducerSettings()
    _log_connections(settings)
    outcomes = reset_topics(settings)
    if as_json:
        _echo_json(outcomes)
    else:
        _show(topics_table(outcomes))


@app.command("produce")
def produce(
    count: Annotated[int, typer.Option(help="Events to generate (ignored with --file).")] = 1000,
    rate: Annotated[float, typer.Option(help="Events per second; 0 = as fast as possible.")] = 200.0,
    invalid_fraction: Annotated[float, typer.Option(help="Share of deliberately invalid events.")] = 0.0,
    drift: Annotated[
        str, typer.Option(help="Inject drift: none, amount_shift, merchant_mix, fraud_pattern.")
    ] = "none",
    file: Annotated[
        Path | None, typer.Option(help="Publish JSON lines from this file ('-' for stdin) instead.")
    ] = None,
    key_field: Annotated[
        str, typer.Option(help="With --file: the field whose value keys each record (its partition).")
    ] = "customer_id",
    progress: Annotated[bool, typer.Option(help="Show a progress bar (on stderr, when it is a terminal).")] = True,
    as_json: JsonOption = False,
) -> None:
    """Publish generated transaction events, or any JSON lines as they are, to the events topic.

    Lines from --file are not checked against a schema: the worker validates them against the served
    model and dead-letters what it refuses (`driftline schema` prints what it expects).
    """
    from driftline.settings import ProducerSettings
    from producers.publish import publish_file, publish_generated

    settings = ProducerSettings()
    _log_connections(settings)
    if file is None or str(file) != "-":
        _refuse_past_embedded_limit(settings, count if file is None else _count_lines(file), rate)
    if file is not None:
        summary = publish_file(settings, file, rate=rate, progress=progress, key_field=key_field)
    else:
        summary = publish_generated(
            settings, count=count, rate=rate, invalid_fraction=invalid_fraction, drift=drift, progress=progress
        )
    if as_json:
        _echo_json(summary)
    else:
        _show(publish_table(summary))


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0  # publish_file says what is wrong with the file


def _refuse_past_embedded_limit(settings: KafkaSettings, count: int, rate: float) -> None:
    """On the embedded broker, refuse a run that would take an events partition past the limit (a hang later)."""
    from driftline.errors import ConfigError
    from driftline.kafka import produce_capacity_problem
    from driftline.settings import StackSettings, WorkerSettings
    from driftline_tools.stack import embedded_fullest_partition

    held = embedded_fullest_partition(StackSettings(), settings, settings.events_topic)
    if held is None:
        return
    problem = produce_capacity_problem(
        held, count, rate, settings.topic_partitions, settings.producer_linger_ms, settings.producer_batch_bytes,
        WorkerSettings().fetch_max_wait_ms,
    )
    if problem is not None:
        raise ConfigError(problem)


@app.command("tail")
def tail(
    topic: Annotated[
        str, typer.Option(help="predictions, dead-letters, events, labels, or a topic's name.")
    ] = "predictions",
    limit: Annotated[int, typer.Option(help="Stop after this many records; 0 = follow forever.")] = 0,
    from_beginning: Annotated[bool, typer.Option(help="Start at the earliest offset.")] = False,
) -> None:
    """Print records of the predictions (or dead-letter) topic as JSON lines."""
    from driftline.settings import ProducerSettings
    from producers.tail import tail as run_tail

    settings = ProducerSettings()
    _log_connections(settings)
    for line in run_tail(settings, topic=topic, limit=limit, from_beginning=from_beginning):
        typer.echo(line)


@app.command("demo")
def demo(
    events: Annotated[int, typer.Option(help="Events to publish.")] = 3000,
    rate: Annotated[float, typer.Option(help="Events per second.")] = 500.0,
    invalid_fraction: Annotated[float, typer.Option(help="Share of invalid events.")] = 0.02,
    keep_running: Annotated[bool, typer.Option(help="Leave the stack up afterwards.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Run everything on the embedded stack and print a summary (the steps on the way are logged)."""
    from driftline_tools.demo import run_demo

    with _job_output_to_stderr():
        result = run_demo(events=events, rate=rate, invalid_fraction=invalid_fraction, keep_running=keep_running)
    if as_json:
        _echo_json(result)
    else:
        _show(*demo_renderables(result))


ErrorTypeOption = Annotated[str | None, typer.Option(help="Only this error type, e.g. invalid_field.")]
ReasonOption = Annotated[str | None, typer.Option(help="Only reasons containing this text.")]


@dead_app.command("inspect")
def dead_letters_inspect(
    error_type: ErrorTypeOption = None,
    reason_contains: ReasonOption = None,
    sample: Annotated[int, typer.Option(help="How many to show.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """Count dead letters by error type and reason, and show a sample."""
    from driftline.settings import ProducerSettings
    from producers.deadletters import Selection, inspect

    settings = ProducerSettings()
    _log_connections(settings)
    report = inspect(settings, Selection(error_type, reason_contains), sample=sample)
    if as_json:
        _echo_json(report)
        return
    typer.echo(f"{report.total} dead letters on {report.topic} match")
    _show(*dead_letter_tables(report))


@dead_app.command("replay")
def dead_letters_replay(
    error_type: ErrorTypeOption = None,
    reason_contains: ReasonOption = None,
    limit: Annotated[int, typer.Option(help="Stop after this many; 0 = all selected.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Publish the original bytes of selected dead letters onto the events topic again."""
    from driftline.settings import ProducerSettings
    from producers.deadletters import Selection, replay

    settings = ProducerSettings()
    _log_connections(settings)
    result = replay(settings, Selection(error_type, reason_contains, limit))
    if as_json:
        _echo_json(result)
        return
    # Two facts, not a table: the sentences say what a person needs to do next.
    for line in replay_lines(result):
        typer.echo(line)


@app.command("faults")
def faults(
    scenario: Annotated[list[str] | None, typer.Option(help="Run only these scenarios (default: all).")] = None,
    count: Annotated[int, typer.Option(help="Events per scenario.")] = 2000,
    rate: Annotated[float, typer.Option(help="Events per second.")] = 200.0,
    as_json: JsonOption = False,
) -> None:
    """Run the fault scenarios on throwaway services and print sent/scored/dead-lettered/duplicated/lost."""
    from driftline_tools.scenarios import run_all

    results: list[ScenarioResult] = []
    for result in run_all(scenario, count=count, rate=rate):
        # Scenarios take a while each: say one is done before the table of all of them.
        logger.info("scenario %s done in %.0fs: %d lost", result.name, result.seconds, result.lost)
        results.append(result)
    if as_json:
        _echo_json(results)
    else:
        _show(scenarios_table(results))


@app.command("soak")
def soak(
    minutes: Annotated[float, typer.Option(help="How long to stream.")] = 3.0,
    rate: Annotated[float, typer.Option(help="Events per second.")] = 200.0,
    every: Annotated[float, typer.Option(help="Seconds between samples.")] = 15.0,
    out_dir: Annotated[Path, typer.Option(help="Folder for the JSON and PNG results.")] = Path("var/soak"),
    as_json: JsonOption = False,
) -> None:
    """Stream steadily through one worker on throwaway services; show memory and latency over time."""
    from driftline.contracts import utc_now
    from driftline_tools.scenarios import SoakResult, write_soak_files
    from driftline_tools.scenarios import soak as run_soak

    started = utc_now()
    samples: list[SoakSample] = []
    accounting = None
    try:
        with _job_output_to_stderr(), _soak_progress(minutes * 60) as show:

            def take(sample: SoakSample) -> None:
                samples.append(sample)
                show(sample)

            accounting = run_soak(minutes, rate, every, take)
    except KeyboardInterrupt:
        # The throwaway services are already stopped (the soak's own clean-up ran): keep what was measured.
        logger.warning("soak interrupted after %d samples; reporting those", len(samples))
    result = SoakResult.of(started, minutes, rate, every, samples, accounting)
    json_path, png_path = write_soak_files(result, out_dir)
    if as_json:
        _echo_json(result)
        logger.info("results: %s; plot: %s", json_path, png_path)
    else:
        _show(soak_table(result))
        typer.echo(f"results: {json_path}\nplot:    {png_path}")


def feedback_renderables(result: FeedbackResult) -> list[RenderableType]:
    """The feedback scenario: the metric before, during and after, the times between, and the timeline."""
    seconds = ".0f"
    facts = _facts(f"driftline scenario feedback: live {result.metric}", [
        ["before the drift", f"{_figure(result.before, '.3f')} (ROC-AUC {_figure(result.roc_auc[0], '.3f')})"],
        ["after the alert (drifted, old version)",
         f"{_figure(result.during, '.3f')} (ROC-AUC {_figure(result.roc_auc[1], '.3f')})"],
        ["after recovery (promoted version)",
         f"{_figure(result.after, '.3f')} (ROC-AUC {_figure(result.roc_auc[2], '.3f')})"],
        ["drift onset to alert", f"{_figure(result.onset_to_alert_s, seconds)} s"],
        ["alert to recovery", f"{_figure(result.alert_to_recovery_s, seconds)} s"],
        ["retrain", f"{result.retrain_outcome or 'not run'}: {result.retrain_reason or ''}"],
        ["versions", f"champion {result.champion_version or '-'}, challenger {result.challenger_version or '-'}"],
        ["sent", f"{result.events_sent:,} events, {result.labels_sent:,} labels at {result.rate:g} events/s"],
    ])
    marks = _table("timeline", ["elapsed s", "what", "detail"],
                   [[f"{m.elapsed_s:.0f}", m.what, m.detail] for m in result.marks])
    return [facts, marks]


@scenario_app.command("feedback")
def scenario_feedback(
    rate: Annotated[float, typer.Option(min=10, help="Events per second.")] = 400.0,
    clean_seconds: Annotated[float, typer.Option(min=5, help="Seconds of the original fraud pattern.")] = 60.0,
    drifted_seconds: Annotated[float, typer.Option(min=10, help="Seconds of the new pattern at most.")] = 240.0,
    retrain_after: Annotated[
        float, typer.Option(min=0, help="Seconds of the new pattern before the first retrain (enough positives).")
    ] = 90.0,
    out_dir: Annotated[Path, typer.Option(help="Folder for the JSON and PNG results.")] = Path("var/feedback"),
    as_json: JsonOption = False,
) -> None:
    """Concept drift on throwaway services: live performance falls, the alert holds, a gated retrain, recovery."""
    from driftline_tools.feedback import feedback

    with _job_output_to_stderr(), _progress("feedback scenario: stream, drift, alert, retrain, recover"):
        result = feedback(out_dir, rate=rate, clean_s=clean_seconds, drifted_s=drifted_seconds,
                          min_drift_s=retrain_after)
    if as_json:
        _echo_json(result)
    else:
        _show(*feedback_renderables(result))
        json_path, png_path = result.files
        typer.echo(f"results: {json_path}\nplot:    {png_path}")
    if result.mark("recovered") is None:
        raise typer.Exit(1)


def _job_output_to_stderr() -> AbstractContextManager[object]:
    """Send what a library prints while a job runs (Feast's materialize progress) to stderr.

    stdout then carries the command's result alone, so ``--json`` output parses.
    """
    return redirect_stdout(sys.stderr)


@contextmanager
def _soak_progress(total_s: float) -> Iterator[Callable[[SoakSample], None]]:
    """Show each soak sample as it arrives: a bar over the run on a terminal's stderr, else one log line each.

    Samples come every 15 s or so through a run of minutes, so a person watching sees it move either way.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda sample: logger.info("soak %s", soak_sample_text(sample))
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Column

    # The latest sample takes what width is left and is cut short on a narrow terminal; bar and clock keep theirs.
    latest = TextColumn("{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", ratio=1))
    columns = (TextColumn("soak"), BarColumn(bar_width=20), TimeElapsedColumn(), latest)
    with Progress(*columns, console=console, transient=True, expand=True) as progress:
        task = progress.add_task("starting throwaway services", total=total_s)

        def show(sample: SoakSample) -> None:
            progress.update(task, completed=sample.elapsed_s, description=soak_sample_text(sample))

        yield show


@app.command("bench")
def bench(
    workers: Annotated[int, typer.Option(min=1, max=8, help="Worker processes per contender.")] = 1,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny counts (CI): checks the plumbing, not speed.")] = False,
    drain_events: Annotated[int | None, typer.Option(help="Backlog drained to measure max throughput.")] = None,
    phase_seconds: Annotated[float | None, typer.Option(help="Seconds of each fixed-load latency step.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for the JSON and PNG results.")] = Path("var/bench"),
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run driftline and only these contenders (repeatable): naive, raw-floor, quix, quix-tuned.",
    )] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure naive Faust, driftline and a raw asyncio floor on one throwaway stack; print ratios."""
    import dataclasses
    import signal

    from driftline.errors import ConfigError
    from driftline_tools.bench.measure import CONTENDERS
    from driftline_tools.bench.run import BenchConfig, run_bench

    # SIGTERM unwinds like an exception, so the throwaway broker, Redis and workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = BenchConfig.smoke_run(workers) if smoke else BenchConfig(workers=workers)
    if drain_events is not None:
        config = dataclasses.replace(config, drain_events=drain_events)
    if phase_seconds is not None:
        config = dataclasses.replace(config, phase_seconds=phase_seconds)
    if only:
        unknown = sorted(set(only) - set(CONTENDERS) - {"driftline"})
        if unknown:
            raise ConfigError(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
        config = dataclasses.replace(config, others=tuple(c for c in CONTENDERS if c in only and c != "driftline"))
    with _job_output_to_stderr():
        report, json_path, png_path = run_bench(config, out_dir)
    if as_json:
        _echo_json(report.to_dict())
        logger.info("results: %s; plot: %s", json_path, png_path)
    else:
        _show(*bench_tables(report))
        typer.echo(f"results: {json_path}\nplot:    {png_path}")


def main() -> None:
    """Entry point of the ``driftline`` console script: errors become one line on stderr, never a traceback.

    Exit 2 for what the user can fix (a setting, a repo, a model: :class:`ConfigError`,
    :class:`ModelLoadError`, an invalid environment variable), 1 for other failures.
    """
    from pydantic import ValidationError

    from driftline.errors import ConfigError, DriftlineError, ModelLoadError
    from driftline.logs import quiet_library_warnings

    quiet_library_warnings()
    try:
        app()
    except (ConfigError, ModelLoadError) as exc:
        typer.echo(f"driftline: {exc}", err=True)
        raise SystemExit(2) from None
    except DriftlineError as exc:
        typer.echo(f"driftline: {exc}", err=True)
        raise SystemExit(1) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or e['type']}: {e['msg']}" for e in exc.errors())
        typer.echo(f"driftline: invalid setting: {problems}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
