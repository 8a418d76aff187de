"""Age of the store's feature values over the most recent scored events, per feature view."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from drift.records import FreshnessSummary


class FreshnessWindow:
    """Keeps the ages (seconds) of the latest ``size`` scored events per feature view."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ages: dict[str, deque[float]] = {}

    def observe(self, ages: Mapping[str, Sequence[float]]) -> None:
        """Add one batch's ages (one per scored event that had the view's values)."""
        for view, values in ages.items():
            window = self._ages.setdefault(view, deque(maxlen=self._size))
            window.extend(values)

    def summary(self, ttls: Mapping[str, float]) -> dict[str, FreshnessSummary]:
        """Per view: events, median and p99 age, and the share older than the view's TTL."""
        out: dict[str, FreshnessSummary] = {}
        for view, window in self._ages.items():
            if not window:
                continue
            ages = np.fromiter(window, dtype=np.float64, count=len(window))
            ttl = ttls.get(view) or 0.0
            out[view] = FreshnessSummary(
                events=len(ages),
                p50_s=float(np.percentile(ages, 50)),
                p99_s=float(np.percentile(ages, 99)),
                ttl_s=float(ttl),
                stale_share=float(np.mean(ages > ttl)) if ttl else 0.0,
            )
        return out
