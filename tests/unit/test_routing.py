"""Canary routing: a stable share of entity keys, the same decision everywhere."""

from __future__ import annotations

from stream_app.core.routing import BUCKETS, bucket, split, to_canary


def test_the_share_is_the_percentage_within_a_point() -> None:
    keys = [f"C{i:06d}".encode() for i in range(20_000)]
    for percent in (1.0, 20.0, 50.0):
        share = sum(to_canary(k, percent) for k in keys) / len(keys)
        assert abs(share - percent / 100) < 0.01, (percent, share)


def test_one_key_always_meets_one_model_and_shares_nest() -> None:
    key = b"C000042"
    assert bucket(key) == bucket(b"C000042")  # stable across calls (and processes: no salted hash)
    assert bucket(b"C000042") == 9533  # pinned: a change of hash would reshuffle every customer
    # Raising the share only adds keys: nobody in the canary at 10% leaves it at 20%.
    keys = [f"C{i}".encode() for i in range(5_000)]
    at_10 = {k for k in keys if to_canary(k, 10)}
    at_20 = {k for k in keys if to_canary(k, 20)}
    assert at_10 <= at_20


def test_no_key_and_zero_percent_stay_in_production() -> None:
    assert bucket(None) == bucket(b"") == BUCKETS
    assert split([b"a", None, b"b"], 0.0) == ([0, 1, 2], [])
    production, canary = split([b"a", None, b"b"], 100.0)
    assert (production, canary) == ([1], [0, 2])
