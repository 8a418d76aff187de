import pytest

from drift.freshness import FreshnessWindow
from drift.records import FreshnessSummary


def test_summary_per_view_with_ttl_share() -> None:
    window = FreshnessWindow(size=4)
    window.observe({"customer_stats": [10.0, 20.0], "merchant_stats": [5.0]})
    window.observe({"customer_stats": [30.0, 400.0, 500.0]})  # the oldest (10.0) falls out
    summary = window.summary({"customer_stats": 100.0})
    customer, merchant = summary["customer_stats"], summary["merchant_stats"]
    assert customer.events == 4 and customer.ttl_s == 100.0
    assert customer.stale_share == pytest.approx(0.5)
    assert customer.p50_s == pytest.approx(215.0)
    # No TTL known: never stale.
    assert merchant == FreshnessSummary(events=1, p50_s=5.0, p99_s=5.0, ttl_s=0.0, stale_share=0.0)
