"""A drift run as one self-contained HTML page: matplotlib figures inlined as SVG, no scripts, no external assets.

Two inputs, one page. A simulation (``driftline drift simulate --out``, one JSON document, a
:class:`~drift.records.SimulationRun`) and a running worker's drift log
(``$DRIFTLINE_HOME/drift/<model>-<version>.jsonl``, one :class:`~drift.log.DriftLogRecord` per
line, read as a :class:`~drift.records.WorkerRun`) are both read by :func:`load_run` into a typed
run whose evaluations carry ``events``, ``event_time``, ``report`` (a ``DriftEvaluation``) and
``freshness`` (``FreshnessWindow.summary()``).

Per monitored column (and the score), one figure: reference vs window shares per bin or level at
two points of the run; the test statistic, -log10 p-value, PSI and missing rate over the run, with
flagged evaluations marked (and, for a simulation, the drift start). Per feature view, one figure:
the age of the store's values (p50, p99) against the view's TTL, and the share older than the TTL.
The summary at the top of the page is data (:func:`drift.simulate.summarize`, :func:`summarize_log`)
rendered by the template. The page itself is ``templates/report.html.j2``; matplotlib and jinja2
are imported only to render.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from drift.log import DriftLogRecord, read_records
from drift.records import DriftRun, FeatureDrift, FreshnessSummary, ModelRef, RunEvaluation, SimulationRun, WorkerRun
from drift.simulate import SimulationSummary, summarize
from driftline.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

XAxis = Literal["auto", "events", "time"]
#: ``auto``: events seen, unless a worker log's count restarts (a worker restart); then event time.
X_AXES: tuple[XAxis, ...] = ("auto", "events", "time")

_REF_COLOUR = "#8c8c8c"
_CUR_COLOUR = "#1f77b4"
_P99_COLOUR = "#9467bd"
_FLAG_COLOUR = "#d62728"
_DRIFT_COLOUR = "#ff7f0e"

# Set only while a figure is drawn and saved (matplotlib.rc_context), never left behind. Text stays
# text in the SVG (searchable, small) and ids are hashed with a fixed salt, so a page renders the same twice.
_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "driftline",
    "font.family": "sans-serif",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.titlelocation": "left",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#eeeeee",
    "legend.frameon": False,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
}
#: Without these, matplotlib writes Dublin Core metadata (with its URLs) into every SVG.
_NO_METADATA: dict[str, Any] = {"Creator": None, "Date": None, "Format": None, "Type": None}


# --- reading ---------------------------------------------------------------------------------------


def _is_log(source: Path, text: str) -> bool:
    """A worker log by name (``.jsonl``, also rotated ``.jsonl.1``) or by its first line being one record."""
    if ".jsonl" in source.suffixes:
        return True
    records, _ = read_records(text.lstrip().split("\n", 1)[0])
    return bool(records)


def worker_run(records: Sequence[DriftLogRecord], log: str = "", skipped: int = 0) -> WorkerRun:
    """A worker log as a run: no drift start; window and alpha from the latest evaluation."""
    if not records:
        raise ConfigError(f"the drift log {log} holds no evaluations ({skipped} unreadable lines)")
    last = records[-1]
    return WorkerRun(
        log=log,
        skipped_lines=skipped,
        model=ModelRef(name=last.model_name, version=last.model_version),
        window=last.report.window_size,
        alpha=last.report.alpha,
        evaluations=tuple(
            RunEvaluation(events=r.events, event_time=r.event_time, report=r.report, freshness=r.freshness)
            for r in records
        ),
    )


def load_run(source: Path) -> DriftRun:
    """The run in ``source``: a simulation's JSON or a worker's drift log (detected by suffix or content)."""
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"no run at {source}; write one with `driftline drift simulate --out` or run the worker"
        ) from exc
    if _is_log(source, text):
        records, skipped = read_records(text)
        return worker_run(records, log=source.name, skipped=skipped)
    try:
        return SimulationRun.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ConfigError(f"{source} is neither JSON nor a drift log (JSON lines): {first['msg']}") from exc
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"{source} is not a run of `driftline drift simulate --out` ({exc.error_count()} problems; "
            f"{where}: {first['msg']})"
        ) from exc


def latest_log(home: Path, model_version: str | None = None) -> Path:
    """The most recently written worker drift log under ``home``/drift (of ``model_version`` if given)."""
    directory = home / "drift"  # drift.log.drift_log_path
    pattern = f"*-{model_version}.jsonl" if model_version else "*.jsonl"
    logs = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not logs:
        raise ConfigError(f"no drift log ({pattern}) in {directory}; is a worker running with this DRIFTLINE_HOME?")
    return logs[-1]


# --- the x axis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timeline:
    """Where the evaluations sit on the x axis: events seen, or time (matplotlib date numbers, UTC)."""

    xs: list[float]
    kind: Literal["events", "time"]
    label: str  # what the x axis counts, for the axis and the page's header
    span: str  # its first and last value, as read
    drift_x: float | None  # where the drift starts; a worker log has no drift start


def _utc(moment: datetime) -> datetime:
    """A naive time read from a run as UTC (driftline writes aware times; older files may not)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%m-%d %H:%M")


def _timeline(run: DriftRun, x_axis: XAxis) -> _Timeline:
    from matplotlib.dates import date2num

    evaluations = run.evaluations
    worker = isinstance(run, WorkerRun)
    events = [float(e.events) for e in evaluations]
    kind = x_axis
    if kind == "auto":
        restarted = any(b < a for a, b in pairwise(events))
        kind = "time" if restarted else "events"
    start_event = run.drift_start_event if isinstance(run, SimulationRun) else None
    if kind == "events":
        label = "events seen since the worker (re)started" if worker else "events seen"
        drift_x = None if start_event is None else float(start_event)
        return _Timeline(events, "events", label, f"{events[0]:,.0f} to {events[-1]:,.0f}", drift_x)
    times = [_utc(e.event_time) for e in evaluations]
    drift_x = None
    if isinstance(run, SimulationRun) and run.config.start is not None:
        drift_time = _utc(run.config.start) + timedelta(hours=run.config.hours)
        drift_x = float(date2num(drift_time))  # type: ignore[no-untyped-call]  # matplotlib.dates is untyped
    label = "the worker's clock (UTC)" if worker else "event time (UTC)"
    span = f"{_stamp(times[0])} to {_stamp(times[-1])} UTC"
    xs = [float(date2num(t)) for t in times]  # type: ignore[no-untyped-call]
    return _Timeline(xs, "time", label, span, drift_x)


# --- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bars:
    """Reference vs window share per bin or level, at one evaluation."""

    title: str
    bins: Sequence[str]
    reference: Sequence[float]
    current: Sequence[float]


@dataclass(frozen=True)
class _Series:
    label: str
    values: Sequence[float | None]
    colour: str = _CUR_COLOUR


@dataclass(frozen=True)
class _Panel:
    """One quantity over the run; flagged evaluations are marked on the first series."""

    title: str
    series: Sequence[_Series]
    flags: Sequence[bool] = ()
    reference_line: float | None = None
    reference_label: str = ""


def _svg(size: tuple[float, float], draw: Callable[[Figure], None]) -> str:
    """A figure drawn by ``draw`` as SVG markup to inline in HTML (no XML prolog, no namespace URLs)."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    buffer = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        # Margins are set by hand (in inches, see _inches): constrained layout measured every label and
        # took over twice as long, for a page that draws one figure per column.
        figure = Figure(figsize=size)
        FigureCanvasSVG(figure)
        draw(figure)
        figure.savefig(buffer, format="svg", metadata=_NO_METADATA)
    text = buffer.getvalue()
    svg = text[text.index("<svg") :]
    root_end = svg.index(">")
    # An <svg> inside HTML is in the SVG namespace without xmlns; dropping it keeps the page free of URLs.
    root = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg[:root_end])
    return root + svg[root_end:]


def _inches(figure: Figure, top: float, bottom: float) -> dict[str, float]:
    """Gridspec bounds for a band ``top`` to ``bottom`` inches from the top of ``figure``."""
    width, height = figure.get_size_inches()
    return {"left": 0.55 / width, "right": 1 - 0.2 / width, "top": 1 - top / height, "bottom": 1 - bottom / height}


def _tick_room(timeline: _Timeline) -> float:
    """Inches more under the panels for slanted time labels, so they clear the legend."""
    return 0.25 if timeline.kind == "time" else 0.0


def _values(values: Sequence[float | None]) -> list[float]:
    """Missing values as NaN: matplotlib leaves a gap there."""
    return [math.nan if v is None or not math.isfinite(v) else float(v) for v in values]


def _format_x(ax: Axes, timeline: _Timeline) -> None:
    from matplotlib.dates import AutoDateLocator, DateFormatter
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    if timeline.kind == "time":
        # matplotlib.dates is untyped
        ax.xaxis.set_major_locator(AutoDateLocator(tz=UTC, minticks=2, maxticks=5))  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M", tz=UTC))  # type: ignore[no-untyped-call]
        ax.tick_params(axis="x", labelrotation=20)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel(timeline.label, fontsize=7, color="#555555")


def _draw_bars(ax: Axes, bars: _Bars) -> None:
    positions = range(len(bars.bins))
    ax.bar([i - 0.2 for i in positions], bars.reference, 0.4, color=_REF_COLOUR, label="reference")
    ax.bar([i + 0.2 for i in positions], bars.current, 0.4, color=_CUR_COLOUR, label="window")
    labels = [b if len(b) <= 20 else b[:19] + "…" for b in bars.bins]
    ax.set_xticks(list(positions), labels, rotation=35, ha="right", rotation_mode="anchor")
    ax.grid(axis="x", visible=False)
    ax.set_title(bars.title)
    ax.set_ylabel("share", fontsize=7, color="#555555")


def _draw_panel(ax: Axes, panel: _Panel, timeline: _Timeline) -> None:
    ax.set_title(panel.title)
    _format_x(ax, timeline)
    xs = timeline.xs
    first = _values(panel.series[0].values)
    finite = [v for s in panel.series for v in _values(s.values) if not math.isnan(v)]
    if not finite:
        ax.text(0.5, 0.5, "not tested", transform=ax.transAxes, ha="center", va="center", color="#666666")
        ax.set_yticks([])
        return
    for series in panel.series:
        ax.plot(xs, _values(series.values), color=series.colour, linewidth=1.5, label=series.label or None,
                marker="o" if len(xs) == 1 else "", markersize=3)  # one evaluation: a point, not an empty line
    flags = panel.flags or [False] * len(xs)
    flagged = [(x, y) for x, y, f in zip(xs, first, flags, strict=True) if f and not math.isnan(y)]
    if flagged:
        ax.scatter([x for x, _ in flagged], [y for _, y in flagged], s=16, color=_FLAG_COLOUR, zorder=3,
                   label="flagged evaluation")
    if panel.reference_line is not None:
        ax.axhline(panel.reference_line, color="#999999", linestyle=":", linewidth=1.2)
        ax.text(0.99, panel.reference_line, panel.reference_label, transform=ax.get_yaxis_transform(),
                ha="right", va="bottom", fontsize=7, color="#666666")
    if timeline.drift_x is not None:
        ax.axvline(timeline.drift_x, color=_DRIFT_COLOUR, linestyle="--", linewidth=1.2, label="drift starts")
    if min(finite) < 0:
        # Ages can be negative (store values stamped after a simulated event): mark zero.
        ax.axhline(0.0, color="#bbbbbb", linewidth=0.8)
    else:
        # Nothing below zero: start at zero (just under, so a line at zero stays visible); when all is
        # zero (no missing values, nothing stale), show a share's full range rather than -0.05 to 0.05.
        top = ax.get_ylim()[1] if max([*finite, panel.reference_line or 0.0]) > 0 else 1.0
        ax.set_ylim(-0.03 * top, top)


def _legend(figure: Figure, axes: Sequence[Axes]) -> None:
    """One legend per figure, each label once, along its bottom edge."""
    entries: dict[str, Any] = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels, strict=True):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(list(entries.values()), list(entries), loc="lower center", ncols=len(entries))


def _column_figure(bars: Sequence[_Bars], panels: Sequence[_Panel], timeline: _Timeline) -> str:
    """Bars before the drift (or first) and at the end above, the four series over the run below."""

    def draw(figure: Figure) -> None:
        top = figure.add_gridspec(1, 2, wspace=0.12, **_inches(figure, 0.3, 1.75))
        tops = [figure.add_subplot(top[0, k]) for k in range(len(bars))]
        for ax, chart in zip(tops, bars, strict=True):
            _draw_bars(ax, chart)
        bottom = figure.add_gridspec(1, len(panels), wspace=0.28, **_inches(figure, 2.7, 4.1))
        bottoms: list[Axes] = []
        for k, panel in enumerate(panels):
            ax = figure.add_subplot(bottom[0, k], sharex=bottoms[0] if bottoms else None)
            _draw_panel(ax, panel, timeline)
            bottoms.append(ax)
        _legend(figure, [*tops, *bottoms])

    return _svg((12.5, 4.8 + _tick_room(timeline)), draw)


def _freshness_figure(ages: _Panel, stale: _Panel, timeline: _Timeline) -> str:
    """A view's p50/p99 age with its TTL, and the share older than the TTL."""

    def draw(figure: Figure) -> None:
        grid = figure.add_gridspec(1, 2, width_ratios=(1.4, 1), wspace=0.15, **_inches(figure, 0.3, 1.75))
        left = figure.add_subplot(grid[0, 0])
        right = figure.add_subplot(grid[0, 1], sharex=left)
        _draw_panel(left, ages, timeline)
        _draw_panel(right, stale, timeline)
        _legend(figure, [left, right])

    return _svg((12.5, 2.45 + _tick_room(timeline)), draw)


def _neglog10(p: float | None) -> float | None:
    if p is None:
        return None
    return -math.log10(max(p, 1e-300))


# --- sections --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSection:
    """One monitored column (or the score) on the page: its notes and its figure (SVG markup)."""

    name: str
    flagged: bool  # at the last evaluation
    notes: list[str]
    figure: str


@dataclass(frozen=True)
class ViewSection:
    """One feature view's freshness on the page."""

    view: str
    note: str
    figure: str


@dataclass(frozen=True)
class ColumnFlags:
    """One column flagged in a worker's log: in how many ready evaluations, and where first."""

    column: str
    flagged: int
    first_events: int  # events seen at the first evaluation that flagged it
    first_time: datetime  # the worker's clock then


@dataclass(frozen=True)
class LogSummary:
    """A worker's drift log at a glance: its span, restarts, unreadable lines and flags by column."""

    evaluations: int
    first_time: datetime
    last_time: datetime
    restarts: int  # times the events-seen count went back (a worker restart)
    skipped_lines: int
    alpha: float
    ready: int  # evaluations of a full enough window (flags are only raised then)
    flagged: int  # ready evaluations with any flag
    columns: tuple[ColumnFlags, ...]  # in order of their first flag


def summarize_log(run: WorkerRun) -> LogSummary:
    """The summary of a worker log: span, restarts, unreadable lines, flags by column."""
    evaluations = run.evaluations
    events = [e.events for e in evaluations]
    ready = [e for e in evaluations if e.report.ready]
    flagged = [e for e in ready if e.report.any_flagged]
    first: dict[str, RunEvaluation] = {}
    counts: dict[str, int] = {}
    for e in flagged:
        for name in e.report.flagged:
            first.setdefault(name, e)
            counts[name] = counts.get(name, 0) + 1
    return LogSummary(
        evaluations=len(evaluations),
        first_time=evaluations[0].event_time,
        last_time=evaluations[-1].event_time,
        restarts=sum(1 for a, b in pairwise(events) if b < a),
        skipped_lines=run.skipped_lines,
        alpha=run.alpha,
        ready=len(ready),
        flagged=len(flagged),
        columns=tuple(ColumnFlags(name, counts[name], e.events, e.event_time) for name, e in first.items()),
    )


@dataclass(frozen=True)
class Page:
    """Everything the template shows; the figures are already SVG."""

    title: str
    note: str
    simulation: SimulationSummary | None  # the summary of a simulation, or
    log: LogSummary | None  # of a worker log
    final: RunEvaluation  # the last evaluation, shown as a table
    drift_start: bool
    age_basis: str
    views: list[ViewSection]
    columns: list[ColumnSection]
    colours: dict[str, str] = field(
        default_factory=lambda: {
            "reference": _REF_COLOUR, "window": _CUR_COLOUR, "flag": _FLAG_COLOUR, "drift": _DRIFT_COLOUR
        }
    )


def _where(evaluation: RunEvaluation) -> str:
    """An evaluation's place: events seen, and its time."""
    return f"event {evaluation.events:,}, {_stamp(_utc(evaluation.event_time))} UTC"


def _column_section(name: str, run: DriftRun, series: Sequence[FeatureDrift], timeline: _Timeline) -> ColumnSection:
    evaluations = run.evaluations
    alpha = run.alpha
    flags = [c.flagged for c in series]
    last = series[-1]
    stat_name = last.statistic_name
    tested = any(c.tested for c in series)
    notes = ["context (time of day): reported, not tested" if not tested else stat_name + " test"]
    bars: list[_Bars] = []
    min_psi: float | None = None
    if isinstance(run, SimulationRun):  # before the drift vs the end
        start_event = run.drift_start_event
        min_psi = run.config.min_psi or None
        pairs = list(zip(evaluations, series, strict=True))
        before = [c for e, c in pairs if e.events <= start_event]
        first_flag = next((e.events - start_event for e, c in pairs if c.flagged and e.events > start_event), None)
        stationary_flags = sum(1 for e, c in pairs if c.flagged and e.events <= start_event)
        notes += [
            f"flagged in {stationary_flags} stationary evaluation(s)",
            f"first flagged {first_flag} events after the drift"
            if first_flag is not None
            else "not flagged after the drift",
        ]
        if before:
            pre = before[-1]
            bars.append(_Bars(f"before the drift (event {start_event:,})", pre.bins, pre.reference, pre.current))
        end_title = f"end of run (event {evaluations[-1].events:,})"
    else:  # a worker log: the first ready evaluation vs the latest
        first_at = next((i for i, e in enumerate(evaluations) if e.report.ready), 0)
        first_flag_at = next((i for i, c in enumerate(series) if c.flagged), None)
        notes += [
            f"flagged in {sum(flags)} of {len(series)} evaluation(s)",
            f"first flagged at {_where(evaluations[first_flag_at])}" if first_flag_at is not None
            else "never flagged",
        ]
        if first_at < len(series) - 1:
            first = series[first_at]
            bars.append(_Bars(f"first in the log ({_where(evaluations[first_at])})", first.bins,
                              first.reference, first.current))
        end_title = f"latest ({_where(evaluations[-1])})"
    notes.append(f"missing: reference {last.reference_missing_rate:.2%}, window {last.missing_rate:.2%}")
    bars.append(_Bars(end_title, last.bins, last.reference, last.current))
    panels = [
        _Panel(f"{stat_name} statistic", [_Series("", [c.statistic for c in series])], flags),
        _Panel("-log10 p-value", [_Series("", [_neglog10(c.p_value) for c in series])], flags,
               -math.log10(alpha), f"alpha {alpha:g}"),
        _Panel("PSI", [_Series("", [c.psi for c in series])], flags,
               min_psi, f"min PSI {min_psi:g}" if min_psi else ""),
        _Panel("missing rate", [_Series("", [c.missing_rate for c in series])], flags),
    ]
    return ColumnSection(name, last.flagged, notes, _column_figure(bars, panels, timeline))


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _view_section(view: str, points: Sequence[FreshnessSummary | None], timeline: _Timeline) -> ViewSection:
    latest = next(p for p in reversed(points) if p)
    ttl_s = latest.ttl_s
    ttl = f"TTL {ttl_s / 3600:g} h" if ttl_s else "no TTL"
    note = (
        f"latest, over {latest.events:,} events: p50 {_hours(latest.p50_s)}, "
        f"p99 {_hours(latest.p99_s)}; {ttl}; older than the TTL {latest.stale_share:.1%}"
    )
    ages = _Panel(
        "age, hours",
        [_Series("age p50", [p.p50_s / 3600 if p else None for p in points]),
         _Series("age p99", [p.p99_s / 3600 if p else None for p in points], _P99_COLOUR)],
        reference_line=ttl_s / 3600 if ttl_s else None, reference_label=ttl,
    )
    stale = _Panel(
        "share older than the TTL" if ttl_s else "share older than the TTL (no TTL)",
        [_Series("", [p.stale_share if p else None for p in points], _FLAG_COLOUR)],
    )
    return ViewSection(view, note, _freshness_figure(ages, stale, timeline))


# --- page ------------------------------------------------------------------------------------------


def _header(run: DriftRun, timeline: _Timeline) -> tuple[str, str]:
    """The page title and the line under it: what was run or logged, how it was monitored, the x axis."""
    model = f"{run.model.name} {run.model.version}"
    x_axis = f"x-axis: {timeline.label}, {timeline.span}"
    if isinstance(run, SimulationRun):
        config = run.config
        start = f" from {config.start.isoformat()}" if config.start else ""
        title = f"{model}, {config.drift} after {config.stationary:,} stationary events"
        note = (
            f"window {config.window:,} events, evaluated every {config.every:,}; "
            f"Benjamini-Hochberg at alpha {config.alpha:g} across columns and score; "
            f"min PSI {config.min_psi:g}; no flags before {config.min_events:,} events; "
            f"stationary part spans {config.hours:g} h of event time{start}; {x_axis}"
        )
        return title, note
    note = (
        f"worker log {run.log}: {len(run.evaluations)} evaluations; window {run.window:,} events; "
        f"Benjamini-Hochberg at alpha {run.alpha:g} across columns and score; {x_axis}"
    )
    return f"{model}, running worker", note


def page(run: DriftRun, x_axis: XAxis = "auto") -> Page:
    """What the page of a run (as returned by :func:`load_run`) shows, with its figures drawn."""
    evaluations = run.evaluations
    if not evaluations:
        raise ConfigError("the run has no evaluations; simulate more events or evaluate more often")
    timeline = _timeline(run, x_axis)
    views = list(dict.fromkeys(v for e in evaluations for v in e.freshness))
    view_sections = [_view_section(view, [e.freshness.get(view) for e in evaluations], timeline) for view in views]
    names = [c.name for c in evaluations[0].report.features]
    columns = [
        _column_section(name, run, [e.report.features[j] for e in evaluations], timeline)
        for j, name in enumerate(names)
    ]
    scores = [e.report.score for e in evaluations if e.report.score is not None]
    if len(scores) == len(evaluations):
        columns.append(_column_section("score (prediction drift)", run, scores, timeline))
    title, note = _header(run, timeline)
    simulated = isinstance(run, SimulationRun)
    return Page(
        title=title,
        note=note,
        simulation=summarize(run) if isinstance(run, SimulationRun) else None,
        log=summarize_log(run) if isinstance(run, WorkerRun) else None,
        final=evaluations[-1],
        drift_start=timeline.drift_x is not None,
        age_basis=(
            "age = the event's (simulated) time minus the view's feature timestamp; negative: the stored values "
            "are stamped after the event"
            if simulated
            else "age = the worker's clock at scoring minus the view's feature timestamp"
        ),
        views=view_sections,
        columns=columns,
    )


def _number(value: float | None, spec: str = "") -> str:
    """``value`` formatted by ``spec`` (a format spec such as ``.4f``), ``-`` when there is none."""
    return "-" if value is None else format(value, spec)


def render(run: DriftRun, x_axis: XAxis = "auto") -> str:
    """The HTML page of a run, as returned by :func:`load_run` (``templates/report.html.j2``)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    environment = Environment(
        loader=PackageLoader("drift", "templates"),
        autoescape=True,  # the file ends in .j2, so select_autoescape would leave it off
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = _number
    environment.filters["stamp"] = lambda moment: _stamp(_utc(moment))
    return environment.get_template("report.html.j2").render(page=page(run, x_axis))


def _x_axis(value: str) -> XAxis:
    for choice in X_AXES:
        if value == choice:
            return choice
    raise ConfigError(f"the x axis is one of {', '.join(X_AXES)}, not {value!r}")


@dataclass(frozen=True)
class ReportWritten:
    """A report page written: of which run, where, and how large."""

    source: Path
    kind: Literal["simulate", "worker"]
    evaluations: int
    skipped_lines: int  # of a worker log: lines that were not a record
    target: Path
    size_bytes: int


def write_report(source: Path, target: Path, x_axis: str = "auto") -> ReportWritten:
    """Render the run or drift log in ``source`` to ``target`` (HTML)."""
    axis = _x_axis(x_axis)
    run = load_run(source)
    html = render(run, axis).encode("utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(html)
    return ReportWritten(
        source=source,
        kind=run.source,
        evaluations=len(run.evaluations),
        skipped_lines=run.skipped_lines if isinstance(run, WorkerRun) else 0,
        target=target,
        size_bytes=len(html),
    )
