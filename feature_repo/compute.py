"""Offline computation of the feature views declared in ``definitions.py``: pure pandas/numpy, no I/O.

Daily snapshots are computed only from transactions strictly before each snapshot's
``event_timestamp``, so a point-in-time join never leaks the label of the row it joins to. The
entities come in as plain tables (``Customers``, ``Merchants``), so any source of transactions
(the example world, or real history) is computed the same way. Transactions are a frame with
``event_time`` (timezone-aware), ``customer_id``, ``merchant_id``, ``amount``, ``hour_of_day`` and
``is_fraud``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "NIGHT_HOURS",
    "Customers",
    "Merchants",
    "customer_snapshots",
    "merchant_snapshots",
    "snapshot_times",
]

#: Hours 0-5 count as night in ``night_txn_share_30d``.
NIGHT_HOURS = 6


@dataclass(frozen=True, eq=False)
class Customers:
    """The customer entities: id, account opening instant and a reference amount, aligned by index."""

    customer_id: npt.NDArray[np.str_]
    #: UTC instants as timezone-naive ``datetime64``.
    account_open: npt.NDArray[np.datetime64]
    #: An amount per customer known without the transactions (no leakage); amounts are centred on it
    #: before squaring, so the variance avoids the cancellation of sum(x^2) - n * mean^2.
    reference_amount: npt.NDArray[np.float64]

    def __len__(self) -> int:
        """Number of customers."""
        return len(self.customer_id)


@dataclass(frozen=True, eq=False)
class Merchants:
    """The merchant entities: id and category, aligned by index."""

    merchant_id: npt.NDArray[np.str_]
    category: npt.NDArray[np.str_]

    def __len__(self) -> int:
        """Number of merchants."""
        return len(self.merchant_id)


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
    customers: Customers, transactions: pd.DataFrame, days: Sequence[datetime] | pd.DatetimeIndex
) -> pd.DataFrame:
    """Feature view ``customer_stats``: one row per open account per snapshot time in ``days``.

    An account opened inside the period also gets a row at its opening instant (no history yet),
    so its first transactions join a snapshot: Feast's file offline store drops entity rows whose
    entity has source rows but none within the TTL window, rather than returning NaN features.
    """
    entity_tx = pd.Index(customers.customer_id).get_indexer(transactions["customer_id"]).astype(np.int64)
    if (entity_tx < 0).any():
        raise ValueError("transactions name customers that are not in the customer table")
    time_tx = _as_ns(transactions["event_time"])
    amount = transactions["amount"].to_numpy(np.float64)
    night = (transactions["hour_of_day"].to_numpy() < NIGHT_HOURS).astype(np.float64)
    shift = customers.reference_amount[entity_tx]
    centred = amount - shift
    ones = np.ones(len(amount))
    entity_q, time_q, _ = _grid(len(customers), days)
    opened_all = customers.account_open.astype("datetime64[ns]").astype(np.int64)
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
            "customer_id": customers.customer_id[entity_q],
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
    merchants: Merchants, transactions: pd.DataFrame, days: Sequence[datetime] | pd.DatetimeIndex
) -> pd.DataFrame:
    """Feature view ``merchant_stats``: one row per merchant per snapshot time in ``days``.

    ``fraud_rate_90d`` uses the labels of past transactions, a stand-in for the chargeback rate.
    """
    entity_tx = pd.Index(merchants.merchant_id).get_indexer(transactions["merchant_id"]).astype(np.int64)
    if (entity_tx < 0).any():
        raise ValueError("transactions name merchants that are not in the merchant table")
    time_tx = _as_ns(transactions["event_time"])
    amount = transactions["amount"].to_numpy(np.float64)
    fraud = transactions["is_fraud"].to_numpy(np.float64)
    ones = np.ones(len(amount))
    entity_q, time_q, stamps = _grid(len(merchants), days)

    w7 = _window_sums(entity_tx, time_tx, {"n": ones}, entity_q, time_q, 7)
    w30 = _window_sums(entity_tx, time_tx, {"n": ones, "s": amount}, entity_q, time_q, 30)
    w90 = _window_sums(entity_tx, time_tx, {"n": ones, "fraud": fraud}, entity_q, time_q, 90)
    return pd.DataFrame(
        {
            "merchant_id": merchants.merchant_id[entity_q],
            "event_timestamp": stamps,
            "created_timestamp": stamps,
            "fraud_rate_90d": _safe_div(w90["fraud"], w90["n"]),
            "txn_count_7d": np.rint(w7["n"]).astype(np.int64),
            "avg_amount_30d": _safe_div(w30["s"], w30["n"]),
            "category": merchants.category[entity_q],
        }
    )
