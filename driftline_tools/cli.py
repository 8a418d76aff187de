"""The ``driftline`` command: one entry point for every job.

Subcommands import their implementation lazily so ``driftline --help`` stays fast and a job
pulls in only what it needs (the worker never imports training code, for instance).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

    from driftline.settings import KafkaSettings, ModelSettings, RedisSettings
    from driftline_tools.scenarios import ScenarioResult
    from driftline_tools.simulation import DriftSimulation
    from driftline_tools.stack import ServiceStatus
    from feature_repo.store import ApplyResult, MaterializeResult
    from producers.admin import TopicOutcome
    from producers.deadletters import DeadLetterReport, ReplayResult
    from training.data import GenerateResult
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
    """Print ``data`` (dataclasses, pydantic models, lists and dicts of them) as indented JSON."""
    from pydantic_core import to_json

    typer.echo(to_json(data, indent=2).decode())


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


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered model version, as ``driftline model list`` shows it."""

    model: str
    version: str
    production: bool
    feature_service: str
    metrics: dict[str, float]


def registered_versions(settings: ModelSettings) -> list[RegisteredVersion]:
    """Every registered version of the configured model, oldest first."""
    from driftline.registry import ModelRegistry

    registry = ModelRegistry(settings.registry_dir)
    production = registry.production_version(settings.model_name)
    versions = []
    for version in registry.versions(settings.model_name):
        meta = registry.read_metadata(settings.model_name, version)
        versions.append(
            RegisteredVersion(
                settings.model_name, version, version == production, meta.feature_service, dict(meta.metrics)
            )
        )
    return versions


def models_table(versions: Sequence[RegisteredVersion]) -> Table:
    """One row per version, one column per metric; ``*`` marks the production version."""
    metric_names = sorted({name for v in versions for name in v.metrics})
    rows = [
        [
            "*" if v.production else "",
            v.model,
            v.version,
            v.feature_service,
            *(f"{v.metrics[name]:.4f}" if name in v.metrics else "" for name in metric_names),
        ]
        for v in versions
    ]
    return _table(None, ["production", "model", "version", "feature service", *metric_names], rows)


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


def generate_renderables(result: GenerateResult) -> list[RenderableType]:
    """The world and history of ``driftline data generate``, then one row per file written."""
    from rich.text import Text

    world = Text(
        f"world: seed {result.seed}, {result.n_customers} customers, {result.n_merchants} merchants; "
        f"history {result.history_start.isoformat()} .. {result.history_end.isoformat()}; "
        f"fraud rate {result.fraud_rate:.2%}"
    )
    table = _table(None, ["file", "rows", "path"], [[f.name, f.rows, f.path] for f in result.files])
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
        f"window: {result.start.isoformat()} .. {result.end.isoformat()} into the Redis online store",
    ]


def train_renderables(result: TrainResult) -> list[RenderableType]:
    """The model registered by ``driftline train``, its data, durations and held-out metrics."""
    from rich.text import Text

    production = " (production)" if result.promoted else ""
    start, end = result.train_window
    lines = Text(
        "\n".join(
            [
                f"model {result.model} {result.version}{production} -> {result.path}",
                f"training set: {result.train_rows + result.test_rows} rows, {result.features} features "
                f"from {result.feature_service}",
                f"train {result.train_rows} rows ({start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}), "
                f"test {result.test_rows} rows from {result.test_start:%Y-%m-%d %H:%M}",
                f"join {result.join_s:.1f}s, fit {result.fit_s:.1f}s, total {result.total_s:.1f}s",
                f"held-out metrics (decision threshold {result.threshold:g}):",
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


def simulation_lines(simulation: DriftSimulation) -> list[str]:
    """The events of ``driftline drift simulate``, then the simulation's own summary."""
    from drift.simulate import render

    return [simulation.summary(), *render(simulation.result)]


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
    """Say whether the embedded services are running, and where."""
    from driftline.settings import StackSettings
    from driftline_tools.stack import status

    _show_services(status(StackSettings()), as_json)


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
def data_generate(as_json: JsonOption = False) -> None:
    """Write the offline parquet sources (customers, merchants, labelled transactions)."""
    from driftline.settings import TrainingSettings
    from training.data import generate

    with _progress("generating the example world's data"):
        result = generate(TrainingSettings())
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


@app.command("train")
def train(
    promote: Annotated[bool, typer.Option(help="Point production at the new version.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Build a point-in-time-correct training set from Feast, train, evaluate, register."""
    from driftline.settings import TrainingSettings
    from training.train import run

    settings = TrainingSettings()
    _log_connections(settings)
    with _progress("training: Feast training set, fit, evaluate, register"):
        result = run(settings, promote=promote)
    if as_json:
        _echo_json(result)
    else:
        _show(*train_renderables(result))


@model_app.command("list")
def model_list(as_json: JsonOption = False) -> None:
    """List registered versions, their metrics, and which one is in production."""
    from driftline.settings import ModelSettings

    versions = registered_versions(ModelSettings())
    if as_json:
        _echo_json(versions)
    else:
        _show(models_table(versions))


@model_app.command("promote")
def model_promote(version: str) -> None:
    """Point production at VERSION; running workers pick it up without a restart."""
    from driftline.registry import ModelRegistry
    from driftline.settings import ModelSettings

    settings = ModelSettings()
    ModelRegistry(settings.registry_dir).promote(settings.model_name, version)
    typer.echo(f"{settings.model_name}: production -> {version}")


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
) -> None:
    """Stream stationary then drifted events through features, model and drift monitor; summarize."""
    from drift.simulate import SimulationConfig
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
    for line in simulation_lines(simulation):
        typer.echo(line)


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
        typer.Option(help="Model version of a worker log (default: from its file name); with --latest, its log."),
    ] = None,
    x_axis: Annotated[
        str,
        typer.Option(help="auto, events or time; auto: events seen, or time when a worker log's count restarts."),
    ] = "auto",
    output: Annotated[Path, typer.Option("--output", help="HTML file to write.")] = Path("drift-report.html"),
) -> None:
    """Render a simulation run or a running worker's drift log as a self-contained HTML page (inline SVG)."""
    from drift.report import latest_log, write_report
    from driftline.errors import ConfigError
    from driftline.settings import TrainingSettings

    if (input is None) == (not latest):
        raise ConfigError("give either --input FILE or --latest")
    source = input if input is not None else latest_log(TrainingSettings().home, model_version)
    typer.echo(write_report(source, output, x_axis))


# --- streaming ------------------------------------------------------------------------------------


@app.command("worker")
def worker() -> None:
    """Run the stream worker: events -> features -> score -> predictions / dead letters."""
    from stream_app.worker import main

    main()


@app.command("topics")
def topics(as_json: JsonOption = False) -> None:
    """Create the events, predictions and dead-letter topics if they do not exist."""
    from driftline.settings import ProducerSettings
    from producers.admin import ensure_topics

    settings = ProducerSettings()
    _log_connections(settings)
    outcomes = ensure_topics(settings)
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
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Publish generated transaction events (or JSON lines) to the events topic."""
    from driftline.settings import ProducerSettings
    from producers.publish import publish_file, publish_generated

    settings = ProducerSettings()
    _log_connections(settings)
    if file is not None:
        summary = publish_file(settings, file, rate=rate, progress=progress)
    else:
        summary = publish_generated(
            settings, count=count, rate=rate, invalid_fraction=invalid_fraction, drift=drift, progress=progress
        )
    typer.echo(summary.describe())


@app.command("tail")
def tail(
    topic: Annotated[
        str, typer.Option(help="predictions, dead-letters, or events.")
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
) -> None:
    """Run everything on the embedded stack and print a summary."""
    from driftline_tools.demo import run_demo

    for line in run_demo(events=events, rate=rate, invalid_fraction=invalid_fraction, keep_running=keep_running):
        typer.echo(line)


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
) -> None:
    """Stream steadily through one worker on throwaway services; print memory and latency over time."""
    from driftline_tools.scenarios import soak as run_soak

    typer.echo("| elapsed s | scored | worker RSS MB | e2e mean ms | e2e p99 ms (bucket bound) |")
    typer.echo("|---:|---:|---:|---:|---:|")
    for sample in run_soak(minutes, rate, every):
        typer.echo(
            f"| {sample.elapsed_s:.0f} | {sample.scored_total} | {sample.rss_mb:.1f} | "
            f"{sample.e2e_mean_ms:.1f} | {sample.e2e_p99_ms:.0f} |"
        )


@app.command("bench")
def bench(
    workers: Annotated[int, typer.Option(min=1, max=8, help="Worker processes per contender.")] = 1,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny counts (CI): checks the plumbing, not speed.")] = False,
    drain_events: Annotated[int | None, typer.Option(help="Backlog drained to measure max throughput.")] = None,
    phase_seconds: Annotated[float | None, typer.Option(help="Seconds of each fixed-load latency step.")] = None,
    out_dir: Annotated[Path, typer.Option(help="Folder for the JSON and PNG results.")] = Path("var/bench"),
) -> None:
    """Measure naive Faust, driftline and a raw asyncio floor on one throwaway stack; print ratios."""
    import dataclasses
    import signal
    import sys

    from driftline_tools.bench.run import BenchConfig, run_bench

    # SIGTERM unwinds like an exception, so the throwaway broker, Redis and workers are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = BenchConfig.smoke_run(workers) if smoke else BenchConfig(workers=workers)
    if drain_events is not None:
        config = dataclasses.replace(config, drain_events=drain_events)
    if phase_seconds is not None:
        config = dataclasses.replace(config, phase_seconds=phase_seconds)
    report, json_path, png_path = run_bench(config, out_dir)
    typer.echo(report.table())
    typer.echo(f"\nresults: {json_path}\nplot:    {png_path}")


def main() -> None:
    """Entry point of the ``driftline`` console script; a DriftlineError exits 1 with its message."""
    from driftline.errors import DriftlineError
    from driftline.logs import quiet_library_warnings

    quiet_library_warnings()
    try:
        app()
    except DriftlineError as exc:
        typer.echo(f"driftline: {exc}", err=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
