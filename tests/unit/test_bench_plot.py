"""The benchmark's plot: one line per contender with the measured points, saved as a readable PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from driftline_tools.bench.measure import ContenderResult, LoadResult
from driftline_tools.bench.plot import COLORS, latency_figure, latency_plot, write_plot

BASES = {"naive": 50.0, "driftline": 20.0, "raw-floor": 5.0}


def _contenders() -> list[ContenderResult]:
    contenders = []
    for name, base in BASES.items():
        # Listed out of load order on purpose: the plot sorts by offered load.
        loads = [LoadResult.from_latencies(f, 1000 * f, 10, [base * (1 + f) / 1000] * 10, 1.0) for f in (0.5, 0.25)]
        loads.append(LoadResult.from_latencies(0.75, 750, 0, [], 0.0, note="skipped"))  # NaN: not drawn
        contenders.append(ContenderResult(
            name=name,  # type: ignore[arg-type]
            processes=1, drain_events=10, max_throughput_per_s=1000, cpu_s_per_1k=1, peak_rss_mb=1,
            peak_rss_total_mb=1, start_to_first_prediction_s=1, drain_seconds=1, loads=loads,
        ))
    return contenders


def test_each_panel_draws_each_contenders_measured_points() -> None:
    figure = latency_figure(_contenders(), "test")
    assert figure.get_suptitle() == "test"
    axes = figure.get_axes()
    assert [ax.get_title() for ax in axes] == ["p50 latency", "p99 latency"]
    for ax in axes:
        assert ax.get_xlabel() == "offered load (events/s)"
        assert ax.get_ylabel() == "latency (ms)"
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert list(lines) == list(BASES)
        for name, base in BASES.items():
            line = lines[name]
            # The skipped 750/s load is absent; every latency is equal, so p50 == p99.
            np.testing.assert_allclose(np.asarray(line.get_xdata(), dtype=float), [250.0, 500.0])
            np.testing.assert_allclose(np.asarray(line.get_ydata(), dtype=float), [base * 1.25, base * 1.5])
            assert line.get_color() == COLORS[name]
    [legend] = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == list(BASES)


def test_png_reads_back_at_the_expected_size() -> None:
    image = imread(io.BytesIO(latency_plot(_contenders(), "test")), format="png")
    assert image.shape[:2] == (620, 1400)
    assert image[..., :3].std() > 0  # something was drawn, not a blank canvas


def test_write_plot_creates_folders_and_a_png(tmp_path: Path) -> None:
    path = write_plot(tmp_path / "nested" / "bench.png", _contenders(), "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[:2] == (620, 1400)
