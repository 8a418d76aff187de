"""Synthetic card transactions with a known fraud mechanism: pure, seeded, no I/O.

The world (customers with latent traits, merchants with a category and a latent risk) is built
from a seed; transactions are drawn from it with a numpy ``Generator``. A transaction is fraud
with a probability that is logistic in the merchant's latent risk, the amount relative to the
customer's typical amount, night hours, the online channel and young accounts. Drift scenarios
change the traffic (``amount_shift``, ``merchant_mix``) or the fraud mechanism itself
(``fraud_pattern``), so monitoring has something to find.

Daily feature snapshots are computed only from transactions strictly before each snapshot's
``event_timestamp``, so a point-in-time join never leaks the label of the row it joins to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.contracts import DeadLetterType

logger = logging.getLogger(__name__)

Drift = Literal["none", "amount_shift", "merchant_mix", "fraud_pattern"]
DRIFTS: tuple[str, ...] = get_args(Drift)

MERCHANT_CATEGORIES: list[str] = ["grocery", "fuel", "electronics", "travel", "gaming", "restaurants"]
CHANNELS: list[str] = ["online", "pos", "atm"]

#: Default anchor of account opening dates when none is given (ages are relative to it).
DEFAULT_ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)

#: Hours 0-5 count as night, both in the fraud mechanism and in ``night_txn_share_30d``.
NIGHT_HOURS = 6
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


# --- point-in-time feature snapshots --------------------------------------------------------------


def snapshot_times(start: datetime, end: datetime) -> pd.DatetimeIndex:
    """Daily snapshot timestamps ``end, end - 1 day, ...`` not before ``start``, oldest first."""
    t0, t1 = pd.Timestamp(start).tz_convert(UTC), pd.Timestamp(end).tz_convert(UTC)
    n_days = int((t1 - t0) // pd.Timedelta(days=1))
    return pd.DatetimeIndex([t1 - pd.Timedelta(days=k) for k in range(n_days, -1, -1)])


def _as_ns(values: Any) -> npt.NDArray[np.int64]:
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        raise ValueError("timestamps must be timezone-aware")
    return np.asarray(index.tz_convert(UTC).as_unit("ns").asi8, dtype=np.int64)


def _cumulative_before(
    entity_tx: npt.NDArray[np.int64],
    time_tx: npt.NDArray[np.int64],
    entity_q: npt.NDArray[np.int64],
    time_q: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Return the (entity, time) sort order of the transactions and each query's position in it.

    A query's position is that of the first transaction of its entity at or after its time, so
    differences of cumulative sums at two positions cover exactly the transactions strictly before.
    """
    n_tx = len(entity_tx)
    entity = np.concatenate([entity_tx, entity_q])
    time = np.concatenate([time_tx, time_q])
    # At equal (entity, time), queries (0) sort before transactions (1): "strictly before".
    kind = np.concatenate([np.ones(n_tx, np.int8), np.zeros(len(entity_q), np.int8)])
    perm = np.lexsort((kind, time, entity))
    is_tx = perm < n_tx
    tx_before: npt.NDArray[np.int64] = np.cumsum(is_tx, dtype=np.int64) - is_tx
    position = np.empty(len(entity_q), dtype=np.int64)
    query_slots = ~is_tx
    position[perm[query_slots] - n_tx] = tx_before[query_slots]
    order = perm[is_tx]
    return order, position


def _window_sums(
    entity_tx: npt.NDArray[np.int64],
    time_tx: npt.NDArray[np.int64],
    values: dict[str, npt.NDArray[np.float64]],
    entity_q: npt.NDArray[np.int64],
    time_q: npt.NDArray[np.int64],
    window_days: int,
) -> dict[str, npt.NDArray[np.float64]]:
    """Sum each value over the transactions of the query's entity in [time - window, time).

    Cumulative sums restart at every entity, so a sum only ever adds that entity's earlier
    values: the result is bitwise independent of other entities and of anything at or after
    ``time`` (no leakage, not even through floating-point rounding).
    """
    width = np.int64(window_days * 86_400 * 10**9)
    both_t = np.concatenate([time_q, time_q - width])
    both_e = np.concatenate([entity_q, entity_q])
    order, position = _cumulative_before(entity_tx, time_tx, both_e, both_t)
    sorted_entity = entity_tx[order]
    # First sorted position of each query's entity: sums at or before it are zero.
    segment_start = np.searchsorted(sorted_entity, both_e, side="left")
    out = {}
    for name, v in values.items():
        inclusive = pd.Series(v[order]).groupby(sorted_entity).cumsum().to_numpy(np.float64)
        before = np.where(position > segment_start, inclusive[np.maximum(position - 1, 0)], 0.0)
        out[name] = before[: len(time_q)] - before[len(time_q) :]
    return out


def _grid(
    n_entities: int, days: Sequence[datetime] | pd.DatetimeIndex
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pd.DatetimeIndex]:
    stamps = pd.DatetimeIndex(days)
    ts_ns = _as_ns(stamps)
    entity_q = np.tile(np.arange(n_entities, dtype=np.int64), len(ts_ns))
    time_q = np.repeat(ts_ns, n_entities)
    return entity_q, time_q, pd.DatetimeIndex(time_q).tz_localize(UTC)


def _safe_div(num: npt.NDArray[np.float64], den: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def customer_snapshots(
    world: World, transactions: pd.DataFrame, days: Sequence[datetime] | pd.DatetimeIndex
) -> pd.DataFrame:
    """Feature view ``customer_stats``: one row per open account per snapshot time in ``days``.

    An account opened inside the period also gets a row at its opening instant (no history yet),
    so its first transactions join a snapshot: Feast's file offline store drops entity rows whose
    entity has source rows but none within the TTL window, rather than returning NaN features.
    """
    entity_tx = pd.Index(world.customer_id).get_indexer(transactions["customer_id"]).astype(np.int64)
    if (entity_tx < 0).any():
        raise ValueError("transactions name customers that are not in the world")
    time_tx = _as_ns(transactions["event_time"])
    amount = transactions["amount"].to_numpy(np.float64)
    night = (transactions["hour_of_day"].to_numpy() < NIGHT_HOURS).astype(np.float64)
    # Shift by the customer's latent typical amount (not data, so no leakage) before squaring:
    # the variance then avoids the cancellation of sum(x^2) - n * mean^2 on raw amounts.
    shift = world.typical_amount[entity_tx]
    centred = amount - shift
    ones = np.ones(len(amount))
    entity_q, time_q, _ = _grid(world.n_customers, days)
    opened_all = world.account_open.astype("datetime64[ns]").astype(np.int64)
    grid_ns = _as_ns(pd.DatetimeIndex(days))
    if len(grid_ns):
        new = np.flatnonzero((opened_all > grid_ns.min()) & (opened_all <= grid_ns.max()))
        entity_q = np.concatenate([entity_q, new])
        time_q = np.concatenate([time_q, opened_all[new]])
    stamps = pd.DatetimeIndex(time_q).tz_localize(UTC)

    w7 = _window_sums(entity_tx, time_tx, {"n": ones}, entity_q, time_q, 7)
    w30 = _window_sums(
        entity_tx,
        time_tx,
        {"n": ones, "s": amount, "c": centred, "cc": centred**2, "night": night},
        entity_q,
        time_q,
        30,
    )
    n30 = w30["n"]
    mean = _safe_div(w30["s"], n30)
    centred_mean = _safe_div(w30["c"], n30)
    with np.errstate(invalid="ignore"):
        var = np.where(n30 > 1, (w30["cc"] - n30 * centred_mean**2) / np.maximum(n30 - 1, 1), np.nan)
    std = np.sqrt(np.maximum(var, 0.0))
    opened = opened_all[entity_q]
    age = (time_q - opened) // (86_400 * 10**9)
    keep = time_q >= opened
    frame = pd.DataFrame(
        {
            "customer_id": world.customer_id[entity_q],
            "event_timestamp": stamps,
            "created_timestamp": stamps,
            "txn_count_7d": np.rint(w7["n"]).astype(np.int64),
            "avg_amount_30d": mean,
            "std_amount_30d": std,
            "account_age_days": age.astype(np.int64),
            "night_txn_share_30d": _safe_div(w30["night"], n30),
        }
    )
    frame = frame.loc[keep].sort_values(["event_timestamp", "customer_id"], kind="stable")
    return frame.reset_index(drop=True)


def merchant_snapshots(
    world: World, transactions: pd.DataFrame, days: Sequence[datetime] | pd.DatetimeIndex
) -> pd.DataFrame:
    """Feature view ``merchant_stats``: one row per merchant per snapshot time in ``days``.

    ``fraud_rate_90d`` uses the labels of past transactions, a stand-in for the chargeback rate.
    """
    entity_tx = pd.Index(world.merchant_id).get_indexer(transactions["merchant_id"]).astype(np.int64)
    if (entity_tx < 0).any():
        raise ValueError("transactions name merchants that are not in the world")
    time_tx = _as_ns(transactions["event_time"])
    amount = transactions["amount"].to_numpy(np.float64)
    fraud = transactions["is_fraud"].to_numpy(np.float64)
    ones = np.ones(len(amount))
    entity_q, time_q, stamps = _grid(world.n_merchants, days)

    w7 = _window_sums(entity_tx, time_tx, {"n": ones}, entity_q, time_q, 7)
    w30 = _window_sums(entity_tx, time_tx, {"n": ones, "s": amount}, entity_q, time_q, 30)
    w90 = _window_sums(entity_tx, time_tx, {"n": ones, "fraud": fraud}, entity_q, time_q, 90)
    return pd.DataFrame(
        {
            "merchant_id": world.merchant_id[entity_q],
            "event_timestamp": stamps,
            "created_timestamp": stamps,
            "fraud_rate_90d": _safe_div(w90["fraud"], w90["n"]),
            "txn_count_7d": np.rint(w7["n"]).astype(np.int64),
            "avg_amount_30d": _safe_div(w30["s"], w30["n"]),
            "category": world.category[entity_q],
        }
    )
