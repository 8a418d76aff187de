"""Which model scores an event: production, or the canary for a stable share of entity keys.

Pure. The share is decided by a hash of the message key (the entity key producers key events by),
so one customer always meets the same model while the canary alias and its percentage stay put,
and every worker, partition and serving mode (stream, HTTP) decides the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

#: Hash buckets: percentages are honoured to a hundredth of a point.
BUCKETS = 10_000


def bucket(key: bytes | None) -> int:
    """A stable bucket in [0, BUCKETS) for ``key`` (no key: bucket BUCKETS, never the canary)."""
    if not key:
        return BUCKETS
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % BUCKETS


def to_canary(key: bytes | None, percent: float) -> bool:
    """True when ``key`` falls in the canary's ``percent`` share."""
    return bucket(key) < round(percent * BUCKETS / 100)


def split(keys: Sequence[bytes | None], percent: float) -> tuple[list[int], list[int]]:
    """Positions of ``keys`` routed to production, and to the canary (in order)."""
    production: list[int] = []
    canary: list[int] = []
    for i, key in enumerate(keys):
        (canary if percent > 0 and to_canary(key, percent) else production).append(i)
    return production, canary
