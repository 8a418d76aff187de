"""Settings of every deployable, read from environment variables.

One class per deployable (worker, producer, training, embedded stack). All environment variable
names are spelled out here and nowhere else; README's settings table lists the same names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Ports of the embedded stack; chosen away from the well-known ones so a real Kafka or Redis
#: on the same machine is never touched by accident.
EMBEDDED_KAFKA_PORT = 19092
EMBEDDED_REDIS_PORT = 16379


def _env(name: str) -> Any:
    """Bind a field to exactly one environment variable name."""
    return AliasChoices(name)


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    home: Path = Field(
        default=Path("var"),
        validation_alias=_env("DRIFTLINE_HOME"),
        description="Working folder for generated data, the Feast registry, models and the embedded stack.",
    )

    @property
    def data_dir(self) -> Path:
        """Offline parquet sources written by the generator."""
        return self.home / "data"

    @property
    def feast_registry_path(self) -> Path:
        """Feast's file registry."""
        return self.home / "feast" / "registry.db"


class KafkaSettings(_Base):
    """Where and how to reach Kafka; shared by every deployable that talks to it."""

    bootstrap_servers: str = Field(
        default=f"127.0.0.1:{EMBEDDED_KAFKA_PORT}", validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS")
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL")
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None, validation_alias=_env("KAFKA_SASL_MECHANISM")
    )
    sasl_username: str | None = Field(default=None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    sasl_password: SecretStr | None = Field(default=None, validation_alias=_env("KAFKA_SASL_PASSWORD"))
    ssl_cafile: Path | None = Field(default=None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    events_topic: str = Field(default="transactions", validation_alias=_env("DRIFTLINE_EVENTS_TOPIC"))
    predictions_topic: str = Field(default="predictions", validation_alias=_env("DRIFTLINE_PREDICTIONS_TOPIC"))
    dead_letter_topic: str = Field(
        default="transactions-dead-letters", validation_alias=_env("DRIFTLINE_DEAD_LETTER_TOPIC")
    )
    topic_partitions: int = Field(default=4, ge=1, validation_alias=_env("DRIFTLINE_TOPIC_PARTITIONS"))

    def kafka_python_config(self) -> dict[str, Any]:
        """Connection options in kafka-python's spelling (producers, admin, tail)."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.ssl_cafile:
            config["ssl_cafile"] = str(self.ssl_cafile)
        return config


class RedisSettings(_Base):
    """Where the online feature store lives."""

    redis_url: SecretStr = Field(
        default=SecretStr(f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"), validation_alias=_env("REDIS_URL")
    )

    def feast_connection_string(self) -> str:
        """Translate REDIS_URL into Feast's ``host:port,db=N,password=...,ssl=true`` form."""
        url = urlparse(self.redis_url.get_secret_value())
        parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}"]
        db = (url.path or "/0").lstrip("/") or "0"
        if db != "0":
            parts.append(f"db={db}")
        if url.password:
            parts.append(f"password={url.password}")
        if url.scheme == "rediss":
            parts.append("ssl=true")
        return ",".join(parts)


class FeastSettings(RedisSettings):
    """Feast project settings; the online store is the Redis of ``REDIS_URL``."""

    feast_project: str = Field(default="driftline", validation_alias=_env("DRIFTLINE_FEAST_PROJECT"))


class ModelSettings(_Base):
    """Where versioned models are kept and which one is served."""

    model_registry: Path | None = Field(default=None, validation_alias=_env("DRIFTLINE_MODEL_REGISTRY"))
    model_name: str = Field(default="fraud", validation_alias=_env("DRIFTLINE_MODEL_NAME"))

    @property
    def registry_dir(self) -> Path:
        """The registry folder; defaults to ``$DRIFTLINE_HOME/models``."""
        return self.model_registry if self.model_registry is not None else self.home / "models"


class WorkerSettings(KafkaSettings, FeastSettings, ModelSettings):
    """The stream worker (stream_app)."""

    group_id: str = Field(default="driftline-worker", validation_alias=_env("DRIFTLINE_WORKER_GROUP"))
    batch_size: int = Field(default=200, ge=1, le=10_000, validation_alias=_env("DRIFTLINE_BATCH_SIZE"))
    batch_window_s: float = Field(
        default=0.02, gt=0, le=10, validation_alias=_env("DRIFTLINE_BATCH_WINDOW_S")
    )
    feature_timeout_s: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_env("DRIFTLINE_FEATURE_TIMEOUT_S")
    )
    feature_reader: Literal["redis", "feast"] = Field(
        default="redis", validation_alias=_env("DRIFTLINE_FEATURE_READER"),
        description="redis: one pipelined read of Feast's Redis layout per batch; feast: Feast's async API.",
    )
    max_event_bytes: int = Field(default=65_536, ge=256, validation_alias=_env("DRIFTLINE_MAX_EVENT_BYTES"))
    max_future_skew_s: float = Field(
        default=300.0, ge=0, validation_alias=_env("DRIFTLINE_MAX_FUTURE_SKEW_S")
    )
    fetch_max_wait_ms: int = Field(
        default=5, ge=1, le=5000, validation_alias=_env("DRIFTLINE_FETCH_MAX_WAIT_MS")
    )
    session_timeout_s: float = Field(
        default=6.0, ge=1, validation_alias=_env("DRIFTLINE_SESSION_TIMEOUT_S")
    )
    drift_window: int = Field(
        default=2000, ge=50, le=200_000, validation_alias=_env("DRIFTLINE_DRIFT_WINDOW"),
        description="Most recent scored events the drift statistics are computed over.",
    )
    drift_interval_s: float = Field(
        default=30.0, gt=0, validation_alias=_env("DRIFTLINE_DRIFT_INTERVAL_S"),
        description="Seconds between drift evaluations (off the hot path).",
    )
    drift_alpha: float = Field(
        default=0.01, gt=0, lt=1, validation_alias=_env("DRIFTLINE_DRIFT_ALPHA"),
        description="False-alarm rate per evaluation on a stationary stream (Benjamini-Hochberg level).",
    )
    drift_min_events: int = Field(
        default=500, ge=10, validation_alias=_env("DRIFTLINE_DRIFT_MIN_EVENTS"),
        description="No drift is flagged before the window holds this many events.",
    )
    drift_min_psi: float = Field(
        default=0.1, ge=0, validation_alias=_env("DRIFTLINE_DRIFT_MIN_PSI"),
        description="Effect-size floor: a significant input is flagged only if its PSI reaches this.",
    )
    metrics_host: str = Field(default="127.0.0.1", validation_alias=_env("DRIFTLINE_METRICS_HOST"))
    metrics_port: int = Field(default=9108, ge=0, le=65535, validation_alias=_env("DRIFTLINE_METRICS_PORT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("DRIFTLINE_LOG_LEVEL")
    )


class WorldSettings(_Base):
    """The simulated world of the worked example; producers and training must agree on it."""

    seed: int = Field(default=7, validation_alias=_env("DRIFTLINE_SEED"))
    n_customers: int = Field(default=2_000, ge=10, validation_alias=_env("DRIFTLINE_N_CUSTOMERS"))
    n_merchants: int = Field(default=300, ge=10, validation_alias=_env("DRIFTLINE_N_MERCHANTS"))


class ProducerSettings(KafkaSettings, WorldSettings):
    """The event producers and the topic tail."""


class TrainingSettings(FeastSettings, ModelSettings, WorldSettings):
    """Data generation, Feast apply/materialize and training."""

    n_transactions: int = Field(default=60_000, ge=1_000, validation_alias=_env("DRIFTLINE_N_TRANSACTIONS"))
    history_days: int = Field(default=60, ge=7, validation_alias=_env("DRIFTLINE_HISTORY_DAYS"))
    decision_threshold: float = Field(
        default=0.5, gt=0, lt=1, validation_alias=_env("DRIFTLINE_DECISION_THRESHOLD")
    )


class StackSettings(_Base):
    """The embedded broker and Redis for machines without Docker."""

    kafka_port: int = Field(default=EMBEDDED_KAFKA_PORT, validation_alias=_env("DRIFTLINE_STACK_KAFKA_PORT"))
    redis_port: int = Field(default=EMBEDDED_REDIS_PORT, validation_alias=_env("DRIFTLINE_STACK_REDIS_PORT"))

    @property
    def stack_dir(self) -> Path:
        """Pid files and logs of the embedded services."""
        return self.home / "stack"
