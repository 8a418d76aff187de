"""The one place that builds the Feast FeatureStore, applies a repo and materializes it.

``DRIFTLINE_FEAST_REPO`` names the user's repo: it is read exactly as Feast reads it (its own
``feature_store.yaml``: project, registry, online store). Unset, the bundled example repo is used,
configured from driftline's settings so that the embedded stack's Redis and home apply;
``feature_store.yaml`` next to this module documents that configuration for the ``feast`` CLI.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import redis
from feast import FeatureStore, RepoConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.repo_config import RegistryConfig

from driftline.errors import ConfigError, FeatureStoreAccessError, FeatureStoreError
from driftline.logs import quiet_library_warnings
from driftline.settings import FeastSettings, mask_url
from feature_repo.definitions import CUSTOMER_STATS, FEATURE_SERVICE, MERCHANT_STATS, SOURCE_FILES, definitions
from feature_repo.redis_reader import check_redis_access

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

EXAMPLE_REPO = Path(__file__).resolve().parent


def repo_config(settings: FeastSettings) -> RepoConfig:
    """The example repo's RepoConfig from ``settings``: file registry, Redis online store, file offline store."""
    return RepoConfig(
        project=settings.feast_project,
        provider="local",
        registry=RegistryConfig(
            registry_type="file", path=str(settings.feast_registry_path.resolve()), cache_ttl_seconds=60
        ),
        online_store=RedisOnlineStoreConfig(connection_string=settings.feast_connection_string()),
        offline_store={"type": "file"},
        entity_key_serialization_version=3,
        repo_path=EXAMPLE_REPO,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def feature_store(settings: FeastSettings) -> FeatureStore:
    """Build the FeatureStore of ``settings``: the user's repo as Feast reads it, or the example."""
    repo = settings.feast_repo
    if repo is None:
        settings.feast_registry_path.parent.mkdir(parents=True, exist_ok=True)
        return FeatureStore(repo_path=str(EXAMPLE_REPO), config=repo_config(settings))
    if not (repo / "feature_store.yaml").is_file():
        raise ConfigError(
            f"DRIFTLINE_FEAST_REPO={repo} has no feature_store.yaml; point it at a Feast repo folder "
            "(`feast init` makes one)"
        )
    try:
        return FeatureStore(repo_path=str(repo.resolve()))
    except Exception as exc:  # Feast raises its own, pydantic and YAML errors here
        raise ConfigError(f"Feast repo {repo}: feature_store.yaml cannot be used: {_first_line(exc)}") from exc


@contextmanager
def _inside(repo: Path) -> Iterator[None]:
    # Feast imports a repo's files as modules named by their path from the working directory.
    previous, sys_path = Path.cwd(), list(sys.path)
    os.chdir(repo)
    sys.path.insert(0, str(repo))
    try:
        yield
    finally:
        os.chdir(previous)
        sys.path[:] = sys_path


def _repo_objects(repo: Path) -> list[Any]:
    """Every Feast object the repo's Python files define, as ``feast apply`` finds them."""
    from feast.repo_operations import parse_repo

    try:
        with _inside(repo.resolve()):
            contents = parse_repo(Path.cwd())
    except Exception as exc:
        raise ConfigError(f"Feast repo {repo}: its definitions cannot be loaded: {_first_line(exc)}") from exc
    return [
        *contents.projects, *contents.data_sources, *contents.entities, *contents.feature_views,
        *contents.on_demand_feature_views, *contents.stream_feature_views, *contents.feature_services,
    ]


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
    start: datetime | None  # None: incremental, each view from where it last ended
    end: datetime

    def summary(self) -> str:
        """One line: the views and the window."""
        since = f"{self.start:%Y-%m-%d %H:%M}" if self.start else "last run"
        return (
            f"Feast project {self.project}: materialized {', '.join(self.views)} "
            f"({since} .. {self.end:%Y-%m-%d %H:%M} UTC)"
        )


def apply(settings: FeastSettings) -> ApplyResult:
    """Register the repo's objects (idempotent; objects no longer defined are left in the registry)."""
    store = feature_store(settings)
    objects: list[Any]  # Feast's apply() takes a list of its own union type
    if settings.feast_repo is None:
        _require_sources(settings.data_dir)
        objects = list(definitions(settings.data_dir))
    else:
        # Feast adds its own "__dummy" entity for entity-less views; it is not the repo's object.
        objects = [
            o for o in _repo_objects(settings.feast_repo) if type(o).__name__ != "Project" and o.name != "__dummy"
        ]
        if not objects:
            raise ConfigError(f"Feast repo {settings.feast_repo} defines no Feast objects")
    try:
        store.apply(objects)
    except Exception as exc:
        raise ConfigError(f"Feast apply of {store.project} failed: {_first_line(exc)}") from exc
    logger.info("applied %d objects to Feast project %s", len(objects), store.project)
    return ApplyResult(
        project=store.project,
        registry=Path(str(store.config.registry.path)),
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
    """Load the latest value of every feature view into the online store.

    The example: over its whole generated history. A user's repo: Feast's incremental materialization
    (each view from where it last ended, or its TTL back from now the first time).
    """
    store = feature_store(settings)
    if settings.feast_repo is not None:
        end = datetime.now(UTC)
        names = tuple(view.name for view in store.list_feature_views() if view.online)
        try:
            store.materialize_incremental(end_date=end, feature_views=list(names))
        except Exception as exc:
            raise ConfigError(f"Feast materialize of {store.project} failed: {_first_line(exc)}") from exc
        return MaterializeResult(project=store.project, views=names, start=None, end=end)
    _require_sources(settings.data_dir)
    start = _earliest_timestamp(settings.data_dir) - timedelta(seconds=1)
    end = datetime.now(UTC)
    views = [CUSTOMER_STATS, MERCHANT_STATS]
    # REDIS_URL's credentials and TLS files, checked as the worker checks them: a refusal is one line.
    unreachable = check_redis_access(settings, store.project)
    if unreachable:
        raise FeatureStoreError(f"cannot materialize: {unreachable}")
    try:
        store.materialize(start_date=start, end_date=end, feature_views=views)
    except redis.exceptions.NoPermissionError as exc:  # e.g. a read-only ACL user
        raise FeatureStoreAccessError(
            f"Redis at {mask_url(settings.redis_url.get_secret_value())} refused Feast's write of project "
            f"{store.project} ({_first_line(exc)}); materializing needs a user that may write those keys"
        ) from exc
    logger.info("materialized %s from %s to %s", views, start, end)
    return MaterializeResult(project=settings.feast_project, views=tuple(views), start=start, end=end)
