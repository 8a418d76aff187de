"""Retrain behind the gate on the real broker, Redis, Feast and MLflow: labelled events in, a gated challenger out.

One set of events over the last three hours is published once; three labels topics label it three
ways. ``atm``: cash withdrawals are the fraud, and the champion was trained on 20 days of that pattern,
so a challenger trained on a few hours is no better. ``new_pattern``: card-present purchases over 100 are
the fraud, which the served champion (trained on the world's own labels) never saw, so the challenger
wins clearly. ``no_fraud``: no fraud reported at all, so no challenger can be trained. Patterns the
models can learn exactly keep the verdicts the same whatever hour the test runs at.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from driftline.contracts import Label
from driftline.registry import ModelMetadata, ModelRegistry
from driftline.settings import ProducerSettings, RetrainSettings, TrainingSettings
from driftline_tools.webhook import WebhookMetrics, WebhookServer
from producers.admin import ensure_topics
from producers.generator import build_world, event_stream
from producers.kafka_clients import create_producer
from producers.publish import encode_event
from tests.integration.conftest import ServedWorld
from training.data import TRANSACTIONS_FILE
from training.dataset import LABEL
from training.retrain import (
    CHALLENGER,
    CHAMPION,
    GATE_TAG,
    LABELS_TAG,
    OUTCOME_TAG,
    OUTCOMES,
    REQUEST_TAG,
    RETRAIN_TAG,
    RetrainPolicy,
    RetrainReport,
    retrain,
)
from training.train import TrainRequest
from training.train import run as train

pytestmark = pytest.mark.integration

EVENTS = 2500
#: How each labels topic labels an event.
LABELLINGS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "atm": lambda event: event["channel"] == "atm",
    "new_pattern": lambda event: event["channel"] == "pos" and event["amount"] > 100,
    "no_fraud": lambda event: False,
}


@dataclass(frozen=True)
class LabelledTopics:
    """The published events, a labels topic per labelling, and the instant the retrains run at."""

    env: dict[str, str]
    labels_topics: dict[str, str]
    positives: dict[str, int]
    now: datetime

    def settings(self, labelling: str, model: str) -> RetrainSettings:
        env = {**self.env, "DRIFTLINE_LABELS_TOPIC": self.labels_topics[labelling], "DRIFTLINE_MODEL_NAME": model}
        return RetrainSettings(**env)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def labelled(served_world: ServedWorld) -> LabelledTopics:
    """Events of the served world over the last 3 hours, labelled three ways 20 minutes later, plus 2 bad labels."""
    unique = uuid.uuid4().hex[:8]
    now = datetime.now(UTC).replace(microsecond=0)
    env = {
        **served_world.env, "DRIFTLINE_EVENTS_TOPIC": f"events-{unique}", "DRIFTLINE_TOPIC_PARTITIONS": "2",
        # Loopback: a second without a record means the topics were read to their end.
        "DRIFTLINE_RETRAIN_READ_IDLE_S": "1.0",
    }
    topics = {name: f"labels-{name}-{unique}" for name in LABELLINGS}
    for topic in topics.values():
        list(ensure_topics(ProducerSettings(**{**env, "DRIFTLINE_LABELS_TOPIC": topic})))  # type: ignore[arg-type]
    settings = ProducerSettings(**env)  # type: ignore[arg-type]
    world = build_world(settings.seed, settings.n_customers, settings.n_merchants)
    events = list(event_stream(world, EVENTS, np.random.default_rng(5), now - timedelta(hours=3),
                               rate=EVENTS / (2.5 * 3600), include_label=True))
    positives = dict.fromkeys(LABELLINGS, 0)
    producer = create_producer(settings)
    try:
        for event in events:
            message = encode_event(event)
            producer.send(settings.events_topic, key=message.key, value=message.value)
            label_time = min(datetime.fromisoformat(event["event_time"]) + timedelta(minutes=20), now)
            for name, labelling in LABELLINGS.items():
                value = labelling(event)
                label = Label(event_id=event["event_id"], label=value, label_time=label_time, source="test")
                producer.send(topics[name], key=event["event_id"].encode(), value=label.model_dump_json().encode())
                positives[name] += int(value)
        for topic in topics.values():
            producer.send(topic, value=b"not json")
            producer.send(topic, value=Label(event_id=events[0]["event_id"], label=2,
                                             label_time=now).model_dump_json().encode())
        producer.flush(30)
    finally:
        producer.close()
    return LabelledTopics(env=env, labels_topics=topics, positives=positives, now=now)


def champion_for(served_world: ServedWorld, model: str) -> tuple[ModelRegistry, ModelMetadata]:
    """A model whose production version is the served fraud model: trained on the world's 20-day history."""
    champion = served_world.register_copy(model)
    registry = served_world.registry()
    registry.set_alias(model, CHAMPION, champion.version, "champion for the retrain test")
    return registry, champion


def atm_champion_for(served_world: ServedWorld, model: str, tmp_path: Path) -> tuple[ModelRegistry, ModelMetadata]:
    """A production version trained (``driftline train``'s way) on the 20-day history relabelled: ATM is fraud."""
    settings = TrainingSettings(**{**served_world.env, "DRIFTLINE_MODEL_NAME": model})  # type: ignore[arg-type]
    history = pd.read_parquet(settings.data_dir / TRANSACTIONS_FILE)
    history[LABEL] = (history["channel"] == "atm").astype("int64")
    history.to_parquet(tmp_path / "atm.parquet")
    request = dataclasses.replace(TrainRequest.example(settings), entity_df=tmp_path / "atm.parquet")
    trained = train(settings, promote=True, request=request)
    registry = served_world.registry()
    return registry, registry.read_metadata(model, trained.version)


def policy_for(settings: RetrainSettings, margin: float = 0.0) -> RetrainPolicy:
    return RetrainPolicy.from_settings(settings, window_hours=4, min_labels=1000, cooldown_minutes=60, margin=margin)


def retrain_runs(registry: ModelRegistry, model: str) -> list[Any]:
    return list(registry.client.search_runs(
        [registry.experiment_id(model)], filter_string=f"tags.`{RETRAIN_TAG}` = 'true'"
    ))


def assert_read_everything(report: RetrainReport, labelled: LabelledTopics, labelling: str) -> None:
    assert report.labelled_rows == EVENTS and report.positives == labelled.positives[labelling]
    assert report.new_labels == EVENTS and report.labels_read == EVENTS + 2
    assert report.skipped_labels == {"bad_label": 1, "malformed": 1}


def test_a_challenger_no_better_than_the_champion_is_kept_and_the_guards_hold(
    served_world: ServedWorld, labelled: LabelledTopics, tmp_path: Path
) -> None:
    model = f"retrain-kept-{uuid.uuid4().hex[:8]}"
    registry, champion = atm_champion_for(served_world, model, tmp_path)
    settings = labelled.settings("atm", model)
    policy, now = policy_for(settings), labelled.now

    dry = retrain(settings, policy, dry_run=True, now=now)
    assert dry.dry_run and dry.outcome == "kept_champion", dry.reason
    assert dry.run_id is None and dry.challenger_version is None
    assert registry.aliases(model) == {CHAMPION: champion.version}  # a dry run writes nothing
    assert retrain_runs(registry, model) == []

    report = retrain(settings, policy, now=now, trigger="test", request_id="req-1")
    # A few hours of labels make no better model than 20 days of the same pattern did.
    assert report.outcome == "kept_champion" and report.exit_code == 0, report.reason
    assert_read_everything(report, labelled, "atm")
    gate = report.gate
    assert gate is not None and gate.ci_low is not None and gate.ci_low <= 0 and gate.positives >= 10
    assert gate.rows == report.holdout_rows and gate.reason == report.reason
    assert report.reason.startswith("challenger PR-AUC ") and "does not clear margin 0" in report.reason
    assert report.gate == dry.gate  # the same rows and seed: the same verdict
    assert set(report.challenger_metrics) >= {"pr_auc", "roc_auc"} and set(report.champion_metrics) >= {"pr_auc"}

    [run] = retrain_runs(registry, model)
    tags = run.data.tags
    assert run.info.run_id == report.run_id and run.info.status == "FINISHED"
    assert tags[LABELS_TAG] == str(EVENTS) and tags[REQUEST_TAG] == "req-1"
    assert tags[OUTCOME_TAG] == "kept_champion" and tags[GATE_TAG] == report.reason
    assert run.data.metrics["gate_ci_low"] == pytest.approx(gate.ci_low)
    assert registry.aliases(model) == {CHAMPION: champion.version, CHALLENGER: report.challenger_version}
    assert [(m.alias, m.to_version) for m in report.alias_moves] == [(CHALLENGER, report.challenger_version)]

    again = retrain(settings, policy, now=now + timedelta(minutes=5))
    assert again.outcome == "cooldown" and again.exit_code == 3 and again.guard is not None
    assert again.last_retrain is not None and again.last_retrain.run_id == report.run_id
    assert again.last_retrain.labels == EVENTS and again.labelled_rows is None  # refused before reading

    later = retrain(settings, policy, now=now + timedelta(minutes=90))  # cooldown over, but no label is new
    assert later.outcome == "too_few_labels" and later.new_labels == 0 and later.exit_code == 3
    assert later.reason == f"too few labels: 0 new since the last retrain (run {report.run_id}), at least 1000 needed"
    assert registry.aliases(model) == {CHAMPION: champion.version, CHALLENGER: report.challenger_version}
    assert len(retrain_runs(registry, model)) == 1  # a refusal writes nothing

    # The webhook runs the same retrain: here the cooldown holds it back, and the outcome is counted.
    metrics = WebhookMetrics(retrain_outcomes=OUTCOMES)
    secret = SecretStr("integration-webhook-secret-0123")

    def webhook_retrain(request_id: str) -> RetrainReport:
        return retrain(settings, policy, trigger="webhook", request_id=request_id, now=now + timedelta(minutes=10))

    with WebhookServer(secret, webhook_retrain, "127.0.0.1", 0, metrics) as server:
        started, run_id = server.jobs.start()
        assert started and len(run_id) == 32
        server.jobs.wait(30)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.registry).decode())}
    counted = {s.labels["outcome"]: s.value for s in families["driftline_retrain_runs"].samples
               if s.name.endswith("_total")}
    assert counted["cooldown"] == 1 and sum(counted.values()) == 1
    assert registry.aliases(model) == {CHAMPION: champion.version, CHALLENGER: report.challenger_version}


def test_a_challenger_that_learned_a_new_pattern_is_promoted_and_can_be_rolled_back(
    served_world: ServedWorld, labelled: LabelledTopics
) -> None:
    model = f"retrain-promoted-{uuid.uuid4().hex[:8]}"
    registry, champion = champion_for(served_world, model)
    settings = labelled.settings("new_pattern", model)

    report = retrain(settings, policy_for(settings, margin=0.05), now=labelled.now)
    assert report.outcome == "promoted" and report.exit_code == 0, report.reason
    assert_read_everything(report, labelled, "new_pattern")
    gate = report.gate
    assert gate is not None and gate.ci_low is not None and gate.ci_low > 0.05 and "clears margin 0.05" in report.reason
    assert report.challenger_metrics["pr_auc"] > report.champion_metrics["pr_auc"] + 0.3
    new = report.challenger_version
    assert new is not None and new != champion.version
    # Shadow first, then production; then shadow is cleared, since production serves that version now.
    assert [(m.alias, m.from_version, m.to_version) for m in report.alias_moves] == [
        (CHALLENGER, None, new), (CHAMPION, champion.version, new), (CHALLENGER, new, None),
    ]
    assert registry.aliases(model) == {CHAMPION: new}
    assert f"was version {champion.version}" in report.alias_moves[1].reason
    [run] = retrain_runs(registry, model)
    assert run.data.tags[OUTCOME_TAG] == "promoted"

    registry.rollback(model, "the retrain test rolls back")
    assert registry.aliases(model) == {CHAMPION: champion.version}


def test_a_challenger_that_fails_to_train_leaves_production_serving(
    served_world: ServedWorld, labelled: LabelledTopics, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No fraud reported in the window: nothing to learn a positive class from.
    model = f"retrain-failed-{uuid.uuid4().hex[:8]}"
    registry, champion = champion_for(served_world, model)
    settings = labelled.settings("no_fraud", model)
    policy = policy_for(settings)

    report = retrain(settings, policy, now=labelled.now)
    assert report.outcome == "training_failed" and report.exit_code == 1
    assert report.reason.startswith("the training part (") and "has one class only" in report.reason
    assert report.challenger_version is None and report.alias_moves == ()
    assert registry.aliases(model) == {CHAMPION: champion.version}
    assert [v.version for v in registry.versions(model)] == [champion.version]
    [run] = retrain_runs(registry, model)
    assert run.info.status == "FAILED" and run.data.tags[OUTCOME_TAG] == "training_failed"
    # A failed retrain counts for the cooldown: a challenger that keeps failing is not retried in a storm.
    assert retrain(settings, policy, now=labelled.now + timedelta(minutes=5)).outcome == "cooldown"

    # An estimator that raises something unexpected is a failed challenger too, not a crash.
    class OutOfMemory:
        def fit(self, x: object, y: object) -> None:
            raise MemoryError("the fit ran out of memory")

    model = f"retrain-raises-{uuid.uuid4().hex[:8]}"
    registry, champion = champion_for(served_world, model)
    monkeypatch.setattr("training.retrain.build_estimator", lambda name, specs, seed: OutOfMemory())
    settings = labelled.settings("atm", model)
    raised = retrain(settings, policy, now=labelled.now)
    assert raised.outcome == "training_failed", raised.reason
    assert "MemoryError: the fit ran out of memory" in raised.reason
    assert registry.aliases(model) == {CHAMPION: champion.version}


def test_without_a_champion_nothing_is_read_or_written(served_world: ServedWorld, labelled: LabelledTopics) -> None:
    model = f"retrain-none-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    report = retrain(labelled.settings("atm", model), now=labelled.now)
    assert report.outcome == "no_champion" and report.exit_code == 2
    assert report.reason.startswith(f"model {model} has no production version")
    assert report.labelled_rows is None and time.monotonic() - started < 10
    assert served_world.registry().aliases(model) == {}
