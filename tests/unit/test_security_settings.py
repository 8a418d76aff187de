import ssl

import faust

from driftline.settings import KafkaSettings, RedisSettings, WorkerSettings
from stream_app.app import broker_credentials

SECRET = "s3cr3t-sentinel-7f1e"


def test_sasl_scram_over_tls_reaches_kafka_python_and_faust() -> None:
    settings = KafkaSettings(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="svc", KAFKA_SASL_PASSWORD=SECRET,
    )
    config = settings.kafka_python_config()
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("svc", SECRET)
    credentials = broker_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.username == "svc" and credentials.password == SECRET
    assert str(credentials.mechanism.value) == "SCRAM-SHA-512"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert SECRET not in repr(credentials)


def test_plain_sasl_without_tls_and_tls_only() -> None:
    plain = broker_credentials(KafkaSettings(
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_MECHANISM="PLAIN",
        KAFKA_SASL_USERNAME="u", KAFKA_SASL_PASSWORD="p",
    ))
    assert isinstance(plain, faust.SASLCredentials) and plain.ssl_context is None
    assert isinstance(broker_credentials(KafkaSettings(KAFKA_SECURITY_PROTOCOL="SSL")), faust.SSLCredentials)
    assert broker_credentials(KafkaSettings()) is None


def test_redis_password_and_tls_reach_feast() -> None:
    settings = RedisSettings(REDIS_URL=f"rediss://:{SECRET}@cache.internal:6380/2")
    assert settings.feast_connection_string() == f"cache.internal:6380,db=2,password={SECRET},ssl=true"


def test_secrets_never_show_in_settings_repr() -> None:
    settings = WorkerSettings(KAFKA_SASL_PASSWORD=SECRET, REDIS_URL=f"redis://:{SECRET}@h:1/0")
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert "**********" in repr(settings)
