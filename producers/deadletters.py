"""Inspect the dead-letter topic and replay selected dead letters onto the events topic."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from driftline.contracts import DeadLetter
from driftline.settings import ProducerSettings
from producers.kafka_clients import create_producer, open_reader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """Which dead letters to act on; empty fields match everything."""

    error_type: str | None = None
    reason_contains: str | None = None
    limit: int = 0

    def matches(self, letter: DeadLetter) -> bool:
        """Whether ``letter`` is selected."""
        if self.error_type and letter.error_type != self.error_type:
            return False
        return not (self.reason_contains and self.reason_contains not in letter.reason)


def read_dead_letters(settings: ProducerSettings, idle_timeout_s: float = 3.0) -> Iterator[DeadLetter]:
    """Every dead letter on the topic, from the start until it has been idle ``idle_timeout_s``.

    Raises :class:`DriftlineError` if the dead-letter topic does not exist.
    """
    with open_reader(settings, [settings.dead_letter_topic]) as reader:
        for record in reader.records(idle_timeout_s=idle_timeout_s):
            try:
                yield DeadLetter.model_validate_json(record.value or b"")
            except ValidationError:
                logger.warning("offset %s of %s is not a dead letter; skipped", record.offset, record.topic)


@dataclass(frozen=True)
class DeadLetterReport:
    """Selected dead letters on a topic: how many, counted by error type and by reason, and a sample."""

    topic: str
    total: int
    #: Most common first.
    by_error_type: dict[str, int]
    #: The ten most common reasons (first 100 characters), most common first.
    by_reason: dict[str, int]
    sample: tuple[DeadLetter, ...]


@dataclass(frozen=True)
class ReplayResult:
    """What :func:`replay` published: ``sent`` onto ``topic``, and truncated dead letters it could not replay."""

    topic: str
    sent: int
    #: Dead letters keeping only the first bytes of their input (``original_truncated``): not replayable.
    skipped_truncated: int


def inspect(settings: ProducerSettings, selection: Selection, sample: int = 5) -> DeadLetterReport:
    """Count the selected dead letters by error type and by reason, and keep a sample of them."""
    by_type: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    examples: list[DeadLetter] = []
    total = 0
    for letter in read_dead_letters(settings):
        if not selection.matches(letter):
            continue
        total += 1
        by_type[letter.error_type] += 1
        by_reason[letter.reason[:100]] += 1
        if len(examples) < sample:
            examples.append(letter)
    return DeadLetterReport(
        topic=settings.dead_letter_topic,
        total=total,
        by_error_type=dict(by_type.most_common()),
        by_reason=dict(by_reason.most_common(10)),
        sample=tuple(examples),
    )


def replay(settings: ProducerSettings, selection: Selection) -> ReplayResult:
    """Publish the original bytes of the selected dead letters onto the events topic again."""
    producer = create_producer(settings, client_id="driftline-replay")
    sent = 0
    cut = 0
    try:
        for letter in read_dead_letters(settings):
            if not selection.matches(letter):
                continue
            if letter.original_truncated:  # only its first bytes were kept: replaying them would be a new input
                cut += 1
                continue
            producer.send(settings.events_topic, key=letter.original_key, value=letter.original_value)
            sent += 1
            if selection.limit and sent >= selection.limit:
                break
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return ReplayResult(topic=settings.events_topic, sent=sent, skipped_truncated=cut)
