"""The benchmark's and the soak's pictures, drawn with matplotlib: one home for their size and style.

The benchmark: latency against offered load, two panels (p50, p99), one line per contender. The soak:
worker memory and end-to-end latency over elapsed time, two panels.

matplotlib is imported inside the functions and drives an Agg canvas owned by the figure, so importing this
module touches no global plotting state (no ``pyplot``, no backend switch, no font cache). PNGs carry no
metadata (no matplotlib version), so the same data gives the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from driftline_tools.bench.measure import ContenderResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from driftline_tools.feedback import FeedbackResult
    from driftline_tools.scenarios import SoakSample

# The tab10 colours the benchmark has always used, so old and new pictures compare at a glance.
COLORS: dict[str, str] = {"naive": "tab:red", "driftline": "tab:blue", "raw-floor": "tab:green",
                          "quix": "tab:orange", "quix-tuned": "tab:brown"}

Percentile = Literal["p50_ms", "p99_ms"]
PANELS: tuple[tuple[Percentile, str], ...] = (("p50_ms", "p50 latency"), ("p99_ms", "p99 latency"))

# 1400 x 620 pixels: the size of the pictures already in docs/.
FIGSIZE_IN = (14.0, 6.2)
DPI = 100
GRID_ALPHA = 0.4

# The soak's series: memory in one panel, mean and p99 latency in the other.
SOAK_COLORS: dict[str, str] = {"rss": "tab:purple", "broker": "tab:green", "mean": "tab:blue", "p99": "tab:orange"}


def _figure(title: str) -> Figure:
    """A figure of the common size with an Agg canvas of its own (PNG output without pyplot's global backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure
    figure.suptitle(title)
    return figure


def _png(figure: Figure) -> bytes:
    """PNG bytes of ``figure``, without the Software tag, so they depend on the data alone."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def latency_series(contender: ContenderResult, attr: Percentile) -> tuple[list[float], list[float]]:
    """Offered load (events/s) and latency (ms) of the loads that were measured, sorted by load."""
    points = sorted(
        (load.offered_per_s, getattr(load, attr)) for load in contender.loads if not math.isnan(getattr(load, attr))
    )
    return [x for x, _ in points], [y for _, y in points]


def latency_figure(contenders: Sequence[ContenderResult], title: str) -> Figure:
    """p50 and p99 end-to-end latency (ms) against offered load (events/s), one line per contender.

    Loads that were skipped (NaN latency) are left out, so a contender may show a single point.
    """
    from matplotlib.ticker import StrMethodFormatter

    figure = _figure(title)
    axes = figure.subplots(1, len(PANELS), squeeze=False)[0]
    for ax, (attr, panel_title) in zip(axes, PANELS, strict=True):
        for contender in contenders:
            xs, ys = latency_series(contender, attr)
            ax.plot(xs, ys, marker="o", linewidth=2, color=COLORS.get(contender.name), label=contender.name)
        ax.set_title(panel_title)
        ax.set_xlabel("offered load (events/s)")
        ax.set_ylabel("latency (ms)")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.grid(True, alpha=GRID_ALPHA)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=max(len(labels), 1), frameon=False)
    return figure


def latency_plot(contenders: Sequence[ContenderResult], title: str) -> bytes:
    """PNG bytes of :func:`latency_figure`."""
    return _png(latency_figure(contenders, title))


def write_plot(path: Path, contenders: Sequence[ContenderResult], title: str) -> Path:
    """Write :func:`latency_plot` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(latency_plot(contenders, title))
    return path


def soak_figure(samples: Sequence[SoakSample], title: str) -> Figure:
    """Worker and broker RSS (MB), and end-to-end mean and p99 latency (ms), against seconds since the start.

    Intervals without events (NaN latency) leave a gap in the latency lines. The p99 is interpolated
    within its histogram bucket, as Prometheus does.
    """
    from matplotlib.ticker import StrMethodFormatter

    elapsed = [s.elapsed_s for s in samples]
    figure = _figure(title)
    memory, latency = figure.subplots(1, 2, squeeze=False)[0]
    memory.plot(elapsed, [s.rss_mb for s in samples], marker="o", linewidth=2, color=SOAK_COLORS["rss"],
                label="worker RSS")
    memory.plot(elapsed, [s.broker_rss_mb for s in samples], marker="o", linewidth=2, color=SOAK_COLORS["broker"],
                label="embedded broker RSS")
    memory.set_title("memory")
    memory.set_ylabel("resident set (MB)")
    memory.legend(loc="best", frameon=False)
    latency.plot(elapsed, [s.e2e_mean_ms for s in samples], marker="o", linewidth=2, color=SOAK_COLORS["mean"],
                 label="e2e mean")
    latency.plot(elapsed, [s.e2e_p99_ms for s in samples], marker="o", linewidth=2, color=SOAK_COLORS["p99"],
                 label="e2e p99")
    latency.set_title("end-to-end latency per interval")
    latency.set_ylabel("latency (ms)")
    latency.legend(loc="best", frameon=False)
    latencies = [v for s in samples for v in (s.e2e_mean_ms, s.e2e_p99_ms)]
    memories = [v for s in samples for v in (s.rss_mb, s.broker_rss_mb)]
    for ax, values in ((memory, memories), (latency, latencies)):
        # From zero, with headroom: a flat series (memory that does not grow) then reads as flat, mid-panel.
        ax.set_ylim(0, 1.2 * max((v for v in values if math.isfinite(v)), default=1.0))
        ax.set_xlabel("elapsed (s)")
        ax.set_xlim(left=0)
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
        ax.grid(True, alpha=GRID_ALPHA)
    return figure


def soak_plot(samples: Sequence[SoakSample], title: str) -> bytes:
    """PNG bytes of :func:`soak_figure`."""
    return _png(soak_figure(samples, title))


def write_soak_plot(path: Path, samples: Sequence[SoakSample], title: str) -> Path:
    """Write :func:`soak_plot` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(soak_plot(samples, title))
    return path


# The feedback scenario's series and marks.
FEEDBACK_COLORS: dict[str, str] = {"live": "tab:blue", "cbpe": "tab:orange", "threshold": "tab:red",
                                   "coverage": "tab:green", "mark": "tab:gray"}


def feedback_figure(result: FeedbackResult, title: str) -> Figure:
    """Live metric, CBPE estimate and the alert threshold (top); label coverage (bottom); marks as vertical lines.

    Samples where a value is undefined (too few labels, no version yet) leave gaps.
    """
    figure = _figure(title)
    metric_ax, coverage_ax = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    samples = result.samples
    elapsed = [s.elapsed_s for s in samples]

    def values(attr: str) -> list[float]:
        return [math.nan if getattr(s, attr) is None else float(getattr(s, attr)) for s in samples]

    from driftline_tools.feedback import ALERT_FRACTION

    # A version's first labels give a metric of a handful of points: shown from min_labels on, as trusted.
    live = [v if s.labelled >= result.min_labels else math.nan for v, s in zip(values("live"), samples, strict=True)]
    metric_ax.plot(elapsed, live, linewidth=2, color=FEEDBACK_COLORS["live"],
                   label=f"live {result.metric} (labels joined)")
    metric_ax.plot(elapsed, values("cbpe"), linewidth=2, linestyle="--", color=FEEDBACK_COLORS["cbpe"],
                   label=f"CBPE estimate of {result.metric} (no labels needed)")
    metric_ax.plot(elapsed, [ALERT_FRACTION * v for v in values("test")], linewidth=1, linestyle=":",
                   color=FEEDBACK_COLORS["threshold"], label=f"alert threshold ({ALERT_FRACTION:g} x test)")
    metric_ax.set_ylabel(result.metric)
    metric_ax.set_ylim(bottom=0)
    coverage_ax.plot(elapsed, values("coverage"), linewidth=2, color=FEEDBACK_COLORS["coverage"],
                     label="label coverage")
    coverage_ax.set_ylabel("labelled / scored")
    # Labels joined over the window's span / predictions published over it: above 1 when labels of
    # predictions older than a short span arrive within it.
    coverage_ax.set_ylim(0, max(1.05, 1.05 * max((v for v in values("coverage") if math.isfinite(v)), default=1.0)))
    coverage_ax.set_xlabel("elapsed (s)")
    for ax in (metric_ax, coverage_ax):
        for mark in result.marks:
            ax.axvline(mark.elapsed_s, color=FEEDBACK_COLORS["mark"], linewidth=1, linestyle="--")
        ax.set_xlim(left=0)
        ax.grid(True, alpha=GRID_ALPHA)
    top = metric_ax.get_ylim()[1]
    for index, mark in enumerate(result.marks):
        # Marks seconds apart (alert, retrain) would print over each other: alternate their sides.
        metric_ax.annotate(mark.what, (mark.elapsed_s, top), xytext=(3 if index % 2 == 0 else -12, -6),
                           textcoords="offset points", rotation=90, va="top", fontsize=9, color="black")
    metric_ax.legend(loc="lower left", frameon=False)
    return figure


def write_feedback_plot(path: Path, result: FeedbackResult) -> Path:
    """Write :func:`feedback_figure` as PNG to ``path``."""
    title = f"driftline feedback loop: {result.rate:g} events/s, concept drift, gated retrain"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png(feedback_figure(result, title)))
    return path
