"""Helpers shared by test modules."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

if TYPE_CHECKING:
    from driftline.registry import ModelRegistry

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


def artifact_folder(registry: ModelRegistry, name: str, version: str) -> Path:
    """The folder holding a version's model.pkl and metadata.json in an embedded (file artifact) store."""
    uri = registry.client.get_model_version_download_uri(name, version)
    parsed = urlparse(uri)
    assert parsed.scheme == "file", f"model {name} version {version} is not in a local artifact store: {uri}"
    folder = Path(url2pathname(parsed.path))
    assert folder.is_dir(), folder
    return folder
