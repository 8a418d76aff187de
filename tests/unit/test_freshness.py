import pytest

from drift.freshness import FreshnessWindow


def test_summary_per_view_with_ttl_share() -> None:
    window = FreshnessWindow(size=4)
    window.observe({"customer_stats": [10.0, 20.0], "merchant_stats": [5.0]})
    window.observe({"customer_stats": [30.0, 400.0, 500.0]})  # the oldest (10.0) falls out
    summary = window.summary({"customer_stats": 100.0})
    assert summary["customer_stats"]["events"] == 4
    assert summary["customer_stats"]["stale_share"] == pytest.approx(0.5)
    assert summary["customer_stats"]["p50_s"] == pytest.approx(215.0)
    assert summary["merchant_stats"]["stale_share"] == 0.0  # no TTL known: never stale
