"""The feedback loop end to end, at small scale: drift, the alert's condition, a gated retrain, recovery.

Real broker, Redis, Feast, MLflow and worker (``driftline scenario feedback``'s own code). It checks
the loop's shape, not its figures: the alert holds after the onset, a retrain is gated and promoted, and
the promoted version serves; the figures are README's, from a full run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from driftline_tools.feedback import feedback

pytestmark = pytest.mark.integration


def test_drift_alert_retrain_promote(tmp_path: Path) -> None:
    result = feedback(tmp_path, rate=400.0, clean_s=45.0, drifted_s=150.0, min_drift_s=60.0)
    whats = [m.what for m in result.marks]
    assert whats[:2] == ["drift onset", "alert"], result.marks
    # A loaded machine may start the worker late and leave no trusted sample before the onset.
    if result.before is not None and result.during is not None:
        assert result.during < 0.5 * result.before
    assert "retrain" in whats and result.retrain_outcome == "promoted", result.marks
    promoted = result.mark("promoted")
    assert promoted is not None and result.challenger_version is not None
    # The worker hot-swapped: later samples are of the promoted version.
    assert any(s.version == result.challenger_version for s in result.samples if s.elapsed_s > promoted.elapsed_s)
    json_path, png_path = (Path(p) for p in result.files)
    assert json_path.exists() and png_path.read_bytes()[:4] == b"\x89PNG"
