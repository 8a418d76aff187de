"""One benchmark run: the contenders on the same broker, Redis, feature data, model and event stream.

The contenders: naive (a per-event Faust agent), driftline, the raw floor (a bare asyncio loop), and
the peers a user would pick instead of driftline, ``quix`` and ``quix-tuned`` (Quix Streams
applications, ``benchmarks/quix_app.py``). For each contender, on fresh topics:

1. drain: ``drain_events`` events (``peer_drain_events`` for the Quix peers, which are far slower)
   are published before the contender starts; the time to the first prediction is its start-up
   cost, the rate over the middle 80% of the drain its maximum sustained throughput, and the CPU it
   used over that window its cost per event at saturation;
2. latency: events are offered at 25%, 50% and 75% of driftline's maximum, ``phase_seconds`` each,
   and end-to-end latency (send -> prediction read back) is summarized per step. A step above a
   contender's own maximum would only measure a growing queue, so it is skipped and said so. The
   Quix peers, and any contender slower than driftline, are also measured at 50% of their own
   maximum, so their p99 can be compared with driftline's at the same share of each one's maximum.

driftline runs first because its maximum sets the offered loads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from driftline.errors import DriftlineError
from driftline.settings import ProducerSettings, TrainingSettings, WorkerSettings
from driftline_tools.bench.load import Collector, Publisher, event_pool
from driftline_tools.bench.measure import (
    PEER_SHARE,
    QUIX_VARIANTS,
    BenchReport,
    ContenderName,
    ContenderResult,
    LoadResult,
    Sample,
    cpu_seconds,
    peak_rss_bytes,
    sustained_window,
)
from driftline_tools.bench.plot import write_plot
from driftline_tools.runner import stop_with_parent
from driftline_tools.scenarios import World, world
from feature_repo.redis_reader import layout_from_store

logger = logging.getLogger(__name__)

LOAD_FRACTIONS = (0.25, 0.5, 0.75)
#: The load's producer linger: short, so latency measures the contenders rather than the load's own
#: batching, and long enough for tens of records per batch at the drain (a run stays far below the
#: embedded broker's batch limit: each contender has its own topics for under a minute of load).
BENCH_PRODUCER_LINGER_MS = 5
#: A step is run only if it offers at most this share of the contender's own maximum.
MAX_SHARE_OF_OWN_MAX = 0.9
#: The Quix peers' application: outside the installed packages, run from the source tree by path.
QUIX_APP = Path(__file__).resolve().parents[2] / "benchmarks" / "quix_app.py"


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one run."""

    workers: int = 1
    drain_events: int = 6000
    #: The Quix peers' backlog: at a few hundred events/s, 3,000 take 10-30 s to drain.
    peer_drain_events: int = 3000
    phase_seconds: float = 15.0
    pool_size: int = 5000
    drain_timeout_s: float = 600.0
    #: Pause between drain and latency steps when several processes share a group: a process that
    #: joined after the backlog was gone would otherwise rebalance inside the first step.
    settle_s: float = 8.0
    smoke: bool = False
    #: The contenders besides driftline (always run: it is the reference load); all of them by default.
    others: tuple[ContenderName, ...] = ("naive", "raw-floor", *QUIX_VARIANTS)

    @classmethod
    def smoke_run(cls, workers: int = 1) -> BenchConfig:
        """Tiny counts for CI: about two minutes for all five contenders, figures meaningless."""
        return cls(workers=workers, drain_events=200, peer_drain_events=100, phase_seconds=1.0, pool_size=400,
                   drain_timeout_s=90.0, settle_s=2.0, smoke=True)

    @property
    def partitions(self) -> int:
        """Events-topic partitions: at least 4, and two per worker process."""
        return max(4, 2 * self.workers)


class Processes:
    """The worker processes of one contender."""

    def __init__(self, stop: Callable[[], None], pids: list[int]) -> None:
        self._stop = stop
        self.pids = pids

    def cpu(self) -> float:
        """CPU seconds used by all of them so far."""
        return sum(cpu_seconds(pid) for pid in self.pids)

    def peak_rss(self) -> tuple[int, int]:
        """Largest and summed VmHWM, bytes."""
        values = [peak_rss_bytes(pid) for pid in self.pids]
        return max(values, default=0), sum(values)

    def stop(self) -> None:
        """Stop them all."""
        self._stop()


def _start_driftline(served: World, env: dict[str, str], count: int) -> Processes:
    workers = [served.start_worker(env) for _ in range(count)]
    return Processes(served.stop_workers, [w.popen.pid for w in workers if w.popen is not None])


def _start_module(module: str, args: list[str]) -> Callable[[World, dict[str, str], int], Processes]:
    return _start_command(module.rsplit(".", 1)[-1], ["-m", module, *args])


def _start_command(label: str, argv: list[str]) -> Callable[[World, dict[str, str], int], Processes]:
    """Start ``python *argv`` ``count`` times with the contender's environment, logging to the home."""

    def start(served: World, env: dict[str, str], count: int) -> Processes:
        popens: list[subprocess.Popen[bytes]] = []
        for i in range(count):
            log = served.home / f"{label}-{env['DRIFTLINE_WORKER_GROUP']}-{i}.log"
            with log.open("ab") as handle:
                popens.append(subprocess.Popen(
                    [sys.executable, *argv], env={**os.environ, **env},
                    stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    preexec_fn=stop_with_parent,
                ))

        def stop() -> None:
            for popen in popens:
                if popen.poll() is None:
                    popen.send_signal(signal.SIGTERM)
            for popen in popens:
                try:
                    popen.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    popen.kill()
                    popen.wait(timeout=10)

        return Processes(stop, [p.pid for p in popens])

    return start


def _wait_for(collector: Collector, ids: list[str], timeout_s: float, procs: Processes | None = None,
              samples: list[Sample] | None = None) -> int:
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = collector.count(ids)
        if samples is not None and procs is not None:
            samples.append(Sample(time.time(), done, procs.cpu()))
        if done >= len(ids):
            break
        time.sleep(0.02)
    return done


def quix_unavailable() -> str | None:
    """Why the Quix peers cannot run here (None: they can)."""
    import importlib.util

    if not QUIX_APP.is_file():
        return f"{QUIX_APP.name} is not beside the installed package (run from a source checkout)"
    if importlib.util.find_spec("quixstreams") is None:
        return "quixstreams is not installed (pip install 'driftline[bench]')"
    return None


def run_contender(
    served: World, name: ContenderName, start: Callable[[World, dict[str, str], int], Processes],
    config: BenchConfig, pool: list[dict[str, object]], reference_max: float | None,
    drain_events: int | None = None,
) -> ContenderResult:
    """Drain, then latency steps, for one contender on its own topics."""
    from producers.admin import ensure_topics

    env = {**served.topic_env(), "DRIFTLINE_TOPIC_PARTITIONS": str(config.partitions),
           "DRIFTLINE_LOG_LEVEL": "WARNING", "DRIFTLINE_PRODUCER_LINGER_MS": str(BENCH_PRODUCER_LINGER_MS)}
    settings = ProducerSettings(**env)  # type: ignore[arg-type]
    list(ensure_topics(settings))
    collector = Collector(settings)
    collector.start()
    collector.wait_ready()
    publisher = Publisher(settings, pool)
    try:
        drain_ids = publisher.burst("drain", drain_events or config.drain_events)
        logger.info("%s: %d events waiting; starting %d process(es)", name, len(drain_ids), config.workers)
        spawned_at = time.time()
        procs = start(served, env, config.workers)
        try:
            samples: list[Sample] = []
            done = _wait_for(collector, drain_ids, config.drain_timeout_s, procs, samples)
            if done == 0:
                raise DriftlineError(f"{name} produced no prediction within {config.drain_timeout_s:.0f}s "
                                     f"(logs in {served.home})")
            first = min(collector.received_at[i] for i in drain_ids if i in collector.received_at)
            last = max(collector.received_at[i] for i in drain_ids if i in collector.received_at)
            throughput, cpu_per_event = sustained_window(samples, done)
            logger.info("%s: %d/%d drained, %.0f events/s sustained, first prediction after %.2fs",
                        name, done, len(drain_ids), throughput, first - spawned_at)
            result = ContenderResult(
                name=name, processes=config.workers, drain_events=done, max_throughput_per_s=throughput,
                cpu_s_per_1k=1000.0 * cpu_per_event, peak_rss_mb=0.0, peak_rss_total_mb=0.0,
                start_to_first_prediction_s=first - spawned_at, drain_seconds=last - first,
            )
            if config.workers > 1:
                time.sleep(config.settle_s)
            reference = reference_max if reference_max is not None else throughput
            for fraction in LOAD_FRACTIONS:
                rate = fraction * reference
                if rate > MAX_SHARE_OF_OWN_MAX * throughput:
                    result.loads.append(LoadResult.from_latencies(
                        fraction, rate, 0, [], 0.0, note=f"skipped: above {MAX_SHARE_OF_OWN_MAX:.0%} of its max",
                        own_max=throughput))
                    continue
                result.loads.append(_latency_step(collector, publisher, procs, fraction, rate, "", config,
                                                  throughput))
            if (name in QUIX_VARIANTS or throughput < reference) and result.load_at_own_share(PEER_SHARE) is None:
                # A peer, or slower than driftline: also measure it at half its own maximum, the load its p99 is
                # compared at with driftline's at half of driftline's (and the only latency figure of a
                # contender too slow for every fixed step).
                result.loads.append(_latency_step(
                    collector, publisher, procs, PEER_SHARE * throughput / reference, PEER_SHARE * throughput,
                    f"{PEER_SHARE:.0%} of its own max", config, throughput))
            biggest, total = procs.peak_rss()
            result.peak_rss_mb, result.peak_rss_total_mb = biggest / 2**20, total / 2**20
            result.duplicates = collector.duplicates
        finally:
            procs.stop()
    finally:
        publisher.close()
        collector.stop()
    return result


def _latency_step(collector: Collector, publisher: Publisher, procs: Processes, fraction: float, rate: float,
                  note: str, config: BenchConfig, own_max: float) -> LoadResult:
    tag = f"load{round(fraction * 100)}"
    cpu_before = procs.cpu()
    ids = publisher.paced(tag, rate, config.phase_seconds)
    _wait_for(collector, ids, config.phase_seconds + 30.0)
    cpu_used = procs.cpu() - cpu_before
    latencies = [collector.received_at[i] - publisher.sent_at[i] for i in ids if i in collector.received_at]
    step = LoadResult.from_latencies(fraction, rate, len(ids), latencies, cpu_used, note=note, own_max=own_max)
    logger.info("  %.0f%% = %.0f events/s: p50 %.1f ms, p99 %.1f ms (%d/%d)", fraction * 100, rate,
                step.p50_ms, step.p99_ms, step.scored, step.sent)
    return step


def _machine() -> dict[str, object]:
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform()}


def run_bench(config: BenchConfig, out_dir: Path, home: Path | None = None) -> tuple[BenchReport, Path, Path]:
    """Run every contender in one throwaway world; write JSON and PNG into ``out_dir``.

    The Quix peers are left out, with a warning, where quixstreams or ``benchmarks/`` is missing.
    """
    from driftline.registry import ModelRegistry
    from feature_repo.store import feature_store

    started = datetime.now(UTC)
    with world(home) as served:
        training = TrainingSettings(**served.env)  # type: ignore[arg-type]
        metadata = ModelRegistry(training).load(training.model_name).metadata
        layout_path = served.home / "bench-layout.json"
        layout_path.write_bytes(layout_from_store(feature_store(training), metadata).to_json())
        pool = event_pool(ProducerSettings(**served.env), config.pool_size)  # type: ignore[arg-type]
        starters: dict[ContenderName, Callable[[World, dict[str, str], int], Processes]] = {
            "driftline": _start_driftline,
            "naive": _start_module("driftline_tools.bench.naive_app", []),
            "raw-floor": _start_module("driftline_tools.bench.raw_floor", ["--layout", str(layout_path)]),
        }
        peers = tuple(name for name in QUIX_VARIANTS if name in config.others)
        unavailable = quix_unavailable() if peers else None
        if unavailable is not None:
            logger.warning("the Quix peers are left out: %s", unavailable)
            peers = ()
        for variant in peers:
            starters[variant] = _start_command(variant, [str(QUIX_APP), "--variant", variant])
        ours = run_contender(served, "driftline", starters["driftline"], config, pool, None)
        results = {"driftline": ours}
        for name in (*(n for n in ("naive", "raw-floor") if n in config.others), *peers):
            drain = config.peer_drain_events if name in QUIX_VARIANTS else None
            results[name] = run_contender(served, name, starters[name], config, pool, ours.max_throughput_per_s,
                                          drain)
        worker = WorkerSettings(**served.env)  # type: ignore[arg-type]
    report = BenchReport(
        started_at=started.isoformat(), workers=config.workers, partitions=config.partitions, smoke=config.smoke,
        machine=_machine(),
        settings={"batch_size": str(worker.batch_size), "batch_window_s": str(worker.batch_window_s),
                  "fetch_max_wait_ms": str(worker.fetch_max_wait_ms),
                  "producer_linger_ms": str(BENCH_PRODUCER_LINGER_MS), "model_threads": str(worker.model_threads),
                  "drain_events": str(config.drain_events),
                  "peer_drain_events": str(config.peer_drain_events), "phase_seconds": str(config.phase_seconds)},
        contenders=[results[name] for name in ("naive", "driftline", "raw-floor", *peers) if name in results],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{started.strftime('%Y%m%dT%H%M%SZ')}-w{config.workers}{'-smoke' if config.smoke else ''}"
    json_path = out_dir / f"{stem}.json"
    json_path.write_bytes(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2))
    title = f"driftline bench: {config.workers} process(es) per contender, {config.partitions} partitions"
    png_path = write_plot(out_dir / f"{stem}.png", report.contenders, title)
    return report, json_path, png_path
