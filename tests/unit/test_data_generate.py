"""Reproducible example data: the same seed, sizes and start give the same parquet bytes (no services)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from driftline.features import build_matrix_from_columns
from driftline.registry import FeatureSpec
from driftline.settings import TrainingSettings, utc_instant
from driftline_tools import cli
from feature_repo.definitions import CUSTOMER_STATS_FILE, MERCHANT_STATS_FILE
from training.data import TRANSACTIONS_FILE, GenerateResult, build_frames, default_start, generate, history_window
from training.dataset import CATEGORIES, LABEL, REQUEST_FEATURES, TIMESTAMP, column_name, raw_columns, time_split
from training.evaluate import evaluate
from training.train import make_estimator

START = datetime(2026, 1, 5, tzinfo=UTC)
DAYS = 10
FILES = (TRANSACTIONS_FILE, CUSTOMER_STATS_FILE, MERCHANT_STATS_FILE)


def small(home: Path, seed: int = 7, start: str = "2026-01-05") -> TrainingSettings:
    """A small world; every setting that shapes the data is given, so the environment cannot leak in."""
    return TrainingSettings(
        DRIFTLINE_HOME=str(home),
        DRIFTLINE_SEED=seed,
        DRIFTLINE_N_CUSTOMERS=80,
        DRIFTLINE_N_MERCHANTS=20,
        DRIFTLINE_N_TRANSACTIONS=2_000,
        DRIFTLINE_HISTORY_DAYS=DAYS,
        DRIFTLINE_DATA_START=start,  # "" is unset: the default start
    )


def digests(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES}


def test_same_seed_and_start_write_the_same_bytes(tmp_path: Path) -> None:
    first = generate(small(tmp_path / "a"))
    second = generate(small(tmp_path / "b"))
    a, b = digests(tmp_path / "a" / "data"), digests(tmp_path / "b" / "data")
    assert a == b
    assert {f.name: f.sha256 for f in first.files} == a == {f.name: f.sha256 for f in second.files}
    assert first.parquet_writer.startswith("parquet-cpp-arrow version ")


def test_another_seed_writes_other_bytes(tmp_path: Path) -> None:
    generate(small(tmp_path / "a", seed=7))
    generate(small(tmp_path / "b", seed=8))
    a, b = digests(tmp_path / "a" / "data"), digests(tmp_path / "b" / "data")
    assert all(a[name] != b[name] for name in FILES)


def test_the_history_is_the_start_and_the_days_after_it(tmp_path: Path) -> None:
    result = generate(small(tmp_path))
    end = START + timedelta(days=DAYS)
    assert (result.history_start, result.history_end, result.start_given) == (START, end, True)
    data = tmp_path / "data"
    transactions = pd.read_parquet(data / TRANSACTIONS_FILE)
    assert transactions["event_timestamp"].min() >= START and transactions["event_timestamp"].max() < end
    for name in (CUSTOMER_STATS_FILE, MERCHANT_STATS_FILE):
        snapshots = pd.read_parquet(data / name)
        assert snapshots["event_timestamp"].max() == end
        # Feast's created_timestamp comes from the data, never from the clock of the run.
        assert (snapshots["created_timestamp"] == snapshots["event_timestamp"]).all()


def test_files_hold_no_metadata_and_read_back_in_utc(tmp_path: Path) -> None:
    generate(small(tmp_path))
    for name in FILES:
        path = tmp_path / "data" / name
        assert pq.read_metadata(path).metadata is None  # no pandas version, no pyarrow schema copy
        frame = pd.read_parquet(path)
        assert str(frame["event_timestamp"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (datetime(2026, 3, 10, 0, 0, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
        # 01:30 at +02:00 is still the 9th in UTC.
        (datetime.fromisoformat("2026-03-10T01:30:00+02:00"), datetime(2026, 2, 27, tzinfo=UTC)),
    ],
)
def test_the_default_history_ends_at_today_midnight_utc(now: datetime, start: datetime) -> None:
    assert default_start(now, DAYS) == start
    assert history_window(small(Path("unused"), start=""), now) == (start, start + timedelta(days=DAYS))


def test_the_default_start_writes_the_same_bytes_all_day(tmp_path: Path) -> None:
    morning = generate(small(tmp_path / "a", start=""), now=datetime(2026, 3, 10, 0, 1, tzinfo=UTC))
    evening = generate(small(tmp_path / "b", start=""), now=datetime(2026, 3, 10, 23, 59, tzinfo=UTC))
    assert not morning.start_given and morning.history_end == datetime(2026, 3, 10, tzinfo=UTC)
    assert [f.sha256 for f in morning.files] == [f.sha256 for f in evening.files]


def test_an_explicit_start_ignores_the_clock(tmp_path: Path) -> None:
    today = generate(small(tmp_path / "a"), now=datetime(2026, 3, 10, tzinfo=UTC))
    years_later = generate(small(tmp_path / "b"), now=datetime(2031, 7, 1, 13, tzinfo=UTC))
    assert [f.sha256 for f in today.files] == [f.sha256 for f in years_later.files]


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-01-05", START),
        ("2026-01-05T06:00:00Z", datetime(2026, 1, 5, 6, tzinfo=UTC)),
        ("2026-01-05T06:00:00+02:00", datetime(2026, 1, 5, 4, tzinfo=UTC)),
        ("2026-01-05 06:00:00-01:30", datetime(2026, 1, 5, 7, 30, tzinfo=UTC)),
    ],
)
def test_a_start_is_a_date_or_an_rfc3339_time(text: str, instant: datetime) -> None:
    parsed = utc_instant(text)
    assert parsed == instant and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-01-05T06:00:00", "no UTC offset"),  # local time: a different instant on every machine
        ("2026-01-05T06:00:00.250Z", "fraction of a second"),
        ("last monday", "neither a date"),
    ],
)
def test_an_ambiguous_start_is_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        utc_instant(text)


def test_the_start_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_DATA_START", "2026-01-05T06:00:00+02:00")
    assert TrainingSettings().data_start == datetime(2026, 1, 5, 4, tzinfo=UTC)
    monkeypatch.setenv("DRIFTLINE_DATA_START", "")
    assert TrainingSettings().data_start is None


def test_cli_options_override_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[TrainingSettings] = []

    def fake_generate(settings: TrainingSettings) -> GenerateResult:
        seen.append(settings)
        assert settings.data_start is not None
        end = settings.data_start + timedelta(days=settings.history_days)
        return GenerateResult(settings.seed, 1, 1, 1, settings.data_start, end, True, 0.0, "writer", ())

    monkeypatch.setenv("DRIFTLINE_SEED", "7")
    monkeypatch.setenv("DRIFTLINE_DATA_START", "2020-01-01")
    monkeypatch.setattr("training.data.generate", fake_generate)
    result = CliRunner().invoke(cli.app, ["data", "generate", "--seed", "3", "--start", "2026-01-05T06:00:00+02:00"])
    assert result.exit_code == 0, result.output
    assert seen[0].seed == 3 and seen[0].data_start == datetime(2026, 1, 5, 4, tzinfo=UTC)
    assert "seed 3" in result.output and "2026-01-05T04:00:00+00:00" in result.output


def test_cli_refuses_a_start_without_offset() -> None:
    result = CliRunner().invoke(cli.app, ["data", "generate", "--start", "2026-01-05T06:00:00"])
    assert result.exit_code == 2
    assert "no UTC offset" in result.output


# --- training is deterministic given the data ----------------------------------------------------------


def _point_in_time(settings: TrainingSettings) -> tuple[pd.DataFrame, list[FeatureSpec]]:
    """The training set without Feast: each transaction joined to its entities' latest earlier snapshot."""
    customers, merchants, transactions = build_frames(settings, START)
    frame = transactions.sort_values(TIMESTAMP, kind="stable")
    specs = list(REQUEST_FEATURES)
    for view, key, snapshots, ttl in [
        ("customer_stats", "customer_id", customers, 3),
        ("merchant_stats", "merchant_id", merchants, 7),
    ]:
        features = [c for c in snapshots.columns if c not in (key, TIMESTAMP, "created_timestamp")]
        renamed = snapshots.rename(columns={f: column_name(view, f) for f in features})
        renamed = renamed.rename(columns={TIMESTAMP: "snapshot"}).drop(columns="created_timestamp")
        frame = pd.merge_asof(
            frame,
            renamed.sort_values("snapshot", kind="stable"),
            left_on=TIMESTAMP,
            right_on="snapshot",
            by=key,
            tolerance=pd.Timedelta(days=ttl),
        ).drop(columns="snapshot")
        for f in features:
            ref = f"{view}:{f}"
            kind: dict[str, Any] = {"kind": "categorical", "categories": CATEGORIES[ref]} if ref in CATEGORIES else {}
            specs.append(FeatureSpec(name=column_name(view, f), source="feast", ref=ref, **kind))
    return frame.sort_values([TIMESTAMP, "event_id"], kind="stable").reset_index(drop=True), specs


def _fit_and_evaluate(frame: pd.DataFrame, specs: list[FeatureSpec], seed: int) -> tuple[dict[str, float], Any]:
    train, test = time_split(frame, 0.2)
    x_train = build_matrix_from_columns(specs, raw_columns(train, specs), len(train))
    x_test = build_matrix_from_columns(specs, raw_columns(test, specs), len(test))
    estimator = make_estimator(specs, seed).fit(x_train, train[LABEL].to_numpy(np.int64))
    scores = estimator.predict_proba(x_test)[:, 1]
    return evaluate(test[LABEL].to_numpy(np.int64), scores), scores


def test_world_features_and_training_are_deterministic(tmp_path: Path) -> None:
    settings = TrainingSettings(
        DRIFTLINE_HOME=str(tmp_path),
        DRIFTLINE_SEED=7,
        DRIFTLINE_N_CUSTOMERS=200,
        DRIFTLINE_N_MERCHANTS=40,
        DRIFTLINE_N_TRANSACTIONS=6_000,
        DRIFTLINE_HISTORY_DAYS=20,
    )
    first, specs = _point_in_time(settings)
    again, _ = _point_in_time(settings)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert first[LABEL].sum() > 20  # both sides of the split see fraud

    metrics, scores = _fit_and_evaluate(first, specs, settings.seed)
    metrics_again, scores_again = _fit_and_evaluate(again, specs, settings.seed)
    np.testing.assert_array_equal(scores, scores_again)
    assert metrics == metrics_again
