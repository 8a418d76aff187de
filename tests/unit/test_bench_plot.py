"""The benchmark's plot (one line per contender) and the soak's (memory and latency over time), as PNGs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from driftline_tools.bench.measure import CONTENDERS, ContenderResult, LoadResult
from driftline_tools.bench.plot import (
    COLORS,
    SOAK_COLORS,
    latency_figure,
    latency_plot,
    soak_figure,
    soak_plot,
    write_plot,
    write_soak_plot,
)
from driftline_tools.scenarios import SoakSample

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


def test_every_contender_has_a_colour_of_its_own() -> None:
    assert set(CONTENDERS) <= set(COLORS)
    assert len({COLORS[name] for name in CONTENDERS}) == len(CONTENDERS)


def test_png_reads_back_at_the_expected_size() -> None:
    image = imread(io.BytesIO(latency_plot(_contenders(), "test")), format="png")
    assert image.shape[:2] == (620, 1400)
    assert image[..., :3].std() > 0  # something was drawn, not a blank canvas


def test_write_plot_creates_folders_and_a_png(tmp_path: Path) -> None:
    path = write_plot(tmp_path / "nested" / "bench.png", _contenders(), "test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[:2] == (620, 1400)


def _soak_samples() -> list[SoakSample]:
    return [
        SoakSample(15.0, 1500, 300.0, 35.0, 100.0, 40.0),
        SoakSample(30.0, 3000, 301.5, math.nan, math.nan, 45.0),  # an interval without events
        SoakSample(45.0, 4500, 302.0, 40.0, 250.0, 50.0),
    ]


def test_soak_figure_draws_memory_and_latency_over_elapsed_time() -> None:
    figure = soak_figure(_soak_samples(), "soak")
    assert figure.get_suptitle() == "soak"
    memory, latency = figure.get_axes()
    assert (memory.get_title(), memory.get_xlabel(), memory.get_ylabel()) == (
        "memory", "elapsed (s)", "resident set (MB)",
    )
    assert (latency.get_title(), latency.get_xlabel(), latency.get_ylabel()) == (
        "end-to-end latency per interval", "elapsed (s)", "latency (ms)",
    )
    rss, broker = memory.get_lines()
    np.testing.assert_allclose(np.asarray(broker.get_ydata(), dtype=float), [40.0, 45.0, 50.0])
    assert broker.get_color() == SOAK_COLORS["broker"]
    np.testing.assert_allclose(np.asarray(rss.get_xdata(), dtype=float), [15.0, 30.0, 45.0])
    np.testing.assert_allclose(np.asarray(rss.get_ydata(), dtype=float), [300.0, 301.5, 302.0])
    assert rss.get_color() == SOAK_COLORS["rss"]
    lines = {line.get_label(): line for line in latency.get_lines()}
    assert list(lines) == ["e2e mean", "e2e p99"]
    # The NaN interval stays NaN: matplotlib leaves a gap there rather than joining across it.
    np.testing.assert_allclose(np.asarray(lines["e2e mean"].get_ydata(), dtype=float), [35.0, math.nan, 40.0])
    np.testing.assert_allclose(
        np.asarray(lines["e2e p99"].get_ydata(), dtype=float), [100.0, math.nan, 250.0]
    )
    assert [text.get_text() for text in latency.get_legend().get_texts()] == ["e2e mean", "e2e p99"]
    # Both panels start at zero and leave a fifth of headroom above the largest finite value.
    assert memory.get_ylim() == pytest.approx((0.0, 1.2 * 302.0))
    assert latency.get_ylim() == pytest.approx((0.0, 1.2 * 250.0))


def test_soak_png_is_the_common_size_and_the_same_bytes_for_the_same_data(tmp_path: Path) -> None:
    png = soak_plot(_soak_samples(), "soak")
    assert png == soak_plot(_soak_samples(), "soak")
    assert b"Software" not in png and b"Matplotlib" not in png
    assert imread(io.BytesIO(png), format="png").shape[:2] == (620, 1400)
    path = write_soak_plot(tmp_path / "nested" / "soak.png", _soak_samples(), "soak")
    assert path.read_bytes() == png
