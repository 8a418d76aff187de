"""Write the example's data: hourly driver statistics (Feast source) and labelled trips (training rows).

    python examples/driver_trips/make_data.py [--seed 7] [--end 2026-11-27T00:00:00Z]

Deterministic for a seed and an end time. The trip duration a regressor learns is a known function
of the features plus noise, so a trained model's error is easy to judge.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DRIVERS = np.arange(1001, 1051, dtype=np.int64)  # Int64 keys, as `feast init` uses
HOURS = 48


def driver_stats(rng: np.random.Generator, end: datetime) -> pd.DataFrame:
    """One row per driver and hour over the last ``HOURS`` hours before ``end``."""
    stamps = [end - timedelta(hours=h) for h in range(HOURS, 0, -1)]
    rows = len(DRIVERS) * len(stamps)
    frame = pd.DataFrame(
        {
            "driver_id": np.repeat(DRIVERS, len(stamps)),
            "event_timestamp": pd.to_datetime(stamps * len(DRIVERS), utc=True),
            "conv_rate": rng.uniform(0.1, 0.9, rows).astype(np.float32),
            "acc_rate": rng.uniform(0.3, 1.0, rows).astype(np.float32),
            "avg_daily_trips": rng.integers(5, 40, rows).astype(np.int64),
        }
    )
    frame["created"] = frame["event_timestamp"]
    return frame


def trips(rng: np.random.Generator, stats: pd.DataFrame, end: datetime, n: int = 3000) -> pd.DataFrame:
    """Trips in the last day before ``end``, with their duration in minutes (the label)."""
    start = end - timedelta(hours=24)
    offsets = np.sort(rng.uniform(0, 24 * 3600 - 1, n))
    frame = pd.DataFrame(
        {
            "driver_id": rng.choice(DRIVERS, n),
            "event_timestamp": pd.to_datetime([start + timedelta(seconds=float(s)) for s in offsets], utc=True),
            "distance_km": np.round(rng.uniform(0.5, 30.0, n), 2),
        }
    )
    # The label uses the same statistics Feast will join as of each trip's time (latest hour before it).
    asof = pd.merge_asof(
        frame.sort_values("event_timestamp"), stats.sort_values("event_timestamp"),
        on="event_timestamp", by="driver_id", direction="backward",
    )
    pickup = 2.0 + 10.0 * (1.0 - asof["acc_rate"].astype(np.float64)) + 0.1 * asof["distance_km"]
    asof["trip_minutes"] = 3.0 + 2.2 * asof["distance_km"] + pickup - 5.0 * asof["conv_rate"] + rng.normal(0, 1.5, n)
    return asof[["driver_id", "event_timestamp", "distance_km", "trip_minutes"]]


def events(rng: np.random.Generator, now: datetime, n: int) -> list[dict[str, object]]:
    """Trip requests to stream, stamped ``now``: the event a producer team would publish."""
    stamp = now.isoformat().replace("+00:00", "Z")
    return [
        {"event_id": f"trip-{i:05d}", "event_time": stamp, "driver_id": int(driver), "distance_km": float(km)}
        for i, (driver, km) in enumerate(
            zip(rng.choice(DRIVERS, n), np.round(rng.uniform(0.5, 30.0, n), 2), strict=True)
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--end", default=None, help="RFC 3339; default: the current hour, UTC")
    parser.add_argument("--out", type=Path, default=HERE / "feature_repo" / "data")
    parser.add_argument("--events", type=int, default=200, help="trip requests to write to events.jsonl, stamped now")
    args = parser.parse_args()
    end = (
        datetime.fromisoformat(args.end).astimezone(UTC)
        if args.end
        else datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    )
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    stats = driver_stats(rng, end)
    stats.to_parquet(args.out / "driver_stats.parquet", index=False)
    trips(rng, stats, end).to_parquet(args.out / "trips.parquet", index=False)
    lines = [json.dumps(event) for event in events(rng, datetime.now(UTC), args.events)]
    (args.out / "events.jsonl").write_text("".join(line + "\n" for line in lines))
    print(f"wrote driver_stats.parquet, trips.parquet and {args.events} events.jsonl lines to {args.out}")


if __name__ == "__main__":
    main()
