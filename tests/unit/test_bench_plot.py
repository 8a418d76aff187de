"""The benchmark's PNG is a valid image with one line per contender."""

from __future__ import annotations

import struct
import zlib

import numpy as np

from driftline_tools.bench.measure import ContenderResult, LoadResult
from driftline_tools.bench.plot import COLORS, encode_png, latency_plot


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        if kind == b"IHDR":
            width, height = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()  # filter type None on every row
    return rows[:, 1:].reshape(height, width, 3)


def test_encode_png_round_trips() -> None:
    canvas = np.zeros((3, 4, 3), dtype=np.uint8)
    canvas[1, 2] = (10, 20, 30)
    assert (_decode(encode_png(canvas)) == canvas).all()


def test_latency_plot_draws_each_contender() -> None:
    contenders = []
    for name, base in (("naive", 50.0), ("driftline", 20.0), ("raw-floor", 5.0)):
        loads = [LoadResult.from_latencies(f, 1000 * f, 10, [base * (1 + f) / 1000] * 10, 1.0) for f in (0.25, 0.5)]
        loads.append(LoadResult.from_latencies(0.75, 750, 0, [], 0.0, note="skipped"))  # NaN: not drawn
        contenders.append(ContenderResult(
            name=name,  # type: ignore[arg-type]
            processes=1, drain_events=10, max_throughput_per_s=1000, cpu_s_per_1k=1, peak_rss_mb=1,
            peak_rss_total_mb=1, start_to_first_prediction_s=1, drain_seconds=1, loads=loads,
        ))
    image = _decode(latency_plot(contenders, "test"))
    for color in COLORS.values():
        assert (image == np.array(color, dtype=np.uint8)).all(axis=2).sum() > 50
