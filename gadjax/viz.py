"""Lightweight PNG figures with Pillow only (no matplotlib).

Sample grids, ROC curves, score histograms and input / reconstruction /
anomaly-map triplets, good enough for training logs and reports. Every
``save_*`` writes atomically (temporary file in the same directory, then
``os.replace``), so a crashed or concurrent run never leaves a truncated PNG.
"""
from __future__ import annotations

import math
import os
import tempfile
from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gadjax import metrics

__all__ = ["grid_shape", "make_grid", "save_grid", "heat_colormap", "save_roc", "save_histogram",
           "save_triplets", "save_value_table"]

PAD = 2  # pixels between (and around) tiles
_BLUE, _ORANGE, _RED, _GRAY = (31, 119, 180), (255, 127, 14), (214, 39, 40), (150, 150, 150)


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


def _to_uint8(images, value_range: Tuple[float, float]) -> np.ndarray:
    """(N,H,W[,C]) floats in ``value_range`` -> (N,H,W,C) uint8 with C in {1,3}."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise ValueError(f"images must be (N,H,W), (N,H,W,1) or (N,H,W,3), got {a.shape}.")
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
    a = np.nan_to_num((a - lo) / (hi - lo), nan=0.0)
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def grid_shape(n: int, nrow: Optional[int] = None) -> Tuple[int, int]:
    """(rows, cols) of the grid for ``n`` tiles; ``nrow`` = tiles per row."""
    cols = int(nrow) if nrow else int(math.ceil(math.sqrt(n)))
    cols = max(1, min(cols, n))
    return int(math.ceil(n / cols)), cols


def make_grid(images, nrow: Optional[int] = None, value_range=(-1.0, 1.0),
              padding: int = PAD, pad_value: int = 0) -> np.ndarray:
    """Tiles images into one uint8 array.

    Args:
      images: (N, H, W), (N, H, W, 1) or (N, H, W, 3) floats in ``value_range``.
      nrow: images per row (torchvision convention); default ``ceil(sqrt(N))``.
      value_range: (low, high) mapped to (0, 255); values outside are clipped.
      padding: pixels between tiles and around the border.

    Returns:
      (rows*H + (rows+1)*padding, cols*W + (cols+1)*padding, C) uint8.
    """
    a = _to_uint8(images, value_range)
    n, h, w, c = a.shape
    if n == 0:
        raise ValueError("images is empty.")
    rows, cols = grid_shape(n, nrow)
    out = np.full((rows * h + (rows + 1) * padding, cols * w + (cols + 1) * padding, c),
                  pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y0, x0 = padding + r * (h + padding), padding + k * (w + padding)
        out[y0:y0 + h, x0:x0 + w] = a[i]
    return out


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def save_grid(path, images, nrow: Optional[int] = None, value_range=(-1.0, 1.0)) -> str:
    """Saves a grid of NHWC images (gray or RGB) as one PNG; see :func:`make_grid`."""
    return _save_png(path, _to_image(make_grid(images, nrow, value_range)))


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


class _Axes:
    """Maps data coordinates to pixels inside a square plot area and draws the frame."""

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


def save_roc(path, y, s, size: int = 400) -> str:
    """Draws the ROC curve of labels ``y`` (N,) and scores ``s`` (N,) to a PNG.

    The title shows the AUROC; the dashed diagonal is a random detector.
    Output is ``size x size`` RGB.
    """
    fpr, tpr, _ = metrics.roc_curve(y, s)
    auc = metrics.roc_auc(y, s)
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    ax = _Axes(d, (50, 45, size - 20, size - 50), (0.0, 1.0), (0.0, 1.0))
    _dashed(d, ax.px(0, 0), ax.px(1, 1), _GRAY)
    d.line([ax.px(a, b) for a, b in zip(fpr, tpr)], fill=_BLUE, width=2)
    ax.frame("false positive rate", "true positive rate", (0, 0.5, 1), (0, 0.5, 1))
    ax.title(f"ROC  (AUROC = {auc:.4f})")
    return _save_png(path, img)


def save_histogram(path, normal_scores, anomalous_scores, threshold: Optional[float] = None,
                   bins: int = 50, size: Tuple[int, int] = (520, 360)) -> str:
    """Overlapping score histograms of normal (blue) and anomalous (orange) samples.

    Both use the same bin edges over the joint range; counts are normalised to
    densities so classes of different sizes are comparable. An optional
    threshold is drawn as a dashed red line.

    Args:
      normal_scores: (N0,) scores, anomalous_scores: (N1,); one may be empty.
    """
    s0 = np.asarray(normal_scores, np.float64).reshape(-1)
    s1 = np.asarray(anomalous_scores, np.float64).reshape(-1)
    both = np.concatenate([s0, s1])
    if both.size == 0:
        raise ValueError("no scores to plot.")
    if not np.all(np.isfinite(both)):
        raise ValueError("scores contain NaN or Inf.")
    lo, hi = float(both.min()), float(both.max())
    if threshold is not None and np.isfinite(threshold):
        lo, hi = min(lo, float(threshold)), max(hi, float(threshold))
    if hi <= lo:  # all equal: give the single bin some width
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, int(bins) + 1)
    hists = [np.histogram(v, edges, density=True)[0] if v.size else np.zeros(bins)
             for v in (s0, s1)]
    ymax = max(1e-12, max(h.max() for h in hists)) * 1.08

    w, h = size
    base = Image.new("RGB", (w, h), "white")
    ax_box = (60, 45, w - 20, h - 50)
    # Bars go on translucent layers so the overlap stays visible.
    for hist, col in zip(hists, (_BLUE, _ORANGE)):
        layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        ax = _Axes(ImageDraw.Draw(layer), ax_box, (lo, hi), (0.0, ymax))
        for k, c in enumerate(hist):
            if c > 0:
                x0, y0 = ax.px(edges[k], c)
                x1, y1 = ax.px(edges[k + 1], 0.0)
                ax.draw.rectangle([x0, y0, x1, y1], fill=col + (120,), outline=col + (255,))
        base = Image.alpha_composite(base.convert("RGBA"), layer)
    base = base.convert("RGB")
    d = ImageDraw.Draw(base)
    ax = _Axes(d, ax_box, (lo, hi), (0.0, ymax))
    ax.frame("anomaly score", "density", np.linspace(lo, hi, 5), np.linspace(0, ymax / 1.08, 3))
    ax.title("score distributions")
    legend = [(_BLUE, f"normal (n={s0.size})"), (_ORANGE, f"anomalous (n={s1.size})")]
    if threshold is not None:
        x, _ = ax.px(float(threshold), 0.0)
        _dashed(d, (x, ax_box[3]), (x, ax_box[1]), _RED, width=2)
        legend.append((_RED, f"threshold = {float(threshold):.4g}"))
    lx, ly = ax_box[2] - 150, ax_box[1] + 8
    # White box behind the legend so it stays legible over the bars.
    d.rectangle([lx - 4, ly - 4, ax_box[2] - 4, ly + 16 * len(legend) - 2], fill="white",
                outline=_GRAY)
    for k, (col, text) in enumerate(legend):
        y = ly + 16 * k
        d.rectangle([lx, y, lx + 10, y + 10], fill=col)
        d.text((lx + 16, y + 5), text, fill=(0, 0, 0), font=_font(), anchor="lm")
    return _save_png(path, base)


def save_triplets(path, x, x_rec, maps, n: int = 8, value_range=(-1.0, 1.0), masks=None) -> str:
    """Rows of (input | reconstruction | anomaly map [| ground-truth mask]) for the first ``n`` samples.

    Args:
      x, x_rec: (N, H, W, C) images in ``value_range``, C in {1, 3}.
      maps: (N, H, W) or (N, H, W, 1) anomaly maps; they are scaled jointly to
        [0, 1] over the shown samples (so brightness is comparable across
        rows) and drawn with :func:`heat_colormap`.
      n: number of rows (samples shown).
      masks: optional (N, H, W) or (N, H, W, 1) binary ground-truth masks, drawn as a
        fourth column (white = defect).

    Returns the path. Image is ``k*W + (k+1)*PAD`` wide (k = 3, or 4 with masks) and
    ``n*H + (n+1)*PAD`` high.
    """
    xi = _to_uint8(x, value_range)
    xr = _to_uint8(x_rec, value_range)
    m = np.asarray(maps, np.float32)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if not (xi.shape == xr.shape and m.shape == xi.shape[:3]):
        raise ValueError(f"shape mismatch: x {np.shape(x)}, x_rec {np.shape(x_rec)}, "
                         f"maps {np.shape(maps)}.")
    n = max(1, min(int(n), xi.shape[0]))
    xi, xr, m = xi[:n], xr[:n], m[:n]
    m = np.nan_to_num(m)
    m = (m - m.min()) / max(float(m.max() - m.min()), 1e-12)
    heat = heat_colormap(m)
    rgb = lambda a: np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a  # noqa: E731
    columns = [rgb(xi), rgb(xr), heat]
    if masks is not None:
        mk = np.asarray(masks)
        mk = mk[..., 0] if mk.ndim == 4 and mk.shape[-1] == 1 else mk
        if mk.shape[1:] != m.shape[1:] or mk.shape[0] < n:
            raise ValueError(f"masks {np.shape(masks)} do not match maps {np.shape(maps)}")
        columns.append(rgb((mk[:n, ..., None] > 0).astype(np.uint8) * 255))
    tiles = np.stack(columns, axis=1).reshape((len(columns) * n,) + heat.shape[1:])
    # make_grid expects floats in a value range: pass uint8 values with (0, 255).
    grid = make_grid(tiles.astype(np.float32), nrow=len(columns), value_range=(0.0, 255.0))
    return _save_png(path, Image.fromarray(grid))


def save_value_table(path, values, row_labels: Sequence[str], col_labels: Sequence[str],
                     value_range: Tuple[float, float] = (0.5, 1.0), title: str = "",
                     cell: Tuple[int, int] = (46, 20)) -> str:
    """Draws a (R, C) table of numbers (an AUROC grid: detectors x classes) as coloured cells.

    Each cell shows its value to 3 decimals on the heat colour of the value scaled to
    ``value_range`` (default: chance 0.5 dark, 1.0 light); NaN cells stay blank.
    """
    v = np.asarray(values, np.float64)
    if v.ndim != 2 or v.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"values must be (rows, cols) = ({len(row_labels)}, {len(col_labels)}), got {v.shape}")
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}.")
    f, (cw, ch) = _font(), cell
    left = 12 + 6 * max(len(str(r)) for r in row_labels)
    top = 24 + (14 if title else 0)
    width = max(left + cw * v.shape[1] + 8, 6 * len(title) + 16)  # the default font is ~6 px a character
    img = Image.new("RGB", (width, top + ch * v.shape[0] + 8), "white")
    d = ImageDraw.Draw(img)
    if title:
        d.text((img.width / 2, 10), title, fill=(0, 0, 0), font=f, anchor="mm")
    for j, name in enumerate(col_labels):
        d.text((left + (j + 0.5) * cw, top - 8), str(name), fill=(0, 0, 0), font=f, anchor="mm")
    colours = heat_colormap((v - lo) / (hi - lo))
    for i, name in enumerate(row_labels):
        y = top + i * ch
        d.text((left - 6, y + ch / 2), str(name), fill=(0, 0, 0), font=f, anchor="rm")
        for j in range(v.shape[1]):
            if np.isnan(v[i, j]):
                continue
            box = (left + j * cw, y, left + (j + 1) * cw - 1, y + ch - 1)
            rgb = tuple(int(c) for c in colours[i, j])
            d.rectangle(box, fill=rgb)
            ink = (0, 0, 0) if sum(rgb) > 380 else (255, 255, 255)  # readable on dark and light cells
            d.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), f"{v[i, j]:.3f}", fill=ink, font=f, anchor="mm")
    return _save_png(path, img)
