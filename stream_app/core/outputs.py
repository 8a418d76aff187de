"""The records a batch publishes, and what replaces one the broker will never take.

Pure: encoding, the size rule and the fallback are decided here; sending and retrying are the
publisher's (``stream_app.adapters.publisher``). The rule that keeps "nothing lost" true: every
input gets an output the broker can accept. A prediction the broker refuses becomes a dead letter
of its input (``output_failed``); a dead letter too large to publish keeps only the first bytes of
its input, with the input's length and SHA-256; nothing is smaller than that, so a dead letter
that is still refused holds the batch (the publisher retries and commits nothing past it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from driftline.contracts import TRUNCATED_KEEP_BYTES, DeadLetter, Prediction, encode_prediction
from stream_app.core.pipeline import RawRecord

#: What a record costs beyond its key and value in a produce request (batch header, record
#: framing); aiokafka's own estimate for one small record is under 100 bytes.
RECORD_OVERHEAD_BYTES = 256

OutputKind = Literal["prediction", "dead_letter"]


@dataclass(frozen=True, slots=True)
class Output:
    """One record to publish, and the input it answers."""

    kind: OutputKind
    topic: str
    key: bytes | None
    value: bytes
    source: RawRecord
    letter: DeadLetter | None = None  # dead letters: the letter itself, to cut it down if refused

    @property
    def size(self) -> int:
        """Bytes this record takes in a produce request, at most."""
        return len(self.key or b"") + len(self.value) + RECORD_OVERHEAD_BYTES

    @property
    def where(self) -> str:
        """The input's position, for logs: ``topic[partition]@offset``."""
        return f"{self.source.topic}[{self.source.partition}]@{self.source.offset}"


def prediction_output(prediction: Prediction, source: RawRecord, topic: str) -> Output:
    """The prediction record, keyed by its first entity key (the event id when it has none)."""
    key = str(next(iter(prediction.entities.values()), prediction.event_id)).encode()
    return Output("prediction", topic, key, encode_prediction(prediction), source)


def dead_letter_output(letter: DeadLetter, topic: str, max_request_bytes: int) -> Output:
    """The dead-letter record, carrying its input whole when that fits ``max_request_bytes``, else cut."""
    source = RawRecord(
        key=letter.original_key, value=letter.original_value, topic=letter.source_topic,
        partition=letter.source_partition, offset=letter.source_offset,
    )
    output = Output("dead_letter", topic, letter.original_key, letter.model_dump_json().encode(), source, letter)
    if output.size <= max_request_bytes or letter.original_truncated:
        return output
    return _cut(output, topic)


def _cut(output: Output, topic: str) -> Output:
    assert output.letter is not None
    letter = output.letter.truncated(TRUNCATED_KEEP_BYTES)
    return Output("dead_letter", topic, letter.original_key, letter.model_dump_json().encode(), output.source, letter)


def fallback(
    output: Output, error: str, dead_letter_topic: str, max_request_bytes: int, model_version: str, at: datetime
) -> Output | None:
    """What to publish instead of ``output``, which the broker refused for good with ``error``.

    A prediction becomes a dead letter of its input; a dead letter keeps only the first bytes of its
    input. None when nothing smaller exists: the caller must hold the input and retry.
    """
    if output.kind == "prediction":
        letter = DeadLetter.for_input(
            output.source.key, output.source.value,
            error_type="output_failed",
            reason=f"its prediction could not be published to {output.topic}: {error}",
            source_topic=output.source.topic, source_partition=output.source.partition,
            source_offset=output.source.offset, event_id=_event_id(output.value),
            model_version=model_version, failed_at=at,
        )
        return dead_letter_output(letter, dead_letter_topic, max_request_bytes)
    if output.letter is not None and not output.letter.original_truncated:
        return _cut(output, output.topic)
    return None


def _event_id(prediction_json: bytes) -> str | None:
    try:
        return Prediction.model_validate_json(prediction_json).event_id
    except ValueError:
        return None
