import json
from datetime import UTC, datetime
from pathlib import Path

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
#: One line of a drift log as the worker wrote it while the evaluation was a plain dict (``to_dict()``).
LINE_BEFORE_TYPED = Path(__file__).parent / "fixtures" / "drift-log-before-typed.jsonl"


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


def test_a_line_written_before_the_typed_records_still_reads() -> None:
    line = LINE_BEFORE_TYPED.read_text(encoding="utf-8")
    records, skipped = read_records(line)
    assert skipped == 0 and len(records) == 1
    record = records[0]
    assert (record.model_name, record.model_version, record.events) == ("fraud", "20261122T082153Z", 300)
    assert record.event_time == AT
    report = record.report
    assert (report.events_seen, report.window_events, report.window_size, report.alpha, report.ready) == (
        300, 300, 300, 0.01, True
    )
    assert report.flagged == ("amount", "score")
    assert [c.name for c in report.features] == ["amount", "channel", "hour_of_day", "stat"]
    amount, channel, hour, stat = report.features
    assert amount.statistic_name == "ks" and amount.flagged and amount.n == 300 and len(amount.bins) == 10
    assert channel.statistic_name == "chi2" and channel.bins == ("a", "b", "c") and not channel.flagged
    assert hour.statistic is None and hour.p_value is None and not hour.tested  # the stratum clock: context
    assert stat.missing_rate > 0 and stat.n < 300
    assert report.score is not None and report.score.flagged
    assert len(report.strata) == 4 and sum(report.strata) == pytest.approx(1.0)
    assert record.freshness["v"].events == 300 and record.freshness["v"].ttl_s == 86_400.0
    # Written back, it is the same JSON document: the typed record changed nothing on disk.
    assert json.loads(record.model_dump_json()) == json.loads(line)
