"""The fast Redis reader reads what Feast's own ``get_online_features`` returns, for every key type.

String, Int64 and Int32 join keys, and a compound key of two entities, under entity key serialization
versions 2 and 3, on the real Redis. A key type mismatch must never read as a "missing" feature.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest
import redis.asyncio as aioredis
from feast import Entity, FeatureService, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.repo_config import RegistryConfig
from feast.types import Float64, Int32, Int64, String

from driftline.errors import ModelLoadError
from driftline.registry import EntitySpec, FeatureSpec, ModelMetadata
from feature_repo.online import check_model_against_store
from feature_repo.redis_reader import RedisOnlineReader, fast_read_problems, layout_from_store

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC).replace(microsecond=0)


def build_store(root: Path, redis_url: str, version: int) -> FeatureStore:
    url = urlparse(redis_url)
    data = root / "data"
    data.mkdir()
    drivers = pd.DataFrame({
        "driver_id": pd.array([1, 2, -(2**40), 2**62], dtype="int64"),
        "event_timestamp": [NOW - timedelta(hours=1)] * 4,
        "trips": pd.array([10, 20, 30, 40], dtype="int64"),
    })
    zones = pd.DataFrame({
        "driver_id": pd.array([1, 1, 2], dtype="int64"),
        "zone_id": pd.array([7, -3, 7], dtype="int32"),
        "event_timestamp": [NOW - timedelta(hours=1)] * 3,
        "share": [0.25, 0.5, 0.75],
    })
    cities = pd.DataFrame({
        "city": ["Paris", "Zürich", ""], "event_timestamp": [NOW - timedelta(hours=1)] * 3, "label": ["a", "b", "c"],
    })
    for name, frame in (("drivers", drivers), ("zones", zones), ("cities", cities)):
        frame.to_parquet(data / f"{name}.parquet", index=False)
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    zone = Entity(name="zone", join_keys=["zone_id"], value_type=ValueType.INT32)
    city = Entity(name="city", join_keys=["city"], value_type=ValueType.STRING)

    def source(name: str) -> FileSource:
        return FileSource(name=name, path=str(data / f"{name}.parquet"), timestamp_field="event_timestamp")

    views = [
        FeatureView(name="driver_stats", entities=[driver], ttl=timedelta(days=1), source=source("drivers"),
                    schema=[Field(name="driver_id", dtype=Int64), Field(name="trips", dtype=Int64)]),
        FeatureView(name="driver_zone", entities=[driver, zone], ttl=timedelta(days=1), source=source("zones"),
                    schema=[Field(name="driver_id", dtype=Int64), Field(name="zone_id", dtype=Int32),
                            Field(name="share", dtype=Float64)]),
        FeatureView(name="city_stats", entities=[city], ttl=timedelta(days=1), source=source("cities"),
                    schema=[Field(name="city", dtype=String), Field(name="label", dtype=String)]),
    ]
    config = RepoConfig(
        project=f"keys_v{version}", provider="local",
        registry=RegistryConfig(registry_type="file", path=str(root / "registry.db")),
        online_store=RedisOnlineStoreConfig(connection_string=f"{url.hostname}:{url.port}"),
        offline_store={"type": "file"}, entity_key_serialization_version=version, repo_path=root,
    )
    store = FeatureStore(config=config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Feast warns that version 2 is deprecated; it still writes it
        store.apply([driver, zone, city, *views, FeatureService(name="svc", features=views)])
        store.materialize(NOW - timedelta(days=1), NOW)
    return store


def metadata(entities: list[EntitySpec]) -> ModelMetadata:
    refs = ["driver_stats:trips", "driver_zone:share", "city_stats:label"]
    return ModelMetadata(
        name="keys", version="v1", created_at=NOW, feature_service="svc",
        features=[FeatureSpec(name=r.replace(":", "__"), source="feast", ref=r,
                              kind="categorical" if r.startswith("city") else "numeric") for r in refs],
        entities=entities, task="regression", training_window=(NOW, NOW), metrics={}, library_versions={},
        artifact_sha256="0" * 64,
    )


ENTITIES = [
    EntitySpec(field="driver", join_key="driver_id", dtype="int64"),
    EntitySpec(field="zone", join_key="zone_id", dtype="int32"),
    EntitySpec(field="city", join_key="city", dtype="string"),
]


@pytest.mark.parametrize("version", [2, 3])
async def test_every_key_type_reads_what_feast_reads(tmp_path: Path, redis_url: str, version: int) -> None:
    store = build_store(tmp_path, redis_url, version)
    meta = metadata(ENTITIES)
    check_model_against_store(store, meta)
    assert fast_read_problems(store, meta) == []
    rows: list[dict[str, object]] = [
        {"driver_id": 1, "zone_id": 7, "city": "Paris"},
        {"driver_id": 1, "zone_id": -3, "city": "Zürich"},
        {"driver_id": 2, "zone_id": 7, "city": ""},
        {"driver_id": -(2**40), "zone_id": 7, "city": "Paris"},
        {"driver_id": 2**62, "zone_id": 0, "city": "Lyon"},  # unknown zone and city: missing, rightly
    ]
    client = aioredis.from_url(redis_url)
    try:
        fast = await RedisOnlineReader(client, layout_from_store(store, meta), timeout_s=5.0)(rows)
    finally:
        await client.aclose()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feast = store.get_online_features(features=meta.feature_refs, entity_rows=rows, full_feature_names=True)
    expected = feast.to_dict()
    for i, got in enumerate(fast.values):
        assert got == {s.name: expected[s.name][i] for s in meta.features}, (i, rows[i])
    assert fast.values[0] == {"driver_stats__trips": 10, "driver_zone__share": 0.25, "city_stats__label": "a"}
    assert fast.values[3]["driver_stats__trips"] == 30  # a negative Int64 key
    assert fast.values[4]["driver_zone__share"] is None and fast.values[4]["driver_stats__trips"] == 40


def test_a_model_declaring_the_wrong_key_type_is_refused(tmp_path: Path, redis_url: str) -> None:
    store = build_store(tmp_path, redis_url, 3)
    wrong = [EntitySpec(field="driver", join_key="driver_id", dtype="string"), *ENTITIES[1:]]
    with pytest.raises(ModelLoadError, match="join key driver_id is Int64 in Feast but the model declares string"):
        check_model_against_store(store, metadata(wrong))
