"""Generate -> Feast apply -> materialize -> train, against a real Redis."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pytest
import redis

from driftline.contracts import Channel
from driftline.features import build_matrix
from driftline.registry import ModelRegistry
from driftline.settings import TrainingSettings
from feature_repo.definitions import CUSTOMER_STATS_FILE, MERCHANT_STATS_FILE
from feature_repo.store import FEATURE_SERVICE, apply, feature_store, materialize
from producers.generator import MERCHANT_CATEGORIES
from training.data import generate
from training.dataset import LABEL, load_transactions, training_set
from training.train import run

pytestmark = pytest.mark.integration

CUSTOMER_FEATURES = [
    "txn_count_7d",
    "avg_amount_30d",
    "std_amount_30d",
    "account_age_days",
    "night_txn_share_30d",
]
MERCHANT_FEATURES = ["fraud_rate_90d", "txn_count_7d", "avg_amount_30d", "category"]


@pytest.fixture(scope="module")
def settings(redis_url, tmp_path_factory):
    project = f"dl_it_{uuid.uuid4().hex[:10]}"
    settings = TrainingSettings(
        DRIFTLINE_HOME=str(tmp_path_factory.mktemp("home")),
        REDIS_URL=redis_url,
        DRIFTLINE_FEAST_PROJECT=project,
        DRIFTLINE_N_CUSTOMERS=300,
        DRIFTLINE_N_MERCHANTS=50,
        DRIFTLINE_N_TRANSACTIONS=8_000,
        DRIFTLINE_HISTORY_DAYS=20,
    )
    assert settings.n_customers == 300 and settings.feast_project == project
    yield settings
    if settings.feast_registry_path.exists():
        feature_store(settings).teardown()
    client = redis.Redis.from_url(redis_url)
    try:
        leftovers = list(client.scan_iter(match=f"*{project}*".encode()))
        if leftovers:
            client.delete(*leftovers)
    finally:
        client.close()


@pytest.fixture(scope="module")
def trained(settings):
    generated = generate(settings)
    assert 0 < generated.fraud_rate < 1
    assert all(f.rows > 0 and f.path.is_file() for f in generated.files)
    applied = apply(settings)
    assert apply(settings) == applied  # idempotent
    materialized = materialize(settings)
    assert materialized.views == ("customer_stats", "merchant_stats")
    return run(settings, promote=True)


def test_training_again_on_the_same_data_gives_the_same_metrics(settings, trained, tmp_path, monkeypatch):
    # Another tracking store (a SQLite file), so the module's store keeps its one version. MLflow puts the
    # artifacts of a store given by URI under ./mlruns: run from tmp_path so they land there.
    monkeypatch.chdir(tmp_path)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    again = run(settings.model_copy(update={"mlflow_tracking_uri": other}), promote=False)
    assert (again.train_rows, again.test_rows) == (trained.train_rows, trained.test_rows)
    assert again.metrics == trained.metrics
    assert again.dataset_digest == trained.dataset_digest  # the same training set, by MLflow's fingerprint
    assert (again.tracking_uri, again.version, again.promoted) == (other, "1", False)
    elsewhere = ModelRegistry(settings.model_copy(update={"mlflow_tracking_uri": other}))
    assert [v.version for v in elsewhere.versions(settings.model_name)] == ["1"]
    assert elsewhere.aliases(settings.model_name) == {}
    assert [v.version for v in ModelRegistry(settings).versions(settings.model_name)] == [trained.version]


def test_apply_is_idempotent(settings, trained):
    store = feature_store(settings)
    assert sorted(v.name for v in store.list_feature_views()) == ["customer_stats", "merchant_stats"]
    assert [s.name for s in store.list_feature_services()] == [FEATURE_SERVICE]
    assert sorted(e.name for e in store.list_entities()) == ["customer", "merchant"]


def test_trained_model_is_registered_and_useful(settings, trained):
    registry = ModelRegistry(settings)
    loaded = registry.load(settings.model_name)
    meta = loaded.metadata
    assert meta.metrics["roc_auc"] > 0.7, trained
    assert meta.feature_service == FEATURE_SERVICE
    assert [f.name for f in meta.features] == [
        "amount",
        "channel",
        "hour_of_day",
        *(f"customer_stats__{f}" for f in CUSTOMER_FEATURES),
        *(f"merchant_stats__{f}" for f in MERCHANT_FEATURES),
    ]
    assert meta.feature_views == ["customer_stats", "merchant_stats"]
    assert set(meta.reference.features) == {f.name for f in meta.features}
    assert trained.version == meta.version and trained.promoted
    assert trained.metrics["roc_auc"] == meta.metrics["roc_auc"]
    assert registry.production_version(settings.model_name) == trained.version == "1"
    (move,) = registry.history(settings.model_name)
    assert (move.alias, move.to_version) == ("production", trained.version)
    assert move.reason == f"trained by driftline train (run {trained.run_id})"


def test_the_training_run_records_params_metrics_data_and_plots(settings, trained):
    registry = ModelRegistry(settings)
    client = registry.client
    assert trained.tracking_uri == registry.where() == f"sqlite:///{settings.home.resolve() / 'mlflow' / 'mlflow.db'}"
    assert client.get_model_version(settings.model_name, trained.version).run_id == trained.run_id
    recorded = client.get_run(trained.run_id)
    assert recorded.info.status == "FINISHED"
    params = recorded.data.params
    assert params["estimator"].endswith(".HistGradientBoostingClassifier")
    assert params["feature_service"] == FEATURE_SERVICE and params["label"] == LABEL
    assert (params["train_rows"], params["test_rows"]) == (str(trained.train_rows), str(trained.test_rows))
    assert params["features"] == str(trained.features) and params["seed"] == str(settings.seed)
    assert recorded.data.metrics == pytest.approx({k: v for k, v in trained.metrics.items() if math.isfinite(v)})
    (training_data,) = recorded.inputs.dataset_inputs
    assert {t.key: t.value for t in training_data.tags} == {"mlflow.data.context": "training"}
    assert training_data.dataset.digest == trained.dataset_digest
    assert json.loads(training_data.dataset.profile)["num_rows"] == trained.train_rows + trained.test_rows
    plots = {Path(a.path).name for a in client.list_artifacts(trained.run_id, "plots")}
    assert plots == {"score_histogram.png", "roc.png", "calibration.png"}


def test_online_features_equal_the_latest_snapshot(settings, trained):
    snapshots = pd.read_parquet(settings.data_dir / CUSTOMER_STATS_FILE)
    latest = snapshots.sort_values("event_timestamp").groupby("customer_id").tail(1)
    row = latest[latest["txn_count_7d"] > 2].iloc[0]
    store = feature_store(settings)
    online = store.get_online_features(
        features=[f"customer_stats:{f}" for f in CUSTOMER_FEATURES],
        entity_rows=[{"customer_id": row["customer_id"]}],
    ).to_dict()
    for feature in CUSTOMER_FEATURES:
        expected, got = row[feature], online[feature][0]
        if isinstance(expected, float) and math.isnan(expected):
            assert got is None or math.isnan(got)
        else:
            assert got == pytest.approx(expected), feature

    merchants = pd.read_parquet(settings.data_dir / MERCHANT_STATS_FILE)
    last = merchants.sort_values("event_timestamp").groupby("merchant_id").tail(1).iloc[0]
    online_m = store.get_online_features(
        features=[f"merchant_stats:{f}" for f in MERCHANT_FEATURES],
        entity_rows=[{"merchant_id": last["merchant_id"]}],
    ).to_dict()
    assert online_m["category"][0] == last["category"]
    assert online_m["txn_count_7d"][0] == last["txn_count_7d"]


def test_online_rows_score_through_the_shared_matrix_builder(settings, trained):
    loaded = ModelRegistry(settings).load(settings.model_name)
    store = feature_store(settings)
    event = load_transactions(settings.data_dir).iloc[-1]
    online = store.get_online_features(
        features=store.get_feature_service(FEATURE_SERVICE),
        entity_rows=[{"customer_id": event["customer_id"], "merchant_id": event["merchant_id"]}],
        full_feature_names=True,
    ).to_dict()
    row = {name: values[0] for name, values in online.items()}
    row.update(amount=event["amount"], channel=event["channel"], hour_of_day=event["hour_of_day"])
    matrix = build_matrix(loaded.metadata.features, [row])
    assert not np.isnan(matrix[0, :3]).any()
    score = loaded.estimator.predict_proba(matrix)[0, 1]

    # Offline, without Feast or build_matrix: the latest snapshot rows of the two entities (what
    # materialize loaded), encoded by hand (a level's code is its index), scored by the same model.
    def latest(file: str, key: str) -> pd.Series:
        frame = pd.read_parquet(settings.data_dir / file)
        return frame[frame[key] == event[key]].sort_values("event_timestamp").iloc[-1]

    customer, merchant = latest(CUSTOMER_STATS_FILE, "customer_id"), latest(MERCHANT_STATS_FILE, "merchant_id")
    by_name = {
        "amount": event["amount"],
        "channel": get_args(Channel).index(event["channel"]),
        "hour_of_day": event["hour_of_day"],
        **{f"customer_stats__{f}": customer[f] for f in CUSTOMER_FEATURES},
        **{f"merchant_stats__{f}": merchant[f] for f in MERCHANT_FEATURES if f != "category"},
        "merchant_stats__category": MERCHANT_CATEGORIES.index(merchant["category"]),
    }
    offline = np.array([[by_name[f.name] for f in loaded.metadata.features]], dtype=np.float64)
    np.testing.assert_array_equal(matrix, offline)  # NaN (a missing std) matches NaN
    expected = loaded.estimator.predict_proba(offline)[0, 1]
    assert score == pytest.approx(expected, abs=1e-9)


def test_training_set_is_point_in_time_correct(settings, trained):
    store = feature_store(settings)
    transactions = load_transactions(settings.data_dir)
    frame = training_set(store, transactions)
    assert len(frame) == len(transactions)

    snapshots = pd.read_parquet(settings.data_dir / CUSTOMER_STATS_FILE).sort_values("event_timestamp")
    snapshots = snapshots.rename(columns={"event_timestamp": "snapshot_timestamp"})
    expected = pd.merge_asof(
        frame.sort_values("event_timestamp")[["event_id", "event_timestamp", "customer_id"]],
        snapshots,
        left_on="event_timestamp",
        right_on="snapshot_timestamp",
        by="customer_id",
        direction="backward",
        allow_exact_matches=True,
        tolerance=pd.Timedelta(days=3),
    ).set_index("event_id")
    # No feature row from after the event: the snapshot that was joined is at or before it.
    assert (expected["snapshot_timestamp"] <= expected["event_timestamp"]).all()
    got = frame.set_index("event_id").loc[expected.index]
    for feature in CUSTOMER_FEATURES:
        np.testing.assert_allclose(
            got[f"customer_stats__{feature}"].astype(float),
            expected[feature].astype(float),
            equal_nan=True,
            err_msg=feature,
        )
