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
