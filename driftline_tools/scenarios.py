"""Fault scenarios on real parts, with figures: sent, scored, dead-lettered, duplicated, lost.

Each scenario gets its own throwaway broker and Redis on free loopback ports (so pausing or
stopping them harms nothing else), a small world served from Feast, fresh topics, and real
``driftline worker`` child processes. A publisher thread sends a steady stream with some invalid
events mixed in while the fault happens; afterwards every output topic is read from the start and
each sent event is accounted for. ``driftline faults`` prints the table; the integration tests
run the same scenarios and require ``lost == 0``.
"""

from __future__ import annotations

import logging
import math
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import orjson

from driftline.contracts import utc_now
from driftline.errors import ConfigError, DriftlineError
from driftline.kafka import embedded_partition_limit, projected_batches
from driftline.settings import ProducerSettings, TrainingSettings, WorkerSettings
from driftline_tools.runner import WorkerProcess, metric_value
from driftline_tools.stack import BrokerProcess, RedisProcess, free_port, rss_bytes

logger = logging.getLogger(__name__)

#: A world small enough to build in about 20 s, large enough for a useful model.
SMALL_WORLD = {
    "DRIFTLINE_SEED": "11",
    "DRIFTLINE_N_CUSTOMERS": "300",
    "DRIFTLINE_N_MERCHANTS": "60",
    "DRIFTLINE_N_TRANSACTIONS": "8000",
    "DRIFTLINE_HISTORY_DAYS": "20",
}


@dataclass(frozen=True)
class ScenarioResult:
    """How every event sent during a scenario came out."""

    name: str
    sent: int
    scored: int  # distinct valid events with at least one prediction
    dead_lettered: int  # distinct invalid events with at least one dead letter
    duplicated: int  # extra copies of predictions or dead letters (same prediction_id / source offset)
    lost: int  # sent events with neither
    degraded: int = 0  # predictions scored without store features
    seconds: float = 0.0
    note: str = ""

    def row(self) -> str:
        """One Markdown table row."""
        return (
            f"| {self.name} | {self.sent} | {self.scored} | {self.dead_lettered} | {self.duplicated} | "
            f"{self.lost} | {self.degraded} | {self.note} |"
        )


@dataclass
class World:
    """Throwaway services and a served model in a temporary folder."""

    home: Path
    broker: BrokerProcess
    redis: RedisProcess
    env: dict[str, str]
    workers: list[WorkerProcess] = field(default_factory=list)

    def topic_env(self) -> dict[str, str]:
        """Fresh topics, join keys and consumer group for one scenario."""
        unique = uuid.uuid4().hex[:8]
        return {
            **self.env,
            "DRIFTLINE_EVENTS_TOPIC": f"events-{unique}",
            "DRIFTLINE_PREDICTIONS_TOPIC": f"predictions-{unique}",
            "DRIFTLINE_DEAD_LETTER_TOPIC": f"dead-letters-{unique}",
            "DRIFTLINE_LABELS_TOPIC": f"labels-{unique}",
            "DRIFTLINE_JOIN_PREFIX": f"driftline:join:{unique}:",
            "DRIFTLINE_WORKER_GROUP": f"worker-{unique}",
        }

    def start_worker(self, env: dict[str, str], **extra: str) -> WorkerProcess:
        """Start a worker on ``env``'s topics with its own metrics port."""
        worker_env = {**env, "DRIFTLINE_METRICS_PORT": str(free_port()), **extra}
        worker = WorkerProcess(worker_env, self.home / f"worker-{len(self.workers)}.log").start()
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        """Stop every worker this world started."""
        for worker in self.workers:
            worker.stop(timeout_s=20)
        self.workers.clear()


@contextmanager
def world(home: Path | None = None) -> Iterator[World]:
    """Start a broker and Redis, build a small served world in Feast, and clean up afterwards."""
    from feature_repo.store import apply, materialize
    from training.data import generate
    from training.train import run as train

    own = home is None
    folder = Path(tempfile.mkdtemp(prefix="driftline-faults-")) if home is None else home
    broker = BrokerProcess(folder / "services").start()
    redis = RedisProcess(folder / "services").start()
    try:
        env = {
            "DRIFTLINE_HOME": str(folder),
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "REDIS_URL": redis.url,
            **SMALL_WORLD,
        }
        settings = TrainingSettings(**env)  # type: ignore[arg-type]
        generate(settings)
        apply(settings)
        materialize(settings)
        train(settings)
        served = World(home=folder, broker=broker, redis=redis, env=env)
        try:
            yield served
        finally:
            served.stop_workers()
    finally:
        broker.stop()
        redis.stop()
        if own:
            shutil.rmtree(folder, ignore_errors=True)


class Publisher(threading.Thread):
    """Sends ``count`` events at ``rate`` per second (every ``invalid_every``-th one invalid)."""

    def __init__(self, env: dict[str, str], count: int, rate: float, invalid_every: int = 50) -> None:
        super().__init__(daemon=True)
        self.settings = ProducerSettings(**env)  # type: ignore[arg-type]
        self.count, self.rate, self.invalid_every = count, rate, invalid_every
        self.valid_ids: list[str] = []
        self.invalid_payloads: list[bytes] = []
        self.errors: list[str] = []

    def run(self) -> None:
        """Publish, then wait for every acknowledgement (retrying through broker pauses)."""
        from producers.generator import build_world, event_stream, invalid_events
        from producers.kafka_clients import create_producer

        world = build_world(self.settings.seed, self.settings.n_customers, self.settings.n_merchants)
        rng = np.random.default_rng()
        events = event_stream(world, self.count, rng, start_time=utc_now(), rate=max(self.rate, 1.0))
        bad = iter(invalid_events(rng, self.count // self.invalid_every + 1 if self.invalid_every else 0))
        producer = create_producer(
            self.settings, retries=2_000_000_000, delivery_timeout_ms=180_000, request_timeout_ms=15_000
        )
        started = time.monotonic()
        try:
            for i in range(self.count):
                delay = started + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if self.invalid_every and i % self.invalid_every == self.invalid_every - 1:
                    payload = next(bad).payload
                    self.invalid_payloads.append(payload)
                    producer.send(self.settings.events_topic, value=payload)
                    continue
                event = next(events)
                event["event_time"] = utc_now().isoformat(timespec="milliseconds").replace("+00:00", "Z")
                self.valid_ids.append(str(event["event_id"]))
                producer.send(self.settings.events_topic, key=str(event["customer_id"]).encode(),
                              value=orjson.dumps(event))
            producer.flush(timeout=180)
        except Exception as exc:  # reported in the result, never silently
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            producer.close(timeout=10)

    @property
    def sent(self) -> int:
        """Events handed to the producer."""
        return len(self.valid_ids) + len(self.invalid_payloads)


def account(env: dict[str, str], publisher: Publisher, name: str, seconds: float, timeout_s: float = 120,
            note: str = "") -> ScenarioResult:
    """Read the output topics until every sent event is accounted for (or ``timeout_s``)."""
    from driftline.contracts import DeadLetter, Prediction
    from producers.collect import Collected, collect

    settings = ProducerSettings(**env)  # type: ignore[arg-type]
    want_ids = set(publisher.valid_ids)
    want_bad = Counter(publisher.invalid_payloads)

    seen: set[str] = set()
    parsed = 0

    def done(c: Collected) -> bool:
        nonlocal parsed
        values = c.values(settings.predictions_topic)
        seen.update(orjson.loads(v)["event_id"] for v in values[parsed:])  # only what arrived since the last call
        parsed = len(values)
        return want_ids <= seen and len(c.values(settings.dead_letter_topic)) >= sum(want_bad.values())

    got = collect(settings, [settings.predictions_topic, settings.dead_letter_topic], done, timeout_s, settle_s=3)
    predictions = [Prediction.model_validate_json(v) for v in got.values(settings.predictions_topic)]
    letters = [DeadLetter.model_validate_json(v) for v in got.values(settings.dead_letter_topic)]
    scored_ids = Counter(p.prediction_id for p in predictions)
    letter_keys = Counter((d.source_partition, d.source_offset) for d in letters)
    predicted_events = {p.event_id for p in predictions}
    dead_payloads = Counter(d.original_value for d in letters)
    lost_valid = len(want_ids - predicted_events)
    lost_invalid = sum(max(n - dead_payloads.get(payload, 0), 0) for payload, n in want_bad.items())
    duplicated = sum(n - 1 for n in scored_ids.values()) + sum(n - 1 for n in letter_keys.values())
    if publisher.errors:
        note = f"{note}; publisher: {publisher.errors[0]}".strip("; ")
    return ScenarioResult(
        name=name,
        sent=publisher.sent,
        scored=len(want_ids & predicted_events),
        dead_lettered=sum(min(n, dead_payloads.get(payload, 0)) for payload, n in want_bad.items()),
        duplicated=duplicated,
        lost=lost_valid + lost_invalid,
        degraded=sum(p.degraded for p in predictions),
        seconds=seconds,
        note=note,
    )


Fault = Callable[[World, dict[str, str], list[WorkerProcess]], str]


def run_scenario(served: World, name: str, fault: Fault, count: int = 2000, rate: float = 200.0,
                 fault_after_s: float = 3.0, worker_env: dict[str, str] | None = None) -> ScenarioResult:
    """Start a worker, stream ``count`` events, apply ``fault`` mid-stream, and account for everything."""
    env = served.topic_env()
    from producers.admin import ensure_topics

    list(ensure_topics(ProducerSettings(**env)))  # type: ignore[arg-type]
    env = {**env, **(worker_env or {})}  # every worker of the scenario gets the same settings
    first = served.start_worker(env)
    first.wait_assigned()
    started = time.monotonic()
    publisher = Publisher(env, count, rate)
    publisher.start()
    time.sleep(fault_after_s)
    note = fault(served, env, [first])
    publisher.join(timeout=count / rate + 240)
    if publisher.is_alive():
        raise DriftlineError(f"scenario {name}: the publisher did not finish")
    result = account(env, publisher, name, time.monotonic() - started, note=note)
    served.stop_workers()
    logger.info("%s", result)
    return result


# --- the faults ---------------------------------------------------------------------------------


def kill_and_restart(served: World, env: dict[str, str], workers: list[WorkerProcess]) -> str:
    """SIGKILL the worker mid-stream, then start a new one in the same group."""
    workers[0].stop(sig=signal.SIGKILL, timeout_s=10)
    time.sleep(1.0)
    served.start_worker(env).wait_assigned()
    return "worker SIGKILLed mid-stream, new worker started"


def graceful_stop_and_restart(served: World, env: dict[str, str], workers: list[WorkerProcess]) -> str:
    """SIGTERM the worker mid-stream (it finishes its batch and commits), then start a new one."""
    code = workers[0].stop(sig=signal.SIGTERM, timeout_s=30)
    served.start_worker(env).wait_assigned()
    return f"SIGTERM mid-stream, exit code {code}, new worker started"


def join_and_leave(served: World, env: dict[str, str], workers: list[WorkerProcess]) -> str:
    """A second worker joins (rebalance), then the first one leaves (rebalance again)."""
    second = served.start_worker(env)
    second.wait_assigned()
    time.sleep(2.0)
    workers[0].stop(sig=signal.SIGTERM, timeout_s=30)
    return "second worker joined, first left"


def pause_redis(served: World, env: dict[str, str], workers: list[WorkerProcess], seconds: float = 5.0) -> str:
    """Freeze Redis (SIGSTOP) for ``seconds``: reads time out, events are scored degraded."""
    served.redis.pause()
    time.sleep(seconds)
    served.redis.resume()
    time.sleep(2.0)
    page = workers[0].scrape()
    failures = metric_value(page, "driftline_feature_read_failures_total")
    return f"Redis paused {seconds:.0f}s; {failures:.0f} batch reads timed out"


def pause_broker(served: World, env: dict[str, str], workers: list[WorkerProcess], seconds: float = 8.0) -> str:
    """Freeze the broker (SIGSTOP) for ``seconds``; worker and producer recover without a restart."""
    served.broker.pause()
    time.sleep(seconds)
    served.broker.resume()
    return f"broker paused {seconds:.0f}s"


def pause_broker_past_send_timeout(
    served: World, env: dict[str, str], workers: list[WorkerProcess], seconds: float = 8.0
) -> str:
    """Freeze the broker for longer than the worker's send timeout: sends fail, are retried and held.

    A send fails only if one is in flight when the broker stops; between batches the worker is only
    fetching. So the broker is frozen again (4 s each time, at most 4 more times) until one did.
    """
    pauses = 0
    failed = 0.0
    while pauses == 0 or (failed == 0 and pauses < 5):
        pause_broker(served, env, workers, seconds if pauses == 0 else 4.0)
        pauses += 1
        time.sleep(3.0)
        failed = metric_value(workers[0].scrape(), "driftline_output_send_failures_total")
    blocked = metric_value(workers[0].scrape(), "driftline_output_blocked")
    return (f"broker paused {seconds:.0f}s ({pauses} pause{'s' if pauses > 1 else ''}); {failed:.0f} output sends "
            f"failed and were retried; blocked now: {blocked:.0f}")


HUGE_INPUT_BYTES = (900_000, 2_000_000, 5_000_000)


def huge_inputs(served: World, env: dict[str, str], workers: list[WorkerProcess]) -> str:
    """Send 0.9, 2 and 5 MB messages into the stream; each must come out as one dead letter that fits."""
    import hashlib

    from driftline.contracts import DeadLetter
    from producers.collect import Collected, collect
    from producers.kafka_clients import create_producer

    settings = ProducerSettings(**env)  # type: ignore[arg-type]
    payloads = {
        hashlib.sha256(body).hexdigest(): body
        for size in HUGE_INPUT_BYTES
        for body in [b'{"event_id":"huge-%d","pad":"%s"}' % (size, b"x" * size)]
    }
    producer = create_producer(settings, max_request_size=6_000_000)
    unsent: list[str] = []
    try:
        for body in payloads.values():
            # Each send is confirmed (and retried twice): an input the broker never took is the harness's
            # failure, not the worker's, and the note must say which it was.
            for attempt in range(3):
                try:
                    producer.send(settings.events_topic, key=b"huge", value=body).get(timeout=60)
                    break
                except Exception as exc:
                    if attempt == 2:
                        unsent.append(f"{len(body) / 1e6:g} MB not accepted by the broker: {exc!r}")
    finally:
        producer.close(timeout=10)

    def letters(c: Collected) -> list[DeadLetter]:
        # One per input: a send retried after a lost acknowledgement may have been written twice.
        found = (DeadLetter.model_validate_json(v) for v in c.values(settings.dead_letter_topic))
        return list({d.original_sha256: d for d in found if d.original_sha256 in payloads}.values())

    got = letters(collect(settings, [settings.dead_letter_topic], lambda c: len(letters(c)) >= len(payloads), 90))
    verdicts = sorted(
        f"{(d.original_length or 0) / 1e6:g} MB -> {d.error_type}, kept {len(d.original_value)} B"
        f"{' (truncated)' if d.original_truncated else ''}"
        for d in got
    )
    return f"{len(got)} of {len(payloads)} huge inputs dead-lettered: " + "; ".join(verdicts + unsent)


SCENARIOS: dict[str, tuple[Fault, dict[str, str]]] = {
    "worker SIGKILL + restart": (kill_and_restart, {}),
    "worker SIGTERM + restart": (graceful_stop_and_restart, {}),
    "rebalance: join, then leave": (join_and_leave, {}),
    "Redis paused 5 s": (pause_redis, {"DRIFTLINE_FEATURE_TIMEOUT_S": "0.5"}),
    "broker paused 8 s": (pause_broker, {}),
    # Events sent as they come (a 5 ms linger, not 100) keep a send in flight most of the time, so a
    # freeze catches one; with 100 ms bursts the worker is idle between them and a freeze often misses.
    "broker paused 8 s, 2 s send timeout": (
        pause_broker_past_send_timeout, {"DRIFTLINE_SEND_TIMEOUT_S": "2", "DRIFTLINE_PRODUCER_LINGER_MS": "5"}
    ),
    "0.9, 2 and 5 MB inputs mid-stream": (huge_inputs, {}),
}


def run_all(names: list[str] | None = None, count: int = 2000, rate: float = 200.0) -> Iterator[ScenarioResult]:
    """Run the named scenarios (default: all) in one throwaway world."""
    with world() as served:
        for name, (fault, extra) in SCENARIOS.items():
            if names and name not in names:
                continue
            yield run_scenario(served, name, fault, count=count, rate=rate, worker_env=extra)


# --- soak -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakSample:
    """One interval of a soak run, read from the worker's /proc entry and its metrics."""

    elapsed_s: float
    scored_total: int
    rss_mb: float
    e2e_mean_ms: float  # mean end-to-end latency of the events handled in this interval
    e2e_p99_ms: float  # from the histogram's bucket deltas, interpolated within the bucket as Prometheus does
    broker_rss_mb: float = float("nan")  # the embedded broker keeps every batch in memory


#: The later check compares the soak's last five minutes with its first five.
P99_WINDOW_S = 300.0


@dataclass(frozen=True)
class P99Comparison:
    """The p99 of a soak's first and last windows, and the last over the first."""

    window_s: float
    first_p99_ms: float  # NaN when no interval of the window saw an event
    last_p99_ms: float
    ratio: float | None  # None when the windows would overlap (a run under two windows) or a p99 is missing


def compare_p99(samples: Sequence[SoakSample], window_s: float = P99_WINDOW_S) -> P99Comparison:
    """Compare the e2e p99 of the first ``window_s`` seconds of a soak with that of its last ``window_s``.

    A sample covers the interval since the one before it and belongs to the window its interval's
    midpoint falls in, so a sample taken a moment past a boundary counts where its interval lies. A
    window's p99 is the worst of its intervals' p99s: at least the p99 over the whole window. Windows
    that share a sample give no ratio: a stretch compared with itself would always pass.
    """
    end = samples[-1].elapsed_s if samples else 0.0
    starts = [0.0, *(s.elapsed_s for s in samples)][: len(samples)]
    midpoints = [(start + s.elapsed_s) / 2 for start, s in zip(starts, samples, strict=True)]
    first = [i for i, mid in enumerate(midpoints) if mid < window_s]
    last = [i for i, mid in enumerate(midpoints) if mid > end - window_s]

    def worst(indexes: list[int]) -> float:
        values = [samples[i].e2e_p99_ms for i in indexes if math.isfinite(samples[i].e2e_p99_ms)]
        return max(values, default=math.nan)

    first_p99, last_p99 = worst(first), worst(last)
    comparable = not set(first) & set(last) and math.isfinite(first_p99 + last_p99) and first_p99 > 0
    return P99Comparison(window_s, first_p99, last_p99, last_p99 / first_p99 if comparable else None)


@dataclass(frozen=True)
class SoakResult:
    """A whole soak run: what it offered, every sample, and how its last window's p99 compares with its first."""

    started_at: datetime
    minutes: float
    rate: float
    sample_every_s: float
    samples: tuple[SoakSample, ...]
    p99: P99Comparison
    accounting: ScenarioResult | None = None  # None when the run was interrupted before the end

    @classmethod
    def of(
        cls, started_at: datetime, minutes: float, rate: float, sample_every_s: float, samples: Sequence[SoakSample],
        accounting: ScenarioResult | None = None,
    ) -> SoakResult:
        """The result of a run that produced ``samples``, with the p99 comparison computed from them."""
        return cls(started_at, minutes, rate, sample_every_s, tuple(samples), compare_p99(samples), accounting)


def write_soak_files(result: SoakResult, out_dir: Path) -> tuple[Path, Path]:
    """Write the result as JSON and its memory and latency picture as PNG into ``out_dir``; return both paths."""
    from pydantic_core import to_json

    from driftline_tools.bench.plot import write_soak_plot

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{result.started_at.strftime('%Y%m%dT%H%M%SZ')}"
    json_path = out_dir / f"{stem}.json"
    json_path.write_bytes(to_json(result, indent=2, inf_nan_mode="null") + b"\n")
    title = f"driftline soak: {result.rate:g} events/s through one worker for {result.minutes:g} min"
    return json_path, write_soak_plot(out_dir / f"{stem}.png", result.samples, title)


def _rss_mb(pid: int) -> float:
    rss = rss_bytes(pid)
    return rss / 2**20 if rss is not None else float("nan")


def _buckets(page: str, name: str) -> list[tuple[float, float]]:
    out = []
    for line in page.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    return sorted(out)


def _p99_of_delta(before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float:
    """The p99 of the events between two scrapes, interpolated within its bucket as Prometheus does."""
    deltas = [(le, a - b) for (le, a), (_, b) in zip(after, before, strict=True)]
    total = deltas[-1][1] if deltas else 0.0
    lower, below = 0.0, 0.0
    for le, cumulative in deltas:
        if total and cumulative >= 0.99 * total:
            if math.isinf(le):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((0.99 * total - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return float("nan")


#: A soak may fill the events partitions to this share of the embedded broker's limit.
SOAK_MAX_SHARE_OF_LIMIT = 0.8
#: Samples in a row without a scored event, while events are sent, that mean the stream has stalled.
STALLED_SAMPLES = 2


def soak_capacity_problem(
    minutes: float, rate: float, producer: ProducerSettings, worker: WorkerSettings
) -> str | None:
    """Why a soak this long would outgrow the embedded broker, with what to change; None when it fits."""
    projected = projected_batches(minutes * 60, rate, producer.topic_partitions, producer.producer_linger_ms)
    limit = embedded_partition_limit(worker.fetch_max_wait_ms)
    if projected <= SOAK_MAX_SHARE_OF_LIMIT * limit:
        return None
    return (
        f"a {minutes:g}-minute soak at {rate:g} events/s would put about {projected:,} batches in each events "
        f"partition, past {SOAK_MAX_SHARE_OF_LIMIT:.0%} of the {limit:,} the embedded broker can list within "
        f"DRIFTLINE_FETCH_MAX_WAIT_MS={worker.fetch_max_wait_ms}: raise DRIFTLINE_PRODUCER_LINGER_MS "
        f"(now {producer.producer_linger_ms}) or DRIFTLINE_FETCH_MAX_WAIT_MS, or soak for less time"
    )


def soak(
    minutes: float, rate: float, sample_every_s: float = 15.0,
    on_sample: Callable[[SoakSample], None] = lambda sample: None,
) -> ScenarioResult:
    """Stream at a steady ``rate`` for ``minutes`` through one worker, sampling memory and latency.

    Each sample goes to ``on_sample`` as it is taken; the result accounts for every event sent.
    Refuses, before starting anything, a soak the embedded broker could not hold, and stops with the
    reason when the worker scores nothing for two samples while events are being sent.
    """
    problem = soak_capacity_problem(minutes, rate, ProducerSettings(), WorkerSettings())
    if problem is not None:
        raise ConfigError(problem)
    name = "driftline_end_to_end_latency_seconds"
    with world() as served:
        env = served.topic_env()
        from producers.admin import ensure_topics

        list(ensure_topics(ProducerSettings(**env)))  # type: ignore[arg-type]
        worker = served.start_worker(env)
        worker.wait_assigned()
        assert worker.popen is not None
        broker_pid = served.broker.running_pid()
        publisher = Publisher(env, int(minutes * 60 * rate), rate, invalid_every=0)
        started = time.monotonic()
        publisher.start()
        page = worker.scrape()
        idle = 0
        while publisher.is_alive():
            time.sleep(sample_every_s)
            now_page = worker.scrape()
            count = metric_value(now_page, f"{name}_count") - metric_value(page, f"{name}_count")
            total = metric_value(now_page, f"{name}_sum") - metric_value(page, f"{name}_sum")
            sample = SoakSample(
                elapsed_s=time.monotonic() - started,
                scored_total=int(metric_value(now_page, "driftline_events_processed_total", {"outcome": "scored"})),
                rss_mb=_rss_mb(worker.popen.pid),
                e2e_mean_ms=1000 * total / count if count else float("nan"),
                e2e_p99_ms=1000 * _p99_of_delta(_buckets(page, name), _buckets(now_page, name)),
                broker_rss_mb=_rss_mb(broker_pid) if broker_pid is not None else float("nan"),
            )
            on_sample(sample)
            idle = idle + 1 if count == 0 and publisher.is_alive() else 0
            if idle >= STALLED_SAMPLES:
                raise DriftlineError(
                    f"the worker scored nothing for {idle * sample_every_s:.0f}s while events were being sent: "
                    "the embedded broker stopped answering fetches (a partition past its limit) or the worker "
                    "is stuck; see the worker's log and `driftline stack status`"
                )
            page = now_page
        return account(env, publisher, "soak", time.monotonic() - started, timeout_s=300)
