"""The retrain webhook over real HTTP on a loopback port, with a fake retrain (no services)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from driftline.errors import ConfigError
from driftline_tools.webhook import WebhookMetrics, WebhookServer, bearer_matches

SECRET = "s3cret-token-for-tests-0123456789"


@dataclass(frozen=True)
class FakeReport:
    outcome: str
    reason: str


class FakeRetrain:
    """Records each call; blocks until released, so a test can call while one runs."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def __call__(self, request_id: str) -> object:
        self.calls.append(request_id)
        self.entered.set()
        self.release.wait(10)
        return FakeReport("kept_champion", "challenger PR-AUC 0.1 vs champion 0.3")


@pytest.fixture
def fake() -> FakeRetrain:
    return FakeRetrain()


@pytest.fixture
def server(fake: FakeRetrain) -> Iterator[WebhookServer]:
    metrics = WebhookMetrics(retrain_outcomes=("promoted", "kept_champion", "too_few_labels"))
    with WebhookServer(SecretStr(SECRET), fake, "127.0.0.1", 0, metrics) as running:
        yield running
        fake.release.set()
        running.jobs.wait(10)


def request(server: WebhookServer, method: str, path: str, token: str | None = None,
            body: bytes = b'{"status": "firing"}') -> tuple[int, dict[str, object] | str]:
    host, port = server.address
    connection = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body if method == "POST" else None, headers=headers)
    response = connection.getresponse()
    data = response.read().decode()
    connection.close()
    is_json = response.getheader("Content-Type") == "application/json"
    return response.status, json.loads(data) if is_json else data


def outcomes(server: WebhookServer, family_name: str = "driftline_webhook_requests") -> dict[str, float]:
    status, text = request(server, "GET", "/metrics")
    assert status == 200 and isinstance(text, str)
    family = next(f for f in text_string_to_metric_families(text) if f.name == family_name)
    return {s.labels["outcome"]: s.value for s in family.samples if s.name.endswith("_total")}


def gauge(server: WebhookServer, name: str) -> float:
    _, text = request(server, "GET", "/metrics")
    assert isinstance(text, str)
    return next(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def test_without_or_with_a_wrong_secret_it_is_401_counted_and_nothing_runs(
    server: WebhookServer, fake: FakeRetrain
) -> None:
    assert request(server, "POST", "/retrain")[0] == 401
    assert request(server, "POST", "/retrain", token="wrong")[0] == 401
    assert request(server, "POST", "/retrain", token=SECRET[:-1])[0] == 401
    assert request(server, "POST", "/retrain", token=SECRET + "x")[0] == 401
    status, body = request(server, "POST", "/retrain", token=SECRET[:8])
    assert status == 401 and body == {"error": "missing or wrong bearer token"}
    assert fake.calls == [] and server.jobs.running is None
    assert outcomes(server) == {"accepted": 0, "unauthorized": 5, "busy": 0, "not_found": 0}
    assert outcomes(server, "driftline_retrain_runs") == {"promoted": 0, "kept_champion": 0, "too_few_labels": 0,
                                                          "error": 0}


def test_the_bearer_check_wants_the_scheme_and_the_whole_token() -> None:
    secret = SecretStr(SECRET)
    assert bearer_matches(f"Bearer {SECRET}", secret)
    assert bearer_matches(f"bearer {SECRET}", secret)  # the scheme is case-insensitive
    assert not bearer_matches(f"Basic {SECRET}", secret)
    assert not bearer_matches(SECRET, secret)
    assert not bearer_matches(f"Bearer {SECRET} extra", secret)
    assert not bearer_matches("Bearer ", secret)
    assert not bearer_matches(None, secret)
    assert not bearer_matches("Bearer s3cret-tökén", secret)  # not ASCII: refused, not an error


def test_the_right_secret_starts_a_retrain_and_returns_its_id(server: WebhookServer, fake: FakeRetrain) -> None:
    status, body = request(server, "POST", "/retrain", token=SECRET)
    assert status == 202 and isinstance(body, dict)
    run_id = body["run_id"]
    assert isinstance(run_id, str) and len(run_id) == 32
    assert fake.entered.wait(5)
    assert fake.calls == [run_id]  # the retrain gets the id the caller got
    assert outcomes(server)["accepted"] == 1
    assert gauge(server, "driftline_retrain_running") == 1
    fake.release.set()
    server.jobs.wait(5)
    assert gauge(server, "driftline_retrain_running") == 0
    assert outcomes(server, "driftline_retrain_runs")["kept_champion"] == 1


def test_a_second_call_while_one_runs_is_409_with_the_running_id(server: WebhookServer, fake: FakeRetrain) -> None:
    _, first = request(server, "POST", "/retrain", token=SECRET)
    assert isinstance(first, dict) and fake.entered.wait(5)
    status, second = request(server, "POST", "/retrain", token=SECRET)
    assert status == 409 and isinstance(second, dict)
    assert second["run_id"] == first["run_id"]
    assert len(fake.calls) == 1
    fake.release.set()
    server.jobs.wait(5)
    assert server.jobs.running is None
    status, third = request(server, "POST", "/retrain", token=SECRET)  # free again once it finished
    assert status == 202 and isinstance(third, dict) and third["run_id"] != first["run_id"]
    assert outcomes(server) == {"accepted": 2, "unauthorized": 0, "busy": 1, "not_found": 0}


def test_a_retrain_that_raises_frees_the_webhook(fake: FakeRetrain) -> None:
    def broken(request_id: str) -> object:
        raise RuntimeError("feast is down")

    with WebhookServer(SecretStr(SECRET), broken, "127.0.0.1", 0) as running:
        assert request(running, "POST", "/retrain", token=SECRET)[0] == 202
        running.jobs.wait(5)
        assert running.jobs.running is None
        assert outcomes(running, "driftline_retrain_runs") == {"error": 1}
        assert request(running, "POST", "/retrain", token=SECRET)[0] == 202
        running.jobs.wait(5)


def test_other_paths_are_404(server: WebhookServer) -> None:
    assert request(server, "POST", "/other", token=SECRET)[0] == 404
    assert request(server, "GET", "/retrain")[0] == 404
    assert outcomes(server)["not_found"] == 2


def raw_request(server: WebhookServer, data: bytes) -> bytes:
    """Send bytes as they are (a malformed request http.client would not write) and read the answer."""
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(data)
        return sock.recv(65536)


def test_the_secret_is_never_logged(fake: FakeRetrain, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with WebhookServer(SecretStr(SECRET), fake, "127.0.0.1", 0) as running:
        request(running, "POST", "/retrain", token="wrong")
        request(running, "POST", "/retrain", token=SECRET)
        request(running, "POST", "/retrain", token=SECRET)
        request(running, "POST", f"/retrain?token={SECRET}")  # a token in the query string is no token
        request(running, "POST", f"/other?token={SECRET}", token=SECRET)
        fake.release.set()
        running.jobs.wait(5)
        request(running, "GET", "/metrics")
        answer = raw_request(running, f"POST /retrain {SECRET}\r\nAuthorization: Bearer {SECRET}\r\n\r\n".encode())
        assert b"400" in answer  # http.server's own refusal (the caller sees its own request line quoted)
        unreadable_length = f"POST /retrain HTTP/1.1\r\nAuthorization: Bearer {SECRET}\r\nContent-Length: ab\r\n\r\n"
        assert raw_request(running, unreadable_length.encode()).startswith(b"HTTP/1.0 202")  # no crash: body unread
        running.jobs.wait(5)
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    # The logs were captured, at every level the handler writes (the request lines are DEBUG).
    assert "refused a retrain request" in text and "started by a webhook call" in text
    assert "POST /retrain 202" in text and "POST /other 404" in text and "malformed request" in text
    assert SECRET not in text and SECRET[:8] not in text
    assert SECRET not in repr(running.__dict__)


def test_it_refuses_to_start_without_a_secret(fake: FakeRetrain) -> None:
    with pytest.raises(ConfigError, match="DRIFTLINE_WEBHOOK_SECRET"):
        WebhookServer(None, fake)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        WebhookServer(SecretStr("short"), fake)
