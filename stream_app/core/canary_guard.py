"""The canary's guard: compare it with production on the same window and say when it must go back.

Pure. The worker feeds every batch's outcome per version; :meth:`CanaryGuard.verdict` compares the
canary with production over the last ``window`` events of each: its dead-letter rate, its latency p99
and its score distribution (PSI against production's scores of the same window). Nothing is judged
before both sides have ``min_events``: a canary at 5% of a quiet stream takes a while to be judged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """When the canary is rolled back: any one limit broken is enough."""

    max_dead_letter_increase: float = 0.02  # canary's dead-letter rate minus production's
    max_p99_ratio: float = 2.0  # canary's latency p99 over production's
    max_score_psi: float = 0.25  # PSI of the canary's scores against production's
    min_events: int = 500  # per side, before anything is judged
    window: int = 5_000  # events per side kept


class _Side:
    def __init__(self, window: int) -> None:
        self.outcomes: deque[bool] = deque(maxlen=window)  # True: dead-lettered
        self.latencies: deque[float] = deque(maxlen=window)
        self.scores: deque[float] = deque(maxlen=window)

    def observe(self, scored: int, dead_lettered: int, latencies: Iterable[float], scores: Iterable[float]) -> None:
        self.outcomes.extend([False] * scored + [True] * dead_lettered)
        self.latencies.extend(latencies)
        self.scores.extend(scores)

    @property
    def events(self) -> int:
        return len(self.outcomes)

    def dead_letter_rate(self) -> float:
        return sum(self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def p99(self) -> float:
        return float(np.quantile(np.fromiter(self.latencies, float), 0.99)) if self.latencies else 0.0


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``, on ``expected``'s deciles."""
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1) / len(expected)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1) / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


class CanaryGuard:
    """Rolling windows of production and the canary; a reason to roll the canary back, or None."""

    def __init__(self, limits: GuardLimits) -> None:
        self.limits = limits
        self.production = _Side(limits.window)
        self.canary = _Side(limits.window)
        self.canary_version: str | None = None

    def watch(self, canary_version: str | None) -> None:
        """Start over when the canary changes (or goes)."""
        if canary_version != self.canary_version:
            self.canary_version = canary_version
            self.production = _Side(self.limits.window)
            self.canary = _Side(self.limits.window)

    def verdict(self) -> str | None:
        """Why the canary must go back, or None (also None until both sides have ``min_events``)."""
        lim = self.limits
        if self.canary_version is None or min(self.production.events, self.canary.events) < lim.min_events:
            return None
        dead_prod, dead_canary = self.production.dead_letter_rate(), self.canary.dead_letter_rate()
        if dead_canary - dead_prod > lim.max_dead_letter_increase:
            return (f"canary {self.canary_version} dead-letters {dead_canary:.1%} of its events, production "
                    f"{dead_prod:.1%} (limit +{lim.max_dead_letter_increase:.1%})")
        p99_prod, p99_canary = self.production.p99(), self.canary.p99()
        if p99_prod > 0 and p99_canary / p99_prod > lim.max_p99_ratio:
            ratio = p99_canary / p99_prod
            return (f"canary {self.canary_version} latency p99 {p99_canary * 1000:.0f} ms is {ratio:.1f}x "
                    f"production's {p99_prod * 1000:.0f} ms (limit {lim.max_p99_ratio:g}x)")
        if len(self.production.scores) >= lim.min_events and len(self.canary.scores) >= lim.min_events:
            value = psi(np.fromiter(self.production.scores, float), np.fromiter(self.canary.scores, float))
            if value > lim.max_score_psi:
                return (f"canary {self.canary_version} scores differ from production's: PSI {value:.3f} "
                        f"(limit {lim.max_score_psi:g})")
        return None
