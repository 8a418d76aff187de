"""Latency against offered load as a PNG, drawn with numpy and zlib (no plotting library needed).

Two panels (p50 and p99), one line per contender, a 5x7 bitmap font for labels. Deliberately
small: a plotting dependency for one chart in a benchmark would weigh more than this file.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from driftline_tools.bench.measure import ContenderResult

Canvas = npt.NDArray[np.uint8]
Color = tuple[int, int, int]

COLORS: dict[str, Color] = {"naive": (214, 39, 40), "driftline": (31, 119, 180), "raw-floor": (44, 160, 44)}
_GREY: Color = (200, 200, 200)
_BLACK: Color = (20, 20, 20)

# Column-major 5x7 glyphs, bit 0 = top row (the classic HD44780-style font), upper case only.
_FONT: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0), ".": (0, 0x60, 0x60, 0, 0), "-": (8, 8, 8, 8, 8), "/": (0x20, 0x10, 8, 4, 2),
    "(": (0, 0x1C, 0x22, 0x41, 0), ")": (0, 0x41, 0x22, 0x1C, 0), "%": (0x23, 0x13, 8, 0x64, 0x62),
    ":": (0, 0x36, 0x36, 0, 0), ",": (0, 0x50, 0x30, 0, 0), "=": (0x14, 0x14, 0x14, 0x14, 0x14),
    "_": (0x40, 0x40, 0x40, 0x40, 0x40), "+": (8, 8, 0x3E, 8, 8),
    "0": (0x3E, 0x51, 0x49, 0x45, 0x3E), "1": (0, 0x42, 0x7F, 0x40, 0), "2": (0x42, 0x61, 0x51, 0x49, 0x46),
    "3": (0x21, 0x41, 0x45, 0x4B, 0x31), "4": (0x18, 0x14, 0x12, 0x7F, 0x10), "5": (0x27, 0x45, 0x45, 0x45, 0x39),
    "6": (0x3C, 0x4A, 0x49, 0x49, 0x30), "7": (1, 0x71, 9, 5, 3), "8": (0x36, 0x49, 0x49, 0x49, 0x36),
    "9": (6, 0x49, 0x49, 0x29, 0x1E),
    "A": (0x7E, 0x11, 0x11, 0x11, 0x7E), "B": (0x7F, 0x49, 0x49, 0x49, 0x36), "C": (0x3E, 0x41, 0x41, 0x41, 0x22),
    "D": (0x7F, 0x41, 0x41, 0x22, 0x1C), "E": (0x7F, 0x49, 0x49, 0x49, 0x41), "F": (0x7F, 9, 9, 9, 1),
    "G": (0x3E, 0x41, 0x49, 0x49, 0x7A), "H": (0x7F, 8, 8, 8, 0x7F), "I": (0, 0x41, 0x7F, 0x41, 0),
    "J": (0x20, 0x40, 0x41, 0x3F, 1), "K": (0x7F, 8, 0x14, 0x22, 0x41), "L": (0x7F, 0x40, 0x40, 0x40, 0x40),
    "M": (0x7F, 2, 0x0C, 2, 0x7F), "N": (0x7F, 4, 8, 0x10, 0x7F), "O": (0x3E, 0x41, 0x41, 0x41, 0x3E),
    "P": (0x7F, 9, 9, 9, 6), "Q": (0x3E, 0x41, 0x51, 0x21, 0x5E), "R": (0x7F, 9, 0x19, 0x29, 0x46),
    "S": (0x46, 0x49, 0x49, 0x49, 0x31), "T": (1, 1, 0x7F, 1, 1), "U": (0x3F, 0x40, 0x40, 0x40, 0x3F),
    "V": (0x1F, 0x20, 0x40, 0x20, 0x1F), "W": (0x3F, 0x40, 0x38, 0x40, 0x3F), "X": (0x63, 0x14, 8, 0x14, 0x63),
    "Y": (7, 8, 0x70, 8, 7), "Z": (0x61, 0x51, 0x49, 0x45, 0x43),
}


def encode_png(canvas: Canvas) -> bytes:
    """Encode an ``H x W x 3`` uint8 array as a PNG file."""
    height, width, _ = canvas.shape
    raw = b"".join(b"\x00" + canvas[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _text(canvas: Canvas, x: int, y: int, text: str, color: Color = _BLACK, scale: int = 2) -> None:
    for k, char in enumerate(text.upper()):
        columns = _FONT.get(char, _FONT[" "])
        for cx, bits in enumerate(columns):
            for cy in range(7):
                if bits >> cy & 1:
                    x0, y0 = x + (k * 6 + cx) * scale, y + cy * scale
                    canvas[max(y0, 0) : max(y0 + scale, 0), max(x0, 0) : max(x0 + scale, 0)] = color


def _line(canvas: Canvas, p: tuple[float, float], q: tuple[float, float], color: Color, width: int = 2) -> None:
    steps = int(max(abs(q[0] - p[0]), abs(q[1] - p[1]))) + 1
    xs = np.linspace(p[0], q[0], steps).round().astype(int)
    ys = np.linspace(p[1], q[1], steps).round().astype(int)
    h, w, _ = canvas.shape
    half = width // 2
    for dx in range(-half, width - half):
        for dy in range(-half, width - half):
            ok = (xs + dx >= 0) & (xs + dx < w) & (ys + dy >= 0) & (ys + dy < h)
            canvas[ys[ok] + dy, xs[ok] + dx] = color


def _nice_ticks(high: float, count: int = 5) -> list[float]:
    if high <= 0 or math.isnan(high):
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step) + 1)]


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == 0 else f"{value:g}"


def _panel(canvas: Canvas, left: int, top: int, width: int, height: int, title: str,
           contenders: Sequence[ContenderResult], attr: str) -> None:
    points = {
        c.name: [(load.offered_per_s, getattr(load, attr)) for load in c.loads if not math.isnan(getattr(load, attr))]
        for c in contenders
    }
    xs = [x for series in points.values() for x, _ in series]
    ys = [y for series in points.values() for _, y in series]
    x_ticks = _nice_ticks(max(xs, default=1.0))
    y_ticks = _nice_ticks(max(ys, default=1.0))
    x_max, y_max = x_ticks[-1] or 1.0, y_ticks[-1] or 1.0

    def at(x: float, y: float) -> tuple[float, float]:
        return left + x / x_max * width, top + height - y / y_max * height

    for tick in y_ticks:
        _line(canvas, at(0, tick), at(x_max, tick), _GREY, 1)
        label = _label(tick)
        _text(canvas, left - 8 - len(label) * 12, int(at(0, tick)[1]) - 7, label)
    for tick in x_ticks:
        _line(canvas, at(tick, 0), at(tick, y_max), _GREY, 1)
        label = _label(tick)
        _text(canvas, int(at(tick, 0)[0]) - len(label) * 6, top + height + 10, label)
    _line(canvas, at(0, 0), at(x_max, 0), _BLACK, 2)
    _line(canvas, at(0, 0), at(0, y_max), _BLACK, 2)
    _text(canvas, left, top - 30, title)
    _text(canvas, left + width // 2 - 150, top + height + 36, "offered load (events/s)")
    for name, series in points.items():
        color = COLORS.get(name, _BLACK)
        pixels = [at(x, y) for x, y in sorted(series)]
        for p, q in itertools.pairwise(pixels):
            _line(canvas, p, q, color, 3)
        for px, py in pixels:
            canvas[max(int(py) - 4, 0) : int(py) + 5, max(int(px) - 4, 0) : int(px) + 5] = color


def latency_plot(contenders: Sequence[ContenderResult], title: str) -> bytes:
    """PNG bytes: p50 and p99 end-to-end latency (ms) against offered load, one line per contender."""
    width, height = 1400, 620
    canvas: Canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    _text(canvas, 30, 16, title)
    _panel(canvas, 120, 110, 520, 400, "p50 latency (ms)", contenders, "p50_ms")
    _panel(canvas, 820, 110, 520, 400, "p99 latency (ms)", contenders, "p99_ms")
    x = 30
    for c in contenders:
        color = COLORS.get(c.name, _BLACK)
        canvas[585:597, x : x + 24] = color
        _text(canvas, x + 32, 584, c.name)
        x += 32 + 12 * len(c.name) + 40
    return encode_png(canvas)


def write_plot(path: Path, contenders: Sequence[ContenderResult], title: str) -> Path:
    """Write :func:`latency_plot` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(latency_plot(contenders, title))
    return path
