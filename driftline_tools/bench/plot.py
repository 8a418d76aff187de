"""Latency against offered load, drawn with matplotlib: two panels (p50, p99), one line per contender.

matplotlib is imported inside the functions and drives an Agg canvas owned by the figure, so importing this
module touches no global plotting state (no ``pyplot``, no backend switch, no font cache).
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

# The tab10 colours the benchmark has always used, so old and new pictures compare at a glance.
COLORS: dict[str, str] = {"naive": "tab:red", "driftline": "tab:blue", "raw-floor": "tab:green"}

Percentile = Literal["p50_ms", "p99_ms"]
PANELS: tuple[tuple[Percentile, str], ...] = (("p50_ms", "p50 latency"), ("p99_ms", "p99 latency"))

# 1400 x 620 pixels: the size of the pictures already in docs/.
FIGSIZE_IN = (14.0, 6.2)
DPI = 100


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
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import StrMethodFormatter

    figure = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure: PNG output without pyplot's global backend
    figure.suptitle(title)
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
        ax.grid(True, alpha=0.4)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=max(len(labels), 1), frameon=False)
    return figure


def latency_plot(contenders: Sequence[ContenderResult], title: str) -> bytes:
    """PNG bytes of :func:`latency_figure`."""
    buffer = io.BytesIO()
    latency_figure(contenders, title).savefig(buffer, format="png")
    return buffer.getvalue()


def write_plot(path: Path, contenders: Sequence[ContenderResult], title: str) -> Path:
    """Write :func:`latency_plot` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(latency_plot(contenders, title))
    return path
