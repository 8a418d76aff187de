"""The worker's drift log: one JSON line per evaluation, for `driftline drift report`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

#: A log past this size is rotated to ``.1`` (replacing the previous one), so disk use is bounded.
MAX_LOG_BYTES = 20 * 1024 * 1024


def drift_log_path(home: Path, model_name: str, model_version: str) -> Path:
    """Where the worker appends the evaluations of one model version."""
    return home / "drift" / f"{model_name}-{model_version}.jsonl"


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one evaluation (called from a worker thread, never on the event loop)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_size > MAX_LOG_BYTES:
        path.replace(path.with_suffix(path.suffix + ".1"))
    with path.open("ab") as handle:
        handle.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain) + b"\n")


def _plain(value: Any) -> Any:
    """Numpy scalars that orjson does not take directly."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
