"""The canary guard judges only with enough events, and names the limit the canary broke."""

from __future__ import annotations

import numpy as np

from stream_app.core.canary_guard import CanaryGuard, GuardLimits, psi

LIMITS = GuardLimits(min_events=200, window=1_000)
RNG = np.random.default_rng(7)


def fed(canary_dead: int = 0, canary_latency: float = 0.05, canary_shift: float = 0.0) -> CanaryGuard:
    guard = CanaryGuard(LIMITS)
    guard.watch("7")
    guard.production.observe(400, 4, [0.05] * 400, RNG.beta(2, 8, 400).tolist())
    scores = np.clip(RNG.beta(2, 8, 400) + canary_shift, 0, 1)
    guard.canary.observe(400 - canary_dead, 4 + canary_dead, [canary_latency] * 400, scores.tolist())
    return guard


def test_a_canary_like_production_stays() -> None:
    assert fed().verdict() is None


def test_nothing_is_judged_before_min_events() -> None:
    guard = CanaryGuard(LIMITS)
    guard.watch("7")
    guard.production.observe(400, 0, [0.05] * 400, [0.1] * 400)
    guard.canary.observe(50, 50, [9.0] * 50, [0.9] * 50)  # terrible, but only 100 events
    assert guard.verdict() is None


def test_each_limit_names_itself() -> None:
    assert fed(canary_dead=40).verdict() == (
        "canary 7 dead-letters 10.9% of its events, production 1.0% (limit +2.0%)"
    )
    assert fed(canary_latency=0.2).verdict() == (
        "canary 7 latency p99 200 ms is 4.0x production's 50 ms (limit 2x)"
    )
    verdict = fed(canary_shift=0.3).verdict()
    assert verdict is not None and verdict.startswith("canary 7 scores differ from production's: PSI ")


def test_a_new_canary_starts_over() -> None:
    guard = fed(canary_dead=40)
    guard.watch("8")
    assert guard.verdict() is None and guard.canary.events == 0


def test_psi_is_zero_for_the_same_sample_and_grows_with_a_shift() -> None:
    base = RNG.normal(size=5_000)
    assert psi(base, base) == 0.0
    assert psi(base, base + 0.1) < psi(base, base + 0.5) < psi(base, base + 1.0)
