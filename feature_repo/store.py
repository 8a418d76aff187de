"""The Feast feature store of driftline, configured from settings rather than from YAML.

``feature_store.yaml`` next to this module documents the same configuration for the ``feast`` CLI.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FeatureStore, RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.repo_config import RegistryConfig

from driftline.errors import ConfigError
from driftline.logs import quiet_library_warnings
from driftline.settings import FeastSettings
from feature_repo.definitions import CUSTOMER_STATS, FEATURE_SERVICE, MERCHANT_STATS, SOURCE_FILES, definitions

__all__ = [
    "FEATURE_SERVICE",
    "AppliedObject",
    "ApplyResult",
    "MaterializeResult",
    "apply",
    "feature_store",
    "materialize",
    "repo_config",
]

logger = logging.getLogger(__name__)
quiet_library_warnings()  # importing feast above reset the warning filters

REPO_PATH = Path(__file__).resolve().parent


def repo_config(settings: FeastSettings) -> RepoConfig:
    """The RepoConfig of ``settings``: file registry, Redis online store, file offline store."""
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=RegistryConfig(
            registry_type="file", path=str(settings.feast_registry_path.resolve()), cache_ttl_seconds=60
        ),
        online_store=RedisOnlineStoreConfig(connection_string=settings.feast_connection_string()),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=REPO_PATH,
    )


def feature_store(settings: FeastSettings) -> FeatureStore:
    """Build the FeatureStore of ``settings`` (the registry folder is created if needed)."""
    settings.feast_registry_path.parent.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(REPO_PATH), config=repo_config(settings))


def _require_sources(data_dir: Path) -> None:
    missing = [name for name in SOURCE_FILES.values() if not (data_dir / name).is_file()]
    if missing:
        raise ConfigError(f"no {', '.join(missing)} in {data_dir}; run `driftline data generate` first")


@dataclass(frozen=True)
class AppliedObject:
    """One Feast object registered by :func:`apply`, e.g. ``FeatureView customer_stats``."""

    kind: str
    name: str


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply` registered, in which project and registry."""

    project: str
    registry: Path
    objects: tuple[AppliedObject, ...]

    def summary(self) -> str:
        """One line: how many objects went into which project."""
        return f"Feast project {self.project}: applied {len(self.objects)} objects"


@dataclass(frozen=True)
class MaterializeResult:
    """What :func:`materialize` loaded into the online store, and over which event-time window."""

    project: str
    views: tuple[str, ...]
    start: datetime
    end: datetime

    def summary(self) -> str:
        """One line: the views and the window."""
        return (
            f"Feast project {self.project}: materialized {', '.join(self.views)} "
            f"({self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC)"
        )


def apply(settings: FeastSettings) -> ApplyResult:
    """Register entities, sources, feature views and the feature service (idempotent)."""
    _require_sources(settings.data_dir)
    store = feature_store(settings)
    # Feast's apply() takes a list of its own union type; ours is a subset of it.
    objects: list[Any] = list(definitions(settings.data_dir))
    store.apply(objects)
    logger.info("applied %d objects to Feast project %s", len(objects), settings.feast_project)
    return ApplyResult(
        project=settings.feast_project,
        registry=settings.feast_registry_path,
        objects=tuple(AppliedObject(kind=type(o).__name__, name=o.name) for o in objects),
    )


def _earliest_timestamp(data_dir: Path) -> datetime:
    earliest: datetime | None = None
    for name in SOURCE_FILES.values():
        column = pq.read_table(data_dir / name, columns=["event_timestamp"])["event_timestamp"]
        value = pc.min(column).as_py()
        if value is not None and (earliest is None or value < earliest):
            earliest = value
    if earliest is None:
        raise ConfigError(f"the feature sources in {data_dir} are empty; run `driftline data generate`")
    return earliest.astimezone(UTC)


def materialize(settings: FeastSettings) -> MaterializeResult:
    """Load the latest value of every feature view into Redis, over the whole generated history."""
    _require_sources(settings.data_dir)
    store = feature_store(settings)
    start = _earliest_timestamp(settings.data_dir) - timedelta(seconds=1)
    end = datetime.now(UTC)
    views = [CUSTOMER_STATS, MERCHANT_STATS]
    store.materialize(start_date=start, end_date=end, feature_views=views)
    logger.info("materialized %s from %s to %s", views, start, end)
    return MaterializeResult(project=settings.feast_project, views=tuple(views), start=start, end=end)
