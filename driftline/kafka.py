"""Kafka settings -> client options: the one translation every Kafka client of driftline uses.

:func:`kafka_security` states how to reach the brokers safely in no library's spelling (protocol,
SASL mechanism and credentials, a TLS context built from ``KAFKA_SSL_CAFILE``); the worker maps it
to Faust's credentials. :func:`kafka_python_options` spells the same connection for kafka-python
(producers, readers, admin clients), built from the same :class:`KafkaSecurity`, so TLS and SASL
mean one thing whichever client connects.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from driftline.errors import ConfigError
from driftline.settings import KafkaSettings

#: Faust's and kafka-python's choice when a SASL protocol names no mechanism.
DEFAULT_SASL_MECHANISM = "PLAIN"


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How a client authenticates and encrypts; the password stays a ``SecretStr`` so no repr shows it."""

    protocol: str  # one of KafkaSettings.security_protocol's choices
    ssl_context: ssl.SSLContext | None = None  # set for SSL and SASL_SSL
    sasl_mechanism: str | None = None  # set for SASL_PLAINTEXT and SASL_SSL
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    @property
    def uses_sasl(self) -> bool:
        """Whether the client authenticates with SASL."""
        return self.sasl_mechanism is not None

    def sasl_password_value(self) -> str | None:
        """The SASL password in clear, for handing to a client library only."""
        return self.sasl_password.get_secret_value() if self.sasl_password is not None else None


def kafka_security(settings: KafkaSettings) -> KafkaSecurity:
    """Translate the security settings; a TLS protocol gets a context that trusts ``KAFKA_SSL_CAFILE``.

    Without a CA file the system's trusted CAs are used. Raises :class:`ConfigError` if the CA file
    cannot be read.
    """
    protocol = settings.security_protocol
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
        try:
            context = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"KAFKA_SSL_CAFILE={cafile} cannot be used as a CA file: {exc}") from exc
    if not protocol.startswith("SASL_"):
        return KafkaSecurity(protocol=protocol, ssl_context=context)
    return KafkaSecurity(
        protocol=protocol,
        ssl_context=context,
        sasl_mechanism=settings.sasl_mechanism or DEFAULT_SASL_MECHANISM,
        sasl_username=settings.sasl_username,
        sasl_password=settings.sasl_password,
    )


def bootstrap_servers(settings: KafkaSettings) -> list[str]:
    """The ``host:port`` addresses of ``KAFKA_BOOTSTRAP_SERVERS``."""
    return settings.bootstrap_servers.split(",")


def kafka_python_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options in kafka-python's spelling (holds the SASL password: never log it)."""
    security = kafka_security(settings)
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings),
        "security_protocol": security.protocol,
    }
    if security.ssl_context is not None:
        options["ssl_context"] = security.ssl_context
    if security.uses_sasl:
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = security.sasl_password_value()
    return options


# --- The embedded broker's per-partition limit ---------------------------------------------------------
# Tansu with in-memory storage lists every stored batch of a partition on each fetch, under the fetch's
# max wait as deadline; past the deadline the fetch returns nothing, so a partition that holds too many
# batches stops answering for good. Measured on one partition of single-record batches, 2-core machine:
# at a 5 ms wait a fetch at the tail took 8 ms with 8,000 batches, 4.9 s with 16,000 and never answered
# with 30,000; at a 50 ms wait it took 18-49 ms with 30,000 and 38 ms with 60,000. Listing costs about
# 0.5 us per batch, so a wait of W ms covers about 2,000 x W batches on an idle machine; half of that, for a
# busy one, is the limit.
EMBEDDED_BATCHES_PER_WAIT_MS = 1_000
#: Share of the limit at which `driftline stack status` warns.
EMBEDDED_WARN_SHARE = 0.5


def embedded_partition_limit(fetch_max_wait_ms: int) -> int:
    """Batches a partition of the embedded broker may hold before fetches with this wait stop answering."""
    return fetch_max_wait_ms * EMBEDDED_BATCHES_PER_WAIT_MS


def projected_batches(seconds: float, rate: float, partitions: int, linger_ms: int) -> int:
    """Batches a steady producer adds to each partition over ``seconds`` (an upper bound).

    A partition gets at most one batch per linger interval, and never more batches than records.
    """
    per_partition_records = seconds * rate / max(1, partitions)
    per_partition_flushes = seconds * 1000 / max(1, linger_ms)
    return int(min(per_partition_records, per_partition_flushes))


#: Bytes of a generated example event on the wire, for projecting an unthrottled run's batches (measured
#: encoded events are 250-330 bytes; the smaller figure projects more batches).
EVENT_BYTES_ESTIMATE = 250
#: A run may fill a partition of the embedded broker to this share of its limit.
PRODUCE_MAX_SHARE_OF_LIMIT = 0.8


def produce_capacity_problem(
    held_batches: int, count: int, rate: float, partitions: int, linger_ms: int, batch_bytes: int,
    fetch_max_wait_ms: int,
) -> str | None:
    """Why publishing ``count`` events at ``rate`` would take the fullest events partition past the limit, or None.

    ``held_batches`` is what the fullest partition holds now. A throttled run adds at most one batch per
    linger interval per partition; an unthrottled one fills batches by size.
    """
    if rate > 0:
        added = projected_batches(count / rate, rate, partitions, linger_ms)
    else:
        per_batch = max(1, batch_bytes // EVENT_BYTES_ESTIMATE)
        added = -(-count // (per_batch * max(1, partitions)))
    limit = embedded_partition_limit(fetch_max_wait_ms)
    if held_batches + added <= PRODUCE_MAX_SHARE_OF_LIMIT * limit:
        return None
    return (
        f"the embedded broker's fullest events partition holds {held_batches:,} batches and this run would add "
        f"about {added:,}, past {PRODUCE_MAX_SHARE_OF_LIMIT:.0%} of the {limit:,} its fetches can list "
        f"(DRIFTLINE_FETCH_MAX_WAIT_MS={fetch_max_wait_ms}); run `driftline topics reset` (workers stopped), "
        f"raise DRIFTLINE_PRODUCER_LINGER_MS (now {linger_ms}), or publish fewer events"
    )
