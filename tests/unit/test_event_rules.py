"""One source of truth for the event rules: contract, validator, model features, schema and README agree."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import orjson
import pytest
from pydantic import ValidationError

from driftline.contracts import (
    AMOUNT_MAX,
    AMOUNT_MIN,
    HOUR_MAX,
    HOUR_MIN,
    ID_MAX_LENGTH,
    Channel,
    TransactionEvent,
)
from driftline.settings import WorkerSettings
from stream_app.core.validation import EventRules, Rejection, ValidEvent, validate_event
from training.dataset import ENTITIES, REQUEST_FEATURES

ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "docs" / "schemas" / "transaction-event.schema.json"
REGENERATE = (
    "python -c 'import json, pathlib; from driftline.contracts import TransactionEvent as T; "
    'pathlib.Path("docs/schemas/transaction-event.schema.json")'
    '.write_text(json.dumps(T.model_json_schema(), indent=2) + "\\n")\''
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MAX_AGE_S = WorkerSettings.model_fields["max_event_age_s"].default
MAX_SKEW_S = WorkerSettings.model_fields["max_future_skew_s"].default
ENTITY_FIELDS = [e.field for e in ENTITIES]
RULES = EventRules.for_model(ENTITIES, REQUEST_FEATURES, 65_536, MAX_SKEW_S, MAX_AGE_S)
SPECS = {spec.name: spec for spec in REQUEST_FEATURES}


def generated_schema() -> str:
    """The event's JSON Schema as committed: generated from TransactionEvent."""
    return json.dumps(TransactionEvent.model_json_schema(), indent=2) + "\n"


def event(**overrides: object) -> dict[str, object]:
    return {
        "event_id": "e-1", "event_time": "2026-11-22T11:59:59Z", "customer_id": "C00001",
        "merchant_id": "M0001", "amount": 12.5, "channel": "pos", "hour_of_day": 11, **overrides,
    }


def contract_accepts(doc: dict[str, object]) -> bool:
    try:
        TransactionEvent.model_validate_json(orjson.dumps(doc))
    except ValidationError:
        return False
    return True


def worker_accepts(doc: dict[str, object]) -> bool:
    result = validate_event(orjson.dumps(doc), RULES, NOW)
    assert isinstance(result, ValidEvent | Rejection)
    assert not isinstance(result, Rejection) or result.error_type == "invalid_field", result
    return isinstance(result, ValidEvent)


def readme_event_rules() -> dict[str, str]:
    """field -> rule, from the README's "Event (`transactions` topic)" table."""
    section = re.search(r"### Event \(`transactions` topic\)\n(.*?)\n###", (ROOT / "README.md").read_text(), re.S)
    assert section, "README has no Event (`transactions` topic) section"
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| (.+) \|$", section.group(1), re.M)
    return dict(rows)


def stated_range(rule: str) -> tuple[float, float]:
    """The first "low to high" range stated in a README rule (en dash or hyphen, thousands commas)."""
    found = re.search(r"(\d[\d,]*(?:\.\d+)?)\s*[\u2013-]\s*(\d[\d,]*(?:\.\d+)?)", rule)
    assert found, rule
    return float(found.group(1).replace(",", "")), float(found.group(2).replace(",", ""))


def test_the_committed_json_schema_is_generated_from_the_contract() -> None:
    assert SCHEMA_FILE.read_text() == generated_schema(), f"regenerate it, from the repository root: {REGENERATE}"


def test_the_schema_states_the_bounds() -> None:
    properties = json.loads(SCHEMA_FILE.read_text())["properties"]
    for field in ("event_id", *ENTITY_FIELDS):
        assert (properties[field]["minLength"], properties[field]["maxLength"]) == (1, ID_MAX_LENGTH)
    assert (properties["amount"]["minimum"], properties["amount"]["maximum"]) == (AMOUNT_MIN, AMOUNT_MAX)
    assert (properties["hour_of_day"]["minimum"], properties["hour_of_day"]["maximum"]) == (HOUR_MIN, HOUR_MAX)
    assert properties["channel"]["enum"] == list(get_args(Channel))


def test_the_model_request_features_use_the_contract_bounds() -> None:
    assert (SPECS["amount"].minimum, SPECS["amount"].maximum) == (AMOUNT_MIN, AMOUNT_MAX)
    assert (SPECS["hour_of_day"].minimum, SPECS["hour_of_day"].maximum) == (HOUR_MIN, HOUR_MAX)
    assert SPECS["channel"].categories == list(get_args(Channel))


def test_the_readme_states_the_same_bounds() -> None:
    rules = readme_event_rules()
    assert set(rules) == set(TransactionEvent.model_fields)
    for field in ("event_id", *ENTITY_FIELDS):
        assert stated_range(rules[field]) == (1, ID_MAX_LENGTH), rules[field]
        assert "characters" in rules[field]
    assert stated_range(rules["amount"]) == (AMOUNT_MIN, AMOUNT_MAX), rules["amount"]
    assert stated_range(rules["hour_of_day"]) == (HOUR_MIN, HOUR_MAX), rules["hour_of_day"]
    assert re.findall(r"`(\w+)`", rules["channel"]) == list(get_args(Channel))
    for setting in ("DRIFTLINE_MAX_FUTURE_SKEW_S", "DRIFTLINE_MAX_EVENT_AGE_S"):
        assert f"`{setting}`" in rules["event_time"]


@pytest.mark.parametrize("field", ["event_id", *ENTITY_FIELDS])
def test_id_length_bounds_agree(field: str) -> None:
    for length, accepted in ((1, True), (ID_MAX_LENGTH, True), (ID_MAX_LENGTH + 1, False), (0, False)):
        doc = event(**{field: "x" * length})
        assert contract_accepts(doc) is accepted, (field, length)
        assert worker_accepts(doc) is accepted, (field, length)


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("amount", AMOUNT_MIN, True),
        ("amount", 0.009, False),
        ("amount", 0, False),
        ("amount", AMOUNT_MAX, True),
        ("amount", AMOUNT_MAX + 0.01, False),
        ("hour_of_day", HOUR_MIN, True),
        ("hour_of_day", HOUR_MIN - 1, False),
        ("hour_of_day", HOUR_MAX, True),
        ("hour_of_day", HOUR_MAX + 1, False),
        ("channel", "atm", True),
        ("channel", "ATM", False),
    ],
)
def test_value_bounds_agree(field: str, value: object, accepted: bool) -> None:
    doc = event(**{field: value})
    assert contract_accepts(doc) is accepted
    assert worker_accepts(doc) is accepted


def test_the_readme_documents_the_age_setting_with_its_default() -> None:
    row = re.search(r"^\| `DRIFTLINE_MAX_EVENT_AGE_S` \| `([\d.]+)` \|", (ROOT / "README.md").read_text(), re.M)
    assert row and float(row.group(1)) == MAX_AGE_S == timedelta(days=7).total_seconds()
