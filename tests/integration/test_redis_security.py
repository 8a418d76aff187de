"""Redis with a password, an ACL user that may only read the feature keys, and TLS, against a real redis-server.

Each secured Redis is started by a fixture on a free loopback port (redis-server from PATH; the TLS
one with a throwaway CA made here) and filled through driftline's own materialize with the admin
settings. The worker's readers (the fast Redis reader and Feast's) read the same features there as
on the plain test Redis; a wrong password, user or certificate stops a worker at start with exit 2
and one line that never holds the password.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from driftline.contracts import Prediction
from driftline.errors import ConfigError, FeatureStoreAccessError
from driftline.features import OnlineRows
from driftline.settings import TrainingSettings, WorkerSettings
from driftline_tools.runner import WorkerProcess
from driftline_tools.stack import free_port
from feature_repo.redis_reader import check_redis_access, layout_from_store, redis_key
from feature_repo.store import feature_store, materialize
from stream_app.adapters.models import ModelHolder
from stream_app.worker import check_online_store

from .conftest import ServedWorld, TopicSet
from .test_stream_e2e import publish, read_outputs

pytestmark = pytest.mark.integration

#: The admin password of both secured servers: it must never show in a log, a metric or an error.
SENTINEL = "s3cret-sentinel-9f2"
#: Password of the ACL users.
READER_SECRET = "reader-sentinel-41c"
MASK = "**********"


# --- a throwaway CA ----------------------------------------------------------------------------------


def _write_pem(folder: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(folder: Path, name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_pem(folder, name, key, cert)
    return key, cert


def _issue(
    folder: Path, name: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], role: Literal["server", "client"]
) -> None:
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if role == "server":
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    _write_pem(folder, name, key, builder.sign(ca_key, hashes.SHA256()))


@dataclass(frozen=True)
class Certificates:
    """PEM files: the CA that signed the server and client certificates, and a CA that signed neither."""

    folder: Path

    @classmethod
    def make(cls, folder: Path) -> Certificates:
        ca = _make_ca(folder, "ca")
        _issue(folder, "server", ca, "server")
        _issue(folder, "client", ca, "client")
        _make_ca(folder, "untrusted-ca")
        return cls(folder)

    def path(self, name: str) -> Path:
        return self.folder / name


# --- secured redis-servers ---------------------------------------------------------------------------


@dataclass
class SecuredRedis:
    """A redis-server with a password, two ACL users and, optionally, TLS with client certificates."""

    folder: Path
    project: str
    certs: Certificates | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "rediss" if self.certs else "redis"

    def url(self, user: str = "", password: str = SENTINEL) -> str:
        return f"{self.scheme}://{user}:{password}@127.0.0.1:{self.port}/0"

    def tls_env(self, ca: str = "ca.crt", client: bool = True) -> dict[str, str]:
        """REDIS_TLS_* for this server: the CA file named ``ca`` and, if ``client``, the client certificate."""
        if self.certs is None:
            return {}
        env = {"REDIS_TLS_CA_CERT": str(self.certs.path(ca))}
        if client:
            env |= {"REDIS_TLS_CERT": str(self.certs.path("client.crt")),
                    "REDIS_TLS_KEY": str(self.certs.path("client.key"))}
        return env

    def admin_client(self) -> redis.Redis:
        tls: dict[str, Any] = {}
        if self.certs:
            tls = {"ssl_ca_certs": str(self.certs.path("ca.crt")), "ssl_certfile": str(self.certs.path("client.crt")),
                   "ssl_keyfile": str(self.certs.path("client.key"))}
        return redis.Redis.from_url(self.url(), socket_timeout=2, socket_connect_timeout=2, **tls)

    def config(self) -> str:
        lines = [
            "bind 127.0.0.1", 'save ""', "appendonly no", f'dir "{self.folder}"',
            f'requirepass "{SENTINEL}"',
            # May read the feature hashes of this project (keys end with its name) and nothing else.
            f"user reader on >{READER_SECRET} resetkeys %R~*{self.project} resetchannels -@all +hmget",
            # A reader of another project's keys: a valid login without the rights the worker needs.
            f"user elsewhere on >{READER_SECRET} resetkeys %R~*elsewhere resetchannels -@all +hmget",
        ]
        if self.certs is None:
            lines.append(f"port {self.port}")
        else:
            lines += [
                "port 0", f"tls-port {self.port}",
                f'tls-cert-file "{self.certs.path("server.crt")}"', f'tls-key-file "{self.certs.path("server.key")}"',
                f'tls-ca-cert-file "{self.certs.path("ca.crt")}"', "tls-auth-clients yes",
            ]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 10.0) -> SecuredRedis:
        conf = self.folder / "redis.conf"
        conf.write_text(self.config())
        log = self.folder / "redis.log"
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not on PATH"
        with log.open("ab") as out:
            self.process = subprocess.Popen([binary, str(conf)], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                with self.admin_client() as client:
                    client.ping()
                return self
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer within {timeout_s}s:\n{log.read_text()[-2000:]}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _home_copy(served_world: ServedWorld, folder: Path) -> Path:
    """A copy of the world's data and Feast registry (materializing records its window in the registry)."""
    home = folder / "home"
    for part in ("data", "feast"):
        shutil.copytree(served_world.home / part, home / part)
    return home


def _materialized(
    served_world: ServedWorld, folder: Path, certs: Certificates | None
) -> Iterator[SecuredRedis]:
    """Start a secured Redis and materialize the served world into it through driftline's settings."""
    server = SecuredRedis(folder, served_world.training().feast_project, certs).start()
    try:
        home = _home_copy(served_world, folder)
        env = {**served_world.env, "DRIFTLINE_HOME": str(home), "REDIS_URL": server.url(), **server.tls_env()}
        materialize(TrainingSettings(**env))  # type: ignore[arg-type]
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def password_redis(served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    yield from _materialized(served_world, tmp_path_factory.mktemp("redis-password"), None)


@pytest.fixture(scope="module")
def tls_redis(served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    folder = tmp_path_factory.mktemp("redis-tls")
    yield from _materialized(served_world, folder, Certificates.make(folder))


def _server(request: pytest.FixtureRequest, name: str) -> SecuredRedis:
    server: SecuredRedis = request.getfixturevalue(f"{name}_redis")
    return server


# --- the worker's reads ------------------------------------------------------------------------------


def _entity_rows(served_world: ServedWorld) -> list[dict[str, object]]:
    metadata = served_world.registry().load("fraud").metadata
    events = [{"customer_id": f"C{i:05d}", "merchant_id": f"M{i % 60:04d}"} for i in range(0, 300, 11)]
    return [{join_key: e[f] for f, join_key in metadata.entity_fields.items()} for e in events]


async def _read_as_the_worker(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], reader: str, rows: list[dict[str, object]]
) -> tuple[str, OnlineRows]:
    """Settings from the environment, the worker's start check, its model holder and the reader it picked."""
    with monkeypatch.context() as patch:
        for name, value in {**env, "DRIFTLINE_FEATURE_READER": reader}.items():
            patch.setenv(name, value)
        settings = WorkerSettings()
    store = feature_store(settings)
    check_online_store(settings, store.project)
    holder = ModelHolder(settings, store)
    read = await holder.current.reader(rows)
    return type(holder.current.reader).__name__, read


@pytest.mark.parametrize("reader", ["redis", "feast"])
@pytest.mark.parametrize(
    ("server_name", "user", "password", "client_cert"),
    [
        ("password", "", SENTINEL, False),
        ("password", "reader", READER_SECRET, False),
        ("tls", "", SENTINEL, True),
        ("tls", "reader", READER_SECRET, True),
    ],
    ids=["password", "acl-reader", "tls-password", "tls-acl-reader"],
)
async def test_worker_reads_the_same_features_from_a_secured_redis(
    served_world: ServedWorld, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
    server_name: str, user: str, password: str, client_cert: bool, reader: str,
) -> None:
    server = _server(request, server_name)
    rows = _entity_rows(served_world)
    plain_reader, expected = await _read_as_the_worker(monkeypatch, served_world.env, reader, rows)
    env = {**served_world.env, "REDIS_URL": server.url(user, password), **server.tls_env(client=client_cert)}
    secured_reader, got = await _read_as_the_worker(monkeypatch, env, reader, rows)

    assert secured_reader == plain_reader == {"redis": "RedisOnlineReader", "feast": "FeastOnlineReader"}[reader]
    assert got.values == expected.values
    assert got.view_timestamps == expected.view_timestamps
    assert all(value is not None for row in got.values for value in row.values()), "known entities read whole"


def test_the_acl_reader_can_read_feature_keys_and_nothing_else(
    served_world: ServedWorld, password_redis: SecuredRedis
) -> None:
    settings = served_world.training()
    layout = layout_from_store(feature_store(settings), served_world.registry().load("fraud").metadata)
    view = layout.views[0]
    key = redis_key(layout.project, {k: "C00000" if "customer" in k else "M0000" for k in view.join_keys},
                    view.key_types, layout.key_version)
    with password_redis.admin_client() as admin:
        admin.set(b"not-a-feature", b"private")
        before = admin.hgetall(key)
    assert before, "the feature hash should exist"

    with redis.Redis.from_url(password_redis.url("reader", READER_SECRET)) as reader:
        assert reader.hmget(key, view.fields) == [before[f] for f in view.fields]
        refused = [
            lambda: reader.hset(key, view.fields[0], b"tampered"),  # a write to a feature key
            lambda: reader.delete(key),
            lambda: reader.set(b"x" + layout.project.encode(), b"1"),  # a new key inside the pattern
            lambda: reader.get(b"not-a-feature"),  # a read of another key
            lambda: reader.hmget(b"not-a-feature", [b"f"]),
            lambda: reader.keys("*"),
        ]
        for attempt in refused:
            with pytest.raises(redis.exceptions.NoPermissionError):
                attempt()
    with password_redis.admin_client() as admin:
        assert admin.hgetall(key) == before, "the reader changed a feature"


# --- refusals at start -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_name", "user", "password", "tls", "reason"),
    [
        ("password", "", "not-" + SENTINEL, {}, "refused the credentials (the default user's password)"),
        ("password", "", "", {}, "refused the credentials (REDIS_URL gives no password)"),
        ("password", "ghost", SENTINEL, {}, "refused the credentials of user 'ghost'"),
        ("password", "reader", SENTINEL, {}, "refused the credentials of user 'reader'"),
        ("password", "elsewhere", READER_SECRET, {}, "user 'elsewhere' may not read the feature keys"),
        ("tls", "", SENTINEL, {"ca": "untrusted-ca.crt"}, "TLS handshake failed: certificate verify failed"),
        ("tls", "", SENTINEL, {"client": False}, "TLS handshake failed"),
        ("tls", "", "not-" + SENTINEL, {}, "refused the credentials (the default user's password)"),
    ],
    ids=["wrong-password", "no-password", "unknown-user", "wrong-user-password", "user-without-rights",
         "untrusted-ca", "no-client-cert", "tls-wrong-password"],
)
def test_a_refused_login_is_one_line_without_the_password(
    served_world: ServedWorld, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
    server_name: str, user: str, password: str, tls: dict[str, Any], reason: str,
) -> None:
    server = _server(request, server_name)
    url = server.url(user, password) if password else f"{server.scheme}://127.0.0.1:{server.port}/0"
    for name, value in {**served_world.env, "REDIS_URL": url, **server.tls_env(**tls)}.items():
        monkeypatch.setenv(name, value)
    settings = WorkerSettings()
    started = time.monotonic()
    with pytest.raises(FeatureStoreAccessError) as caught:
        check_online_store(settings, settings.feast_project)
    message = str(caught.value)
    assert isinstance(caught.value, ConfigError), "a refusal is the user's to fix: exit 2"
    assert time.monotonic() - started < 5
    assert "\n" not in message
    assert reason in message
    assert f"Redis at {server.scheme}://" in message and f"127.0.0.1:{server.port}" in message
    assert SENTINEL not in message and READER_SECRET not in message


@pytest.mark.parametrize(
    ("user", "password", "reason"),
    [("", "not-" + SENTINEL, "refused the credentials"), ("reader", READER_SECRET, "refused Feast's write")],
    ids=["wrong-password", "read-only-user"],
)
def test_materialize_with_a_refused_login_says_why_in_one_line(
    served_world: ServedWorld, tmp_path: Path, user: str, password: str, reason: str
) -> None:
    # An empty server: Feast skips writing values a hash already holds, so a filled one would refuse nothing.
    server = SecuredRedis(tmp_path, served_world.training().feast_project).start()
    try:
        env = {**served_world.env, "DRIFTLINE_HOME": str(_home_copy(served_world, tmp_path)),
               "REDIS_URL": server.url(user, password)}
        with pytest.raises(FeatureStoreAccessError) as caught:
            materialize(TrainingSettings(**env))  # type: ignore[arg-type]
        with server.admin_client() as admin:
            assert admin.dbsize() == 0
    finally:
        server.stop()
    message = str(caught.value)
    assert reason in message and "\n" not in message
    assert SENTINEL not in message and READER_SECRET not in message


def test_an_unreachable_redis_only_warns(served_world: ServedWorld, caplog: pytest.LogCaptureFixture) -> None:
    # An outage is no setting to fix: the worker starts and scores degraded until Redis answers.
    url = f"redis://:{SENTINEL}@127.0.0.1:{free_port()}/0"
    settings = WorkerSettings(**{**served_world.env, "REDIS_URL": url})  # type: ignore[arg-type]
    reason = check_redis_access(settings, settings.feast_project, timeout_s=1.0)
    assert reason is not None and "does not answer" in reason and SENTINEL not in reason
    with caplog.at_level("WARNING", logger="stream_app.worker"):
        check_online_store(settings, settings.feast_project)
    assert "does not answer" in caplog.text and SENTINEL not in caplog.text


def _run_worker(env: Mapping[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftline_tools.cli", "worker"],
        env={**os.environ, **env, "DRIFTLINE_METRICS_PORT": str(free_port())},
        capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("server_name", "tls", "reason"),
    [("password", {}, "refused the credentials"),
     ("tls", {"ca": "untrusted-ca.crt"}, "TLS handshake failed: certificate verify failed")],
    ids=["wrong-password", "untrusted-ca"],
)
def test_worker_with_a_refused_login_exits_2_with_one_line(
    served_world: ServedWorld, request: pytest.FixtureRequest, server_name: str, tls: dict[str, Any], reason: str,
) -> None:
    server = _server(request, server_name)
    wrong = "not-" + SENTINEL if not tls else SENTINEL
    env = {**served_world.env, "REDIS_URL": server.url(password=wrong), **server.tls_env(**tls)}
    started = time.monotonic()
    done = _run_worker(env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert time.monotonic() - started < 30
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, done.stderr[-3000:]
    assert "worker cannot start: Redis at" in errors[0] and reason in errors[0]
    assert "Traceback" not in output
    assert SENTINEL not in output


def test_secret_stays_out_of_the_worker_log_and_metrics_over_tls(
    tls_redis: SecuredRedis, topics: TopicSet, start_worker: Callable[..., WorkerProcess]
) -> None:
    # The worker reads features over TLS with a client certificate and the sentinel as its password.
    worker = start_worker(REDIS_URL=tls_redis.url(), **tls_redis.tls_env(), DRIFTLINE_LOG_LEVEL="DEBUG")
    worker.wait_assigned()
    events, bad = publish(topics, valid=40, invalid=5)
    got = read_outputs(topics, len(events), len(bad))
    page = worker.scrape()
    worker.stop()
    predictions = [Prediction.model_validate_json(v) for v in got.values(topics.kafka().predictions_topic)]
    assert len(predictions) == len(events)
    assert not any(p.degraded for p in predictions), "features must come from the TLS Redis"
    log = worker.log_path.read_text(errors="replace")
    assert f"Redis rediss://{MASK}@127.0.0.1:{tls_redis.port}/0 (from REDIS_URL)" in log
    assert SENTINEL not in log
    assert SENTINEL not in page
