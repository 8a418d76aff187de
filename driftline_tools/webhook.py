"""``driftline webhook``: a Grafana alert webhook that starts a retrain behind the gate.

``POST /retrain`` with ``Authorization: Bearer <DRIFTLINE_WEBHOOK_SECRET>`` starts one retrain in a
background thread and answers 202 with ``{"run_id": ...}`` (the request id, also tagged on the
retrain's MLflow run as ``driftline.retrain.request_id``). A missing or wrong secret is 401, counted,
and starts nothing; a call while a retrain runs is 409 with the running id and starts nothing.
``GET /metrics`` exposes, from the server's own registry, ``driftline_webhook_requests_total{outcome}``,
``driftline_retrain_runs_total{outcome}`` (retrains this process finished, by the report's outcome, or
``error``) and ``driftline_retrain_running``. The body (Grafana's alert JSON) is read and ignored: the
alert is only a trigger, the guards and the gate decide.

The retrain is injected (a callable taking the request id), so tests run the server with a fake.
The secret is compared in constant time and never logged: request lines are logged without their
query string, and no header is logged at all.
"""

from __future__ import annotations

import hmac
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from pydantic import SecretStr

from driftline.errors import ConfigError
from stream_app.adapters.metrics import in_memory_values

logger = logging.getLogger(__name__)

#: What became of a request: the value of the counter's bounded ``outcome`` label.
RequestOutcome = Literal["accepted", "unauthorized", "busy", "not_found"]
OUTCOMES: tuple[RequestOutcome, ...] = ("accepted", "unauthorized", "busy", "not_found")
#: Largest body read (Grafana's alert JSON is a few KB); a larger one is refused unread.
MAX_BODY_BYTES = 1_000_000

#: The retrain's outcome label when it raised instead of returning a report.
ERROR_OUTCOME = "error"

#: Runs one retrain given the request id; returns its report (anything with ``outcome`` and ``reason``).
RetrainFn = Callable[[str], object]


class WebhookMetrics:
    """The webhook's instruments, on a registry of its own (not the process-global one).

    ``retrain_outcomes`` are the values the retrain's ``outcome`` can take (the caller's Literal): their
    series exist from the start at 0, so a rate or an absent-series alert works before the first retrain.
    """

    def __init__(self, registry: CollectorRegistry | None = None, retrain_outcomes: Sequence[str] = ()) -> None:
        # Importing feast (the retrain does) switches prometheus_client to file-backed multi-process values;
        # this server is one process exporting its own registry, so its values stay in memory.
        in_memory_values()
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "driftline_webhook_requests", "Requests to the retrain webhook, by outcome.", ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:  # every series exists from the start, at 0
            self.requests.labels(outcome=outcome)
        self.retrains = Counter(
            "driftline_retrain_runs", "Retrains this process finished, by the outcome of their report.", ["outcome"],
            registry=self.registry,
        )
        for name in (*retrain_outcomes, ERROR_OUTCOME):
            self.retrains.labels(outcome=name)
        self.running = Gauge("driftline_retrain_running", "1 while a retrain runs, else 0.", registry=self.registry)


class RetrainJobs:
    """At most one retrain at a time, each in a background thread."""

    def __init__(self, retrain: RetrainFn, metrics: WebhookMetrics | None = None) -> None:
        self._retrain = retrain
        self._metrics = metrics or WebhookMetrics()
        self._lock = threading.Lock()
        self._running: str | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> str | None:
        """The id of the retrain in progress, or None."""
        return self._running

    def start(self) -> tuple[bool, str]:
        """Start a retrain: (True, its id), or (False, the running one's id) when one is in progress."""
        with self._lock:
            if self._running is not None:
                return False, self._running
            job_id = uuid.uuid4().hex
            self._running = job_id
            self._metrics.running.set(1)
            self._thread = threading.Thread(target=self._run, args=(job_id,), name=f"retrain-{job_id[:8]}",
                                            daemon=True)
            self._thread.start()
            return True, job_id

    def _run(self, job_id: str) -> None:
        outcome = ERROR_OUTCOME
        try:
            result = self._retrain(job_id)
            outcome = str(getattr(result, "outcome", "finished"))
            logger.info("retrain %s finished: %s: %s", job_id, outcome, getattr(result, "reason", ""))
        except Exception as exc:  # a retrain that raises must not leave the webhook locked
            logger.error("retrain %s failed: %s: %s", job_id, type(exc).__name__, exc)
        finally:
            self._metrics.retrains.labels(outcome=outcome).inc()
            with self._lock:
                self._running = None
                self._metrics.running.set(0)

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait for the current retrain (if any) to finish."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)


def bearer_matches(authorization: str | None, secret: SecretStr) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <secret>``, compared in constant time.

    The scheme is case-insensitive (RFC 9110); only the token's length can show through the timing.
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    expected = secret.get_secret_value().encode()
    # compare_digest runs even for a wrong scheme, so that case takes as long as a wrong token.
    same = hmac.compare_digest(token.strip().encode("utf-8", "replace"), expected)
    return same and scheme.lower() == "bearer"


def _handler(secret: SecretStr, jobs: RetrainJobs, metrics: WebhookMetrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "driftline-webhook"
        sys_version = ""

        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            # Method, path without its query (a caller may put a token there) and status; never a header.
            path = getattr(self, "path", None)  # unset when the request line could not be parsed
            path = path.split("?", 1)[0] if isinstance(path, str) else "-"
            logger.debug("%s %s %s from %s", self.command or "-", path, code, self.address_string())

        def log_message(self, format: str, *args: Any) -> None:
            # What http.server reports itself (a malformed request): its text may quote the request line.
            code = args[0] if args and isinstance(args[0], int) else "-"
            logger.debug("refused a malformed request from %s (%s)", self.address_string(), code)

        def _reply(self, status: HTTPStatus, body: dict[str, object], outcome: RequestOutcome) -> None:
            metrics.requests.labels(outcome=outcome).inc()
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == HTTPStatus.UNAUTHORIZED:
                self.send_header("WWW-Authenticate", 'Bearer realm="driftline"')
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/metrics":
                data = generate_latest(metrics.registry)
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"}, "not_found")

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/retrain":
                self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"}, "not_found")
                return
            if not bearer_matches(self.headers.get("Authorization"), secret):
                logger.warning("refused a retrain request from %s: missing or wrong secret", self.client_address[0])
                self.close_connection = True  # the body is left unread
                self._reply(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"}, "unauthorized")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1  # unreadable: the body is left unread and the connection closed
            if 0 < length <= MAX_BODY_BYTES:
                self.rfile.read(length)  # Grafana's alert: a trigger only
            elif length:
                self.close_connection = True
            started, job_id = jobs.start()
            if not started:
                self._reply(HTTPStatus.CONFLICT, {"error": "a retrain is running", "run_id": job_id}, "busy")
                return
            logger.info("retrain %s started by a webhook call from %s", job_id, self.client_address[0])
            self._reply(HTTPStatus.ACCEPTED, {"run_id": job_id}, "accepted")

    return Handler


class WebhookServer:
    """The webhook's HTTP server on a thread of its own; ``port`` 0 picks a free one."""

    def __init__(
        self,
        secret: SecretStr | None,
        retrain: RetrainFn,
        host: str = "127.0.0.1",
        port: int = 0,
        metrics: WebhookMetrics | None = None,
    ) -> None:
        if secret is None or len(secret.get_secret_value()) < 16:
            raise ConfigError("set DRIFTLINE_WEBHOOK_SECRET (at least 16 characters) before starting the webhook")
        self.metrics = metrics or WebhookMetrics()
        self.jobs = RetrainJobs(retrain, self.metrics)
        self._server = ThreadingHTTPServer((host, port), _handler(secret, self.jobs, self.metrics))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """Host and port it listens on."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> WebhookServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="driftline-webhook", daemon=True)
        self._thread.start()
        host, port = self.address
        logger.info("retrain webhook on http://%s:%d (POST /retrain, GET /metrics)", host, port)
        return self

    def serve_forever(self) -> None:
        """Serve on this thread until interrupted."""
        host, port = self.address
        logger.info("retrain webhook on http://%s:%d (POST /retrain, GET /metrics)", host, port)
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the socket (a retrain in progress finishes on its own)."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
