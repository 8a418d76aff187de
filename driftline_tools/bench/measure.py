"""Pure arithmetic of the benchmark: percentiles, throughput windows, /proc parsing and the results."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

ContenderName = Literal["naive", "driftline", "raw-floor", "quix", "quix-tuned"]
CONTENDERS: tuple[ContenderName, ...] = ("naive", "driftline", "raw-floor", "quix", "quix-tuned")
#: The peers a user would pick instead of driftline (benchmarks/quix_app.py); the fastest is compared.
QUIX_VARIANTS: tuple[ContenderName, ...] = ("quix", "quix-tuned")
#: The load at which a peer's p99 is compared with driftline's: half of each one's own maximum.
PEER_SHARE = 0.5

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def cpu_seconds_from_stat(stat: str) -> float:
    """CPU seconds (utime + stime) of a ``/proc/<pid>/stat`` line, all threads of the process."""
    # Fields after the parenthesised command name (which may hold spaces): state is field 3,
    # utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after the name.
    rest = stat.rpartition(")")[2].split()
    return (int(rest[11]) + int(rest[12])) / _CLOCK_TICKS


def peak_rss_bytes_from_status(status: str) -> int:
    """VmHWM (peak resident set) of a ``/proc/<pid>/status`` page, in bytes; 0 when absent."""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            parts = line.split()
            return int(parts[1]) * 1024  # the kernel reports kB
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by ``pid`` (0 when it is gone)."""
    try:
        return cpu_seconds_from_stat(Path(f"/proc/{pid}/stat").read_text())
    except OSError:
        return 0.0


def peak_rss_bytes(pid: int) -> int:
    """Peak RSS of ``pid`` so far (0 when it is gone)."""
    try:
        return peak_rss_bytes_from_status(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return 0


@dataclass(frozen=True, slots=True)
class Sample:
    """At wall time ``at``: predictions seen so far and CPU seconds the contender had used."""

    at: float
    done: int
    cpu_s: float


def sustained_window(samples: Sequence[Sample], total: int, low: float = 0.1, high: float = 0.9) -> tuple[
    float, float
]:
    """Throughput (events/s) and CPU seconds per event between ``low`` and ``high`` of ``total`` done.

    The middle of a drain leaves out the start (group join, first fetch) and the tail (the last
    partial batches), so it is the rate the contender sustains. Falls back to first-to-last sample
    when the window is too short to time (a drain that finished between two samples).
    """
    if total <= 0 or not samples:
        return 0.0, math.nan
    start = next((s for s in samples if s.done >= low * total and s.done > 0), samples[0])
    end = next((s for s in samples if s.done >= high * total), samples[-1])
    if end.at - start.at < 0.05 or end.done <= start.done:
        first = next((s for s in samples if s.done > 0), samples[0])
        start, end = first, samples[-1]
        span = max(end.at - start.at, 0.05)
        done = max(end.done, 1)
        return done / span, (end.cpu_s - start.cpu_s) / done
    events = end.done - start.done
    return events / (end.at - start.at), (end.cpu_s - start.cpu_s) / events


@dataclass
class LoadResult:
    """Latency at one offered load."""

    fraction: float  # of driftline's max throughput
    offered_per_s: float
    sent: int
    scored: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cpu_s_per_1k: float
    note: str = ""
    share_of_own_max: float = math.nan  # offered / the contender's own max throughput

    @classmethod
    def from_latencies(cls, fraction: float, offered: float, sent: int, latencies_s: Sequence[float],
                       cpu_s: float, note: str = "", own_max: float = math.nan) -> LoadResult:
        """Summarize one load step."""
        ms = [x * 1000.0 for x in latencies_s]
        return cls(
            fraction=fraction, offered_per_s=offered, sent=sent, scored=len(ms),
            p50_ms=percentile(ms, 50), p95_ms=percentile(ms, 95), p99_ms=percentile(ms, 99),
            cpu_s_per_1k=1000.0 * cpu_s / len(ms) if ms else math.nan, note=note,
            share_of_own_max=_ratio(offered, own_max),
        )

    @property
    def measured(self) -> bool:
        """True when the step ran and something was scored (a skipped step has no latency)."""
        return self.scored > 0


@dataclass
class ContenderResult:
    """Every figure of one contender."""

    name: ContenderName
    processes: int
    drain_events: int
    max_throughput_per_s: float
    cpu_s_per_1k: float  # at saturation, over the sustained window of the drain
    peak_rss_mb: float  # largest VmHWM of its processes
    peak_rss_total_mb: float  # sum over its processes
    start_to_first_prediction_s: float
    drain_seconds: float
    loads: list[LoadResult] = field(default_factory=list)
    duplicates: int = 0

    def load_at_own_share(self, share: float) -> LoadResult | None:
        """The measured step offered at ``share`` of this contender's own maximum (within 1%), if any."""
        return next((x for x in self.loads if x.measured and abs(x.share_of_own_max - share) <= 0.01 * share),
                    None)


@dataclass(frozen=True)
class PeerComparison:
    """driftline against the fastest Quix variant, each at the same share of its own maximum."""

    peer: ContenderName
    throughput_ratio: float  # driftline / peer
    share_of_own_max: float
    driftline_offered_per_s: float
    peer_offered_per_s: float
    driftline_p99_ms: float
    peer_p99_ms: float

    @property
    def p99_ratio(self) -> float:
        """The p99 ratio, driftline over the peer, each at ``share_of_own_max`` of its own maximum."""
        return _ratio(self.driftline_p99_ms, self.peer_p99_ms)


@dataclass
class BenchReport:
    """One benchmark run."""

    started_at: str
    workers: int
    partitions: int
    smoke: bool
    machine: dict[str, Any]
    settings: dict[str, str]
    contenders: list[ContenderResult]

    def by_name(self) -> dict[str, ContenderResult]:
        """Results keyed by contender name."""
        return {c.name: c for c in self.contenders}

    def best_quix(self) -> ContenderResult | None:
        """The Quix variant with the highest maximum throughput, if any ran."""
        peers = [c for c in self.contenders if c.name in QUIX_VARIANTS]
        return max(peers, key=lambda c: c.max_throughput_per_s, default=None)

    def peer_comparison(self, share: float = PEER_SHARE) -> PeerComparison | None:
        """How driftline compares with the best Quix variant: throughput, and p99 at ``share`` of each own max."""
        ours, peer = self.by_name().get("driftline"), self.best_quix()
        if ours is None or peer is None:
            return None
        mine, theirs = ours.load_at_own_share(share), peer.load_at_own_share(share)
        return PeerComparison(
            peer=peer.name, throughput_ratio=_ratio(ours.max_throughput_per_s, peer.max_throughput_per_s),
            share_of_own_max=share,
            driftline_offered_per_s=mine.offered_per_s if mine else math.nan,
            peer_offered_per_s=theirs.offered_per_s if theirs else math.nan,
            driftline_p99_ms=mine.p99_ms if mine else math.nan,
            peer_p99_ms=theirs.p99_ms if theirs else math.nan,
        )

    def ratios(self) -> dict[str, dict[str, float]]:
        """Ratios of driftline's figures to naive's, the raw floor's and the best Quix variant's.

        Against the best Quix variant, p99 is compared at half of each one's own maximum
        (``p99_at_50pct_of_own_max``): a Quix application cannot take any of the loads driftline is
        measured at, so "at equal load" means at the same share of what each can sustain.
        """
        results = self.by_name()
        ours = results.get("driftline")
        out: dict[str, dict[str, float]] = {}
        if ours is None:
            return out
        for other_name, label in (("naive", "driftline/naive"), ("raw-floor", "driftline/raw-floor")):
            other = results.get(other_name)
            if other is None:
                continue
            out[label] = {
                "throughput": _ratio(ours.max_throughput_per_s, other.max_throughput_per_s),
                "cpu_s_per_1k": _ratio(ours.cpu_s_per_1k, other.cpu_s_per_1k),
                "peak_rss": _ratio(ours.peak_rss_mb, other.peak_rss_mb),
                "start_to_first_prediction": _ratio(ours.start_to_first_prediction_s,
                                                    other.start_to_first_prediction_s),
            }
            for mine in ours.loads:
                theirs = next((x for x in other.loads if x.fraction == mine.fraction), None)
                if theirs is not None:
                    out[label][f"p99_at_{int(mine.fraction * 100)}pct"] = _ratio(mine.p99_ms, theirs.p99_ms)
        peer, best = self.peer_comparison(), self.best_quix()
        if peer is not None and best is not None:
            out["driftline/best-quix"] = {
                "throughput": peer.throughput_ratio,
                "cpu_s_per_1k": _ratio(ours.cpu_s_per_1k, best.cpu_s_per_1k),
                "peak_rss": _ratio(ours.peak_rss_mb, best.peak_rss_mb),
                "start_to_first_prediction": _ratio(ours.start_to_first_prediction_s,
                                                    best.start_to_first_prediction_s),
                f"p99_at_{round(peer.share_of_own_max * 100)}pct_of_own_max": peer.p99_ratio,
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, ratios included."""
        data = asdict(self)
        data["ratios"] = self.ratios()
        peer = self.peer_comparison()
        data["peer"] = None if peer is None else {**asdict(peer), "p99_ratio": peer.p99_ratio}
        return data


def _ratio(a: float, b: float) -> float:
    if not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b
