"""Data stage: generate the offline parquet sources of the worked example."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from driftline.settings import TrainingSettings
from feature_repo.compute import Customers, Merchants, customer_snapshots, merchant_snapshots, snapshot_times
from feature_repo.definitions import CUSTOMER_STATS_FILE, MERCHANT_STATS_FILE
from producers.generator import World, build_world, generate_transactions

logger = logging.getLogger(__name__)

#: The labelled transactions (training's entity dataframe), in the data folder.
TRANSACTIONS_FILE = "transactions.parquet"
#: Columns of the labelled entity dataframe: keys, timestamp, request fields, label.
TRANSACTION_COLUMNS = [
    "event_id",
    "event_timestamp",
    "customer_id",
    "merchant_id",
    "amount",
    "channel",
    "hour_of_day",
    "label",
]


def history_end(now: datetime) -> datetime:
    """The end of the generated history: ``now`` floored to the hour, so materialized rows are fresh."""
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def feature_entities(world: World) -> tuple[Customers, Merchants]:
    """The world's customers and merchants as the entity tables ``feature_repo.compute`` reads.

    The customers' latent typical amount only centres amounts in the variance (it changes no
    value beyond rounding); it is known without the transactions, so it leaks nothing.
    """
    customers = Customers(
        customer_id=world.customer_id, account_open=world.account_open, reference_amount=world.typical_amount
    )
    return customers, Merchants(merchant_id=world.merchant_id, category=world.category)


def build_frames(settings: TrainingSettings, end: datetime) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (customer_stats, merchant_stats, transactions) for the history ending at ``end``."""
    start = end - timedelta(days=settings.history_days)
    world = build_world(settings.seed, settings.n_customers, settings.n_merchants, anchor=end)
    rng = np.random.default_rng([settings.seed, 1])
    transactions = generate_transactions(world, start, end, settings.n_transactions, rng)
    days = snapshot_times(start, end)
    customer_table, merchant_table = feature_entities(world)
    customers = customer_snapshots(customer_table, transactions, days)
    merchants = merchant_snapshots(merchant_table, transactions, days)
    labelled = transactions.rename(columns={"event_time": "event_timestamp", "is_fraud": "label"})
    return customers, merchants, labelled[TRANSACTION_COLUMNS]


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


@dataclass(frozen=True)
class GeneratedFile:
    """One parquet file written by :func:`generate`."""

    name: str
    path: Path
    rows: int


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` wrote: the world it drew, the history it spans, and one entry per file."""

    seed: int
    n_customers: int
    n_merchants: int
    history_start: datetime
    history_end: datetime
    fraud_rate: float
    files: tuple[GeneratedFile, ...]

    def summary(self) -> str:
        """One line: rows per file and the fraud rate."""
        rows = ", ".join(f"{f.name} {f.rows}" for f in self.files)
        return f"generated {rows} rows (fraud rate {self.fraud_rate:.2%})"


def generate(settings: TrainingSettings) -> GenerateResult:
    """Write customer_stats, merchant_stats and transactions parquet files; return what was written."""
    end = history_end(datetime.now(UTC))
    customers, merchants, transactions = build_frames(settings, end)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        TRANSACTIONS_FILE: transactions,
        CUSTOMER_STATS_FILE: customers,
        MERCHANT_STATS_FILE: merchants,
    }
    files = []
    for name, frame in frames.items():
        path = settings.data_dir / name
        _write(frame, path)
        files.append(GeneratedFile(name=name, path=path, rows=len(frame)))
    logger.info("wrote %d transactions to %s", len(transactions), settings.data_dir)
    return GenerateResult(
        seed=settings.seed,
        n_customers=settings.n_customers,
        n_merchants=settings.n_merchants,
        history_start=end - timedelta(days=settings.history_days),
        history_end=end,
        fraud_rate=float(transactions["label"].mean()) if len(transactions) else 0.0,
        files=tuple(files),
    )
