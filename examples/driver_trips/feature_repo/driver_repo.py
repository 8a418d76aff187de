"""Driver statistics, as in Feast's `feast init` template: an Int64 entity, an on-demand view, a service."""

from datetime import timedelta

import pandas as pd
from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float32, Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_source = FileSource(
    name="driver_hourly_stats_source",
    path="data/driver_stats.parquet",  # relative to this repo
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)

driver_stats_fv = FeatureView(
    name="driver_hourly_stats",
    entities=[driver],
    ttl=timedelta(days=2),
    schema=[
        Field(name="conv_rate", dtype=Float32),
        Field(name="acc_rate", dtype=Float32),
        Field(name="avg_daily_trips", dtype=Int64),
    ],
    online=True,
    source=driver_stats_source,
)

# Sent with each request (here: each event), not stored.
trip_request = RequestSource(name="trip_request", schema=[Field(name="distance_km", dtype=Float64)])


@on_demand_feature_view(
    sources=[driver_stats_fv, trip_request],
    schema=[Field(name="expected_pickup_min", dtype=Float64)],
)
def trip_adjustments(inputs: pd.DataFrame) -> pd.DataFrame:
    """Minutes to pick up: slower for drivers who accept less often, and for longer trips."""
    # Offline, Feast hands this function acc_rate as float32 and pandas keeps float32 arithmetic;
    # online it arrives as float64. Casting first makes both paths compute the same number.
    acc_rate = inputs["acc_rate"].astype("float64")
    out = pd.DataFrame()
    out["expected_pickup_min"] = 2.0 + 10.0 * (1.0 - acc_rate) + 0.1 * inputs["distance_km"]
    return out


driver_activity_v1 = FeatureService(
    name="driver_activity_v1",
    features=[driver_stats_fv[["conv_rate", "acc_rate", "avg_daily_trips"]], trip_adjustments],
)
