"""Drawing primitives shared by the figures: atomic PNG writes, value scaling,
the heat colour map, text measurement, axes, dashed lines and legends."""
from __future__ import annotations

import math
import os
import tempfile
from typing import Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD = 2  # pixels between (and around) tiles
_BLUE, _ORANGE, _RED, _GRAY = (31, 119, 180), (255, 127, 14), (214, 39, 40), (150, 150, 150)
# Series colours (matplotlib's "tab10"), so bars of one model look alike across figures.
PALETTE = [_BLUE, _ORANGE, (44, 160, 44), _RED, (148, 103, 189), (140, 86, 75), (227, 119, 194),
           (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def _save_png(path, img: Image.Image) -> str:
    """Writes ``img`` to ``path`` atomically; returns the path as str."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=".png", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            img.save(f, format="PNG")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; figures are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _check_range(value_range) -> Tuple[float, float]:
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
    return lo, hi


def _to_uint8(images, value_range: Tuple[float, float]) -> np.ndarray:
    """(N,H,W[,C]) floats in ``value_range`` -> (N,H,W,C) uint8 with C in {1,3}."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N,H,W), (N,H,W,1) or (N,H,W,3), got {a.shape}.")
    lo, hi = _check_range(value_range)
    a = np.nan_to_num((a - lo) / (hi - lo), nan=0.0)
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


# A perceptually ordered "inferno-like" colour map: black -> purple -> red ->
# orange -> pale yellow, linearly interpolated between anchors.
_HEAT_ANCHORS = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9],
                          [252, 255, 164]], np.float32)


def heat_colormap(v) -> np.ndarray:
    """Maps values in [0, 1] (clipped) of any shape (...) to RGB uint8 (..., 3)."""
    v = np.clip(np.nan_to_num(np.asarray(v, np.float32)), 0.0, 1.0)
    pos = v * (len(_HEAT_ANCHORS) - 1)
    i = np.minimum(pos.astype(np.int64), len(_HEAT_ANCHORS) - 2)
    t = (pos - i)[..., None]
    rgb = (1.0 - t) * _HEAT_ANCHORS[i] + t * _HEAT_ANCHORS[i + 1]
    return np.round(rgb).astype(np.uint8)


def _font():
    return ImageFont.load_default()


_MEASURE = ImageDraw.Draw(Image.new("L", (1, 1)))


def _text_size(text: str) -> Tuple[int, int]:
    """(width, height) in pixels of ``text`` (may hold newlines) in :func:`_font`.

    Measured, not guessed: Pillow >= 10.1 gives a FreeType default font, older ones a
    bitmap font of another size, and margins must fit either.
    """
    if not text:
        return 0, 0
    l, t, r, b = _MEASURE.multiline_textbbox((0, 0), str(text), font=_font())
    return int(math.ceil(r - min(l, 0))), int(math.ceil(b))


class _Axes:
    """Maps data coordinates to pixels inside a plot area and draws the frame."""

    def __init__(self, draw: ImageDraw.ImageDraw, box, xlim, ylim):
        self.draw, self.box, self.xlim, self.ylim = draw, box, xlim, ylim

    def px(self, x, y):
        l, t, r, b = self.box
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        return (l + (x - x0) / (x1 - x0) * (r - l), b - (y - y0) / (y1 - y0) * (b - t))

    def frame(self, xlabel: str, ylabel: str, xticks: Sequence[float], yticks: Sequence[float]):
        d, (l, t, r, b), f = self.draw, self.box, _font()
        d.rectangle(self.box, outline=(0, 0, 0), width=1)
        for v in xticks:
            x, _ = self.px(v, self.ylim[0])
            d.line([(x, b), (x, b + 4)], fill=(0, 0, 0))
            d.text((x, b + 6), f"{v:.3g}", fill=(0, 0, 0), font=f, anchor="mt")
        for v in yticks:
            _, y = self.px(self.xlim[0], v)
            d.line([(l - 4, y), (l, y)], fill=(0, 0, 0))
            d.text((l - 6, y), f"{v:.3g}", fill=(0, 0, 0), font=f, anchor="rm")
        d.text(((l + r) / 2, b + 22), xlabel, fill=(0, 0, 0), font=f, anchor="mt")
        d.text((4, t - 14), ylabel, fill=(0, 0, 0), font=f, anchor="lm")

    def title(self, text: str):
        l, t, r, _ = self.box
        self.draw.text(((l + r) / 2, t - 28), text, fill=(0, 0, 0), font=_font(), anchor="mm")


def _dashed(draw, p0, p1, fill, dash=6, width=1):
    (x0, y0), (x1, y1) = p0, p1
    n = max(1, int(math.hypot(x1 - x0, y1 - y0) // dash))
    for k in range(0, n, 2):
        a, b = k / n, min(1.0, (k + 1) / n)
        draw.line([(x0 + a * (x1 - x0), y0 + a * (y1 - y0)),
                   (x0 + b * (x1 - x0), y0 + b * (y1 - y0))], fill=fill, width=width)


LEGEND_ROW = 16  # px per legend entry


def _legend_size(entries) -> Tuple[int, int]:
    """(width, height) :func:`_legend` needs for ``entries``, box included."""
    return 30 + max(_text_size(t)[0] for _, t, _ in entries), LEGEND_ROW * len(entries) + 6


def _legend(draw, x, y, entries):
    """Draws a boxed legend with its top-left corner at (x, y).

    ``entries``: (colour, text, kind) with kind "box" (a filled swatch: bars, histograms),
    "line" (a solid line: curves) or "dash" (a dashed line: references such as chance).
    The white box keeps the legend legible where it overlaps a plot.
    """
    w, h = _legend_size(entries)
    draw.rectangle([x, y, x + w - 1, y + h - 1], fill="white", outline=_GRAY)
    for k, (col, text, kind) in enumerate(entries):
        cy = y + 3 + LEGEND_ROW * k + LEGEND_ROW // 2
        if kind == "box":
            draw.rectangle([x + 5, cy - 5, x + 15, cy + 5], fill=col)
        elif kind == "dash":
            _dashed(draw, (x + 3, cy), (x + 19, cy), col, dash=4, width=2)
        else:
            draw.line([(x + 3, cy), (x + 19, cy)], fill=col, width=2)
        draw.text((x + 24, cy), text, fill=(0, 0, 0), font=_font(), anchor="lm")
