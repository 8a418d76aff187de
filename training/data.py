"""Data stage: generate the offline parquet sources of the worked example.

The history is a pure function of the seed, the sizes and its start: with an explicit start
(``--start`` / ``DRIFTLINE_DATA_START``) the files are byte-identical on every run and machine
with the same pyarrow (the Parquet footer names its writer, and its encoders shape the bytes).
Without one, the history ends at today's 00:00 UTC: the same bytes all day, fresh enough to serve.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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


#: Every Parquet writer option that shapes the bytes, spelled out (pyarrow's defaults may change
#: between releases). No key-value metadata is written: pandas' records the pandas version, and
#: pyarrow's copy of the schema adds nothing here (UTC timestamps keep their zone in the Parquet type).
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",  # nanosecond timestamps
    "compression": "snappy",
    "use_dictionary": True,
    "dictionary_pagesize_limit": 1 << 20,
    "write_statistics": True,
    "row_group_size": 1 << 20,  # rows: one row group at the example's sizes
    "data_page_size": 1 << 20,
    "data_page_version": "1.0",
    "write_batch_size": 1024,
    "store_schema": False,
    "write_page_index": False,
    "write_page_checksum": False,
}


def default_start(now: datetime, days: int) -> datetime:
    """``days`` before today's 00:00 UTC, so the history ends at the start of ``now``'s UTC day.

    The same all day, and fresh enough to serve events stamped now: the latest snapshot (at the
    history's end) is under a day old on the day it is written, inside both views' TTLs (3 and 7 days).
    """
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=days)


def history_window(settings: TrainingSettings, now: datetime) -> tuple[datetime, datetime]:
    """``[start, end)`` of the history: ``settings.data_start`` (else :func:`default_start`), ``history_days`` long."""
    start = settings.data_start if settings.data_start is not None else default_start(now, settings.history_days)
    return start, start + timedelta(days=settings.history_days)


def feature_entities(world: World) -> tuple[Customers, Merchants]:
    """The world's customers and merchants as the entity tables ``feature_repo.compute`` reads.

    The customers' latent typical amount only centres amounts in the variance (it changes no
    value beyond rounding); it is known without the transactions, so it leaks nothing.
    """
    customers = Customers(
        customer_id=world.customer_id, account_open=world.account_open, reference_amount=world.typical_amount
    )
    return customers, Merchants(merchant_id=world.merchant_id, category=world.category)


def build_frames(settings: TrainingSettings, start: datetime) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Return (customer_stats, merchant_stats, transactions) of the history from ``start``: pure, no clock."""
    end = start + timedelta(days=settings.history_days)
    world = build_world(settings.seed, settings.n_customers, settings.n_merchants, anchor=end)
    rng = np.random.default_rng([settings.seed, 1])
    transactions = generate_transactions(world, start, end, settings.n_transactions, rng)
    days = snapshot_times(start, end)
    customer_table, merchant_table = feature_entities(world)
    customers = customer_snapshots(customer_table, transactions, days)
    merchants = merchant_snapshots(merchant_table, transactions, days)
    labelled = transactions.rename(columns={"event_time": "event_timestamp", "is_fraud": "label"})
    return customers, merchants, labelled[TRANSACTION_COLUMNS]


def write_parquet(frame: pd.DataFrame, path: Path) -> tuple[str, str]:
    """Write ``frame`` to ``path`` (atomically) with :data:`PARQUET_OPTIONS`; return its SHA-256 and writer.

    Equal frames give equal bytes: no index, no metadata, every option pinned. The writer is the
    footer's ``created_by`` (``parquet-cpp-arrow version X.Y.Z``), part of those bytes.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    writer = str(pq.read_metadata(tmp).created_by)
    tmp.replace(path)
    return digest, writer


@dataclass(frozen=True)
class GeneratedFile:
    """One parquet file written by :func:`generate`, with the SHA-256 of its bytes."""

    name: str
    path: Path
    rows: int
    sha256: str


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` wrote: the world it drew, the history it spans, and one entry per file.

    The same seed, sizes, start and writer give the same files, byte for byte (same ``sha256``).
    """

    seed: int
    n_customers: int
    n_merchants: int
    n_transactions: int
    history_start: datetime
    history_end: datetime
    start_given: bool  # False: the default start, so the history ends at today's 00:00 UTC
    fraud_rate: float
    parquet_writer: str
    files: tuple[GeneratedFile, ...]

    def summary(self) -> str:
        """One line: rows per file and the fraud rate."""
        rows = ", ".join(f"{f.name} {f.rows}" for f in self.files)
        return f"generated {rows} rows (fraud rate {self.fraud_rate:.2%})"


def generate(settings: TrainingSettings, now: datetime | None = None) -> GenerateResult:
    """Write customer_stats, merchant_stats and transactions parquet files; return what was written.

    ``now`` (default: the clock) places the default start and is never part of the data: with
    ``settings.data_start`` the files are the same whenever they are written.
    """
    now = now if now is not None else datetime.now(UTC)
    start, end = history_window(settings, now)
    if end > now:
        logger.warning("the history ends at %s, after now: materialize loads only snapshots up to its run", end)
    customers, merchants, transactions = build_frames(settings, start)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        TRANSACTIONS_FILE: transactions,
        CUSTOMER_STATS_FILE: customers,
        MERCHANT_STATS_FILE: merchants,
    }
    files = []
    writer = ""
    for name, frame in frames.items():
        path = settings.data_dir / name
        digest, writer = write_parquet(frame, path)
        files.append(GeneratedFile(name=name, path=path, rows=len(frame), sha256=digest))
    logger.info("wrote %d transactions (%s .. %s) to %s", len(transactions), start, end, settings.data_dir)
    return GenerateResult(
        seed=settings.seed,
        n_customers=settings.n_customers,
        n_merchants=settings.n_merchants,
        n_transactions=settings.n_transactions,
        history_start=start,
        history_end=end,
        start_given=settings.data_start is not None,
        fraud_rate=float(transactions["label"].mean()) if len(transactions) else 0.0,
        parquet_writer=writer,
        files=tuple(files),
    )
