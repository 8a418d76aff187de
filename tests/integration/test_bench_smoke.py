"""``driftline bench --smoke`` runs every contender end to end, and the raw floor reads what Feast reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from driftline.registry import ModelRegistry
from feature_repo.redis_reader import RedisOnlineReader, layout_from_store
from feature_repo.store import feature_store
from tests.integration.conftest import ServedWorld

pytestmark = pytest.mark.integration


def test_bench_smoke_measures_every_contender(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "driftline_tools.cli", "bench", "--smoke", "--out-dir", str(out)],
        capture_output=True, text=True, timeout=480, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result] = out.glob("*.json")
    report = json.loads(result.read_text())
    contenders = {c["name"]: c for c in report["contenders"]}
    assert set(contenders) == {"naive", "driftline", "raw-floor", "quix", "quix-tuned"}
    for name, figures in contenders.items():
        assert figures["max_throughput_per_s"] > 0, name
        assert figures["drain_events"] > 0, name
        assert figures["peak_rss_mb"] > 0, name
        # Every contender has a latency figure, at a fixed load or at half its own maximum.
        assert any(load["scored"] > 0 for load in figures["loads"]), name
    assert set(report["ratios"]) == {"driftline/naive", "driftline/raw-floor", "driftline/best-quix"}
    peer = report["peer"]
    assert peer["peer"] in {"quix", "quix-tuned"}
    assert peer["throughput_ratio"] > 0
    assert peer["driftline_p99_ms"] > 0 and peer["peer_p99_ms"] > 0
    [plot] = out.glob("*.png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "driftline/raw-floor" in done.stdout
    assert "driftline/best-quix" in done.stdout


async def test_redis_reader_reads_exactly_what_feast_returns(served_world: ServedWorld) -> None:
    settings = served_world.training()
    store = feature_store(settings)
    metadata = ModelRegistry(settings).load(settings.model_name).metadata
    layout = layout_from_store(store, metadata)
    # Known entities, repeats within the batch, and entities the store has never seen.
    events = [{"customer_id": f"C{i:05d}", "merchant_id": f"M{i % 60:04d}"} for i in range(0, 300, 7)]
    events += [events[0], {"customer_id": "C99999", "merchant_id": "M0001"}, {"customer_id": "C00001",
                                                                              "merchant_id": "M9999"}]
    client = aioredis.from_url(settings.redis_url.get_secret_value())
    try:
        read = await RedisOnlineReader(client, layout, timeout_s=5.0)([layout.entity_row(e) for e in events])
        ours = read.values
    finally:
        await client.aclose()

    entity_rows = [{join_key: e[field] for field, join_key in metadata.entity_fields.items()} for e in events]
    columns = store.get_online_features(
        features=metadata.feature_refs, entity_rows=entity_rows, full_feature_names=True
    ).to_dict()
    specs = [s for s in metadata.features if s.source == "feast" and s.ref]
    assert specs
    theirs = [{s.name: columns[s.ref.replace(":", "__", 1)][i] for s in specs if s.ref} for i in range(len(events))]
    assert ours == theirs
    assert any(v is None for v in ours[-1].values()), "an unknown merchant must read as missing"
    assert all(v is not None for v in ours[0].values())
