"""README must document every setting, every contract field and every metric the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from driftline import settings
from driftline.contracts import DeadLetter, Label, Prediction, TransactionEvent
from stream_app.adapters.metrics import WorkerMetrics

README = (Path(__file__).parents[2] / "README.md").read_text()


def _aliases() -> set[str]:
    names: set[str] = set()
    for cls in (settings.WorkerSettings, settings.ProducerSettings, settings.TrainingSettings, settings.StackSettings,
                settings.RetrainSettings):
        for field in cls.model_fields.values():
            names.update(str(choice) for choice in field.validation_alias.choices)  # type: ignore[union-attr]
    return names


@pytest.mark.parametrize("name", sorted(_aliases()))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`{name}`" in README


@pytest.mark.parametrize(
    "field",
    sorted({*TransactionEvent.model_fields, *Prediction.model_fields, *DeadLetter.model_fields, *Label.model_fields}),
)
def test_every_contract_field_is_documented(field: str) -> None:
    assert re.search(rf"`{field}`", README), field


def test_every_metric_is_documented() -> None:
    from driftline_tools.webhook import WebhookMetrics

    metrics = WorkerMetrics(CollectorRegistry())
    names = {m.name for m in metrics.registry.collect()}
    names |= {m.name for m in WebhookMetrics(CollectorRegistry()).registry.collect()}
    for name in names:
        documented = name if f"`{name}`" in README else f"{name}_total"
        assert f"`{documented}`" in README, name
