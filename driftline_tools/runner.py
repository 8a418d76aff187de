"""Run ``driftline worker`` as a child process: for the demo, the benchmarks and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from driftline.errors import StackError

_PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """In a child, before exec: have Linux send it SIGTERM when the process that started it dies.

    A worker, benchmark contender or scenario child whose parent was killed (SIGKILL, a closed
    terminal) would otherwise go on consuming from the group with nobody to stop it. Linux ties this to
    the starting *thread*: start children from a thread that lives as long as they should. Elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)



class WorkerProcess:
    """A worker child process with its own environment and log file."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        """Where this worker serves Prometheus metrics."""
        host = self.env.get("DRIFTLINE_METRICS_HOST", "127.0.0.1")
        return f"http://{host}:{self.env.get('DRIFTLINE_METRICS_PORT', '9108')}/metrics"

    def start(self) -> WorkerProcess:
        """Start the worker; returns at once (the consumer group join follows in the child)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "driftline_tools.cli", "worker"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=stop_with_parent,
            )
        return self

    def wait_metrics(self, timeout_s: float = 60.0) -> None:
        """Wait until the metrics endpoint answers (the model is loaded and verified by then)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise StackError(f"worker exited with {self.popen.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.metrics_url, timeout=1.0):
                    return
            except OSError:
                time.sleep(0.2)
        raise StackError(f"worker metrics did not answer within {timeout_s:.0f}s:\n{self.log_tail()}")

    def wait_assigned(self, timeout_s: float = 60.0) -> None:
        """Wait until the worker has joined its consumer group and holds partitions."""
        self.wait_metrics(timeout_s)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen is not None and self.popen.poll() is not None:
                raise StackError(f"worker exited with {self.popen.returncode}:\n{self.log_tail()}")
            if metric_value(self.scrape(), "driftline_assigned_partitions") > 0:
                return
            time.sleep(0.2)
        raise StackError(f"worker got no partitions within {timeout_s:.0f}s:\n{self.log_tail()}")

    def scrape(self) -> str:
        """Fetch the metrics page."""
        with urllib.request.urlopen(self.metrics_url, timeout=5.0) as response:
            body: bytes = response.read()
        return body.decode()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """Signal the worker and wait; SIGKILL if it outlives ``timeout_s``. Returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        return self.popen.returncode

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the worker's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def metric_value(page: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum the samples of ``name`` (with at least ``labels``) on a Prometheus text page."""
    total = 0.0
    for line in page.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if labels and not all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            continue
        total += float(value)
    return total
