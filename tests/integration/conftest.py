"""A served world for integration tests: small data in Feast on the test Redis, and a trained model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftline.registry import ModelMetadata, ModelRegistry
from driftline.settings import KafkaSettings, ProducerSettings, TrainingSettings
from driftline_tools.runner import WorkerProcess
from driftline_tools.scenarios import SMALL_WORLD
from driftline_tools.stack import free_port
from producers.admin import ensure_topics


@dataclass(frozen=True)
class ServedWorld:
    """Where the trained model and Feast registry live, and the env that points at them."""

    home: Path
    env: dict[str, str]

    def training(self) -> TrainingSettings:
        return TrainingSettings(**self.env)  # type: ignore[arg-type]

    def registry(self) -> ModelRegistry:
        """The world's MLflow registry: the embedded SQLite store under its home."""
        return ModelRegistry(self.training())

    def register_copy(self, name: str, **updates: Any) -> ModelMetadata:
        """Register the production ``fraud`` model again, as a new version of model ``name``.

        ``updates`` change its metadata. Tests that tamper with versions or move aliases do it on a
        model name of their own in the shared store, so ``fraud`` serves every other test unchanged.
        """
        registry = self.registry()
        served = registry.load("fraud")
        run_name = f"copy of fraud {served.metadata.version}"
        run = registry.client.create_run(registry.experiment_id(name), run_name=run_name)
        metadata = served.metadata.model_copy(update={"name": name, **updates})
        saved = registry.register(served.estimator, metadata, run.info.run_id)
        registry.client.set_terminated(run.info.run_id)
        return saved


@pytest.fixture(scope="session")
def served_world(tmp_path_factory: pytest.TempPathFactory, bootstrap: str, redis_url: str) -> ServedWorld:
    from feature_repo.store import apply, materialize
    from training.data import generate
    from training.train import run as train

    home = tmp_path_factory.mktemp("home")
    env = {
        "DRIFTLINE_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        **SMALL_WORLD,
    }
    settings = TrainingSettings(**env)  # type: ignore[arg-type]
    generate(settings)
    apply(settings)
    materialize(settings)
    train(settings)
    return ServedWorld(home=home, env=env)


@dataclass(frozen=True)
class TopicSet:
    env: dict[str, str]

    def kafka(self) -> KafkaSettings:
        return ProducerSettings(**self.env)  # type: ignore[arg-type]


@pytest.fixture
def topics(served_world: ServedWorld, unique: str) -> TopicSet:
    """Fresh events/predictions/dead-letter/labels topics, join keys and consumer group for one test."""
    env = {
        **served_world.env,
        "DRIFTLINE_EVENTS_TOPIC": f"events-{unique}",
        "DRIFTLINE_PREDICTIONS_TOPIC": f"predictions-{unique}",
        "DRIFTLINE_DEAD_LETTER_TOPIC": f"dead-letters-{unique}",
        "DRIFTLINE_LABELS_TOPIC": f"labels-{unique}",
        "DRIFTLINE_JOIN_PREFIX": f"driftline:join:{unique}:",
        "DRIFTLINE_WORKER_GROUP": f"worker-{unique}",
        "DRIFTLINE_TOPIC_PARTITIONS": "4",
    }
    topic_set = TopicSet(env=env)
    list(ensure_topics(topic_set.kafka()))
    return topic_set


@pytest.fixture
def start_worker(topics: TopicSet, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on the test's topics; every one is stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(**extra: str) -> WorkerProcess:
        env = {**topics.env, "DRIFTLINE_METRICS_PORT": str(free_port()), **extra}
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout_s=20)
