"""A drift run as one self-contained HTML page: inline SVG, no scripts, no external assets.

Two inputs, one page. A simulation (``driftline drift simulate --out``, one JSON document) and a
running worker's drift log (``$DRIFTLINE_HOME/drift/<model>-<version>.jsonl``, one evaluation per
line) are both read into a run dict whose evaluations carry ``events``, ``event_time``, ``report``
(``DriftReport.to_dict()``) and ``freshness`` (``FreshnessWindow.summary()``).

Per monitored column (and the score): reference vs window shares per bin or level, at two points
of the run; the test statistic, -log10 p-value, PSI and missing rate over the run, with flagged
evaluations marked (and, for a simulation, the drift start). Per feature view: the age of the
store's values (p50, p99) against the view's TTL, and the share older than the TTL.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

from drift.log import DriftLogRecord, read_records
from drift.simulate import final_lines, summarize
from driftline.errors import ConfigError

XAxis = Literal["auto", "events", "time"]
#: ``auto``: events seen, unless a worker log's count restarts (a worker restart); then event time.
X_AXES: tuple[XAxis, ...] = ("auto", "events", "time")

_REF_COLOUR = "#8c8c8c"
_CUR_COLOUR = "#1f77b4"
_P99_COLOUR = "#9467bd"
_FLAG_COLOUR = "#d62728"
_DRIFT_COLOUR = "#ff7f0e"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


# --- reading ---------------------------------------------------------------------------------------


def _is_log(source: Path, text: str) -> bool:
    """A worker log by name (``.jsonl``, also rotated ``.jsonl.1``) or by its first line being one record."""
    if ".jsonl" in source.suffixes:
        return True
    records, _ = read_records(text.lstrip().split("\n", 1)[0])
    return bool(records)


def worker_run(records: Sequence[DriftLogRecord], log: str = "", skipped: int = 0) -> dict[str, Any]:
    """A worker log as a run: no drift start, config (window, alpha) from the latest report."""
    if not records:
        raise ConfigError(f"the drift log {log} holds no evaluations ({skipped} unreadable lines)")
    last = records[-1]
    return {
        "source": "worker",
        "log": log,
        "skipped_lines": skipped,
        "model": {"name": last.model_name, "version": last.model_version},
        "config": {"window": last.report["window_size"], "alpha": last.report["alpha"]},
        "drift_start_event": None,
        "evaluations": [
            {
                "events": r.events,
                "event_time": r.event_time.isoformat(),
                "report": r.report,
                "freshness": {view: f.model_dump() for view, f in r.freshness.items()},
            }
            for r in records
        ],
    }


def load_run(source: Path) -> dict[str, Any]:
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
        run = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is neither JSON nor a drift log (JSON lines): {exc}") from exc
    if not isinstance(run, dict) or "evaluations" not in run:
        raise ConfigError(f"{source} is not a run of `driftline drift simulate --out`")
    return {**run, "source": "simulate"}


def latest_log(home: Path, model_version: str | None = None) -> Path:
    """The most recently written worker drift log under ``home``/drift (of ``model_version`` if given)."""
    directory = home / "drift"  # drift.log.drift_log_path
    pattern = f"*-{model_version}.jsonl" if model_version else "*.jsonl"
    logs = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime)
    if not logs:
        raise ConfigError(f"no drift log ({pattern}) in {directory}; is a worker running with this DRIFTLINE_HOME?")
    return logs[-1]


# --- charts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Axis:
    """The x positions of the evaluations: events seen, or hours of event time after ``origin``."""

    values: list[float]
    kind: Literal["events", "time"]
    origin: datetime | None = None

    def label(self, x: float) -> str:
        if self.kind == "time" and self.origin is not None:
            return (self.origin + timedelta(hours=x)).strftime("%m-%d %H:%M")
        return f"{x:,.0f}"

    @property
    def unit(self) -> str:
        return "events" if self.kind == "events" else "UTC"


def _time(value: str) -> datetime:
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _axis(run: dict[str, Any], x_axis: XAxis) -> _Axis:
    evaluations = run["evaluations"]
    events = [float(e["events"]) for e in evaluations]
    kind = x_axis
    if kind == "auto":
        restarted = any(b < a for a, b in pairwise(events))
        kind = "time" if restarted else "events"
    if kind == "events":
        return _Axis(events, "events")
    if any(not e.get("event_time") for e in evaluations):
        raise ConfigError("some evaluations carry no event_time; use the events axis")
    times = [_time(e["event_time"]) for e in evaluations]
    return _Axis([(t - times[0]).total_seconds() / 3600 for t in times], "time", times[0])


def _drift_x(run: dict[str, Any], axis: _Axis) -> float | None:
    """Where the drift starts on ``axis``; a worker log has no drift start."""
    start_event = run.get("drift_start_event")
    if start_event is None:
        return None
    if axis.kind == "events":
        return float(start_event)
    config = run["config"]
    if axis.origin is None or "start" not in config:
        return None
    drift_time = _time(config["start"]) + timedelta(hours=float(config["hours"]))
    return (drift_time - axis.origin).total_seconds() / 3600


def _bars(title: str, bins: Sequence[str], reference: Sequence[float], current: Sequence[float]) -> str:
    """Grouped bars: reference (grey) and window (blue) share per bin."""
    width, height, left, bottom, top = 420, 170, 36, 48, 18
    plot_w, plot_h = width - left - 8, height - top - bottom
    top_value = max([*reference, *current, 1e-9])
    n = max(len(bins), 1)
    slot = plot_w / n
    bar = slot * 0.38
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">']
    parts.append(f'<text x="{left}" y="12" class="t">{_esc(title)}</text>')
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="ax" text-anchor="end">{top_value * frac:.2f}</text>')
    for i, label in enumerate(bins):
        x0 = left + i * slot + slot * 0.1
        for k, (value, colour) in enumerate(((reference[i], _REF_COLOUR), (current[i], _CUR_COLOUR))):
            h = plot_h * value / top_value
            parts.append(
                f'<rect x="{x0 + k * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{_esc(label)}: {"reference" if k == 0 else "window"} '
                f"{value:.3f}</title></rect>"
            )
        lx, ly = left + (i + 0.5) * slot, top + plot_h + 8
        parts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" class="ax" text-anchor="end" '
            f'transform="rotate(-40 {lx:.1f} {ly:.1f})">{_esc(label[:14])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) from at or below ``lo`` to at or above ``hi``."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / most
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9) * step
    count = math.ceil((hi - first) / step - 1e-9)
    return [round(first + k * step, 12) for k in range(count + 1)]


@dataclass(frozen=True)
class _Series:
    label: str
    values: Sequence[float | None]
    colour: str = _CUR_COLOUR


def _line(
    title: str,
    axis: _Axis,
    series: Sequence[_Series],
    drift_x: float | None,
    flags: Sequence[bool] | None = None,
    reference_line: float | None = None,
    reference_label: str = "",
    width: int = 300,
) -> str:
    """A small line chart: drift start (orange, dashed), flagged evaluations (red dots) on the first series."""
    height, left, bottom, top = 130, 44, 22, 18
    plot_w, plot_h = width - left - 8, height - top - bottom
    xs = axis.values
    finite = [y for s in series for y in s.values if y is not None and math.isfinite(y)]
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">']
    legend = "".join(f' <tspan fill="{s.colour}">{_esc(s.label)}</tspan>' for s in series) if len(series) > 1 else ""
    parts.append(f'<text x="{left}" y="12" class="t">{_esc(title)}{legend}</text>')
    if not finite or not xs:
        parts.append(f'<text x="{left}" y="{top + plot_h / 2}" class="ax">not tested</text></svg>')
        return "".join(parts)
    x_lo, x_hi = min(xs), max(xs)
    # Ages can be negative (store values stamped after a simulated event): the range then crosses zero.
    highest = max([*finite, *([reference_line] if reference_line is not None else [])])
    ticks = _ticks(min(0.0, *finite), highest)
    y_lo, y_hi = ticks[0], ticks[-1]

    def sx(x: float) -> float:
        return left + plot_w * ((x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)

    def sy(y: float) -> float:
        return top + plot_h * (1 - (y - y_lo) / (y_hi - y_lo))

    for tick in ticks:
        y = sy(tick)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="ax" text-anchor="end">{tick:.3g}</text>')
    if y_lo < 0:
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" class="zero"/>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="ax">{_esc(axis.label(x_lo))}</text>')
    parts.append(
        f'<text x="{width - 8}" y="{height - 6}" class="ax" text-anchor="end">'
        f"{_esc(axis.label(x_hi))} {axis.unit}</text>"
    )
    if reference_line is not None:
        y = sy(reference_line)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>')
        if reference_label:
            parts.append(f'<text x="{width - 10}" y="{y - 3:.1f}" class="ax" text-anchor="end">'
                         f"{_esc(reference_label)}</text>")
    if drift_x is not None:
        dx = sx(drift_x)
        parts.append(
            f'<line x1="{dx:.1f}" x2="{dx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="{_DRIFT_COLOUR}" '
            f'stroke-dasharray="4 3"><title>drift starts at {_esc(axis.label(drift_x))}</title></line>'
        )
    for s in series:
        points = [(x, y) for x, y in zip(xs, s.values, strict=True) if y is not None and math.isfinite(y)]
        path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
        parts.append(f'<path d="{path}" fill="none" stroke="{s.colour}" stroke-width="1.5"/>')
    for x, value, flagged in zip(xs, series[0].values, flags or [False] * len(xs), strict=True):
        if flagged and value is not None and math.isfinite(value):
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(value):.1f}" r="2.5" fill="{_FLAG_COLOUR}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _neglog10(p: float | None) -> float | None:
    if p is None:
        return None
    return -math.log10(max(p, 1e-300))


# --- sections --------------------------------------------------------------------------------------


def _where(evaluation: dict[str, Any]) -> str:
    """An evaluation's place: events seen, and its time when it has one."""
    when = evaluation.get("event_time")
    at = f", {_time(when).strftime('%m-%d %H:%M')} UTC" if when else ""
    return f"event {int(evaluation['events']):,}{at}"


def _column_section(
    name: str, run: dict[str, Any], series: list[dict[str, Any]], axis: _Axis, drift_x: float | None
) -> str:
    evaluations = run["evaluations"]
    config = run["config"]
    alpha = float(config["alpha"])
    flags = [bool(c["flagged"]) for c in series]
    last = series[-1]
    stat_name = last["statistic_name"]
    tested = any(c["tested"] for c in series)
    notes = ["context (time of day): reported, not tested" if not tested else stat_name + " test"]
    charts = []
    start_event = run.get("drift_start_event")
    if start_event is not None:  # a simulation: before the drift vs the end
        pairs = list(zip(evaluations, series, strict=True))
        before = [c for e, c in pairs if e["events"] <= start_event]
        first_flag = next((e["after_drift"] for e, c in pairs if c["flagged"] and e["events"] > start_event), None)
        stationary_flags = sum(1 for e, c in pairs if c["flagged"] and e["events"] <= start_event)
        notes += [
            f"flagged in {stationary_flags} stationary evaluation(s)",
            f"first flagged {first_flag} events after the drift"
            if first_flag is not None
            else "not flagged after the drift",
        ]
        if before:
            pre = before[-1]
            charts.append(_bars(f"before the drift (event {int(start_event):,})", pre["bins"], pre["reference"],
                                pre["current"]))
        end_title = f"end of run (event {int(evaluations[-1]['events']):,})"
    else:  # a worker log: the first ready evaluation vs the latest
        first_at = next((i for i, e in enumerate(evaluations) if e["report"]["ready"]), 0)
        first_flag_at = next((i for i, c in enumerate(series) if c["flagged"]), None)
        notes += [
            f"flagged in {sum(flags)} of {len(series)} evaluation(s)",
            f"first flagged at {_where(evaluations[first_flag_at])}" if first_flag_at is not None
            else "never flagged",
        ]
        if first_at < len(series) - 1:
            first = series[first_at]
            charts.append(_bars(f"first in the log ({_where(evaluations[first_at])})", first["bins"],
                                first["reference"], first["current"]))
        end_title = f"latest ({_where(evaluations[-1])})"
    notes.append(f"missing: reference {last['reference_missing_rate']:.2%}, window {last['missing_rate']:.2%}")
    charts.append(_bars(end_title, last["bins"], last["reference"], last["current"]))
    min_psi: float | None = config.get("min_psi") or None
    lines = [
        _line(f"{stat_name} statistic", axis, [_Series("", [c["statistic"] for c in series])], drift_x, flags),
        _line("-log10 p-value (line: alpha)", axis, [_Series("", [_neglog10(c["p_value"]) for c in series])],
              drift_x, flags, -math.log10(alpha)),
        _line("PSI (line: min PSI)" if min_psi else "PSI", axis, [_Series("", [c["psi"] for c in series])],
              drift_x, flags, min_psi),
        _line("missing rate", axis, [_Series("", [c["missing_rate"] for c in series])], drift_x, flags),
    ]
    badge = '<span class="flag">flagged at the end</span>' if last["flagged"] else ""
    return (
        f'<section><h2>{_esc(name)} {badge}</h2><p class="note">{_esc("; ".join(notes))}</p>'
        f'<div class="row">{"".join(charts)}</div><div class="row">{"".join(lines)}</div></section>'
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def _freshness_section(run: dict[str, Any], axis: _Axis, drift_x: float | None) -> str:
    """Per feature view: p50/p99 age (hours) with the TTL as a line, and the share older than the TTL."""
    evaluations = run["evaluations"]
    views = list(dict.fromkeys(v for e in evaluations for v in e.get("freshness") or {}))
    heading = '<section id="freshness"><h2>Freshness of the store\'s values</h2>'
    if not views:
        return (
            f'{heading}<p class="note">no freshness in this run (written before freshness was recorded, '
            "or no event found its entity in the online store)</p></section>"
        )
    age_basis = (
        "age = the event's (simulated) time minus the view's feature timestamp; negative: the stored values "
        "are stamped after the event"
        if run["source"] == "simulate"
        else "age = the worker's clock at scoring minus the view's feature timestamp"
    )
    rows = []
    for view in views:
        points: list[dict[str, float] | None] = [(e.get("freshness") or {}).get(view) for e in evaluations]
        latest = next(p for p in reversed(points) if p)
        ttl_s = latest["ttl_s"]
        ttl = f"TTL {ttl_s / 3600:g} h" if ttl_s else "no TTL"
        note = (
            f"latest, over {latest['events']:,.0f} events: p50 {_hours(latest['p50_s'])}, "
            f"p99 {_hours(latest['p99_s'])}; {ttl}; older than the TTL {latest['stale_share']:.1%}"
        )
        ages = _line(
            "age, hours:", axis,
            [_Series("p50", [p["p50_s"] / 3600 if p else None for p in points]),
             _Series("p99", [p["p99_s"] / 3600 if p else None for p in points], _P99_COLOUR)],
            drift_x, reference_line=ttl_s / 3600 if ttl_s else None, reference_label=ttl, width=420,
        )
        stale = _line(
            "share older than the TTL" if ttl_s else "share older than the TTL (no TTL)", axis,
            [_Series("", [p["stale_share"] if p else None for p in points], _FLAG_COLOUR)],
            drift_x, width=300,
        )
        rows.append(f'<h3>{_esc(view)}</h3><p class="note">{_esc(note)}</p><div class="row">{ages}{stale}</div>')
    return f'{heading}<p class="note">{_esc(age_basis)}</p>{"".join(rows)}</section>'


def summarize_log(run: dict[str, Any]) -> Iterator[str]:
    """The printed summary of a worker log: span, restarts, flags by column, the latest evaluation."""
    evaluations = run["evaluations"]
    times = [e["event_time"] for e in evaluations if e.get("event_time")]
    span = f" from {times[0]} to {times[-1]}" if times else ""
    events = [e["events"] for e in evaluations]
    restarts = sum(1 for a, b in pairwise(events) if b < a)
    yield f"{len(evaluations)} evaluations{span}" + (
        f"; the worker restarted {restarts} time(s) (events seen counts again from 0)" if restarts else ""
    )
    if run.get("skipped_lines"):
        yield f"  {run['skipped_lines']} unreadable line(s) skipped"
    ready = [e for e in evaluations if e["report"]["ready"]]
    flagged = [e for e in ready if e["report"]["flagged"]]
    yield f"{len(flagged)}/{len(ready)} ready evaluations with any flag (alpha {run['config']['alpha']:g})"
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for e in flagged:
        for name in e["report"]["flagged"]:
            first.setdefault(name, _where(e))
            counts[name] = counts.get(name, 0) + 1
    for name, at in first.items():
        yield f"  {name}: flagged in {counts[name]}/{len(ready)}, first at {at}"
    yield from final_lines(evaluations[-1])


# --- page ------------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1300px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 0 0 4px; } h3 { font-size: 14px; margin: 8px 0 2px; }
section { border-top: 1px solid #ddd; padding: 12px 0; }
.row { display: flex; flex-wrap: wrap; gap: 8px; }
.note { color: #555; margin: 0 0 6px; font-size: 13px; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
svg .t { font-size: 12px; fill: #333; } svg .ax { font-size: 10px; fill: #666; }
svg .grid { stroke: #eee; } svg .ref { stroke: #999; stroke-dasharray: 2 2; } svg .zero { stroke: #bbb; }
.flag { background: #d62728; color: white; border-radius: 3px; padding: 1px 6px; font-size: 12px; }
.key span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
"""


def _header(run: dict[str, Any], axis: _Axis) -> tuple[str, str]:
    """The page title and the lines under it: what was run or logged, and how it was monitored."""
    config = run["config"]
    model = f"{run['model']['name']} {run['model']['version']}"
    if run["source"] == "simulate":
        title = f"{model}, {config['drift']} after {config['stationary']:,} stationary events"
        note = (
            f"window {config['window']:,} events, evaluated every {config['every']:,}; "
            f"Benjamini-Hochberg at alpha {config['alpha']:g} across columns and score; "
            f"min PSI {config.get('min_psi', 0):g}; no flags before {config['min_events']:,} events; "
            f"stationary part spans {config['hours']:g} h of event time from {config['start']}"
        )
        return title, note
    evaluations = run["evaluations"]
    x_what = "events seen since the worker (re)started" if axis.kind == "events" else "the worker's clock (UTC)"
    note = (
        f"worker log {run['log']}: {len(evaluations)} evaluations; window {config['window']:,} events; "
        f"Benjamini-Hochberg at alpha {config['alpha']:g} across columns and score; x-axis: {x_what}"
    )
    return f"{model}, running worker", note


def render(run: dict[str, Any], x_axis: XAxis = "auto") -> str:
    """The HTML page of a run, as returned by :func:`load_run`."""
    evaluations = run.get("evaluations") or []
    if not evaluations:
        raise ConfigError("the run has no evaluations; simulate more events or evaluate more often")
    run = {"source": "simulate", **run}
    axis = _axis(run, x_axis)
    drift_x = _drift_x(run, axis)
    names = [c["name"] for c in evaluations[0]["report"]["features"]]
    sections = [_freshness_section(run, axis, drift_x)]
    for j, name in enumerate(names):
        series = [e["report"]["features"][j] for e in evaluations]
        sections.append(_column_section(name, run, series, axis, drift_x))
    if evaluations[0]["report"]["score"]:
        series = [e["report"]["score"] for e in evaluations]
        sections.append(_column_section("score (prediction drift)", run, series, axis, drift_x))
    summary = "\n".join(summarize(run) if run["source"] == "simulate" else summarize_log(run))
    drift_key = f'<span style="background:{_DRIFT_COLOUR}"></span>drift starts' if drift_x is not None else ""
    key = (
        f'<p class="key"><span style="background:{_REF_COLOUR}"></span>reference (mixed to the window\'s time of day)'
        f'<span style="background:{_CUR_COLOUR}"></span>window'
        f'<span style="background:{_FLAG_COLOUR}"></span>flagged evaluation{drift_key}</p>'
    )
    title, note = _header(run, axis)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>driftline drift report: {_esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Drift monitoring: {_esc(title)}</h1><p class=note>{_esc(note)}</p>"
        f"<pre>{_esc(summary)}</pre>{key}{''.join(sections)}</body></html>"
    )


def _x_axis(value: str) -> XAxis:
    for choice in X_AXES:
        if value == choice:
            return choice
    raise ConfigError(f"the x axis is one of {', '.join(X_AXES)}, not {value!r}")


def write_report(source: Path, target: Path, x_axis: str = "auto") -> str:
    """Render the run or drift log in ``source`` to ``target`` (HTML); return a one-line summary."""
    axis = _x_axis(x_axis)
    run = load_run(source)
    page = render(run, axis)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    skipped = f", {run['skipped_lines']} unreadable lines skipped" if run.get("skipped_lines") else ""
    return (
        f"report of {len(run['evaluations'])} evaluations ({run['source']}: {source}{skipped}) -> {target} "
        f"({len(page) / 1024:.0f} KiB)"
    )
