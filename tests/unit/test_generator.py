"""The synthetic world: determinism, the fraud mechanism, drift, bad events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from driftline.contracts import TransactionEvent
from producers.generator import (
    INVALID_KINDS,
    MERCHANT_CATEGORIES,
    NIGHT_HOURS,
    YOUNG_ACCOUNT_DAYS,
    build_world,
    event_stream,
    generate_transactions,
    invalid_events,
)
from tests.support import WORLD_END as END
from tests.support import WORLD_START as START


def test_world_ids_and_traits(world):
    assert world.customer_id[0] == "C00000" and world.customer_id[-1] == "C00599"
    assert world.merchant_id[0] == "M0000" and world.merchant_id[-1] == "M0079"
    assert set(world.category) <= set(MERCHANT_CATEGORIES)
    assert (world.typical_amount > 0).all()
    assert (world.account_open <= np.datetime64(END.replace(tzinfo=None), "ns")).all()


def test_same_seed_same_data(world, transactions):
    again = build_world(seed=11, n_customers=600, n_merchants=80, anchor=END)
    np.testing.assert_array_equal(again.typical_amount, world.typical_amount)
    np.testing.assert_array_equal(again.category, world.category)
    pd.testing.assert_frame_equal(
        generate_transactions(again, START, END, 20_000, np.random.default_rng(3)), transactions
    )
    other = generate_transactions(world, START, END, 20_000, np.random.default_rng(4))
    assert not other["amount"].equals(transactions["amount"])


def test_transaction_columns(world, transactions):
    tx = transactions
    assert list(tx.columns) == [
        "event_id",
        "event_time",
        "customer_id",
        "merchant_id",
        "amount",
        "channel",
        "hour_of_day",
        "is_fraud",
    ]
    assert tx["event_id"].is_unique
    assert str(tx["event_time"].dt.tz) == "UTC"
    assert tx["event_time"].between(pd.Timestamp(START), pd.Timestamp(END), inclusive="left").all()
    assert tx["event_time"].is_monotonic_increasing
    assert (tx["hour_of_day"] == tx["event_time"].dt.hour).all()
    assert (tx["amount"] > 0).all()
    np.testing.assert_allclose(tx["amount"], tx["amount"].round(2))
    assert set(tx["channel"]) <= {"online", "pos", "atm"}
    assert set(tx["is_fraud"]) <= {0, 1}
    opened = pd.Series(world.account_open, index=world.customer_id).dt.tz_localize(UTC)
    assert (tx["event_time"].to_numpy() >= opened[tx["customer_id"]].to_numpy()).all()


def test_fraud_rate_and_mechanism(transactions):
    tx = transactions
    assert 0.02 <= tx["is_fraud"].mean() <= 0.04
    night = tx["hour_of_day"] < 6
    assert tx.loc[night, "is_fraud"].mean() > 1.5 * tx.loc[~night, "is_fraud"].mean()
    online = tx["channel"] == "online"
    assert tx.loc[online, "is_fraud"].mean() > 1.5 * tx.loc[~online, "is_fraud"].mean()


def test_drift_changes_the_distribution(world, transactions):
    def draw(drift):
        return generate_transactions(world, START, END, 20_000, np.random.default_rng(3), drift=drift)

    shifted = draw("amount_shift")
    assert shifted["amount"].median() == pytest.approx(2.5 * transactions["amount"].median(), rel=0.02)

    mixed = draw("merchant_mix")
    risky = {"electronics", "gaming"}
    category = dict(zip(world.merchant_id, world.category, strict=True))

    def risky_share(tx):
        return tx["merchant_id"].map(category).isin(risky).mean()

    assert risky_share(mixed) > risky_share(transactions) + 0.15

    pattern = draw("fraud_pattern")
    assert 0.01 <= pattern["is_fraud"].mean() <= 0.06

    def daytime_pos_share(tx):
        fraud = tx[tx["is_fraud"] == 1]
        return ((fraud["channel"] == "pos") & fraud["hour_of_day"].between(10, 17)).mean()

    assert daytime_pos_share(pattern) > daytime_pos_share(transactions) + 0.3

    with pytest.raises(ValueError, match="unknown drift"):
        generate_transactions(world, START, END, 10, np.random.default_rng(0), drift="sideways")  # type: ignore[arg-type]


def test_event_stream_yields_valid_events(world):
    start = datetime(2026, 5, 1, 12, tzinfo=UTC)
    events = list(event_stream(world, 1_200, np.random.default_rng(5), start, rate=100.0, chunk=500))
    assert len(events) == 1_200
    parsed = [TransactionEvent.model_validate_json(json.dumps(e)) for e in events]
    assert all(e["event_time"].endswith("Z") for e in events)
    times = [p.event_time for p in parsed]
    assert times[0] >= start and times[-1] <= start + timedelta(seconds=13)
    assert times == sorted(times)
    assert len({p.event_id for p in parsed}) == len(parsed)
    again = list(event_stream(world, 1_200, np.random.default_rng(5), start, rate=100.0, chunk=500))
    assert again == events


def test_the_label_is_the_ground_truth_and_changes_nothing_else(world):
    start = datetime(2026, 5, 1, 12, tzinfo=UTC)

    def stream(include_label: bool, chunk: int) -> list[dict]:
        rng = np.random.default_rng(5)
        return list(event_stream(world, 1_200, rng, start, rate=100.0, include_label=include_label, chunk=chunk))

    # Over several chunks, the label is one more field and the events are otherwise the same.
    labelled = stream(True, chunk=500)
    assert [{k: v for k, v in e.items() if k != "is_fraud"} for e in labelled] == stream(False, chunk=500)
    # In one chunk, 12 s of event time at 100/s: the transactions of that window, with their labels.
    labelled = stream(True, chunk=5_000)
    truth = generate_transactions(world, start, start + timedelta(seconds=12), 1_200, np.random.default_rng(5))
    assert [e["event_id"] for e in labelled] == truth["event_id"].tolist()
    assert [e["is_fraud"] for e in labelled] == truth["is_fraud"].tolist()
    assert 0 < truth["is_fraud"].sum() < len(truth)  # both labels occur, so the comparison can fail


def test_labels_follow_the_documented_fraud_mechanism(world):
    # The module docstring: fraud is logistic in the merchant's latent risk, the amount relative to
    # the customer's typical amount, night hours, the online channel and young accounts. Two days of
    # labelled stream; each factor must raise the fraud rate (one-sided Fisher exact test, p < 1e-6).
    # Channel, price and merchant risk all depend on the category, so those three are compared within
    # one category (electronics: both channels are common there); night and account age are not.
    n = 40_000
    events = list(
        event_stream(world, n, np.random.default_rng(21), END - timedelta(days=2), rate=n / 172_800, include_label=True)
    )
    tx = pd.DataFrame(events)
    fraud = tx["is_fraud"] == 1
    customer = pd.Index(world.customer_id).get_indexer(tx["customer_id"])
    merchant = pd.Index(world.merchant_id).get_indexer(tx["merchant_id"])
    age = pd.to_datetime(tx["event_time"]) - pd.DatetimeIndex(world.account_open[customer]).tz_localize(UTC)
    electronics = world.category[merchant] == "electronics"
    ratio = tx["amount"].to_numpy() / world.typical_amount[customer]
    risk = world.merchant_risk[merchant]

    def p_more_fraud(factor: np.ndarray, among: np.ndarray) -> float:
        """One-sided p-value that fraud is more common where ``factor`` holds, among ``among``."""
        f, rest = factor & among, ~factor & among
        table = [[(fraud & f).sum(), (~fraud & f).sum()], [(fraud & rest).sum(), (~fraud & rest).sum()]]
        return float(stats.fisher_exact(table, alternative="greater").pvalue)

    everyone = np.ones(n, dtype=bool)
    p_values = {
        "night": p_more_fraud(tx["hour_of_day"].to_numpy() < NIGHT_HOURS, everyone),
        "young account": p_more_fraud((age < pd.Timedelta(days=YOUNG_ACCOUNT_DAYS)).to_numpy(), everyone),
        "online": p_more_fraud(tx["channel"].to_numpy() == "online", electronics),
        "unusual amount": p_more_fraud(ratio > 3 * np.median(ratio[electronics]), electronics),
        "riskier merchant": p_more_fraud(risk > np.median(risk[electronics]), electronics),
    }
    assert all(p < 1e-6 for p in p_values.values()), p_values


def _reject_reason(payload: bytes) -> str:
    try:
        decoded = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "not_json"
    if not isinstance(decoded, dict):
        return "not_json"
    try:
        TransactionEvent.model_validate(decoded)
    except ValidationError as exc:
        kinds = {error["type"] for error in exc.errors()}
        return "missing_field" if kinds == {"missing"} else "invalid_field"
    return "accepted"


def test_invalid_events_are_all_rejected_with_the_expected_reason():
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    bad = invalid_events(np.random.default_rng(9), 25, at=at)
    assert len(bad) == 25
    assert {b.kind for b in bad} == set(INVALID_KINDS)
    for item in bad:
        assert isinstance(item.payload, bytes)
        assert _reject_reason(item.payload) == item.expected, item.kind
    assert invalid_events(np.random.default_rng(9), 25, at=at) == bad


def test_no_customer_transacts_twice_in_one_second(world):
    start = datetime(2026, 5, 1, tzinfo=UTC)
    frame = generate_transactions(world, start, start + timedelta(hours=1), 5_000, np.random.default_rng(3))
    seconds = frame["event_time"].dt.floor("s")
    assert not frame.assign(second=seconds).duplicated(["customer_id", "second"]).any()
    assert frame["event_time"].is_monotonic_increasing
