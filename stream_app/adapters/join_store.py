"""The label join store: each published prediction kept in Redis until its label comes (or its TTL ends).

Key layout, under a prefix (``DRIFTLINE_JOIN_PREFIX``, default ``driftline:join:``):

* ``<prefix>e:<event_id>``: a hash, field ``prediction_id`` -> :meth:`JoinedPrediction.to_bytes`, one
  field per model version that scored the event. A label naming only the event reads it whole (HGETALL).
* ``<prefix>p:<prediction_id>``: a string holding the event id, so a label naming only a prediction
  finds its event's hash.

Both keys of a prediction get the TTL ``JoinWindow.ttl_s`` when it is remembered. A small hash stays a
listpack in Redis, so the second version of an event costs a field, not a key; the index key is what a
prediction-id-only label costs (measured in tests/integration/test_label_join.py, and stated in the
report of issue 14).

Every operation is one round trip for a whole batch, a Lua script each: ``remember`` (a script rather
than a pipeline of three commands per prediction: redis-py spent 23 us of the worker's CPU per
prediction packing and parsing the pipeline, the script 5 us, measured on 200-prediction batches),
``pending`` (the prediction-id lookup follows the index inside Redis) and ``mark``. ``mark`` is a
compare-and-set: it writes a labelled record only over a record that is still unlabelled, so two
workers, or a redelivered label, never count one prediction twice. The scripts reach event keys they
build from the index's value, which a Redis Cluster would refuse across slots: the store is for one
Redis (or a primary with replicas), as Feast's online store is.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Sequence
from typing import Literal, Protocol, TypeVar

import redis.asyncio
import redis.exceptions

from driftline.contracts import Label
from driftline.errors import DriftlineError
from driftline.settings import WorkerSettings
from feature_repo.redis_reader import redis_client
from stream_app.core.labels import CorruptJoinRecordError, JoinedPrediction, JoinWindow

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What became of one record :meth:`RedisJoinStore.mark` was asked to mark: marked now (this caller
#: counts its label), already labelled (another worker or an earlier delivery did), or gone (its TTL ended
#: between the lookup and the mark).
MarkResult = Literal["marked", "labelled", "gone"]
_MARK_RESULTS: dict[int, MarkResult] = {1: "marked", 0: "labelled", -1: "gone"}

#: An unlabelled record ends with its labelled_at as JSON null (the last element of the array that
#: JoinedPrediction.to_bytes writes); the mark script tests exactly that, whatever the score's formatting.
UNLABELLED_SUFFIX = b",null]"

# KEYS[2i - 1]: an event hash, KEYS[2i]: the prediction's index key; ARGV[1]: the TTL in seconds;
# ARGV[3i - 1], ARGV[3i], ARGV[3i + 1]: prediction id, record, event id. HSETNX keeps a record already
# there (and a label it took); every key's TTL starts again.
_REMEMBER = """
local ttl = ARGV[1]
for i = 1, #KEYS / 2 do
  local event_key = KEYS[2 * i - 1]
  redis.call('HSETNX', event_key, ARGV[3 * i - 1], ARGV[3 * i])
  redis.call('EXPIRE', event_key, ttl)
  redis.call('SET', KEYS[2 * i], ARGV[3 * i + 1], 'EX', ttl)
end
return #KEYS / 2
"""

# KEYS[i]: the event hash (ARGV[i + 1] empty: the label names only the event) or the prediction index
# key (ARGV[i + 1] the prediction id). ARGV[1]: the prefix of event keys. Returns, per key, a flat list
# of prediction id, record, prediction id, record, ...
_LOOKUP = """
local out = {}
for i, key in ipairs(KEYS) do
  local pid = ARGV[i + 1]
  if pid == '' then
    out[i] = redis.call('HGETALL', key)
  else
    out[i] = {}
    local event_id = redis.call('GET', key)
    if event_id then
      local record = redis.call('HGET', ARGV[1] .. event_id, pid)
      if record then
        out[i] = {pid, record}
      end
    end
  end
end
return out
"""

# KEYS[i]: an event hash; ARGV[2i - 1]: the prediction id, ARGV[2i]: its labelled record. HSET on an
# existing field keeps the key's TTL; a key gone is never created again (it would have none).
_MARK = """
local out = {}
for i, key in ipairs(KEYS) do
  local pid = ARGV[2 * i - 1]
  local current = redis.call('HGET', key, pid)
  if not current then
    out[i] = -1
  elseif string.sub(current, -6) ~= ',null]' then
    out[i] = 0
  else
    redis.call('HSET', key, pid, ARGV[2 * i])
    out[i] = 1
  end
end
return out
"""


class JoinStoreError(DriftlineError):
    """The label join store (Redis) failed or timed out."""


class JoinStore(Protocol):
    """What the label joiner needs of a store: the cut that lets its tests swap Redis for a fake."""

    async def remember(self, predictions: Sequence[JoinedPrediction]) -> None:
        """Keep each prediction (unlabelled) for the window's TTL; one already kept is left as it is."""

    async def pending(self, labels: Sequence[Label]) -> list[list[JoinedPrediction]]:
        """For each label, the kept records of its prediction id (if any) or else of its event id."""

    async def mark(self, labelled: Sequence[JoinedPrediction]) -> list[MarkResult]:
        """Write each labelled record over its kept one if that one is still unlabelled, atomically."""


class RedisJoinStore:
    """The join store on one Redis, through ``redis.asyncio``; every call is one round trip per batch."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        window: JoinWindow,
        prefix: str = "driftline:join:",
        timeout_s: float = 2.0,
    ) -> None:
        if not prefix:
            raise ValueError("the join store's key prefix must not be empty")
        self._client = client
        self._prefix = prefix
        self._ttl_s = math.ceil(window.ttl_s)  # whole seconds (EXPIRE); never shorter than the window
        self._timeout_s = timeout_s
        self._remember = client.register_script(_REMEMBER)
        self._lookup = client.register_script(_LOOKUP)
        self._mark = client.register_script(_MARK)

    @classmethod
    def from_settings(cls, settings: WorkerSettings) -> RedisJoinStore:
        """A store on ``REDIS_URL`` (with the worker's TLS files), keyed and timed by the worker's settings."""
        return cls(redis_client(settings), join_window(settings), settings.join_prefix, settings.join_timeout_s)

    @property
    def ttl_s(self) -> int:
        """The TTL, in whole seconds, of every key this store writes."""
        return self._ttl_s

    def event_key(self, event_id: str) -> str:
        """The hash of an event's predictions."""
        return f"{self._prefix}e:{event_id}"

    def prediction_key(self, prediction_id: str) -> str:
        """The index from a prediction id to its event id."""
        return f"{self._prefix}p:{prediction_id}"

    async def remember(self, predictions: Sequence[JoinedPrediction]) -> None:
        """Keep each prediction for the TTL, in one round trip.

        A prediction already kept (an event redelivered and scored again under the same prediction id)
        is not overwritten: a label it took stays taken. Each key's TTL starts again from this write.
        """
        if not predictions:
            return
        keys: list[str] = []
        args: list[str | bytes | int] = [self._ttl_s]
        for prediction in predictions:
            keys += [self.event_key(prediction.event_id), self.prediction_key(prediction.prediction_id)]
            args += [prediction.prediction_id, prediction.to_bytes(), prediction.event_id]
        await self._bounded(self._remember(keys=keys, args=args), f"remembering {len(predictions)} predictions")

    async def pending(self, labels: Sequence[Label]) -> list[list[JoinedPrediction]]:
        """For each label, in order, the kept records it may join, in one round trip.

        By prediction id when the label has one (then :func:`~stream_app.core.labels.join` checks its
        event id), else every prediction of its event. A record that cannot be decoded is logged and
        left out: it cannot be joined, and it must not stop the batch.
        """
        if not labels:
            return []
        keys: list[str] = []
        args: list[str] = [f"{self._prefix}e:"]
        for label in labels:
            if label.prediction_id is not None:
                keys.append(self.prediction_key(label.prediction_id))
                args.append(label.prediction_id)
            elif label.event_id is not None:
                keys.append(self.event_key(label.event_id))
                args.append("")
            else:  # Label refuses this; a label built without validation must not read the whole prefix
                raise ValueError("a label needs event_id or prediction_id")
        replies: list[list[bytes]] = await self._bounded(
            self._lookup(keys=keys, args=args), f"looking up the predictions of {len(labels)} labels"
        )
        found: list[list[JoinedPrediction]] = []
        for key, reply in zip(keys, replies, strict=True):
            records: list[JoinedPrediction] = []
            for field, raw in zip(reply[::2], reply[1::2], strict=True):
                try:
                    records.append(JoinedPrediction.from_bytes(raw))
                except CorruptJoinRecordError as exc:
                    logger.warning("skipping join record %r of %s: %s", field[:128], key[:200], exc)
            found.append(records)
        return found

    async def mark(self, labelled: Sequence[JoinedPrediction]) -> list[MarkResult]:
        """Write each labelled record (``labelled_at`` set) over its kept one, in one atomic round trip.

        Only a kept record that is still unlabelled is replaced (``marked``); one already labelled is left
        (``labelled``: count its label as a duplicate), and a record gone is not written again (``gone``).
        The key keeps its TTL.
        """
        if not labelled:
            return []
        keys: list[str] = []
        args: list[str | bytes] = []
        for record in labelled:
            if record.labelled_at is None:
                raise ValueError(f"prediction {record.prediction_id} has no labelled_at: nothing to mark")
            keys.append(self.event_key(record.event_id))
            args += [record.prediction_id, record.to_bytes()]
        replies: list[int] = await self._bounded(
            self._mark(keys=keys, args=args), f"marking {len(labelled)} labelled predictions"
        )
        return [_MARK_RESULTS[int(reply)] for reply in replies]

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()

    async def _bounded(self, call: Awaitable[T], what: str) -> T:
        """Await one round trip; a timeout or any Redis error becomes a JoinStoreError naming it."""
        try:
            return await asyncio.wait_for(call, self._timeout_s)
        except TimeoutError as exc:
            raise JoinStoreError(f"join store ({self._prefix}*): {what} timed out after {self._timeout_s}s") from exc
        except (redis.exceptions.RedisError, OSError) as exc:
            raise JoinStoreError(
                f"join store ({self._prefix}*): {what} failed: {type(exc).__name__}: {_first_line(exc)}"
            ) from exc


def join_window(settings: WorkerSettings) -> JoinWindow:
    """The join window of the worker's settings (``DRIFTLINE_LABEL_WINDOW_S`` and ``DRIFTLINE_LABEL_GRACE_S``)."""
    return JoinWindow(accept_s=settings.label_window_s, grace_s=settings.label_grace_s)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""
