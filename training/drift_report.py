"""A drift simulation run as one self-contained HTML page: inline SVG, no scripts, no external assets.

Per monitored column (and the score): reference vs window shares per bin or level, just before
the drift and at the end; the test statistic, -log10 p-value, PSI and missing rate over the run,
with the drift start and flagged evaluations marked.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError
from training.drift_sim import summarize

_REF_COLOUR = "#8c8c8c"
_CUR_COLOUR = "#1f77b4"
_FLAG_COLOUR = "#d62728"
_DRIFT_COLOUR = "#ff7f0e"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


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


def _line(
    title: str,
    xs: Sequence[float],
    ys: Sequence[float | None],
    drift_x: float,
    flags: Sequence[bool],
    reference_line: float | None = None,
) -> str:
    """A small line chart with the drift start (orange) and flagged evaluations (red dots)."""
    width, height, left, bottom, top = 300, 130, 44, 22, 18
    plot_w, plot_h = width - left - 8, height - top - bottom
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{_esc(title)}">']
    parts.append(f'<text x="{left}" y="12" class="t">{_esc(title)}</text>')
    if not points or not xs:
        parts.append(f'<text x="{left}" y="{top + plot_h / 2}" class="ax">not tested</text></svg>')
        return "".join(parts)
    x_lo, x_hi = min(xs), max(xs)
    highest = max([y for _, y in points] + ([reference_line] if reference_line is not None else []))
    y_hi = highest * 1.05 if highest > 0 else 1.0

    def sx(x: float) -> float:
        return left + plot_w * ((x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_hi)

    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" class="ax" text-anchor="end">{y_hi * frac:.3g}</text>')
    parts.append(f'<text x="{left}" y="{height - 6}" class="ax">{x_lo:,.0f}</text>')
    parts.append(f'<text x="{width - 8}" y="{height - 6}" class="ax" text-anchor="end">{x_hi:,.0f} events</text>')
    if reference_line is not None:
        y = sy(reference_line)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>')
    dx = sx(drift_x)
    parts.append(
        f'<line x1="{dx:.1f}" x2="{dx:.1f}" y1="{top}" y2="{top + plot_h}" stroke="{_DRIFT_COLOUR}" '
        f'stroke-dasharray="4 3"><title>drift starts at event {drift_x:,.0f}</title></line>'
    )
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
    parts.append(f'<path d="{path}" fill="none" stroke="{_CUR_COLOUR}" stroke-width="1.5"/>')
    for x, value, flagged in zip(xs, ys, flags, strict=True):
        if flagged and value is not None and math.isfinite(value):
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(value):.1f}" r="2.5" fill="{_FLAG_COLOUR}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _neglog10(p: float | None) -> float | None:
    if p is None:
        return None
    return -math.log10(max(p, 1e-300))


def _column_section(name: str, run: dict[str, Any], series: list[dict[str, Any]]) -> str:
    drift_x = float(run["drift_start_event"])
    alpha = float(run["config"]["alpha"])
    xs = [float(e["events"]) for e in run["evaluations"]]
    flags = [bool(c["flagged"]) for c in series]
    last = series[-1]
    before = [c for e, c in zip(run["evaluations"], series, strict=True) if e["events"] <= drift_x]
    pre = before[-1] if before else None
    stat_name = last["statistic_name"]
    tested = any(c["tested"] for c in series)
    first_flag = next((e["after_drift"] for e, c in zip(run["evaluations"], series, strict=True)
                       if c["flagged"] and e["events"] > drift_x), None)
    stationary_flags = sum(1 for e, c in zip(run["evaluations"], series, strict=True)
                           if c["flagged"] and e["events"] <= drift_x)
    notes = [
        f"{'context (time of day): reported, not tested' if not tested else stat_name + ' test'}",
        f"flagged in {stationary_flags} stationary evaluation(s)",
        f"first flagged {first_flag} events after the drift"
        if first_flag is not None
        else "not flagged after the drift",
        f"missing: reference {last['reference_missing_rate']:.2%}, window {last['missing_rate']:.2%}",
    ]
    charts = []
    if pre is not None:
        title = f"before the drift (event {int(drift_x):,})"
        charts.append(_bars(title, pre["bins"], pre["reference"], pre["current"]))
    charts.append(_bars(f"end of run (event {int(xs[-1]):,})", last["bins"], last["reference"], last["current"]))
    lines = [
        _line(f"{stat_name} statistic", xs, [c["statistic"] for c in series], drift_x, flags),
        _line("-log10 p-value (line: alpha)", xs, [_neglog10(c["p_value"]) for c in series], drift_x, flags,
              -math.log10(alpha)),
        _line("PSI (line: min PSI)" if run["config"].get("min_psi") else "PSI", xs, [c["psi"] for c in series],
              drift_x, flags, run["config"].get("min_psi") or None),
        _line("missing rate", xs, [c["missing_rate"] for c in series], drift_x, flags),
    ]
    badge = '<span class="flag">flagged at the end</span>' if last["flagged"] else ""
    return (
        f'<section><h2>{_esc(name)} {badge}</h2><p class="note">{_esc("; ".join(notes))}</p>'
        f'<div class="row">{"".join(charts)}</div><div class="row">{"".join(lines)}</div></section>'
    )


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1300px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin: 0 0 4px; }
section { border-top: 1px solid #ddd; padding: 12px 0; }
.row { display: flex; flex-wrap: wrap; gap: 8px; }
.note { color: #555; margin: 0 0 6px; font-size: 13px; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; font-size: 12px; }
svg .t { font-size: 12px; fill: #333; } svg .ax { font-size: 10px; fill: #666; }
svg .grid { stroke: #eee; } svg .ref { stroke: #999; stroke-dasharray: 2 2; }
.flag { background: #d62728; color: white; border-radius: 3px; padding: 1px 6px; font-size: 12px; }
.key span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px; }
"""


def render(run: dict[str, Any]) -> str:
    """The HTML page of a run (as written by ``driftline drift simulate --out``)."""
    evaluations = run.get("evaluations") or []
    if not evaluations:
        raise ConfigError("the run has no evaluations; simulate more events or evaluate more often")
    names = [c["name"] for c in evaluations[0]["report"]["features"]]
    sections = []
    for j, name in enumerate(names):
        sections.append(_column_section(name, run, [e["report"]["features"][j] for e in evaluations]))
    if evaluations[0]["report"]["score"]:
        sections.append(_column_section("score (prediction drift)", run, [e["report"]["score"] for e in evaluations]))
    config = run["config"]
    summary = "\n".join(summarize(run))
    key = (
        f'<p class="key"><span style="background:{_REF_COLOUR}"></span>reference (mixed to the window\'s time of day)'
        f'<span style="background:{_CUR_COLOUR}"></span>window'
        f'<span style="background:{_FLAG_COLOUR}"></span>flagged evaluation'
        f'<span style="background:{_DRIFT_COLOUR}"></span>drift starts</p>'
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>driftline drift report: {_esc(config['drift'])}</title><style>{_CSS}</style></head><body>"
        f"<h1>Drift monitoring: {_esc(run['model']['name'])} {_esc(run['model']['version'])}, "
        f"{_esc(config['drift'])} after {config['stationary']:,} stationary events</h1>"
        f"<p class=note>window {config['window']:,} events, evaluated every {config['every']:,}; "
        f"Benjamini-Hochberg at alpha {config['alpha']:g} across columns and score; "
        f"min PSI {config.get('min_psi', 0):g}; "
        f"no flags before {config['min_events']:,} events; stationary part spans {config['hours']:g} h of event time "
        f"from {_esc(config['start'])}</p>"
        f"<pre>{_esc(summary)}</pre>{key}{''.join(sections)}</body></html>"
    )


def write_report(source: Path, target: Path) -> str:
    """Render the run in ``source`` (JSON) to ``target`` (HTML); return a one-line summary."""
    try:
        run = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"no run at {source}; write one with `driftline drift simulate --out`") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source} is not JSON: {exc}") from exc
    page = render(run)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    return f"report of {len(run['evaluations'])} evaluations -> {target} ({len(page) / 1024:.0f} KiB)"
