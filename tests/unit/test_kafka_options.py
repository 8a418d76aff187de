"""Kafka settings reach every client the same way: kafka-python options, Faust credentials, producer defaults."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import faust
import pytest

from driftline.errors import ConfigError
from driftline.kafka import kafka_python_options, kafka_security
from driftline.settings import KafkaSettings
from producers.kafka_clients import create_producer
from stream_app.app import broker_credentials

SECRET = "s3cr3t-sentinel-7f1e"

#: A self-signed CA certificate, only ever loaded as a trust anchor.
TEST_CA = """-----BEGIN CERTIFICATE-----
MIIBkDCCATWgAwIBAgIUfqRNuVlxmw5uIHAePAiR5B9dyMYwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRZHJpZnRsaW5lIHRlc3QgQ0EwIBcNMjYxMTI3MTE1NjUyWhgP
MjEyNjExMDMxMTU2NTJaMBwxGjAYBgNVBAMMEWRyaWZ0bGluZSB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELOs4vdHTwaSaokNy6y8JpwLVsibiUOgU
sjHXTCpycQFG8VGURXyuARhD+OpYNOSlgdPmG/kgBHUlCWAzMaqXKaNTMFEwHQYD
VR0OBBYEFN0ZUz/98Q+/ik0Pt56jt4yOAYq9MB8GA1UdIwQYMBaAFN0ZUz/98Q+/
ik0Pt56jt4yOAYq9MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIh
AJANJJUG1SWLKMFPv5hI1+ruS1L9A5ZaXmWidYRRa9nwAiEA4uEka7REuzzktLrz
acmrnqlYzAUBuUK2gVqZXynbwsE=
-----END CERTIFICATE-----
"""


def _settings(**env: str) -> KafkaSettings:
    return KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="k1:9092,k2:9092", **env)  # type: ignore[arg-type]


def test_plaintext_is_addresses_only() -> None:
    settings = _settings()
    assert kafka_python_options(settings) == {
        "bootstrap_servers": ["k1:9092", "k2:9092"], "security_protocol": "PLAINTEXT",
    }
    security = kafka_security(settings)
    assert (security.ssl_context, security.uses_sasl) == (None, False)
    assert broker_credentials(settings) is None


def test_ssl_trusts_the_ca_file(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text(TEST_CA)
    settings = _settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(cafile))
    security = kafka_security(settings)
    assert security.ssl_context is not None and not security.uses_sasl
    assert security.ssl_context.check_hostname and security.ssl_context.verify_mode == ssl.CERT_REQUIRED
    trusted = [dict(entry[0] for entry in ca["subject"]) for ca in security.ssl_context.get_ca_certs()]
    assert trusted == [{"commonName": "driftline test CA"}]  # the CA file only, not the system's CAs
    options = kafka_python_options(settings)
    assert options["security_protocol"] == "SSL" and isinstance(options["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in options
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.get_ca_certs() == security.ssl_context.get_ca_certs()


def test_an_unreadable_ca_file_is_a_config_error(tmp_path: Path) -> None:
    settings = _settings(KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="KAFKA_SSL_CAFILE"):
        kafka_security(settings)


def test_sasl_scram_over_tls() -> None:
    settings = _settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD=SECRET,
    )
    options = kafka_python_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", SECRET)
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "svc" and credentials.password == SECRET
    assert str(credentials.mechanism.value) == "SCRAM-SHA-512"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)


def test_sasl_plain_without_tls() -> None:
    settings = _settings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p",
    )
    options = kafka_python_options(settings)
    assert "ssl_context" not in options
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "PLAIN", "u", "p",
    )
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and credentials.ssl_context is None
    assert str(credentials.mechanism.value) == "PLAIN"


def test_a_sasl_protocol_without_mechanism_means_plain_for_every_client() -> None:
    settings = _settings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="u")
    assert kafka_python_options(settings)["sasl_mechanism"] == "PLAIN"
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials) and str(credentials.mechanism.value) == "PLAIN"


def test_the_password_shows_in_no_repr_and_no_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _settings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD=SECRET,
    )
    security = kafka_security(settings)
    credentials = broker_credentials(settings)
    kafka_python_options(settings)
    for shown in (repr(settings), repr(security), str(security), repr(credentials)):
        assert SECRET not in shown
    assert security.sasl_password_value() == SECRET
    assert SECRET not in caplog.text


class _RecordingProducer:
    created: list[dict[str, Any]] = []

    def __init__(self, **options: Any) -> None:
        self.created.append(options)


def test_producers_get_driftline_defaults_and_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", _RecordingProducer)
    settings = _settings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN")
    create_producer(settings)
    create_producer(settings, linger_ms=2, max_request_size=6_000_000)
    default, tuned = _RecordingProducer.created[-2:]
    assert default["acks"] == "all" and default["enable_idempotence"] is False
    assert (default["linger_ms"], default["batch_size"]) == (settings.producer_linger_ms, settings.producer_batch_bytes)
    assert default["max_in_flight_requests_per_connection"] == 1
    assert default["security_protocol"] == "SASL_PLAINTEXT" and default["sasl_mechanism"] == "PLAIN"
    assert (tuned["linger_ms"], tuned["max_request_size"], tuned["acks"]) == (2, 6_000_000, "all")


def test_the_embedded_limit_and_a_steady_producers_batches() -> None:
    from driftline.kafka import embedded_partition_limit, projected_batches

    assert embedded_partition_limit(50) == 50_000
    # At most one batch per linger per partition, and never more batches than records.
    assert projected_batches(1800, 200, 4, 100) == 18_000
    assert projected_batches(1800, 2, 4, 100) == 900


def test_a_run_that_fits_the_embedded_broker_is_allowed() -> None:
    from driftline.kafka import produce_capacity_problem

    # 1,000 events at 200/s over 4 partitions with a 100 ms linger: at most 50 batches per partition.
    assert produce_capacity_problem(0, 1_000, 200.0, 4, 100, 131_072, 50) is None


def test_a_run_past_the_embedded_limit_is_refused_with_what_to_do() -> None:
    from driftline.kafka import produce_capacity_problem

    # The partition already holds 39,000 batches of the 50,000 a 50 ms wait can list; 60 s more at 5 ms linger.
    problem = produce_capacity_problem(39_000, 12_000, 200.0, 4, 5, 131_072, 50)
    assert problem is not None
    assert "39,000 batches" in problem and "driftline topics reset" in problem and "LINGER_MS" in problem


def test_an_unthrottled_run_fills_batches_by_size() -> None:
    from driftline.kafka import produce_capacity_problem

    # 131,072 bytes / 250 per event = 524 events per batch: a million events add 478 batches per partition.
    assert produce_capacity_problem(39_500, 1_000_000, 0.0, 4, 5, 131_072, 50) is None
    assert produce_capacity_problem(39_600, 1_000_000, 0.0, 4, 5, 131_072, 50) is not None
