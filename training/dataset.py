"""Dataset stage: a point-in-time-correct training set from Feast, and a split by time."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import get_args

import pandas as pd
from feast import FeatureStore
from feast.types import String

from driftline.contracts import AMOUNT_MAX, AMOUNT_MIN, HOUR_MAX, HOUR_MIN, Channel
from driftline.errors import ConfigError
from driftline.registry import EntitySpec, FeatureSpec
from feature_repo.definitions import FEATURE_SERVICE
from producers.generator import MERCHANT_CATEGORIES
from training.data import TRANSACTIONS_FILE

logger = logging.getLogger(__name__)

LABEL = "label"
TIMESTAMP = "event_timestamp"
#: The example's entity keys: string ids, carried in the event under their join key names.
ENTITIES = [
    EntitySpec(field="customer_id", join_key="customer_id"),
    EntitySpec(field="merchant_id", join_key="merchant_id"),
]
#: Levels of string features, by Feast reference; a level's code is its index.
CATEGORIES = {"merchant_stats:category": list(MERCHANT_CATEGORIES)}

#: Features read from the event itself, first in the model's column order; bounds from the event contract.
REQUEST_FEATURES = [
    FeatureSpec(name="amount", source="request", field="amount", minimum=AMOUNT_MIN, maximum=AMOUNT_MAX),
    FeatureSpec(
        name="channel", source="request", field="channel", kind="categorical", categories=list(get_args(Channel))
    ),
    FeatureSpec(
        name="hour_of_day", source="request", field="hour_of_day", minimum=HOUR_MIN, maximum=HOUR_MAX, integer=True
    ),
]


def column_name(view: str, feature: str) -> str:
    """The training-set (and online, with full feature names) column of ``view:feature``."""
    return f"{view}__{feature}"


def feature_specs(store: FeatureStore, service: str = FEATURE_SERVICE) -> list[FeatureSpec]:
    """Request features, then the service's features in Feast's order (view by view, schema order)."""
    specs = list(REQUEST_FEATURES)
    for projection in store.get_feature_service(service).feature_view_projections:
        view = projection.name_alias or projection.name
        for field in projection.features:
            ref = f"{view}:{field.name}"
            if field.dtype == String:
                if ref not in CATEGORIES:
                    raise ConfigError(f"string feature {ref} has no category list in training.dataset")
                spec = FeatureSpec(
                    name=column_name(view, field.name),
                    source="feast",
                    ref=ref,
                    kind="categorical",
                    categories=CATEGORIES[ref],
                )
            else:
                spec = FeatureSpec(name=column_name(view, field.name), source="feast", ref=ref)
            specs.append(spec)
    return specs


def load_transactions(data_dir: Path) -> pd.DataFrame:
    """The labelled entity dataframe written by ``driftline data generate``."""
    path = data_dir / TRANSACTIONS_FILE
    if not path.is_file():
        raise ConfigError(f"no {path}; run `driftline data generate` first")
    return pd.read_parquet(path)


def training_set(store: FeatureStore, transactions: pd.DataFrame, service: str = FEATURE_SERVICE) -> pd.DataFrame:
    """Join each transaction with the feature values as of its event time (Feast point-in-time join)."""
    job = store.get_historical_features(
        entity_df=transactions,
        features=store.get_feature_service(service),
        full_feature_names=True,
    )
    frame = job.to_df()
    if len(frame) != len(transactions):
        logger.warning("the point-in-time join returned %d of %d entity rows", len(frame), len(transactions))
    frame[TIMESTAMP] = pd.to_datetime(frame[TIMESTAMP], utc=True)
    order = [TIMESTAMP, "event_id"] if "event_id" in frame else [TIMESTAMP]
    return frame.sort_values(order, kind="stable").reset_index(drop=True)


def time_split(frame: pd.DataFrame, test_fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on the earliest rows, test on the latest ``test_fraction``; never a random split.

    The cut is a timestamp, so rows at the same instant stay on the same side.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    ordered = frame.sort_values(TIMESTAMP, kind="stable")
    cut = ordered[TIMESTAMP].iloc[min(len(ordered) - 1, math.floor(len(ordered) * (1 - test_fraction)))]
    train = ordered[ordered[TIMESTAMP] < cut].reset_index(drop=True)
    test = ordered[ordered[TIMESTAMP] >= cut].reset_index(drop=True)
    return train, test


def raw_columns(frame: pd.DataFrame, specs: list[FeatureSpec]) -> dict[str, list[object]]:
    """The raw values of each feature column, ready for ``driftline.features.build_matrix_from_columns``."""
    missing = [s.name for s in specs if s.name not in frame.columns]
    if missing:
        raise ConfigError(f"training set lacks feature columns {missing}")
    return {s.name: frame[s.name].tolist() for s in specs}
