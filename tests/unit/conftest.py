"""Fixtures shared by the unit tests: a small seeded world and its transactions (pure data, no services)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from producers.generator import World, build_world, generate_transactions
from tests.support import WORLD_END, WORLD_START


@pytest.fixture(scope="session")
def world() -> World:
    return build_world(seed=11, n_customers=600, n_merchants=80, anchor=WORLD_END)


@pytest.fixture(scope="session")
def transactions(world: World) -> pd.DataFrame:
    return generate_transactions(world, WORLD_START, WORLD_END, 20_000, np.random.default_rng(3))
