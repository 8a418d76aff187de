"""Build the Faust application and its topics from settings; nothing happens at import."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types.auth import CredentialsT

from driftline.kafka import kafka_security
from driftline.settings import KafkaSettings, WorkerSettings
from stream_app.transport import DriftlineApp


@dataclass(frozen=True, slots=True)
class Topics:
    """The worker's topics, all raw bytes: JSON is decoded and encoded by driftline itself."""

    events: faust.TopicT
    predictions: faust.TopicT
    dead_letters: faust.TopicT
    shadow_predictions: faust.TopicT


def broker_credentials(settings: KafkaSettings) -> CredentialsT | None:
    """Map the kernel's Kafka security translation to Faust credentials (None for PLAINTEXT)."""
    security = kafka_security(settings)
    if security.uses_sasl:
        return faust.SASLCredentials(
            username=security.sasl_username, password=security.sasl_password_value(),
            ssl_context=security.ssl_context, mechanism=security.sasl_mechanism,
        )
    if security.ssl_context is not None:
        return faust.SSLCredentials(security.ssl_context)
    return None


def create_app(settings: WorkerSettings) -> tuple[DriftlineApp, Topics]:
    """Create the worker's Faust app and topics.

    Choices that keep correctness independent of broker features some Kafka-protocol brokers
    lack: no tables or changelogs (state that must survive lives in Redis), no leader topic, no
    idempotent or transactional producer (at-least-once with stable prediction ids instead),
    and acks from all in-sync replicas before an input offset may be committed.
    """
    app = DriftlineApp(
        settings.group_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),
        autodiscover=False,
        store="memory://",
        # Faust keeps per-app files under datadir (default: ./<app id>-data in the working directory).
        datadir=str(settings.home / "faust"),
        topic_disable_leader=True,
        topic_partitions=settings.topic_partitions,
        topic_allow_declare=True,
        web_enabled=False,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(1.0, settings.session_timeout_s / 3),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A micro-batch's outputs are sent together, so each partition gets about one batch per
        # micro-batch; the linger only gathers what arrives within a few ms of it.
        producer_linger_ms=settings.output_linger_ms,
        producer_max_batch_size=settings.output_batch_bytes,
        # Sized with DRIFTLINE_MAX_EVENT_BYTES (see WorkerSettings) so a dead letter always fits.
        producer_max_request_size=settings.max_request_bytes,
        # A send not acknowledged by then fails and the publisher retries it (Faust's default is 20 min).
        producer_request_timeout=settings.send_timeout_s,
        # Refresh the producer's view of the topics every second, not every 5 minutes: a broker that
        # acknowledges writes to a topic deleted since the last refresh (Tansu does) loses them, and
        # once the refresh shows the topic gone, sends wait for it (or its re-creation) instead.
        producer_metadata_max_age_ms=1000,
        processing_guarantee="at_least_once",
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    topics = Topics(
        events=app.topic(settings.events_topic, key_type=bytes, value_type=bytes, value_serializer="raw",
                         key_serializer="raw"),
        predictions=app.topic(settings.predictions_topic, key_type=bytes, value_type=bytes,
                              value_serializer="raw", key_serializer="raw"),
        dead_letters=app.topic(settings.dead_letter_topic, key_type=bytes, value_type=bytes,
                               value_serializer="raw", key_serializer="raw"),
        shadow_predictions=app.topic(settings.shadow_predictions_topic, key_type=bytes, value_type=bytes,
                                     value_serializer="raw", key_serializer="raw"),
    )
    return app, topics
