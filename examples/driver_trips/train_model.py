"""Fit a trip-duration regressor the way a team does without driftline: Feast historical features -> scikit-learn.

    python examples/driver_trips/train_model.py --out trips.pkl

It reads the repo's labelled trips, asks Feast for point-in-time features (the on-demand view included),
fits a linear regression on a DataFrame and pickles it. driftline only meets the model afterwards, at
``driftline model register``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import pandas as pd
from feast import FeatureStore
from sklearn.linear_model import LinearRegression

HERE = Path(__file__).resolve().parent
INPUTS = ["conv_rate", "acc_rate", "avg_daily_trips", "expected_pickup_min", "distance_km"]
LABEL = "trip_minutes"


def fit(repo: Path) -> LinearRegression:
    """The model, fitted on every labelled trip of ``repo/data/trips.parquet``."""
    store = FeatureStore(repo_path=str(repo))
    trips = pd.read_parquet(repo / "data" / "trips.parquet")
    frame = store.get_historical_features(
        entity_df=trips, features=store.get_feature_service("driver_activity_v1")
    ).to_df()
    return LinearRegression().fit(frame[INPUTS], frame[LABEL])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=HERE / "feature_repo")
    parser.add_argument("--out", type=Path, default=Path("trips.pkl"))
    args = parser.parse_args()
    model = fit(args.repo)
    args.out.write_bytes(pickle.dumps(model))
    coefficients = ", ".join(f"{name} {value:+.3f}" for name, value in zip(INPUTS, model.coef_, strict=True))
    print(f"wrote {args.out}: {coefficients}, intercept {model.intercept_:+.3f}")


if __name__ == "__main__":
    main()
