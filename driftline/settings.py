"""Settings of every deployable, read from environment variables.

One class per deployable (worker, producer, training, embedded stack). All environment variable
names are spelled out here and nowhere else; README's settings table lists the same names.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from driftline.contracts import largest_whole_dead_letter
from driftline.errors import ConfigError

#: Ports of the embedded stack; chosen away from the well-known ones so a real Kafka or Redis
#: on the same machine is never touched by accident.
EMBEDDED_KAFKA_PORT = 19092
EMBEDDED_REDIS_PORT = 16379

logger = logging.getLogger(__name__)

#: Where an address came from: set in the environment (or passed in), recorded by a
#: ``driftline stack up`` under ``$DRIFTLINE_HOME``, or the built-in default.
AddressSource = Literal["environment", "dev stack", "default"]


def _env(name: str) -> Any:
    """Bind a field to exactly one environment variable name."""
    return AliasChoices(name)


class StackEndpoints(BaseModel):
    """Where the embedded stack listens: written by ``driftline stack up``, removed by ``stack down``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kafka_bootstrap_servers: str = Field(min_length=1)
    redis_url: str = Field(min_length=1)

    @classmethod
    def read(cls, path: Path) -> StackEndpoints | None:
        """Return the record at ``path``; None if there is none (or it is unreadable, with a warning)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring the dev stack record %s: %s", path, exc)
            return None
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            logger.warning("ignoring the dev stack record %s: not a valid record (%d errors)", path, exc.error_count())
            return None


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


def utc_instant(value: object) -> datetime:
    """A date (its 00:00 UTC) or an RFC 3339 time with an offset, as a UTC datetime in whole seconds.

    A time without an offset is refused rather than guessed: the same text must name the same
    instant on every machine, whatever its local zone.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = date.fromisoformat(text) if _DATE_ONLY.fullmatch(text) else datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a date (2026-01-01) nor an RFC 3339 time (2026-01-01T06:00:00Z)"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{value.isoformat()} has no UTC offset; add one, e.g. Z or +02:00")
        if value.microsecond:
            raise ValueError(f"{value.isoformat()} has a fraction of a second; give whole seconds")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    raise ValueError(f"expected a date or a time, not {type(value).__name__}")


def mask_url(url: str) -> str:
    """Show a URL without its credentials or query (redis-py reads a password from either)."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", "sqlite") and "@" not in url:
        return url  # a local path: nothing secret in it
    if not parsed.scheme or not parsed.hostname:
        return "**********"  # not a URL we can take apart safely: show nothing of it
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    userinfo = "**********@" if "@" in parsed.netloc else ""
    port = f":{parsed.port}" if parsed.port is not None else ""
    query = "?**********" if parsed.query else ""
    return f"{parsed.scheme}://{userinfo}{host}{port}{parsed.path}{query}"


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

    @property
    def stack_dir(self) -> Path:
        """Pid files and logs of the embedded services, and the record of where they listen."""
        return self.home / "stack"

    @property
    def stack_endpoints_path(self) -> Path:
        """The :class:`StackEndpoints` record of a running ``driftline stack up``."""
        return self.stack_dir / "endpoints.json"

    def describe_connections(self) -> str:
        """Say which Kafka and Redis addresses these settings use and where each came from (no secrets)."""
        return "; ".join(self._connections()) or "no Kafka or Redis"

    def _connections(self) -> list[str]:
        # Extended by each settings class that holds an address; cooperative, so a class
        # inheriting both Kafka and Redis settings lists both.
        return []

    def _source_note(self, source: AddressSource, variable: str) -> str:
        if source == "environment":
            return f"from {variable}"
        if source == "dev stack":
            return f"from the dev stack's record {self.stack_endpoints_path}"
        return f"default: {variable} unset, no dev stack record"

    def _unset(self, field: str, value: str) -> bool:
        # Not given in the environment or as an argument; an empty value counts as not given.
        return field not in self.model_fields_set or not value.strip()


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
    shadow_topic: str | None = Field(
        default=None, validation_alias=_env("DRIFTLINE_SHADOW_TOPIC"),
        description="Where a shadow version's predictions go; unset: <predictions topic>-shadow.",
    )
    labels_topic: str = Field(
        default="labels", min_length=1, validation_alias=_env("DRIFTLINE_LABELS_TOPIC"),
        description="Delayed outcomes (Label records) joined to the predictions they are about.",
    )
    topic_partitions: int = Field(default=4, ge=1, validation_alias=_env("DRIFTLINE_TOPIC_PARTITIONS"))
    # The embedded broker slows with every batch a partition holds (see driftline.kafka): a producer
    # must fill batches, not send one record each. 100 ms gives ~5 records per partition and batch at
    # 200 events/s over 4 partitions, and ~18,000 batches per partition in a 30-minute run.
    producer_linger_ms: int = Field(
        default=100, ge=0, le=5000, validation_alias=_env("DRIFTLINE_PRODUCER_LINGER_MS"),
        description="How long driftline's producers (produce, loads) wait to fill a batch.",
    )
    producer_batch_bytes: int = Field(
        default=131_072, ge=1024, le=16_777_216, validation_alias=_env("DRIFTLINE_PRODUCER_BATCH_BYTES"),
        description="Largest batch per partition of driftline's producers.",
    )

    @property
    def shadow_predictions_topic(self) -> str:
        """The shadow version's predictions topic: never the predictions topic."""
        return self.shadow_topic or f"{self.predictions_topic}-shadow"

    _kafka_source: AddressSource = PrivateAttr(default="environment")

    @model_validator(mode="after")
    def _bootstrap_from_dev_stack(self) -> KafkaSettings:
        # Precedence: KAFKA_BOOTSTRAP_SERVERS, then the running dev stack's record, then the default.
        if self._unset("bootstrap_servers", self.bootstrap_servers):
            record = StackEndpoints.read(self.stack_endpoints_path)
            if record is not None:
                self._kafka_source = "dev stack"
                value = record.kafka_bootstrap_servers
            else:
                self._kafka_source = "default"
                value = type(self).model_fields["bootstrap_servers"].default
            object.__setattr__(self, "bootstrap_servers", value)  # frozen model; validated above
        return self

    @property
    def kafka_source(self) -> AddressSource:
        """Where ``bootstrap_servers`` came from."""
        return self._kafka_source

    def _connections(self) -> list[str]:
        note = self._source_note(self._kafka_source, "KAFKA_BOOTSTRAP_SERVERS")
        return [f"Kafka {self.bootstrap_servers} ({note})", *super()._connections()]


class RedisSettings(_Base):
    """Where the online feature store lives, and how to log in to it.

    ``REDIS_URL`` carries the user, password, database and ``rediss://`` for TLS; the ``REDIS_TLS_*``
    files reach both driftline's own Redis client and Feast's, so the two readers connect alike.
    """

    redis_url: SecretStr = Field(
        default=SecretStr(f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"), validation_alias=_env("REDIS_URL")
    )
    redis_tls_ca_cert: Path | None = Field(
        default=None, validation_alias=_env("REDIS_TLS_CA_CERT"),
        description="CA bundle (PEM) that signed Redis's certificate; unset: the system's trust store.",
    )
    redis_tls_cert: Path | None = Field(
        default=None, validation_alias=_env("REDIS_TLS_CERT"),
        description="Client certificate (PEM) for a Redis that asks for one (tls-auth-clients yes).",
    )
    redis_tls_key: Path | None = Field(
        default=None, validation_alias=_env("REDIS_TLS_KEY"),
        description="Private key (PEM) of REDIS_TLS_CERT, unless that file holds it too.",
    )

    _redis_source: AddressSource = PrivateAttr(default="environment")

    @field_validator("redis_tls_ca_cert", "redis_tls_cert", "redis_tls_key", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        # An empty variable counts as unset (Path("") would be the working directory).
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _redis_from_dev_stack(self) -> RedisSettings:
        # Precedence: REDIS_URL, then the running dev stack's record, then the default.
        if self._unset("redis_url", self.redis_url.get_secret_value()):
            record = StackEndpoints.read(self.stack_endpoints_path)
            if record is not None:
                self._redis_source = "dev stack"
                value = SecretStr(record.redis_url)
            else:
                self._redis_source = "default"
                value = type(self).model_fields["redis_url"].default
            object.__setattr__(self, "redis_url", value)  # frozen model; validated above
        return self

    @model_validator(mode="after")
    def _tls_files_usable(self) -> RedisSettings:
        # Runs after the address is settled. Messages name variables, never REDIS_URL's value (a secret).
        files = {"REDIS_TLS_CA_CERT": self.redis_tls_ca_cert, "REDIS_TLS_CERT": self.redis_tls_cert,
                 "REDIS_TLS_KEY": self.redis_tls_key}
        given = [name for name, path in files.items() if path is not None]
        if not given:
            return self
        if urlparse(self.redis_url.get_secret_value()).scheme != "rediss":
            raise ValueError(f"{' and '.join(given)} set, but REDIS_URL does not start with rediss:// (TLS)")
        if self.redis_tls_key is not None and self.redis_tls_cert is None:
            raise ValueError("REDIS_TLS_KEY is set without REDIS_TLS_CERT, the certificate it belongs to")
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}={path}: no such file")
        return self

    def redis_tls_options(self) -> dict[str, Any]:
        """redis-py's keyword arguments for the ``REDIS_TLS_*`` files (absolute paths); empty when none is set."""
        files = {"ssl_ca_certs": self.redis_tls_ca_cert, "ssl_certfile": self.redis_tls_cert,
                 "ssl_keyfile": self.redis_tls_key}
        return {option: str(path.resolve()) for option, path in files.items() if path is not None}

    @property
    def redis_source(self) -> AddressSource:
        """Where ``redis_url`` came from."""
        return self._redis_source

    def _connections(self) -> list[str]:
        note = self._source_note(self._redis_source, "REDIS_URL")
        return [f"Redis {mask_url(self.redis_url.get_secret_value())} ({note})", *super()._connections()]

    def feast_connection_string(self) -> str:
        """Translate REDIS_URL and the TLS files into Feast's ``host:port,db=N,password=...,ssl=true`` form.

        Feast passes every ``name=value`` to redis-py's client, so the user, password and TLS files
        reach Feast's reader as they reach driftline's (user and password percent-decoded, as redis-py
        decodes them from the URL).
        """
        url = urlparse(self.redis_url.get_secret_value())
        parts = [f"{url.hostname or '127.0.0.1'}:{url.port or 6379}"]
        db = (url.path or "/0").lstrip("/") or "0"
        if db != "0":
            parts.append(f"db={db}")
        options: dict[str, str] = {}
        if url.username:
            options["username"] = unquote(url.username)
        if url.password:
            options["password"] = unquote(url.password)
        if url.scheme == "rediss":
            options["ssl"] = "true"
            options.update(self.redis_tls_options())
        parts += [f"{name}={_feast_option(name, value)}" for name, value in options.items()]
        return ",".join(parts)


def _feast_option(name: str, value: str) -> str:
    """A value Feast's connection-string parser reads back as exactly ``value``.

    Feast splits the string on commas and JSON-decodes each value when it can: text that would decode
    to something else (``123``, ``true``, ``"x"``) is sent JSON-quoted; a comma cannot be carried at all.
    """
    if "," in value:
        shown = "REDIS_URL's password" if name == "password" else f"the Redis {name} {value!r}"
        raise ConfigError(f"{shown} contains a comma, which Feast's Redis connection string cannot carry")
    if name == "ssl":
        return value
    try:
        json.loads(value)
    except ValueError:
        return value  # Feast keeps text that is not JSON as it is
    return json.dumps(value)


class FeastSettings(RedisSettings):
    """Which Feast repo serves features.

    ``DRIFTLINE_FEAST_REPO`` names a folder with a ``feature_store.yaml``; its project, registry and
    online store (Redis connection string, password, TLS) are used as Feast reads them. Unset, the
    bundled example repo is used, configured from driftline's own settings: project
    ``DRIFTLINE_FEAST_PROJECT``, registry under ``DRIFTLINE_HOME``, online store at ``REDIS_URL``.
    """

    feast_repo: Path | None = Field(
        default=None,
        validation_alias=_env("DRIFTLINE_FEAST_REPO"),
        description="A Feast repo folder (with feature_store.yaml); unset: the bundled example.",
    )
    feast_project: str = Field(default="driftline", validation_alias=_env("DRIFTLINE_FEAST_PROJECT"))


class ModelSettings(_Base):
    """Where versioned models are kept (MLflow) and which one is served."""

    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=_env("MLFLOW_TRACKING_URI"),
        description="An MLflow tracking server (or database URI); unset: SQLite under the driftline home.",
    )
    model_name: str = Field(default="fraud", validation_alias=_env("DRIFTLINE_MODEL_NAME"))

    @property
    def mlflow_dir(self) -> Path:
        """The embedded MLflow store: ``mlflow.db`` and the ``artifacts`` folder."""
        return self.home / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """``MLFLOW_TRACKING_URI``, or the embedded SQLite store."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.mlflow_dir / 'mlflow.db').resolve()}"

    @property
    def mlflow_artifact_root(self) -> Path | None:
        """Where a local store (the embedded one, or a database URI) keeps artifacts; None when a server decides."""
        remote = (self.mlflow_tracking_uri or "").split(":", 1)[0] in ("http", "https", "databricks")
        return None if remote else self.mlflow_dir / "artifacts"


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
    canary_percent: float = Field(
        default=0.0, ge=0, le=100, validation_alias=_env("DRIFTLINE_CANARY_PERCENT"),
        description="Share of entity keys the canary alias scores (0: the canary alias serves nothing).",
    )
    canary_guard: bool = Field(
        default=True, validation_alias=_env("DRIFTLINE_CANARY_GUARD"),
        description="Move the canary alias back when it breaks a limit below (recorded in the alias history).",
    )
    canary_max_dead_letter_increase: float = Field(
        default=0.02, ge=0, le=1, validation_alias=_env("DRIFTLINE_CANARY_MAX_DEAD_LETTER_INCREASE")
    )
    canary_max_p99_ratio: float = Field(default=2.0, gt=1, validation_alias=_env("DRIFTLINE_CANARY_MAX_P99_RATIO"))
    canary_max_score_psi: float = Field(default=0.25, gt=0, validation_alias=_env("DRIFTLINE_CANARY_MAX_SCORE_PSI"))
    canary_min_events: int = Field(default=500, ge=50, validation_alias=_env("DRIFTLINE_CANARY_MIN_EVENTS"))
    model_poll_s: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_env("DRIFTLINE_MODEL_POLL_S"),
        description="How often the worker reads the model's aliases; a move is served within this interval.",
    )
    feature_reader: Literal["redis", "feast"] = Field(
        default="redis", validation_alias=_env("DRIFTLINE_FEATURE_READER"),
        description="redis: one pipelined read of Feast's Redis layout per batch; feast: Feast's async API.",
    )
    max_event_bytes: int = Field(
        default=65_536, ge=256, validation_alias=_env("DRIFTLINE_MAX_EVENT_BYTES"),
        description="Larger messages (key and value) are dead-lettered unparsed, with their first bytes kept.",
    )
    max_future_skew_s: float = Field(
        default=300.0, ge=0, validation_alias=_env("DRIFTLINE_MAX_FUTURE_SKEW_S")
    )
    max_event_age_s: float = Field(
        default=7 * 86_400.0, gt=0, validation_alias=_env("DRIFTLINE_MAX_EVENT_AGE_S"),
        description="How far in the past an event_time may be; older events are dead-lettered.",
    )
    max_request_bytes: int = Field(
        default=1_000_000, ge=65_536, validation_alias=_env("DRIFTLINE_MAX_REQUEST_BYTES"),
        description="The worker producer's largest record; keep it at or below the broker's message.max.bytes.",
    )
    send_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, validation_alias=_env("DRIFTLINE_SEND_TIMEOUT_S"),
        description="How long one send may wait for the broker's acknowledgement before it is retried.",
    )
    fetch_max_wait_ms: int = Field(
        default=50, ge=1, le=5000, validation_alias=_env("DRIFTLINE_FETCH_MAX_WAIT_MS"),
        description="The consumer's fetch wait; on the embedded broker it also bounds the batches a "
                    "partition may hold (about 1,000 per ms, see driftline.kafka).",
    )
    output_linger_ms: int = Field(
        default=5, ge=0, le=1000, validation_alias=_env("DRIFTLINE_OUTPUT_LINGER_MS"),
        description="How long the worker's producer waits to fill a batch of outputs; a micro-batch's "
                    "outputs are sent together, so batches follow the input's batching.",
    )
    output_batch_bytes: int = Field(
        default=262_144, ge=16_384, le=16_777_216, validation_alias=_env("DRIFTLINE_OUTPUT_BATCH_BYTES"),
        description="Largest batch of outputs per partition.",
    )
    model_threads: int = Field(
        default=1, ge=1, le=256, validation_alias=_env("DRIFTLINE_MODEL_THREADS"),
        description="Native threads (OpenMP, BLAS) a model's predict may use in the worker and the API; "
                    "scale out with workers instead (see README).",
    )
    outputs_in_flight: int = Field(
        default=4, ge=1, le=64, validation_alias=_env("DRIFTLINE_OUTPUTS_IN_FLIGHT"),
        description="Micro-batches whose outputs may await the broker's acknowledgement while later ones "
                    "are scored; inputs are committed only once every earlier output is acknowledged.",
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
    # The feedback loop (docs/feedback-loop.md): labels joined to predictions kept in Redis.
    label_join: bool = Field(
        default=True, validation_alias=_env("DRIFTLINE_LABEL_JOIN"),
        description="Keep each prediction in Redis for the label window and join the labels topic to it; "
                    "false: no labels topic read, nothing kept (about 606 bytes per prediction otherwise).",
    )
    label_window_s: float = Field(
        default=7 * 86_400.0, gt=0, le=366 * 86_400.0, validation_alias=_env("DRIFTLINE_LABEL_WINDOW_S"),
        description="A label arriving later than this after its prediction was scored is refused as expired; "
                    "set it above the longest label delay that matters (card chargebacks: the dispute window).",
    )
    label_grace_s: float = Field(
        default=86_400.0, ge=0, le=30 * 86_400.0, validation_alias=_env("DRIFTLINE_LABEL_GRACE_S"),
        description="How much longer than the label window the join store keeps a prediction, so a late label "
                    "is counted as expired rather than unknown.",
    )
    label_max_bytes: int = Field(
        default=4096, ge=256, le=65_536, validation_alias=_env("DRIFTLINE_LABEL_MAX_BYTES"),
        description="Larger label messages are dead-lettered unparsed (too_large).",
    )
    join_prefix: str = Field(
        default="driftline:join:", min_length=1, max_length=64, validation_alias=_env("DRIFTLINE_JOIN_PREFIX"),
        description="Prefix of the join store's Redis keys, so deployments and tests sharing a Redis do not collide.",
    )
    join_timeout_s: float = Field(
        default=2.0, gt=0, le=60, validation_alias=_env("DRIFTLINE_JOIN_TIMEOUT_S"),
        description="Longest wait for one round trip to the join store (remember, lookup or mark).",
    )
    performance_window: int = Field(
        default=5_000, ge=10, le=1_000_000, validation_alias=_env("DRIFTLINE_PERFORMANCE_WINDOW"),
        description="Labelled predictions per model version the live performance is computed over.",
    )
    performance_min_labels: int = Field(
        default=200, ge=1, validation_alias=_env("DRIFTLINE_PERFORMANCE_MIN_LABELS"),
        description="Below this many labels in the window, live performance is shown but not trusted (alerts wait).",
    )
    cbpe_window: int = Field(
        default=20_000, ge=10, le=1_000_000, validation_alias=_env("DRIFTLINE_CBPE_WINDOW"),
        description="Scores per binary model version the confidence-based performance estimate is computed over.",
    )
    cbpe_min_scores: int = Field(
        default=500, ge=1, validation_alias=_env("DRIFTLINE_CBPE_MIN_SCORES"),
        description="Below this many scores in the window, the estimate is shown but not trusted.",
    )
    metrics_host: str = Field(default="127.0.0.1", validation_alias=_env("DRIFTLINE_METRICS_HOST"))
    metrics_port: int = Field(default=9108, ge=0, le=65535, validation_alias=_env("DRIFTLINE_METRICS_PORT"))
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias=_env("DRIFTLINE_LOG_LEVEL")
    )

    @model_validator(mode="after")
    def _dead_letters_fit(self) -> WorkerSettings:
        # An input up to max_event_bytes must dead-letter whole: its key and its base64 value in
        # one record no larger than the producer's limit. Larger inputs are cut, never dropped.
        largest = largest_whole_dead_letter(self.max_request_bytes)
        if self.max_event_bytes > largest:
            raise ValueError(
                f"DRIFTLINE_MAX_EVENT_BYTES={self.max_event_bytes} is too large for "
                f"DRIFTLINE_MAX_REQUEST_BYTES={self.max_request_bytes}: a rejected event of that size would not "
                f"fit in its dead letter; use at most {largest}, or raise the request size"
            )
        return self


#: The metric ``driftline retrain``'s gate compares (training.gate).
GateMetric = Literal["pr_auc", "roc_auc"]


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
    data_start: datetime | None = Field(
        default=None, validation_alias=_env("DRIFTLINE_DATA_START"),
        description="Start of the generated history (a date or RFC 3339 time, UTC); unset: DRIFTLINE_HISTORY_DAYS "
        "before today's 00:00 UTC, so the history ends at the start of the current UTC day.",
    )
    decision_threshold: float = Field(
        default=0.5, gt=0, lt=1, validation_alias=_env("DRIFTLINE_DECISION_THRESHOLD")
    )

    @field_validator("data_start", mode="before")
    @classmethod
    def _data_start_in_utc(cls, value: object) -> object:
        # An empty variable counts as unset, as for the other settings.
        return None if value is None or (isinstance(value, str) and not value.strip()) else utc_instant(value)


class RetrainSettings(KafkaSettings, TrainingSettings):
    """``driftline retrain`` and ``driftline webhook``: the window, the gate, the guards, the webhook.

    They live beside the retrain until they move to ``driftline/settings.py`` with the other deployables'
    settings (and their README rows); the inherited Kafka, Feast, MLflow and world settings are README's.
    """

    retrain_window_hours: float = Field(
        default=24.0, gt=0, validation_alias=_env("DRIFTLINE_RETRAIN_WINDOW_HOURS"),
        description="Events of the last this many hours (by event time) with a label make the training set.",
    )
    retrain_min_labels: int = Field(
        default=500, ge=1, validation_alias=_env("DRIFTLINE_RETRAIN_MIN_LABELS"),
        description="Least labels that must have arrived since the last retrain (storm guard).",
    )
    retrain_cooldown_minutes: float = Field(
        default=360.0, ge=0, validation_alias=_env("DRIFTLINE_RETRAIN_COOLDOWN_MINUTES"),
        description="Least time between two retrains (storm guard).",
    )
    retrain_margin: float = Field(
        default=0.0, ge=0, lt=1, validation_alias=_env("DRIFTLINE_RETRAIN_MARGIN"),
        description="The lower bound of the difference's CI must exceed this to promote.",
    )
    retrain_metric: GateMetric = Field(
        default="pr_auc", validation_alias=_env("DRIFTLINE_RETRAIN_METRIC"),
        description="The metric the gate compares: pr_auc (average precision, for a rare positive class) or roc_auc.",
    )
    retrain_confidence: float = Field(
        default=0.95, gt=0, lt=1, validation_alias=_env("DRIFTLINE_RETRAIN_CONFIDENCE"),
        description="Confidence of the percentile interval of the metric difference.",
    )
    retrain_bootstrap_samples: int = Field(
        default=1000, ge=100, le=100_000, validation_alias=_env("DRIFTLINE_RETRAIN_BOOTSTRAP_SAMPLES"),
        description="Paired resamples of the holdout the interval is computed from.",
    )
    retrain_holdout_fraction: float = Field(
        default=0.3, gt=0, lt=1, validation_alias=_env("DRIFTLINE_RETRAIN_HOLDOUT_FRACTION"),
        description="The latest share of the window (by event time) both models are compared on.",
    )
    retrain_read_idle_s: float = Field(
        default=2.0, gt=0, validation_alias=_env("DRIFTLINE_RETRAIN_READ_IDLE_S"),
        description="The topic read ends once nothing has come for this long.",
    )
    retrain_max_read_s: float = Field(
        default=120.0, gt=0, validation_alias=_env("DRIFTLINE_RETRAIN_MAX_READ_S"),
        description="The topic read ends after this long even if records keep coming.",
    )
    # The worker's name and default, so a label training accepts is one the worker accepts.
    max_future_skew_s: float = Field(
        default=300.0, ge=0, validation_alias=_env("DRIFTLINE_MAX_FUTURE_SKEW_S"),
        description="A label timed further than this ahead of the retrain's clock is refused (from_the_future).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None, validation_alias=_env("DRIFTLINE_WEBHOOK_SECRET"),
        description="Bearer token Grafana sends to POST /retrain (16 characters or more); the webhook refuses to "
        "start without it.",
    )
    webhook_host: str = Field(
        default="127.0.0.1", validation_alias=_env("DRIFTLINE_WEBHOOK_HOST"),
        description="Address `driftline webhook` listens on (0.0.0.0 in a container).",
    )
    webhook_port: int = Field(
        default=9110, ge=0, le=65535, validation_alias=_env("DRIFTLINE_WEBHOOK_PORT"),
        description="Port of `driftline webhook` (POST /retrain, GET /metrics).",
    )


class StackSettings(_Base):
    """The embedded broker and Redis for machines without Docker."""

    kafka_port: int = Field(default=EMBEDDED_KAFKA_PORT, validation_alias=_env("DRIFTLINE_STACK_KAFKA_PORT"))
    redis_port: int = Field(default=EMBEDDED_REDIS_PORT, validation_alias=_env("DRIFTLINE_STACK_REDIS_PORT"))
