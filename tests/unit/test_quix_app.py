"""The Quix peer's feature cache: values are served for the TTL and never after (its stated staleness)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("quixstreams")


def _quix_app() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "quix_app.py"
    spec = importlib.util.spec_from_file_location("quix_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("quix_app", module)
    spec.loader.exec_module(module)
    return module


def test_cache_serves_a_value_within_its_ttl_and_reads_again_after() -> None:
    now = [100.0]
    cache = _quix_app().TtlCache(ttl_s=1.0, clock=lambda: now[0])
    assert cache.get("C1") is None
    cache.put("C1", {"amount_mean": 3.0})
    now[0] = 100.99
    assert cache.get("C1") == {"amount_mean": 3.0}
    now[0] = 101.0  # exactly the TTL: stale, read again
    assert cache.get("C1") is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_a_full_cache_drops_expired_entries_first_and_everything_if_none_expired() -> None:
    now = [0.0]
    cache = _quix_app().TtlCache(ttl_s=1.0, max_entries=2, clock=lambda: now[0])
    cache.put("old", {})
    now[0] = 0.5
    cache.put("young", {})
    now[0] = 1.2  # "old" expired, "young" not
    cache.put("new", {})
    assert cache.get("young") == {} and cache.get("new") == {} and cache.get("old") is None
    cache.put("newer", {})  # full and nothing expired: start over
    assert cache.get("young") is None and cache.get("newer") == {}
