"""Helpers shared by test modules."""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str) -> str:
    """Path of a system binary the test needs: missing fails under CI, skips on a developer machine."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH (apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
