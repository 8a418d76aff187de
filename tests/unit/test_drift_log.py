from datetime import UTC, datetime

import numpy as np
import pytest
from pydantic import ValidationError

from drift.freshness import FreshnessWindow
from drift.log import DriftLogRecord, append_record, drift_log_path, read_records
from drift.monitor import DriftMonitor
from drift.reference import build_reference
from driftline.registry import FeatureSpec

SPECS = [FeatureSpec(name="amount", source="request", field="amount")]
AT = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _record(version: str = "v1") -> DriftLogRecord:
    rng = np.random.default_rng(4)
    monitor = DriftMonitor(SPECS, build_reference(SPECS, rng.normal(size=(500, 1)), rng.uniform(size=500), seed=1),
                           window_size=200, min_events=50)
    monitor.observe(rng.normal(size=(200, 1)), rng.uniform(size=200))
    freshness = FreshnessWindow(200)
    freshness.observe({"customer_stats": [np.float64(60.0), np.float64(120.0)]})
    return DriftLogRecord.of("fraud", version, AT, monitor.evaluate(), freshness.summary({"customer_stats": 3600.0}))


def test_records_round_trip_through_the_log_with_their_model_version(tmp_path) -> None:
    first, second = _record("v1"), _record("v1")
    path = drift_log_path(tmp_path, "fraud", "v1")
    append_record(path, first)
    append_record(path, second)
    records, skipped = read_records(path.read_text())
    assert (records, skipped) == ([first, second], 0)
    assert records[0].model_version == "v1" and records[0].events == 200
    assert records[0].freshness["customer_stats"].p99_s == pytest.approx(119.4)


def test_a_torn_or_foreign_line_is_skipped_not_fatal(tmp_path) -> None:
    path = drift_log_path(tmp_path, "fraud", "v1")
    append_record(path, _record())
    with path.open("a") as handle:
        handle.write('{"a": 1}\n{"model_name": "fraud", "model_ver')
    records, skipped = read_records(path.read_text())
    assert len(records) == 1 and skipped == 2


def test_a_record_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        DriftLogRecord.model_validate({**_record().model_dump(), "extra": 1})
