"""Feast definitions of the worked example, in reading order: Entity -> Source -> FeatureView -> Service.

Definitions are built by a function of the data folder (no objects at import), so the same
code serves ``driftline feast apply`` for any ``DRIFTLINE_HOME``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

FEATURE_SERVICE = "fraud_v1"
CUSTOMER_STATS = "customer_stats"
MERCHANT_STATS = "merchant_stats"
#: Parquet files of the feature views' sources, in the data folder (written by ``training.data``).
CUSTOMER_STATS_FILE = "customer_stats.parquet"
MERCHANT_STATS_FILE = "merchant_stats.parquet"
SOURCE_FILES = {CUSTOMER_STATS: CUSTOMER_STATS_FILE, MERCHANT_STATS: MERCHANT_STATS_FILE}

FeastObject = Entity | FileSource | FeatureView | FeatureService


def definitions(data_dir: Path) -> list[FeastObject]:
    """Return every object of the feature repo, with sources reading parquet files in ``data_dir``."""
    # --- entities
    customer = Entity(
        name="customer",
        join_keys=["customer_id"],
        value_type=ValueType.STRING,
        description="A card holder.",
    )
    merchant = Entity(
        name="merchant",
        join_keys=["merchant_id"],
        value_type=ValueType.STRING,
        description="A card acceptor.",
    )

    # --- sources: daily point-in-time snapshots written by `driftline data generate`
    customer_stats_source = FileSource(
        name="customer_stats_source",
        path=str((data_dir / CUSTOMER_STATS_FILE).resolve()),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )
    merchant_stats_source = FileSource(
        name="merchant_stats_source",
        path=str((data_dir / MERCHANT_STATS_FILE).resolve()),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )

    # --- feature views; the TTL bounds how stale a snapshot may be and still be served
    customer_stats_fv = FeatureView(
        name=CUSTOMER_STATS,
        entities=[customer],
        ttl=timedelta(days=3),
        schema=[
            Field(name="txn_count_7d", dtype=Int64, description="Transactions in the last 7 days."),
            Field(name="avg_amount_30d", dtype=Float64, description="Mean amount over 30 days."),
            Field(name="std_amount_30d", dtype=Float64, description="Sample std of amounts over 30 days."),
            Field(name="account_age_days", dtype=Int64, description="Days since the account opened."),
            Field(name="night_txn_share_30d", dtype=Float64, description="Share of 00-05h transactions."),
        ],
        online=True,
        source=customer_stats_source,
        tags={"owner": "driftline"},
    )
    merchant_stats_fv = FeatureView(
        name=MERCHANT_STATS,
        entities=[merchant],
        ttl=timedelta(days=7),
        schema=[
            Field(name="fraud_rate_90d", dtype=Float64, description="Labelled fraud share over 90 days."),
            Field(name="txn_count_7d", dtype=Int64, description="Transactions in the last 7 days."),
            Field(name="avg_amount_30d", dtype=Float64, description="Mean amount over 30 days."),
            Field(name="category", dtype=String, description="Merchant category."),
        ],
        online=True,
        source=merchant_stats_source,
        tags={"owner": "driftline"},
    )

    # --- the versioned service a model is trained on and served with
    fraud_v1 = FeatureService(
        name=FEATURE_SERVICE,
        features=[customer_stats_fv, merchant_stats_fv],
        description="Inputs of the fraud model, version 1.",
    )
    return [
        customer,
        merchant,
        customer_stats_source,
        merchant_stats_source,
        customer_stats_fv,
        merchant_stats_fv,
        fraud_v1,
    ]
