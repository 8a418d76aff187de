"""The worker's drift log: one typed JSON line per evaluation, written by the worker, read by the report."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from drift.records import DriftEvaluation, FreshnessSummary

#: A log past this size is rotated to ``.1`` (replacing the previous one), so disk use is bounded.
MAX_LOG_BYTES = 20 * 1024 * 1024


class DriftLogRecord(BaseModel):
    """One drift evaluation of one served model version, as a line of the worker's drift log."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_name: str
    model_version: str
    events: int  # events the monitor had seen when it evaluated
    event_time: datetime  # the worker's clock at the evaluation
    report: DriftEvaluation
    freshness: dict[str, FreshnessSummary]  # per feature view

    @classmethod
    def of(
        cls, model_name: str, model_version: str, at: datetime, report: DriftEvaluation,
        freshness: Mapping[str, FreshnessSummary],
    ) -> DriftLogRecord:
        """The record of ``report`` and the freshness summary (``FreshnessWindow.summary``), evaluated ``at``."""
        return cls(
            model_name=model_name, model_version=model_version, events=report.events_seen, event_time=at,
            report=report, freshness=dict(freshness),
        )


def drift_log_path(home: Path, model_name: str, model_version: str) -> Path:
    """Where the worker appends the evaluations of one model version."""
    return home / "drift" / f"{model_name}-{model_version}.jsonl"


def append_record(path: Path, record: DriftLogRecord) -> None:
    """Append one evaluation (called from a worker thread, never on the event loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
        path.replace(path.with_suffix(path.suffix + ".1"))
    with path.open("ab") as handle:
        handle.write(record.model_dump_json().encode() + b"\n")


def read_records(text: str) -> tuple[list[DriftLogRecord], int]:
    """The records of a drift log, and how many lines were not one (a torn last line after a crash)."""
    records: list[DriftLogRecord] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            records.append(DriftLogRecord.model_validate_json(line))
        except ValidationError:
            skipped += 1
    return records, skipped
