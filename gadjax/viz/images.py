"""Image figures: sample grids and labelled input / reconstruction / anomaly-map rows."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw

from gadjax.viz._draw import PAD, _font, _save_png, _text_size, _to_uint8, heat_colormap

MIN_TILE = 64  # px: save_triplets scales tiles up until their shorter side is at least this
HEADER = 18  # px: height of save_triplets' header row of column names
LABEL_PAD = 6  # px: space either side of save_triplets' row labels
COLUMNS = ("input", "reconstruction", "anomaly map", "mask")


def grid_shape(n: int, nrow: Optional[int] = None):
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


def tile_scale(h: int, w: int) -> int:
    """Integer nearest-neighbour zoom of save_triplets' tiles: a 28x28 MNIST digit is
    unreadable next to text, 84x84 is not; integer factors keep pixels square and sharp."""
    return max(1, -(-MIN_TILE // max(1, min(h, w))))


def triplet_layout(h: int, w: int, k: int, row_labels: Optional[Sequence[str]] = None):
    """Geometry of :func:`save_triplets` for (h, w) images in ``k`` columns:
    ``(scale, column width, left margin)``. A column is as wide as the zoomed tile or its
    header name, whichever is wider; the left margin fits the widest row label."""
    s = tile_scale(h, w)
    cw = max([w * s] + [_text_size(c)[0] + 4 for c in COLUMNS[:k]])
    left = max(_text_size(str(t))[0] for t in row_labels) + 2 * LABEL_PAD if row_labels else 0
    return s, cw, left


def save_triplets(path, x, x_rec, maps, n: int = 8, value_range=(-1.0, 1.0), masks=None,
                  row_labels: Optional[Sequence[str]] = None) -> str:
    """Rows of (input | reconstruction | anomaly map [| ground-truth mask]) for the first ``n`` samples.

    A header row names the columns; tiles are zoomed (nearest neighbour, see
    :func:`tile_scale`) so small images stay legible beside the text.

    Args:
      x, x_rec: (N, H, W, C) images in ``value_range``, C in {1, 3}.
      maps: (N, H, W) or (N, H, W, 1) anomaly maps; they are scaled jointly to
        [0, 1] over the shown samples (so brightness is comparable across
        rows) and drawn with :func:`heat_colormap`.
      n: number of rows (samples shown).
      masks: optional (N, H, W) or (N, H, W, 1) binary ground-truth masks, drawn as a
        fourth column (white = defect).
      row_labels: optional text per shown row (at least ``n``; newlines allowed, e.g.
        ``"anomalous\\nscore 1.23"``), drawn right-aligned in a left margin.

    Returns the path. With ``s, cw, left = triplet_layout(H, W, k, row_labels)`` (k = 3, or
    4 with masks) the image is ``left + k*cw + (k+1)*PAD`` wide and
    ``HEADER + n*H*s + (n+1)*PAD`` high, on white.
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
    rgb = lambda a: np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a  # noqa: E731
    columns = [rgb(xi), rgb(xr), heat_colormap(m)]
    if masks is not None:
        mk = np.asarray(masks)
        mk = mk[..., 0] if mk.ndim == 4 and mk.shape[-1] == 1 else mk
        if mk.shape[1:] != m.shape[1:] or mk.shape[0] < n:
            raise ValueError(f"masks {np.shape(masks)} do not match maps {np.shape(maps)}")
        columns.append(rgb((mk[:n, ..., None] > 0).astype(np.uint8) * 255))
    if row_labels is not None:
        row_labels = [str(t) for t in row_labels]
        if len(row_labels) < n:
            raise ValueError(f"row_labels has {len(row_labels)} entries for {n} rows.")
        row_labels = row_labels[:n]
    k, (h, w) = len(columns), m.shape[1:]
    s, cw, left = triplet_layout(h, w, k, row_labels)
    th, tw = h * s, w * s
    img = Image.new("RGB", (left + k * cw + (k + 1) * PAD, HEADER + n * th + (n + 1) * PAD), "white")
    d, f = ImageDraw.Draw(img), _font()
    for j, name in enumerate(COLUMNS[:k]):
        d.text((left + PAD + j * (cw + PAD) + cw / 2, HEADER / 2 + 1), name, fill=(0, 0, 0), font=f,
               anchor="mm")
    for i in range(n):
        y0 = HEADER + PAD + i * (th + PAD)
        for j, col in enumerate(columns):
            tile = np.repeat(np.repeat(col[i], s, axis=0), s, axis=1)  # nearest neighbour
            img.paste(Image.fromarray(tile), (left + PAD + j * (cw + PAD) + (cw - tw) // 2, y0))
        if row_labels:
            lw, lh = _text_size(row_labels[i])
            d.multiline_text((left - LABEL_PAD - lw, y0 + (th - lh) / 2), row_labels[i], fill=(0, 0, 0), font=f,
                             align="right")
    return _save_png(path, img)
