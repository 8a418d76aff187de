"""How long ``driftline serve`` takes to answer, against reading Feast and predicting directly.

On a throwaway Redis, a small world is built as the integration tests build it (generate, Feast
apply and materialize, train), ``driftline serve`` is started on it, and in the same run, one call
at a time (no concurrency, so each figure is a latency, not a queue):

- ``serve``: ``POST /v1/score`` with 1 and with 100 events, over one keep-alive connection, timed
  from the request's first byte sent to the response's last byte read (bodies are encoded before);
- ``pipeline``: the same code in this process without HTTP (``score_routed`` on a ``ModelHolder``):
  what serve costs above it is HTTP, JSON and uvicorn;
- ``feast+predict``: Feast's ``get_online_features`` for the entities, the shared matrix builder and
  ``predict_proba``: the direct path without driftline's validation and its fast Redis reader.

Run ``python -m driftline_tools.bench.http_latency [--requests 300] [--warmup 30] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from driftline.errors import StackError
from driftline.settings import TrainingSettings, WorkerSettings
from driftline_tools.scenarios import SMALL_WORLD
from driftline_tools.stack import RedisProcess, free_port

logger = logging.getLogger(__name__)

LatencyPath = Literal["serve", "pipeline", "feast+predict"]
#: Events per call: one event, and a list as a client batching its calls would send.
SIZES = (1, 100)


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency of one path at one number of events per call, over ``calls`` timed calls."""

    path: LatencyPath
    events: int
    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, path: LatencyPath, events: int, seconds: list[float]) -> Latency:
        """Summarize timed calls (seconds) in milliseconds."""
        ms = np.asarray(seconds) * 1000.0
        return cls(path, events, len(seconds), float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
                   float(ms.mean()))


@dataclass(frozen=True, slots=True)
class HttpLatencyResult:
    """Every path's latency in one run, with what it ran on."""

    model_name: str
    model_version: str
    warmup: int
    latencies: list[Latency] = field(default_factory=list)


def _timed(call: Callable[[], object], warmup: int, calls: int) -> list[float]:
    for _ in range(warmup):
        call()
    seconds: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def _events(pairs: list[tuple[str, str]], count: int, offset: int) -> list[dict[str, object]]:
    at = (datetime.now(UTC) - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    return [
        {"event_id": f"bench-{offset + i}", "event_time": at, "customer_id": pairs[(offset + i) % len(pairs)][0],
         "merchant_id": pairs[(offset + i) % len(pairs)][1], "amount": 20.0 + i % 200,
         "channel": ("online", "pos", "atm")[i % 3], "hour_of_day": i % 24}
        for i in range(count)
    ]


@contextmanager
def _served(env: dict[str, str], log: Path) -> Iterator[int]:
    """Run ``driftline serve`` with ``env`` until the block ends; yields its port once a model is served."""
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "driftline_tools.cli", "serve", "--port", str(port)],
            env={**inherited, **env}, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if popen.poll() is not None or time.monotonic() > deadline:
                what = f"exited with {popen.returncode}" if popen.returncode is not None else "served no model in 120s"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise StackError(f"driftline serve {what}:\n{tail}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        yield port
    finally:
        popen.send_signal(signal.SIGTERM)
        try:
            popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()


def measure(calls: int = 300, warmup: int = 30) -> HttpLatencyResult:
    """Build the world, start ``driftline serve`` and time every path at 1 and 100 events per call."""
    from driftline.features import build_frame, build_matrix
    from feature_repo.store import apply, feature_store, materialize
    from stream_app.adapters.models import ModelHolder
    from stream_app.adapters.serving import score_routed
    from stream_app.core.pipeline import Clock, RawRecord
    from training.data import generate
    from training.dataset import load_transactions
    from training.train import run as train

    with tempfile.TemporaryDirectory(prefix="driftline-http-latency-") as folder, RedisProcess(
        Path(folder) / "redis"
    ) as redis_service:
        home = Path(folder) / "home"
        env = {"DRIFTLINE_HOME": str(home), "REDIS_URL": redis_service.url, **SMALL_WORLD}
        training = TrainingSettings(**env)  # type: ignore[arg-type]
        with redirect_stdout(sys.stderr):  # Feast narrates materialization on stdout; keep it for the result
            generate(training)
            apply(training)
            materialize(training)
            train(training)
        frame = load_transactions(training.data_dir).tail(500)
        pairs = list(zip(frame["customer_id"], frame["merchant_id"], strict=True))

        settings = WorkerSettings(**env)  # type: ignore[arg-type]
        store = feature_store(settings)
        holder = ModelHolder(settings, store)
        serving = holder.current
        meta = serving.model.metadata
        result = HttpLatencyResult(model_name=meta.name, model_version=meta.version, warmup=warmup)

        with _served(env, Path(folder) / "serve.log") as port:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for size in SIZES:
                one = _events(pairs, 1, 0)[0]
                body = orjson.dumps(one if size == 1 else _events(pairs, size, 0))

                def post(body: bytes = body) -> None:
                    connection.request("POST", "/v1/score", body, {"Content-Type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        raise StackError(f"driftline serve answered {response.status}")

                result.latencies.append(Latency.of("serve", size, _timed(post, warmup, calls)))
            connection.close()

        loop = asyncio.new_event_loop()
        clock = Clock(now=lambda: datetime.now(UTC), perf=time.perf_counter)
        try:
            for size in SIZES:
                events = _events(pairs, size, 0)
                records = [RawRecord(key=str(e["customer_id"]).encode(), value=orjson.dumps(e), topic="bench",
                                     partition=0, offset=i) for i, e in enumerate(events)]

                def pipeline(records: list[RawRecord] = records) -> None:
                    loop.run_until_complete(score_routed(records, serving, None, 0.0, clock))

                result.latencies.append(Latency.of("pipeline", size, _timed(pipeline, warmup, calls)))
        finally:
            loop.close()

        positive = meta.positive_index
        estimator: Any = serving.model.estimator
        for size in SIZES:
            events = _events(pairs, size, 0)
            entity_rows = [{key: e[f] for f, key in meta.entity_fields.items()} for e in events]

            def feast_predict(events: list[dict[str, object]] = events,
                              entity_rows: list[dict[str, object]] = entity_rows) -> None:
                columns = store.get_online_features(
                    features=meta.feature_refs, entity_rows=entity_rows, full_feature_names=True
                ).to_dict()
                rows = [
                    {**{s.name: columns[s.ref.replace(":", "__", 1)][i]
                        for s in meta.features if s.source == "feast" and s.ref},
                     **{s.name: e[s.field or s.name] for s in meta.features if s.source == "request"}}
                    for i, e in enumerate(events)
                ]
                x = build_frame(meta.features, rows) if meta.input_format == "frame" else build_matrix(
                    meta.features, rows)
                estimator.predict_proba(x)[:, positive]

            result.latencies.append(Latency.of("feast+predict", size, _timed(feast_predict, warmup, calls)))
        return result


def main() -> None:
    """Measure and print a table (or JSON with --json)."""
    from driftline.logs import configure_logging, quiet_library_warnings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="timed calls per path and size")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls before each")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    configure_logging("WARNING")
    quiet_library_warnings()
    result = measure(args.requests, args.warmup)
    from rich.console import Console
    from rich.table import Table

    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    table = Table(title=f"{result.model_name} version {result.model_version}: latency per call, one call at a time "
                  f"({result.warmup} warm-up calls first)", title_justify="left")
    for column in ("path", "events per call", "calls", "p50 ms", "p99 ms", "mean ms"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for row in result.latencies:
        table.add_row(row.path, str(row.events), str(row.calls), f"{row.p50_ms:.2f}", f"{row.p99_ms:.2f}",
                      f"{row.mean_ms:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
