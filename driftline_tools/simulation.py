"""`driftline drift simulate`: the example world's events and the Feast online store, through the drift monitor.

The wiring only: events from ``producers.generator``, their store values through Feast's own
synchronous read, the model from the registry; the simulation itself is ``drift.simulate``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from drift.records import SimulationConfig
from drift.simulate import SimulationResult, default_start
from drift.simulate import run as simulate
from driftline.errors import ConfigError
from driftline.registry import ModelRegistry
from driftline.settings import TrainingSettings
from feature_repo.online import read_online_sync, view_ttls
from feature_repo.store import feature_store
from producers.generator import DRIFTS, Drift, build_world, event_stream
from stream_app.core.scoring import score_batch


def generate_events(settings: TrainingSettings, config: SimulationConfig, start: datetime) -> list[dict[str, Any]]:
    """The stationary events, then the drifted ones, continuing at the same event-time rate."""
    if config.drift not in DRIFTS or config.drift == "none":
        raise ConfigError(f"drift must be one of {', '.join(d for d in DRIFTS if d != 'none')}")
    drift: Drift = config.drift  # type: ignore[assignment]  # checked just above
    world = build_world(settings.seed, settings.n_customers, settings.n_merchants)
    rng = np.random.default_rng([config.seed, 2])
    rate = config.stationary / (config.hours * 3600.0)
    events = list(event_stream(world, config.stationary, rng, start, rate=rate, include_label=True))
    drift_start = start + timedelta(seconds=config.stationary / rate)
    events += event_stream(world, config.drifted, rng, drift_start, drift=drift, rate=rate, include_label=True)
    return events


@dataclass(frozen=True)
class DriftSimulation:
    """The events a simulation streamed, how their store values were read, and the simulation's result."""

    events: int
    stationary: int
    drifted: int
    drift: str
    first_event_time: str
    last_event_time: str
    read_s: float
    missing_values: int
    result: SimulationResult

    def summary(self) -> str:
        """One line: the events and where their store values came from."""
        return (
            f"{self.events} events ({self.stationary} stationary + {self.drifted} {self.drift}), event time "
            f"{self.first_event_time} .. {self.last_event_time}; online features read from Feast in "
            f"{self.read_s:.1f}s ({self.missing_values} missing values)"
        )


def run(settings: TrainingSettings, config: SimulationConfig, out: Path | None) -> DriftSimulation:
    """Generate the events, read their store values, and run the simulation on them."""
    model = ModelRegistry(settings).load(settings.model_name, config.version)
    meta = model.metadata
    start = config.start or default_start(datetime.now(UTC))
    events = generate_events(settings, config, start)
    t_read = time.perf_counter()
    store = feature_store(settings)
    online = read_online_sync(store, meta.features, meta.entity_fields, events)
    ttls = view_ttls(store, meta)
    read_s = time.perf_counter() - t_read
    missing = sum(v is None for row in online.values for v in row.values())
    result = simulate(
        model, events, online, ttls, config, start, lambda matrix: score_batch(model.estimator, meta, matrix).score, out
    )
    return DriftSimulation(
        events=len(events),
        stationary=config.stationary,
        drifted=config.drifted,
        drift=config.drift,
        first_event_time=str(events[0]["event_time"]) if events else "",
        last_event_time=str(events[-1]["event_time"]) if events else "",
        read_s=read_s,
        missing_values=missing,
        result=result,
    )
