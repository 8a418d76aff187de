"""Retrain behind a gate: recent labelled events -> challenger -> paired comparison with the champion -> aliases.

One retrain, in order: the storm guards (a cooldown since the last retrain, read from MLflow), the
champion (the ``production`` alias: driftline's name for the champion), the labelled window from the
events and labels topics (:mod:`training.labelled`), the guard on new labels, Feast's point-in-time
features for those rows (:func:`training.dataset.training_set`), a split by time (the holdout is the
latest share), a challenger fitted as ``driftline train`` fits (:mod:`training.train`), the champion
and the challenger scored on the same holdout, the gate (:func:`training.gate.compare`). Then,
unless it is a dry run: the challenger is registered from an MLflow run tagged ``driftline.retrain=true``
and given the ``shadow`` alias, and ``production`` moves to it only when the gate passes (the shadow
alias is then cleared: production serves that version). Each move is recorded in the alias history, so
``driftline model rollback`` brings the old champion back.

Whatever stops a retrain (a guard, no champion, a challenger that fails, Kafka or MLflow out of reach)
is an outcome of the :class:`RetrainReport`, with a reason; the champion is never touched then.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.errors import ConfigError, DriftlineError, ModelLoadError
from driftline.features import build_frame, build_matrix_from_columns
from driftline.registry import AliasMove, LoadedModel, ModelMetadata, ModelRegistry
from driftline.settings import RetrainSettings
from feature_repo.store import feature_store
from stream_app.core.scoring import score_batch
from training.dataset import LABEL, TIMESTAMP, raw_columns, time_split, training_set
from training.evaluate import evaluate
from training.gate import (
    GateDecision,
    GatePolicy,
    GuardPolicy,
    GuardRefusal,
    LastRetrain,
    check_cooldown,
    check_new_labels,
    compare,
    count_new_labels,
)
from training.labelled import LABEL_TIME, LabelledWindow, read_labelled
from training.register import RegisterRequest, build_metadata, service_schema
from training.tracking import estimator_params, log_version, tracked_run
from training.train import TrainRequest, build_estimator, model_specs

logger = logging.getLogger(__name__)

#: The alias the gate defends: driftline's registry calls the champion ``production``.
CHAMPION = "production"
#: The alias every registered challenger gets, promoted or not: workers score it aside.
CHALLENGER = "shadow"
#: The MLflow run tag that marks a retrain; the guards find the last retrain by it.
RETRAIN_TAG = "driftline.retrain"
LABELS_TAG = "driftline.retrain.labels"
LAST_LABEL_TAG = "driftline.retrain.last_label_time"
WINDOW_START_TAG = "driftline.retrain.window_start"
WINDOW_END_TAG = "driftline.retrain.window_end"
OUTCOME_TAG = "driftline.retrain.outcome"
GATE_TAG = "driftline.retrain.gate"  # the gate's reason, or why the challenger failed
TRIGGER_TAG = "driftline.retrain.trigger"
REQUEST_TAG = "driftline.retrain.request_id"  # the webhook's run id
CHAMPION_TAG = "driftline.retrain.champion_version"

RetrainOutcome = Literal[
    "promoted",  # the gate passed: production now serves the challenger
    "kept_champion",  # the challenger is registered (shadow); the gate did not pass it (or could not judge)
    "cooldown",  # a guard: the last retrain is too recent
    "too_few_labels",  # a guard: too few labels arrived since the last retrain
    "no_champion",  # nothing to compare against, or the champion cannot score the holdout
    "training_failed",  # the challenger could not be trained or evaluated
    "unavailable",  # Kafka or the model registry could not be read or written
]
OUTCOMES: tuple[RetrainOutcome, ...] = get_args(RetrainOutcome)
#: Exit status of ``driftline retrain`` per outcome: 0 the gate decided, 3 a guard held it back,
#: 2 there is no usable champion (a setup problem), 1 the challenger or a service failed.
EXIT_CODES: dict[RetrainOutcome, int] = {
    "promoted": 0, "kept_champion": 0, "cooldown": 3, "too_few_labels": 3, "no_champion": 2, "training_failed": 1,
    "unavailable": 1,
}


@dataclass(frozen=True)
class RetrainPolicy:
    """What one retrain reads and how strict it is: the window, the guards, the gate, the holdout share."""

    window: timedelta
    guards: GuardPolicy
    gate: GatePolicy
    holdout_fraction: float = 0.3

    @classmethod
    def from_settings(
        cls,
        settings: RetrainSettings,
        *,
        window_hours: float | None = None,
        min_labels: int | None = None,
        cooldown_minutes: float | None = None,
        margin: float | None = None,
    ) -> RetrainPolicy:
        """The settings' policy, with any of the CLI's overrides."""
        hours = settings.retrain_window_hours if window_hours is None else window_hours
        minutes = settings.retrain_cooldown_minutes if cooldown_minutes is None else cooldown_minutes
        if hours <= 0 or minutes < 0:
            raise ConfigError("the window must be positive and the cooldown not negative")
        return cls(
            window=timedelta(hours=hours),
            guards=GuardPolicy(
                min_new_labels=settings.retrain_min_labels if min_labels is None else min_labels,
                cooldown=timedelta(minutes=minutes),
            ),
            gate=GatePolicy(
                metric=settings.retrain_metric,
                margin=settings.retrain_margin if margin is None else margin,
                confidence=settings.retrain_confidence,
                samples=settings.retrain_bootstrap_samples,
                seed=settings.seed,
            ),
            holdout_fraction=settings.retrain_holdout_fraction,
        )


@dataclass(frozen=True)
class RetrainReport:
    """What a retrain did, or why it stopped; ``reason`` is the one line that says why."""

    outcome: RetrainOutcome
    reason: str
    dry_run: bool
    model: str
    trigger: str
    request_id: str | None
    started_at: datetime
    window_start: datetime
    window_end: datetime
    labels_topic: str
    last_retrain: LastRetrain | None = None
    champion_version: str | None = None
    labelled_rows: int | None = None
    positives: int | None = None
    new_labels: int | None = None
    events_read: int | None = None
    labels_read: int | None = None
    skipped_labels: dict[str, int] = field(default_factory=dict)
    skipped_events: dict[str, int] = field(default_factory=dict)
    read_stopped: str | None = None
    train_rows: int | None = None
    holdout_rows: int | None = None
    holdout_start: datetime | None = None
    run_id: str | None = None
    challenger_version: str | None = None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    guard: GuardRefusal | None = None
    gate: GateDecision | None = None
    alias_moves: tuple[AliasMove, ...] = ()
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 the gate decided (promoted or not), 3 a guard held it back, 2 no usable champion, 1 a failure."""
        return EXIT_CODES[self.outcome]


class RetrainFailure(DriftlineError):
    """A retrain stopped after its guards: the challenger failed, or the champion cannot be compared."""

    def __init__(self, outcome: RetrainOutcome, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


# --- the last retrain, from MLflow ----------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else None


def last_retrain(registry: ModelRegistry, model: str) -> LastRetrain | None:
    """The most recent run tagged ``driftline.retrain=true`` in the model's experiment (any status), or None.

    Raises :class:`ModelLoadError` when the registry cannot be read.
    """
    client = registry.client
    try:
        experiment = client.get_experiment_by_name(model)
        if experiment is None:
            return None
        runs = client.search_runs(
            experiment_ids=[experiment.experiment_id], filter_string=f"tags.`{RETRAIN_TAG}` = 'true'",
            order_by=["attributes.start_time DESC"], max_results=1,
        )
    except Exception as exc:  # MLflow's errors, or a server that is down (connection errors, timeouts)
        raise ModelLoadError(f"the model registry {registry.where()} cannot be read: {exc}") from exc
    if not runs:
        return None
    run = runs[0]
    tags = run.data.tags
    return LastRetrain(
        run_id=run.info.run_id,
        started_at=datetime.fromtimestamp(run.info.start_time / 1000, UTC),
        labels=int(tags.get(LABELS_TAG, "0") or 0),
        last_label_time=_parse_time(tags.get(LAST_LABEL_TAG)),
    )


# --- the challenge: fit a challenger, score both models on the same holdout (no registry writes) ---


@dataclass(frozen=True)
class Challenge:
    """A fitted challenger, the holdout, both models' scores on it and the gate's verdict."""

    estimator: object
    metadata: ModelMetadata  # the challenger's, before registration
    training_frame: pd.DataFrame
    holdout: pd.DataFrame
    train_rows: int
    challenger_scores: npt.NDArray[np.float64]
    champion_scores: npt.NDArray[np.float64]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    decision: GateDecision


def model_scores(model: LoadedModel, frame: pd.DataFrame) -> npt.NDArray[np.float64]:
    """A registered binary model's positive-class scores on training-set rows (its own input columns)."""
    meta = model.metadata
    if meta.task != "binary":
        raise RetrainFailure("no_champion", f"the gate compares binary classifiers; version {meta.version} is "
                             f"{meta.task}")
    missing = [s.name for s in meta.features if s.name not in frame.columns]
    if missing:
        raise RetrainFailure(
            "no_champion", f"champion version {meta.version} reads {', '.join(missing)}, which the holdout of "
            f"feature service {meta.feature_service}'s training set lacks",
        )
    try:
        if meta.input_format == "frame":
            model_input: object = build_frame(meta.features, frame.to_dict("records"))
        else:
            model_input = build_matrix_from_columns(meta.features, raw_columns(frame, meta.features), len(frame))
        return score_batch(model.estimator, meta, model_input).score
    except Exception as exc:
        raise RetrainFailure(
            "no_champion", f"champion version {meta.version} fails on the holdout: {_said(exc)}"
        ) from exc


def challenge(
    settings: RetrainSettings, window: LabelledWindow, champion: LoadedModel, policy: RetrainPolicy
) -> Challenge:
    """Feast features for the window, split by time, fit the challenger, score both models, run the gate.

    Raises :class:`RetrainFailure` when the challenger cannot be trained or evaluated, or the champion
    cannot score the holdout.
    """
    request = TrainRequest.example(settings)
    # Feast and the estimator raise exceptions of their own (and an estimator named by a dotted path may
    # raise anything): each becomes a failed challenger with its reason, never a crash of the retrain.
    try:
        store = feature_store(settings)
        schema = service_schema(store, request.feature_service)
        entity_df = window.frame.drop(columns=[LABEL_TIME])
        frame = training_set(store, entity_df, request.feature_service)
        specs = model_specs(schema, request, frame)
        train, holdout = time_split(frame, policy.holdout_fraction)
    except Exception as exc:
        raise RetrainFailure("training_failed", f"the training set could not be built: {_said(exc)}") from exc
    for part, rows in (("training", train), ("holdout", holdout)):
        if rows[LABEL].nunique() < 2:
            raise RetrainFailure(
                "training_failed", f"the {part} part ({len(rows)} rows, by time) has one class only; "
                "widen the window or wait for more labels",
            )
    try:
        x_train = build_matrix_from_columns(specs, raw_columns(train, specs), len(train))
        x_holdout = build_matrix_from_columns(specs, raw_columns(holdout, specs), len(holdout))
        estimator = build_estimator(request.estimator, specs, settings.seed)
        estimator.fit(x_train, train[LABEL].to_numpy())
        registration = RegisterRequest(
            model_file=None, name=settings.model_name, feature_service=request.feature_service, label=LABEL,
            positive_class=request.positive_class, threshold=request.threshold, stratify_by=request.stratify_by,
            stratum_edges=request.stratum_edges,
        )
        meta = build_metadata(
            store, estimator, registration, holdout, seed=settings.seed, specs=specs, input_format="matrix"
        )
        new_scores = score_batch(estimator, meta, x_holdout).score
        y = holdout[LABEL].to_numpy().astype(np.int64)
        new_metrics = evaluate(y, new_scores, meta.threshold or 0.5)
    except Exception as exc:
        raise RetrainFailure(
            "training_failed", f"the challenger ({request.estimator} on {len(train)} rows) failed: {_said(exc)}"
        ) from exc
    old_scores = model_scores(champion, holdout)
    try:
        old_metrics = evaluate(y, old_scores, champion.metadata.threshold or 0.5)
    except ValueError as exc:  # e.g. NaN scores
        raise RetrainFailure(
            "no_champion", f"champion version {champion.metadata.version}'s holdout scores: {_said(exc)}"
        ) from exc
    train_window = (train[TIMESTAMP].min().to_pydatetime(), train[TIMESTAMP].max().to_pydatetime())
    meta = meta.model_copy(update={"metrics": new_metrics, "training_window": train_window})
    return Challenge(
        estimator=estimator, metadata=meta, training_frame=frame, holdout=holdout, train_rows=len(train),
        challenger_scores=new_scores, champion_scores=old_scores, challenger_metrics=new_metrics,
        champion_metrics=old_metrics, decision=compare(y, new_scores, old_scores, policy.gate),
    )


# --- the retrain ----------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _said(exc: BaseException) -> str:
    """An exception as one line: its class and its message (first line, capped)."""
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def retrain(
    settings: RetrainSettings,
    policy: RetrainPolicy | None = None,
    *,
    dry_run: bool = False,
    trigger: str = "cli",
    request_id: str | None = None,
    now: datetime | None = None,
) -> RetrainReport:
    """Run one retrain behind the guards and the gate; see the module docstring.

    Every way it can stop is an outcome with a reason, not an exception; ``production`` moves only when
    the gate passed and every write before it succeeded. ``dry_run`` does everything up to the gate's
    verdict and writes nothing: no run, no version, no alias.
    """
    began = time.perf_counter()
    now = now or datetime.now(UTC)
    policy = policy or RetrainPolicy.from_settings(settings)
    name = settings.model_name
    registry = ModelRegistry(settings)
    head: dict[str, object] = {
        "dry_run": dry_run, "model": name, "trigger": trigger, "request_id": request_id, "started_at": now,
        "window_start": now - policy.window, "window_end": now, "labels_topic": settings.labels_topic,
    }

    def report(outcome: RetrainOutcome, reason: str, **fields: object) -> RetrainReport:
        done = RetrainReport(
            outcome=outcome, reason=reason, seconds=time.perf_counter() - began,
            **head, **fields,  # type: ignore[arg-type]
        )
        log = logger.info if done.exit_code == 0 else logger.warning
        log("retrain of %s [%s]: %s", name, outcome, reason)
        return done

    try:
        last = last_retrain(registry, name)
        head["last_retrain"] = last
        refusal = check_cooldown(now, last, policy.guards)
        if refusal is not None:
            return report("cooldown", refusal.reason, guard=refusal)
        champion_version = registry.aliases(name).get(CHAMPION)
    except DriftlineError as exc:
        return report("unavailable", str(exc))
    if champion_version is None:
        return report(
            "no_champion", f"model {name} has no {CHAMPION} version to compare a challenger with; "
            "train one first (`driftline train`)",
        )
    head["champion_version"] = champion_version

    try:
        window = read_labelled(
            settings, now, policy.window, idle_s=settings.retrain_read_idle_s, max_read_s=settings.retrain_max_read_s,
            max_future_skew_s=settings.max_future_skew_s,
        )
    except DriftlineError as exc:
        return report("unavailable", f"the events and labels could not be read: {exc}")
    new_labels = count_new_labels(window.label_times, last)
    head.update(
        labelled_rows=window.labelled, positives=window.positives, new_labels=new_labels,
        events_read=window.events_read, labels_read=window.labels_read, skipped_labels=window.skipped_labels,
        skipped_events=window.skipped_events, read_stopped=window.read_stopped,
    )
    refusal = check_new_labels(new_labels, last, policy.guards)
    if refusal is not None:
        return report("too_few_labels", refusal.reason, guard=refusal)

    try:
        champion = registry.load(name, champion_version)
    except DriftlineError as exc:
        return report("no_champion", f"champion version {champion_version} cannot be loaded: {exc}")

    if dry_run:
        try:
            found = challenge(settings, window, champion, policy)
        except RetrainFailure as exc:
            logger.debug("retrain of %s stopped", name, exc_info=exc.__cause__ or exc)
            return report(exc.outcome, exc.reason)
        return report(
            "promoted" if found.decision.promote else "kept_champion", found.decision.reason,
            **_challenge_fields(found),
        )
    return _challenge_and_record(settings, policy, registry, window, champion, new_labels, report, trigger, request_id)


class _Report(Protocol):
    def __call__(self, outcome: RetrainOutcome, reason: str, **fields: object) -> RetrainReport: ...


def _challenge_and_record(
    settings: RetrainSettings,
    policy: RetrainPolicy,
    registry: ModelRegistry,
    window: LabelledWindow,
    champion: LoadedModel,
    new_labels: int,
    report: _Report,
    trigger: str,
    request_id: str | None,
) -> RetrainReport:
    """The challenge inside an MLflow run, then the aliases: shadow always, production when the gate passed."""
    name, champion_version = settings.model_name, champion.metadata.version
    tags = {
        RETRAIN_TAG: "true", "driftline.kind": "retrain", LABELS_TAG: str(window.labelled),
        LAST_LABEL_TAG: _iso(max(window.label_times, default=None)), WINDOW_START_TAG: _iso(window.start),
        WINDOW_END_TAG: _iso(window.end), TRIGGER_TAG: trigger, CHAMPION_TAG: champion_version,
    }
    if request_id:
        tags[REQUEST_TAG] = request_id
    run_id: str | None = None
    try:
        # A failed challenger leaves its run FAILED and tagged with the outcome: it still counts for the
        # cooldown, so a challenger that keeps failing is not retried in a storm.
        with tracked_run(registry, name, f"retrain on {window.labelled} labels", tags) as tracked:
            run_id = tracked.record.run_id
            try:
                found = challenge(settings, window, champion, policy)
            except RetrainFailure as exc:
                registry.client.set_tag(run_id, OUTCOME_TAG, exc.outcome)
                registry.client.set_tag(run_id, GATE_TAG, exc.reason[:500])
                raise
            decision = found.decision
            tracked.params({
                **estimator_params(found.estimator), "feature_service": found.metadata.feature_service,
                "window_hours": policy.window.total_seconds() / 3600, "holdout_fraction": policy.holdout_fraction,
                "gate_metric": decision.metric, "gate_margin": decision.margin,
                "gate_confidence": decision.confidence, "gate_samples": decision.samples,
                "min_new_labels": policy.guards.min_new_labels,
                "cooldown_minutes": policy.guards.cooldown.total_seconds() / 60, "seed": settings.seed,
                "train_rows": found.train_rows, "test_rows": len(found.holdout), "labels": window.labelled,
                "new_labels": new_labels,
            })
            gate_figures = {
                "gate_difference": decision.difference, "gate_ci_low": decision.ci_low,
                "gate_ci_high": decision.ci_high, "gate_valid_samples": float(decision.valid_samples),
            }
            tracked.metrics({
                **{f"champion_{k}": v for k, v in found.champion_metrics.items()},
                **{k: v for k, v in gate_figures.items() if v is not None},
            })
            tracked.dataset(found.training_frame, found.metadata.feature_service, f"retrain window {_iso(window.end)}",
                            "training", LABEL)
            saved = log_version(tracked, found.estimator, found.metadata, found.holdout, LABEL,
                                found.challenger_scores)
            outcome: RetrainOutcome = "promoted" if decision.promote else "kept_champion"
            registry.client.set_tag(run_id, OUTCOME_TAG, outcome)
            registry.client.set_tag(run_id, GATE_TAG, decision.reason[:500])
    except RetrainFailure as exc:
        logger.debug("retrain of %s stopped", name, exc_info=exc.__cause__ or exc)
        return report(exc.outcome, exc.reason, run_id=run_id)
    except Exception as exc:  # MLflow refused a write (the store is down, full or read-only)
        logger.debug("retrain of %s could not be recorded", name, exc_info=exc)
        return report("unavailable", f"the model registry refused the retrain's run: {_said(exc)}", run_id=run_id)

    moves: list[AliasMove] = []
    try:
        moves.append(registry.set_alias(name, CHALLENGER, saved.version, f"retrain challenger (run {run_id})"))
        if decision.promote:
            reason = f"retrain run {run_id}: {decision.reason}; was version {champion_version}"
            moves.append(registry.set_alias(name, CHAMPION, saved.version, reason[:1000]))
            # Production now serves it: scored again as shadow it would only be compared with itself.
            cleared = registry.remove_alias(name, CHALLENGER, f"promoted to {CHAMPION} by retrain run {run_id}")
            if cleared is not None:
                moves.append(cleared)
    except Exception as exc:
        logger.debug("retrain of %s could not move the aliases", name, exc_info=exc)
        return report(
            "unavailable", f"version {saved.version} is registered but its aliases could not be set: {_said(exc)}",
            run_id=run_id, challenger_version=saved.version, alias_moves=tuple(moves), **_challenge_fields(found),
        )
    return report(
        outcome, decision.reason, run_id=run_id, challenger_version=saved.version, alias_moves=tuple(moves),
        **_challenge_fields(found),
    )


def _challenge_fields(found: Challenge) -> dict[str, object]:
    return {
        "train_rows": found.train_rows, "holdout_rows": len(found.holdout),
        "holdout_start": found.holdout[TIMESTAMP].min().to_pydatetime(),
        "challenger_metrics": found.challenger_metrics, "champion_metrics": found.champion_metrics,
        "gate": found.decision,
    }
