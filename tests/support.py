"""Helpers shared by test modules."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest

#: The small seeded world of the generator and feature tests spans these 40 days.
WORLD_END = datetime(2026, 3, 1, 7, tzinfo=UTC)
WORLD_START = WORLD_END - timedelta(days=40)


def require_binary(name: str) -> str:
    """Path of a system binary the test needs: missing fails under CI, skips on a developer machine."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
