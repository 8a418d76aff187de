"""Offline feature computation (feature_repo.compute): leakage-free snapshots, brute-force checks, known values."""

from __future__ import annotations

from datetime import UTC

import numpy as np
import pandas as pd
import pytest

from feature_repo.compute import (
    NIGHT_HOURS,
    Customers,
    Merchants,
    customer_snapshots,
    merchant_snapshots,
    snapshot_times,
)
from tests.support import WORLD_END as END
from tests.support import WORLD_START as START
from training.data import feature_entities


@pytest.fixture(scope="module")
def customers(world) -> Customers:
    return feature_entities(world)[0]


@pytest.fixture(scope="module")
def merchants(world) -> Merchants:
    return feature_entities(world)[1]


def test_snapshot_times_are_daily_and_end_at_end():
    days = snapshot_times(START, END)
    assert days[-1] == pd.Timestamp(END) and days[0] == pd.Timestamp(START)
    assert (np.diff(days.asi8) == 86_400 * 10**9).all()


@pytest.mark.parametrize("view", ["customer", "merchant"])
def test_snapshots_never_use_transactions_at_or_after_their_timestamp(customers, merchants, transactions, view):
    def snapshots(frame: pd.DataFrame, days: pd.DatetimeIndex) -> pd.DataFrame:
        if view == "customer":
            return customer_snapshots(customers, frame, days)
        return merchant_snapshots(merchants, frame, days)

    days = snapshot_times(START, END)
    full = snapshots(transactions, days)
    for ts in days[[5, 17, 30]]:
        # Rewriting the future (at or after ts) must leave the snapshot at ts untouched.
        future = transactions["event_time"] >= ts
        rewritten = transactions.copy()
        rewritten.loc[future, "amount"] = 99_999.0
        rewritten.loc[future, "is_fraud"] = 1
        rewritten.loc[future, "hour_of_day"] = 2
        past_only = transactions.loc[~future]
        for variant in (rewritten, past_only):
            again = snapshots(variant, days)
            a = full[full["event_timestamp"] == ts].reset_index(drop=True)
            b = again[again["event_timestamp"] == ts].reset_index(drop=True)
            pd.testing.assert_frame_equal(a, b)


def test_customer_snapshot_matches_brute_force(customers, transactions):
    days = snapshot_times(START, END)
    snaps = customer_snapshots(customers, transactions, days)
    ts = days[25]
    # A transaction exactly at the snapshot time is not part of it.
    cid = transactions["customer_id"].iloc[100]
    at_ts = transactions.iloc[[100]].assign(event_time=ts, event_id="at-ts", amount=5_000.0)
    with_tie = pd.concat([transactions, at_ts]).sort_values("event_time", kind="stable")
    snaps_tie = customer_snapshots(customers, with_tie, days)
    for frame in (snaps, snaps_tie):
        row = frame[(frame["customer_id"] == cid) & (frame["event_timestamp"] == ts)].iloc[0]
        mine = transactions[transactions["customer_id"] == cid]
        w30 = mine[(mine["event_time"] >= ts - pd.Timedelta(days=30)) & (mine["event_time"] < ts)]
        w7 = mine[(mine["event_time"] >= ts - pd.Timedelta(days=7)) & (mine["event_time"] < ts)]
        assert row["txn_count_7d"] == len(w7)
        assert row["avg_amount_30d"] == pytest.approx(w30["amount"].mean())
        assert row["std_amount_30d"] == pytest.approx(w30["amount"].std(ddof=1))
        assert row["night_txn_share_30d"] == pytest.approx((w30["hour_of_day"] < NIGHT_HOURS).mean())


def test_merchant_snapshot_matches_brute_force(world, merchants, transactions):
    days = snapshot_times(START, END)
    snaps = merchant_snapshots(merchants, transactions, days)
    assert len(snaps) == len(days) * world.n_merchants
    ts = days[-1]
    mid = transactions["merchant_id"].iloc[0]
    row = snaps[(snaps["merchant_id"] == mid) & (snaps["event_timestamp"] == ts)].iloc[0]
    mine = transactions[(transactions["merchant_id"] == mid) & (transactions["event_time"] < ts)]
    assert row["fraud_rate_90d"] == pytest.approx(mine["is_fraud"].mean())
    assert row["txn_count_7d"] == (mine["event_time"] >= ts - pd.Timedelta(days=7)).sum()
    assert row["category"] == dict(zip(world.merchant_id, world.category, strict=True))[mid]
    assert snaps["txn_count_7d"].dtype == np.int64


def test_customer_snapshot_schema_and_accounts(customers, transactions):
    snaps = customer_snapshots(customers, transactions, snapshot_times(START, END))
    assert snaps.dtypes.to_dict() == {
        "customer_id": np.dtype(object),
        "event_timestamp": pd.DatetimeTZDtype("ns", "UTC"),
        "created_timestamp": pd.DatetimeTZDtype("ns", "UTC"),
        "txn_count_7d": np.dtype(np.int64),
        "avg_amount_30d": np.dtype(np.float64),
        "std_amount_30d": np.dtype(np.float64),
        "account_age_days": np.dtype(np.int64),
        "night_txn_share_30d": np.dtype(np.float64),
    }
    assert (snaps["account_age_days"] >= 0).all()
    # Every transaction has a snapshot at or before it (accounts opened in the window get one at opening).
    first = snaps.groupby("customer_id")["event_timestamp"].min()
    tx_first = transactions.groupby("customer_id")["event_time"].min()
    assert (first.reindex(tx_first.index) <= tx_first).all()


def test_known_values_of_a_seeded_world(customers, merchants, transactions):
    # Values the computation gave when it still lived in producers/generator.py: moving it changed nothing.
    days = snapshot_times(START, END)
    snaps = customer_snapshots(customers, transactions, days)
    merchant_snaps = merchant_snapshots(merchants, transactions, days)
    assert snaps.shape == (24_144, 8) and merchant_snaps.shape == (3_280, 7)
    row = snaps[(snaps["customer_id"] == "C00042") & (snaps["event_timestamp"] == days[25])].iloc[0]
    assert row["event_timestamp"] == pd.Timestamp("2026-02-14 07:00", tz=UTC)
    assert row["txn_count_7d"] == 4 and row["account_age_days"] == 987
    assert row["avg_amount_30d"] == 130.10142857142858
    assert row["std_amount_30d"] == 110.5615754746131
    assert row["night_txn_share_30d"] == 0.08571428571428572
    row = merchant_snaps[(merchant_snaps["merchant_id"] == "M0007") & (merchant_snaps["event_timestamp"] == days[-1])]
    assert row.iloc[0].to_dict() == {
        "merchant_id": "M0007",
        "event_timestamp": pd.Timestamp(END),
        "created_timestamp": pd.Timestamp(END),
        "fraud_rate_90d": 0.128125,
        "txn_count_7d": 59,
        "avg_amount_30d": 198.71262931034482,
        "category": "electronics",
    }
    last = snaps[snaps["event_timestamp"] == days[-1]]
    assert last["txn_count_7d"].sum() == 3_468 and last["account_age_days"].sum() == 984_649
    assert last["std_amount_30d"].sum() == pytest.approx(99_277.98792023753, rel=1e-12)
    assert merchant_snaps.loc[merchant_snaps["event_timestamp"] == days[-1], "fraud_rate_90d"].sum() == pytest.approx(
        2.306220265249217, rel=1e-12
    )


def test_unknown_entities_are_refused(customers, merchants, transactions):
    days = snapshot_times(START, END)
    stranger = transactions.iloc[:3].assign(customer_id="C99999", merchant_id="M9999")
    with pytest.raises(ValueError, match="not in the customer table"):
        customer_snapshots(customers, stranger, days)
    with pytest.raises(ValueError, match="not in the merchant table"):
        merchant_snapshots(merchants, stranger, days)
