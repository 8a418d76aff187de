"""A second, unrelated Feast repo served by the unchanged worker: Int64 keys, an on-demand view, a regressor.

The repo is ``examples/driver_trips`` (shaped like ``feast init``'s template). The model is fitted the way
a user fits one, outside driftline, on Feast's historical features, then registered. Scores on the
predictions topic must equal offline ``predict`` on Feast's historical features for the same rows.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import orjson
import pandas as pd
import pytest
from kafka import KafkaProducer
from sklearn.linear_model import LinearRegression

from driftline.contracts import DeadLetter, Prediction
from driftline.errors import ConfigError
from driftline.kafka import kafka_python_options
from driftline.registry import ModelRegistry
from driftline.settings import ProducerSettings, TrainingSettings
from driftline_tools.runner import WorkerProcess
from driftline_tools.stack import free_port
from feature_repo.store import apply, feature_store, materialize
from producers.admin import ensure_topics
from producers.collect import collect
from training.register import RegisterRequest, register

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "driver_trips"
SERVICE = "driver_activity_v1"
INPUTS = ["conv_rate", "acc_rate", "avg_daily_trips", "expected_pickup_min", "distance_km"]


@dataclass(frozen=True)
class DriverWorld:
    repo: Path
    env: dict[str, str]

    def settings(self) -> TrainingSettings:
        return TrainingSettings(**self.env)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def driver_world(tmp_path_factory: pytest.TempPathFactory, bootstrap: str, redis_url: str) -> Iterator[DriverWorld]:
    root = tmp_path_factory.mktemp("driver_trips")
    repo = root / "feature_repo"
    # Not data/ (git-ignored): a run of the example in place leaves a Feast registry there whose last
    # materialization would make this one incremental from then, skipping the fresh data written below.
    shutil.copytree(EXAMPLE / "feature_repo", repo, ignore=shutil.ignore_patterns("data"))
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).isoformat()
    subprocess.run(
        [sys.executable, str(EXAMPLE / "make_data.py"), "--end", end, "--out", str(repo / "data")], check=True
    )
    url = urlparse(redis_url)
    unique = root.name.replace("_", "")
    env = {
        "DRIFTLINE_HOME": str(root / "home"),
        "DRIFTLINE_FEAST_REPO": str(repo),
        "DRIFTLINE_MODEL_NAME": "driver_trips",
        "REDIS_CONNECTION_STRING": f"{url.hostname}:{url.port}",
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "DRIFTLINE_EVENTS_TOPIC": f"trips-{unique}",
        "DRIFTLINE_PREDICTIONS_TOPIC": f"trip-predictions-{unique}",
        "DRIFTLINE_DEAD_LETTER_TOPIC": f"trip-dead-letters-{unique}",
        "DRIFTLINE_WORKER_GROUP": f"trips-{unique}",
        "DRIFTLINE_TOPIC_PARTITIONS": "2",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_CONNECTION_STRING", env["REDIS_CONNECTION_STRING"])  # Feast expands it in the YAML
        world = DriverWorld(repo, env)
        apply(world.settings())
        materialize(world.settings())
        yield world


def historical(world: DriverWorld, entity_df: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time features for ``entity_df``, with the bare names a user would fit on."""
    store = feature_store(world.settings())
    frame = store.get_historical_features(entity_df=entity_df, features=store.get_feature_service(SERVICE)).to_df()
    return frame.sort_values("event_timestamp", kind="stable").reset_index(drop=True)


def fit_outside(world: DriverWorld, path: Path) -> None:
    """What a user does on their own (the example's train_model.py): Feast -> scikit-learn -> a pickle."""
    subprocess.run(
        [sys.executable, str(EXAMPLE / "train_model.py"), "--repo", str(world.repo), "--out", str(path)],
        check=True, env={**os.environ, "REDIS_CONNECTION_STRING": world.env["REDIS_CONNECTION_STRING"]},
    )


def test_a_feast_init_style_repo_and_a_regressor_are_served_unchanged(
    driver_world: DriverWorld, tmp_path: Path
) -> None:
    model_file = tmp_path / "trips.pkl"
    fit_outside(driver_world, model_file)
    result = register(
        driver_world.settings(),
        RegisterRequest(model_file, "driver_trips", SERVICE, sample=driver_world.repo / "data" / "trips.parquet",
                        label="trip_minutes"),
    )
    assert (result.task, result.input_format, result.features) == ("regression", "frame", INPUTS)
    assert [(e.join_key, e.dtype) for e in result.entities] == [("driver_id", "int64")]
    assert result.request_fields == ["distance_km"]
    assert result.metrics["mae"] < 2.0  # noise has sd 1.5: the linear model recovers the formula
    # The registration is an MLflow run: the version comes from it, and the sample is its reference data.
    registry = ModelRegistry(driver_world.settings())
    assert registry.client.get_model_version("driver_trips", result.version).run_id == result.run_id
    assert registry.production_version("driver_trips") == result.version
    (reference,) = registry.client.get_run(result.run_id).inputs.dataset_inputs
    assert reference.dataset.digest == result.dataset_digest
    assert {t.key: t.value for t in reference.tags} == {"mlflow.data.context": "reference"}

    settings = ProducerSettings(**driver_world.env)  # type: ignore[arg-type]
    list(ensure_topics(settings))
    worker = WorkerProcess(
        {**driver_world.env, "DRIFTLINE_METRICS_PORT": str(free_port())}, tmp_path / "worker.log"
    ).start()
    try:
        worker.wait_assigned()
        now = datetime.now(UTC)
        stamp = now.isoformat().replace("+00:00", "Z")
        rng = np.random.default_rng(3)
        # Distinct times: Feast's offline join keeps one row per (join key, timestamp).
        times = [now - timedelta(milliseconds=i) for i in range(40)]
        events = [
            {"event_id": f"t{i}", "event_time": times[i].isoformat().replace("+00:00", "Z"), "driver_id": int(d),
             "distance_km": float(km)}
            for i, (d, km) in enumerate(zip(rng.integers(1001, 1051, 40), np.round(rng.uniform(1, 25, 40), 2),
                                            strict=True))
        ]
        bad = [
            {"event_id": "s1", "event_time": stamp, "driver_id": "1001", "distance_km": 3.0},  # string for Int64
            {"event_id": "s2", "event_time": stamp, "driver_id": 1001},  # no request field for the view
        ]
        producer = KafkaProducer(**kafka_python_options(settings), acks="all", linger_ms=20)
        for event in [*events, *bad]:
            producer.send(settings.events_topic, key=str(event["driver_id"]).encode(), value=orjson.dumps(event))
        producer.flush(timeout=30)
        producer.close()

        topics = [settings.predictions_topic, settings.dead_letter_topic]
        got = collect(
            settings, topics,
            lambda c: len(c.values(topics[0])) >= len(events) and len(c.values(topics[1])) >= len(bad), 90, settle_s=2,
        )
        predictions = {p.event_id: p for p in map(Prediction.model_validate_json, got.values(topics[0]))}
        letters = {d.event_id: d for d in map(DeadLetter.model_validate_json, got.values(topics[1]))}
        assert set(predictions) == {e["event_id"] for e in events}, worker.log_tail()
        assert letters["s1"].reason == "driver_id must be a whole number (int64), got str"
        assert letters["s2"].reason == "distance_km is missing"

        # Offline: Feast's historical features for the same rows, as of the same time, through predict.
        entity_df = pd.DataFrame(
            {
                "driver_id": [e["driver_id"] for e in events],
                "event_timestamp": pd.to_datetime(times, utc=True),
                "distance_km": [e["distance_km"] for e in events],
                "event_id": [e["event_id"] for e in events],
            }
        )
        offline = historical(driver_world, entity_df)
        model = pickle.loads(model_file.read_bytes())
        assert sorted(offline["event_id"]) == sorted(e["event_id"] for e in events), offline.columns
        expected = dict(zip(offline["event_id"], model.predict(offline[INPUTS]), strict=True))
        for event_id, prediction in predictions.items():
            assert not prediction.missing_features and not prediction.degraded
            assert prediction.decision is None and prediction.threshold is None
            driver = next(e["driver_id"] for e in events if e["event_id"] == event_id)
            assert prediction.entities == {"driver_id": driver}
            assert prediction.score == pytest.approx(expected[event_id], abs=1e-9)
    finally:
        worker.stop(timeout_s=20)


def test_bad_repo_service_and_model_are_refused_with_the_reason(driver_world: DriverWorld, tmp_path: Path) -> None:
    no_repo = TrainingSettings(**{**driver_world.env, "DRIFTLINE_FEAST_REPO": str(tmp_path)})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"has no feature_store.yaml"):
        feature_store(no_repo)
    model_file = tmp_path / "trips.pkl"
    fit_outside(driver_world, model_file)
    sample = driver_world.repo / "data" / "trips.parquet"
    with pytest.raises(ConfigError, match="feature service 'nope' is not in Feast project driver_trips"):
        register(driver_world.settings(), RegisterRequest(model_file, "t", "nope", sample=sample))
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=r"broken\.pkl cannot be loaded"):
        register(driver_world.settings(), RegisterRequest(tmp_path / "broken.pkl", "t", SERVICE, sample=sample))
    narrow = tmp_path / "narrow.pkl"
    narrow.write_bytes(pickle.dumps(LinearRegression().fit(pd.DataFrame({"speed": [1.0, 2.0]}), [1.0, 2.0])))
    with pytest.raises(ConfigError, match="the model's inputs speed are not features of service driver_activity_v1"):
        register(driver_world.settings(), RegisterRequest(narrow, "t", SERVICE, sample=sample))


def test_driftline_trains_on_any_feature_service_too(driver_world: DriverWorld) -> None:
    from training.train import TrainRequest, request_specs, run

    trips_path = driver_world.repo / "data" / "trips.parquet"
    trips = pd.read_parquet(trips_path)
    request = TrainRequest(
        feature_service=SERVICE, entity_df=trips_path, label="trip_minutes", estimator="linear",
        request_features=request_specs(trips, ["distance_km"]),
    )
    settings = TrainingSettings(**{**driver_world.env, "DRIFTLINE_MODEL_NAME": "trips_by_driftline"})  # type: ignore[arg-type]
    result = run(settings, promote=False, request=request)
    assert (result.task, result.threshold, result.features) == ("regression", None, 5)
    assert result.test_rows == 600 and result.train_rows == 2400  # the latest 20% of 3,000 trips by time
    assert result.metrics["mae"] < 1.5 and result.metrics["r2"] > 0.99  # the label is linear in these inputs + noise
    meta = ModelRegistry(settings).read_metadata("trips_by_driftline", result.version)
    assert [s.name for s in meta.features] == [
        "distance_km", "driver_hourly_stats__conv_rate", "driver_hourly_stats__acc_rate",
        "driver_hourly_stats__avg_daily_trips", "trip_adjustments__expected_pickup_min",
    ]
    assert [(e.field, e.dtype) for e in meta.entities] == [("driver_id", "int64")]
    assert [s.name for s in meta.request_fields] == ["distance_km"]
