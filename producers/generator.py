"""Synthetic card transactions with a known fraud mechanism: pure, seeded, no I/O.

The world (customers with latent traits, merchants with a category and a latent risk) is built
from a seed; transactions are drawn from it with a numpy ``Generator``. A transaction is fraud
with a probability that is logistic in the merchant's latent risk, the amount relative to the
customer's typical amount, night hours, the online channel and young accounts. Drift scenarios
change the traffic (``amount_shift``, ``merchant_mix``) or the fraud mechanism itself
(``fraud_pattern``), so monitoring has something to find.

The offline features of these transactions are computed in ``feature_repo.compute``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.contracts import DeadLetterType
from feature_repo.compute import NIGHT_HOURS  # the night of the traffic, the fraud mechanism and the feature

logger = logging.getLogger(__name__)

Drift = Literal["none", "amount_shift", "merchant_mix", "fraud_pattern"]
DRIFTS: tuple[str, ...] = get_args(Drift)

MERCHANT_CATEGORIES: list[str] = ["grocery", "fuel", "electronics", "travel", "gaming", "restaurants"]
CHANNELS: list[str] = ["online", "pos", "atm"]

#: Default anchor of account opening dates when none is given (ages are relative to it).
DEFAULT_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)

#: Accounts younger than this are riskier.
YOUNG_ACCOUNT_DAYS = 60
#: Multiplier of ``amount_shift`` drift.
AMOUNT_SHIFT = 2.5

_CATEGORY_SHARE = np.array([0.30, 0.15, 0.12, 0.08, 0.10, 0.25])
_CATEGORY_RISK = np.array([-0.8, -0.4, 0.9, 0.5, 1.1, -0.7])
_CATEGORY_PRICE = np.array([0.8, 1.0, 3.0, 4.0, 0.6, 0.7])
#: P(channel | category), channels in CHANNELS order.
_CHANNEL_GIVEN_CATEGORY = np.array(
    [
        [0.10, 0.82, 0.08],
        [0.03, 0.90, 0.07],
        [0.60, 0.40, 0.00],
        [0.75, 0.25, 0.00],
        [0.90, 0.10, 0.00],
        [0.15, 0.85, 0.00],
    ]
)
#: Relative traffic by hour for daytime hours (6-23).
_DAY_HOUR_WEIGHTS = np.array([2, 4, 6, 7, 7, 8, 9, 8, 7, 7, 8, 9, 9, 8, 6, 5, 4, 3], dtype=float)

# Intercepts chosen so the fraud rate lands near 3% on the default world.
_FRAUD_INTERCEPT = -5.75
_PATTERN_INTERCEPT = -7.8


@dataclass(frozen=True, eq=False)
class World:
    """Customers and merchants with the latent traits that drive amounts, timing and fraud."""

    seed: int
    anchor: datetime
    customer_id: npt.NDArray[np.str_]
    typical_amount: npt.NDArray[np.float64]
    amount_sigma: npt.NDArray[np.float64]
    account_open: npt.NDArray[np.datetime64]
    risk_propensity: npt.NDArray[np.float64]
    night_propensity: npt.NDArray[np.float64]
    activity: npt.NDArray[np.float64]
    merchant_id: npt.NDArray[np.str_]
    category: npt.NDArray[np.str_]
    category_code: npt.NDArray[np.int64]
    merchant_risk: npt.NDArray[np.float64]
    popularity: npt.NDArray[np.float64]

    @property
    def n_customers(self) -> int:
        """Number of customers."""
        return len(self.customer_id)

    @property
    def n_merchants(self) -> int:
        """Number of merchants."""
        return len(self.merchant_id)


def build_world(seed: int, n_customers: int, n_merchants: int, anchor: datetime = DEFAULT_ANCHOR) -> World:
    """Build the simulated world; account opening dates lie before ``anchor`` (usually the data's end)."""
    if anchor.tzinfo is None:
        raise ValueError("anchor must be timezone-aware")
    rng = np.random.default_rng([seed, 0])
    young = rng.random(n_customers) < 0.12
    age_days = np.where(young, rng.uniform(0, 120, n_customers), rng.uniform(120, 3650, n_customers))
    anchor64 = np.datetime64(anchor.astimezone(UTC).replace(tzinfo=None), "ns")
    # Whole seconds, like transaction times, so "at or after opening" survives rounding.
    account_open = anchor64 - (age_days * 86_400).astype("timedelta64[s]").astype("timedelta64[ns]")
    category_code = rng.choice(len(MERCHANT_CATEGORIES), size=n_merchants, p=_CATEGORY_SHARE)
    return World(
        seed=seed,
        anchor=anchor.astimezone(UTC),
        customer_id=np.array([f"C{i:05d}" for i in range(n_customers)]),
        typical_amount=np.exp(rng.normal(np.log(40.0), 0.6, n_customers)),
        amount_sigma=rng.uniform(0.25, 0.6, n_customers),
        account_open=account_open,
        risk_propensity=rng.normal(0.0, 1.0, n_customers),
        night_propensity=rng.beta(1.5, 14.0, n_customers),
        activity=rng.lognormal(0.0, 0.7, n_customers),
        merchant_id=np.array([f"M{i:04d}" for i in range(n_merchants)]),
        category=np.array(MERCHANT_CATEGORIES)[category_code],
        category_code=category_code.astype(np.int64),
        merchant_risk=_CATEGORY_RISK[category_code] + rng.normal(0.0, 0.7, n_merchants),
        popularity=rng.lognormal(0.0, 0.8, n_merchants),
    )


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-z))


def _sample_times(
    start: pd.Timestamp, end: pd.Timestamp, n: int, rng: np.random.Generator
) -> npt.NDArray[np.datetime64]:
    """Draw ``n`` whole-second times in [start, end) following the daily traffic profile."""
    weights = np.concatenate([np.full(NIGHT_HOURS, 1.0), _DAY_HOUR_WEIGHTS])
    accept = weights / weights.max()
    span = int((end - start).total_seconds())
    if span <= 0:
        raise ValueError("end must be after start")
    out: list[npt.NDArray[np.int64]] = []
    have = 0
    start_s = int(start.timestamp())
    while have < n:
        draw = rng.integers(0, span, size=max(2 * (n - have), 64))
        hours = ((start_s + draw) // 3600) % 24
        keep = draw[rng.random(len(draw)) < accept[hours]]
        out.append(keep)
        have += len(keep)
    seconds = np.sort(np.concatenate(out)[:n])
    return (np.int64(start_s) + seconds).astype("datetime64[s]").astype("datetime64[ns]")


def _repeated_in_second(times: npt.NDArray[np.datetime64], customer: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Mark each transaction whose customer already has one in the same second (all but the first)."""
    seconds = times.astype("datetime64[s]").astype(np.int64)
    order = np.lexsort((seconds, customer))
    repeated = np.zeros(len(times), dtype=bool)
    same = (customer[order][1:] == customer[order][:-1]) & (seconds[order][1:] == seconds[order][:-1])
    repeated[order[1:][same]] = True
    return repeated


def generate_transactions(
    world: World,
    start: datetime,
    end: datetime,
    n: int,
    rng: np.random.Generator,
    drift: Drift = "none",
) -> pd.DataFrame:
    """Draw ``n`` labelled transactions in [start, end), sorted by time, ids deterministic in ``rng``."""
    if drift not in DRIFTS:
        raise ValueError(f"unknown drift {drift!r}; expected one of {', '.join(DRIFTS)}")
    t0, t1 = pd.Timestamp(start).tz_convert(UTC), pd.Timestamp(end).tz_convert(UTC)
    times = _sample_times(t0, t1, n, rng)
    hours = (times.astype("datetime64[h]").astype(np.int64) % 24).astype(np.int64)
    night = hours < NIGHT_HOURS

    # Customers: night owls transact at night; accounts are used only after they are opened.
    day_w = world.activity * (1.0 - world.night_propensity)
    night_w = world.activity * world.night_propensity
    customer = np.where(
        night,
        rng.choice(world.n_customers, size=n, p=night_w / night_w.sum()),
        rng.choice(world.n_customers, size=n, p=day_w / day_w.sum()),
    )
    # A transaction drawn for an account not yet open goes to another customer (same day/night
    # weights), so young accounts keep the traffic curve instead of bunching after their opening.
    night_p, day_p = night_w / night_w.sum(), day_w / day_w.sum()
    # A card is not used twice in the same second either (and Feast's point-in-time join keeps one
    # entity row per entity and timestamp, so such a pair would silently lose a training row).
    redo_mask = (times < world.account_open[customer]) | _repeated_in_second(times, customer)
    for _ in range(50):
        if not redo_mask.any():
            break
        redo = np.flatnonzero(redo_mask)
        customer[redo] = np.where(
            night[redo],
            rng.choice(world.n_customers, size=len(redo), p=night_p),
            rng.choice(world.n_customers, size=len(redo), p=day_p),
        )
        redo_mask = (times < world.account_open[customer]) | _repeated_in_second(times, customer)
    # Whatever is still unlucky goes to the oldest account (open since long before any window).
    customer[times < world.account_open[customer]] = int(np.argmin(world.account_open))
    opened = world.account_open[customer]

    merchant_w = world.popularity.copy()
    if drift == "merchant_mix":
        hot = np.isin(world.category, ["electronics", "gaming"])
        merchant_w = merchant_w * np.exp(1.2 * world.merchant_risk) * np.where(hot, 4.0, 1.0)
    merchant = rng.choice(world.n_merchants, size=n, p=merchant_w / merchant_w.sum())
    cat = world.category_code[merchant]

    # Amounts: the customer's level, the category's price level, and occasional unusual purchases.
    typical = world.typical_amount[customer]
    noise = rng.normal(0.0, world.amount_sigma[customer])
    spike = np.where(rng.random(n) < 0.05, rng.uniform(2.5, 12.0, n), 1.0)
    amount = typical * _CATEGORY_PRICE[cat] * np.exp(noise) * spike
    log_ratio = np.log(amount / typical)

    # Channel by category.
    u = rng.random(n)
    cdf = np.cumsum(_CHANNEL_GIVEN_CATEGORY[cat], axis=1)
    channel_code = (u[:, None] > cdf[:, :-1]).sum(axis=1)
    online = channel_code == 0
    pos = channel_code == 1

    age_days = (times - opened).astype("timedelta64[s]").astype(np.float64) / 86_400.0
    young = age_days < YOUNG_ACCOUNT_DAYS

    if drift == "fraud_pattern":
        # A new pattern: daytime card-present fraud on small amounts, at ordinary merchants.
        daytime = (hours >= 10) & (hours < 18)
        z = (
            _PATTERN_INTERCEPT
            + 2.2 * pos
            + 1.8 * daytime
            + 2.0 * (log_ratio < np.log(_CATEGORY_PRICE[cat]) - 0.2)
            + 0.5 * world.risk_propensity[customer]
            - 0.3 * world.merchant_risk[merchant]
        )
    else:
        z = (
            _FRAUD_INTERCEPT
            + 1.0 * world.merchant_risk[merchant]
            + 1.1 * np.clip(log_ratio, -2.0, 4.0)
            + 1.4 * night
            + 1.0 * online
            + 1.6 * young
            + 0.5 * world.risk_propensity[customer]
        )
    is_fraud = (rng.random(n) < _sigmoid(z)).astype(np.int64)

    if drift == "amount_shift":
        # Prices move, the fraud mechanism does not: labels come from the unshifted amounts.
        amount = amount * AMOUNT_SHIFT
    amount = np.maximum(np.round(amount, 2), 0.01)

    prefix = int(rng.integers(0, 2**32))
    return pd.DataFrame(
        {
            "event_id": [f"tx-{prefix:08x}-{i:07d}" for i in range(n)],
            "event_time": pd.DatetimeIndex(times).tz_localize(UTC),
            "customer_id": world.customer_id[customer],
            "merchant_id": world.merchant_id[merchant],
            "amount": amount,
            "channel": np.array(CHANNELS)[channel_code],
            "hour_of_day": hours,
            "is_fraud": is_fraud,
        }
    )


def event_stream(
    world: World,
    n: int,
    rng: np.random.Generator,
    start_time: datetime,
    drift: Drift = "none",
    rate: float | None = None,
    include_label: bool = False,
    chunk: int = 5_000,
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` events that validate as ``TransactionEvent``, ``rate`` per second of event time.

    ``rate`` None means 100 events per second. ``include_label`` adds the ground truth as the extra
    field ``is_fraud`` (the contract allows extra fields; the model never reads it).
    """
    per_second = 100.0 if rate is None or rate <= 0 else rate
    begin = start_time.astimezone(UTC)
    made = 0
    while made < n:
        size = min(chunk, n - made)
        t0 = begin + timedelta(seconds=made / per_second)
        t1 = begin + timedelta(seconds=max((made + size) / per_second, made / per_second + 1))
        frame = generate_transactions(world, t0, t1, size, rng, drift=drift)
        times = frame["event_time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
        for i, row in enumerate(frame.itertuples(index=False)):
            event: dict[str, Any] = {
                "event_id": row.event_id,
                "event_time": times[i],
                "customer_id": row.customer_id,
                "merchant_id": row.merchant_id,
                "amount": float(row.amount),
                "channel": row.channel,
                "hour_of_day": int(row.hour_of_day),
            }
            if include_label:
                event["is_fraud"] = int(row.is_fraud)
            yield event
        made += size


# --- invalid events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvalidEvent:
    """A deliberately invalid payload and the dead-letter category it must land in."""

    kind: str
    payload: bytes
    expected: DeadLetterType


def _valid_base(rng: np.random.Generator, i: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"bad-{int(rng.integers(0, 2**32)):08x}-{i:06d}",
        "event_time": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "customer_id": f"C{int(rng.integers(0, 1000)):05d}",
        "merchant_id": f"M{int(rng.integers(0, 100)):04d}",
        "amount": round(float(rng.uniform(1, 200)), 2),
        "channel": "pos",
        "hour_of_day": 12,
    }


def _mutate(kind: str, event: dict[str, Any]) -> tuple[bytes, DeadLetterType]:
    """Break ``event`` (valid, stamped recently) in one way; return its bytes and the expected verdict."""
    if kind == "not_json":
        return b"\xff\xfenot json {" + event["event_id"].encode(), "not_json"
    if kind == "json_array":
        return json.dumps([event]).encode(), "not_json"
    if kind == "missing_event_id":
        event.pop("event_id")
        return json.dumps(event).encode(), "missing_field"
    changes: dict[str, dict[str, Any]] = {
        "negative_amount": {"amount": -abs(event["amount"])},
        "amount_as_string": {"amount": f"{event['amount']} EUR"},
        "unparseable_time": {"event_time": "yesterday at noon"},
        "naive_time": {"event_time": event["event_time"].removesuffix("Z")},
        "unknown_channel": {"channel": "telepathy"},
        "hour_out_of_range": {"hour_of_day": 25},
        "empty_customer_id": {"customer_id": ""},
    }
    event.update(changes[kind])
    return json.dumps(event).encode(), "invalid_field"


INVALID_KINDS: tuple[str, ...] = (
    "not_json",
    "json_array",
    "missing_event_id",
    "negative_amount",
    "amount_as_string",
    "unparseable_time",
    "naive_time",
    "unknown_channel",
    "hour_out_of_range",
    "empty_customer_id",
)


def invalid_events(rng: np.random.Generator, n: int, at: datetime | None = None) -> list[InvalidEvent]:
    """Return ``n`` invalid payloads cycling through every kind in ``INVALID_KINDS`` order.

    Each breaks exactly one rule; the rest of it is valid, including an ``event_time`` of ``at``
    (default: now), so the verdict names the intended flaw and not the event's age.
    """
    at = at if at is not None else datetime.now(UTC)
    out = []
    for i in range(n):
        kind = INVALID_KINDS[i % len(INVALID_KINDS)]
        payload, expected = _mutate(kind, _valid_base(rng, i, at))
        out.append(InvalidEvent(kind=kind, payload=payload, expected=expected))
    return out

