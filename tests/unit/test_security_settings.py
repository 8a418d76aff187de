"""Secrets reach Redis's clients and stay out of every settings repr; Kafka's are in test_kafka_options."""

from __future__ import annotations

from driftline.settings import RedisSettings, WorkerSettings

SECRET = "s3cr3t-sentinel-7f1e"


def test_redis_password_and_tls_reach_feast() -> None:
    settings = RedisSettings(REDIS_URL=f"rediss://:{SECRET}@cache.internal:6380/2")
    assert settings.feast_connection_string() == f"cache.internal:6380,db=2,password={SECRET},ssl=true"


def test_secrets_never_show_in_settings_repr() -> None:
    settings = WorkerSettings(KAFKA_SASL_PASSWORD=SECRET, REDIS_URL=f"redis://:{SECRET}@h:1/0")
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert "**********" in repr(settings)
