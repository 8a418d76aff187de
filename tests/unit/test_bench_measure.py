"""The benchmark's arithmetic: percentiles, /proc parsing, sustained windows, ratios and the table."""

from __future__ import annotations

import math
import os

import pytest

from driftline_tools.bench.measure import (
    BenchReport,
    ContenderResult,
    LoadResult,
    Sample,
    cpu_seconds,
    cpu_seconds_from_stat,
    peak_rss_bytes,
    peak_rss_bytes_from_status,
    percentile,
    sustained_window,
)


def test_percentile_interpolates_and_handles_edges() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([10], 99) == 10
    assert percentile([0, 100], 99) == pytest.approx(99)
    assert math.isnan(percentile([], 50))


def test_cpu_seconds_reads_utime_and_stime_after_a_name_with_spaces() -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S"] + ["0"] * 10 + [str(3 * ticks), str(ticks)] + ["0"] * 30
    stat = "1234 (python -m faust) " + " ".join(fields)
    assert cpu_seconds_from_stat(stat) == pytest.approx(4.0)


def test_peak_rss_reads_vmhwm_in_kilobytes() -> None:
    status = "Name:\tpython\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t 1024 kB\n"
    assert peak_rss_bytes_from_status(status) == 2048 * 1024
    assert peak_rss_bytes_from_status("Name:\tx\n") == 0


def test_own_process_figures_are_positive() -> None:
    assert cpu_seconds(os.getpid()) > 0
    assert peak_rss_bytes(os.getpid()) > 0
    assert cpu_seconds(2**22 + 12345) == 0.0  # no such pid


def test_sustained_window_uses_the_middle_of_the_drain() -> None:
    # 1000 events: a slow start (group join), then 100 events per 0.1 s, 1 CPU-second per 100 events.
    samples = [Sample(0.0, 0, 0.0), Sample(5.0, 0, 3.0)]
    samples += [Sample(5.0 + 0.1 * k, 100 * k, 3.0 + k) for k in range(1, 11)]
    rate, cpu_per_event = sustained_window(samples, 1000)
    assert rate == pytest.approx(1000.0)
    assert cpu_per_event == pytest.approx(0.01)


def test_sustained_window_falls_back_when_everything_arrived_at_once() -> None:
    samples = [Sample(1.0, 0, 0.0), Sample(1.02, 200, 0.5)]
    rate, _ = sustained_window(samples, 200)
    assert rate > 0
    assert sustained_window([], 10)[0] == 0.0


def _contender(name: str, rate: float, p99: float) -> ContenderResult:
    load = LoadResult.from_latencies(0.5, 100.0, 3, [p99 / 1000] * 3, cpu_s=0.3, own_max=200.0)
    return ContenderResult(
        name=name,  # type: ignore[arg-type]
        processes=1, drain_events=100, max_throughput_per_s=rate, cpu_s_per_1k=2.0, peak_rss_mb=100.0,
        peak_rss_total_mb=100.0, start_to_first_prediction_s=5.0, drain_seconds=1.0, loads=[load],
    )


def test_load_result_summarizes_latencies_in_ms() -> None:
    step = LoadResult.from_latencies(0.25, 50.0, 4, [0.01, 0.02, 0.03, 0.04], cpu_s=0.4)
    assert step.scored == 4
    assert step.p50_ms == pytest.approx(25.0)
    assert step.cpu_s_per_1k == pytest.approx(100.0)
    empty = LoadResult.from_latencies(0.25, 50.0, 0, [], cpu_s=0.0, note="skipped")
    assert math.isnan(empty.p99_ms) and math.isnan(empty.cpu_s_per_1k)


def test_ratios_and_json_form() -> None:
    report = BenchReport(
        started_at="2026-01-01T00:00:00+00:00", workers=1, partitions=4, smoke=True, machine={}, settings={},
        contenders=[
            _contender("naive", 100, 50), _contender("driftline", 1000, 100), _contender("raw-floor", 2000, 25),
        ],
    )
    ratios = report.ratios()
    assert ratios["driftline/naive"]["throughput"] == pytest.approx(10.0)
    assert ratios["driftline/raw-floor"]["throughput"] == pytest.approx(0.5)
    assert ratios["driftline/raw-floor"]["p99_at_50pct"] == pytest.approx(4.0)
    assert "driftline/best-quix" not in ratios  # no Quix variant ran
    assert report.peer_comparison() is None
    data = report.to_dict()
    assert {c["name"] for c in data["contenders"]} == {"naive", "driftline", "raw-floor"}
    assert "ratios" in data
    assert data["peer"] is None


def _measured(name: str, own_max: float, steps: list[tuple[float, float, float]]) -> ContenderResult:
    """A contender whose steps are (fraction of driftline's max, offered events/s, p99 ms); 0 offered: skipped."""
    loads = [
        LoadResult.from_latencies(fraction, offered, 10, [p99 / 1000] * 10, cpu_s=0.1, own_max=own_max)
        if p99 else LoadResult.from_latencies(fraction, offered, 0, [], 0.0, note="skipped", own_max=own_max)
        for fraction, offered, p99 in steps
    ]
    return ContenderResult(
        name=name,  # type: ignore[arg-type]
        processes=1, drain_events=100, max_throughput_per_s=own_max, cpu_s_per_1k=1000.0 / own_max,
        peak_rss_mb=300.0, peak_rss_total_mb=300.0, start_to_first_prediction_s=10.0, drain_seconds=1.0, loads=loads,
    )


def _peer_report() -> BenchReport:
    ours = _measured("driftline", 3000.0, [(0.25, 750.0, 60.0), (0.5, 1500.0, 200.0), (0.75, 2250.0, 900.0)])
    skipped = [(0.25, 750.0, 0.0), (0.5, 1500.0, 0.0), (0.75, 2250.0, 0.0)]
    # Too slow for every fixed step: each is measured at half its own maximum instead.
    quix = _measured("quix", 100.0, [*skipped, (50 / 3000, 50.0, 80.0)])
    tuned = _measured("quix-tuned", 250.0, [*skipped, (125 / 3000, 125.0, 400.0)])
    floor = _measured("raw-floor", 6000.0, [(0.25, 750.0, 50.0), (0.5, 1500.0, 100.0), (0.75, 2250.0, 450.0)])
    return BenchReport(started_at="2026-01-01T00:00:00+00:00", workers=1, partitions=4, smoke=False, machine={},
                       settings={}, contenders=[ours, floor, quix, tuned])


def test_load_records_its_share_of_the_contenders_own_max() -> None:
    step = LoadResult.from_latencies(0.04, 125.0, 10, [0.1] * 10, cpu_s=0.1, own_max=250.0)
    assert step.share_of_own_max == pytest.approx(0.5)
    assert math.isnan(LoadResult.from_latencies(0.5, 1.0, 1, [0.1], cpu_s=0.0).share_of_own_max)
    tuned = _peer_report().by_name()["quix-tuned"]
    assert tuned.load_at_own_share(0.5) is tuned.loads[-1]
    assert tuned.load_at_own_share(0.25) is None  # skipped steps never count


def test_best_quix_is_the_faster_variant_compared_at_half_of_each_ones_max() -> None:
    report = _peer_report()
    best = report.best_quix()
    assert best is not None and best.name == "quix-tuned"
    peer = report.peer_comparison()
    assert peer is not None
    assert peer.peer == "quix-tuned"
    assert peer.throughput_ratio == pytest.approx(12.0)
    assert (peer.driftline_offered_per_s, peer.peer_offered_per_s) == (1500.0, 125.0)
    assert (peer.driftline_p99_ms, peer.peer_p99_ms) == pytest.approx((200.0, 400.0))
    assert peer.p99_ratio == pytest.approx(0.5)
    ratios = report.ratios()
    assert ratios["driftline/best-quix"]["throughput"] == pytest.approx(12.0)
    assert ratios["driftline/best-quix"]["p99_at_50pct_of_own_max"] == pytest.approx(0.5)
    assert ratios["driftline/best-quix"]["cpu_s_per_1k"] == pytest.approx(250.0 / 3000.0)
    # The raw floor's ratios stay at equal offered load, as before.
    assert ratios["driftline/raw-floor"]["throughput"] == pytest.approx(0.5)
    assert ratios["driftline/raw-floor"]["cpu_s_per_1k"] == pytest.approx(2.0)
    assert ratios["driftline/raw-floor"]["p99_at_50pct"] == pytest.approx(2.0)
    data = report.to_dict()
    assert data["peer"]["peer"] == "quix-tuned"
    assert data["peer"]["p99_ratio"] == pytest.approx(0.5)
    assert data["contenders"][3]["loads"][-1]["share_of_own_max"] == pytest.approx(0.5)


def test_peer_without_a_latency_step_compares_throughput_only() -> None:
    report = _peer_report()
    tuned = report.by_name()["quix-tuned"]
    tuned.loads = tuned.loads[:-1]
    peer = report.peer_comparison()
    assert peer is not None
    assert peer.throughput_ratio == pytest.approx(12.0)
    assert math.isnan(peer.peer_p99_ms) and math.isnan(peer.p99_ratio)
