"""Charts: ROC curve, score histograms, grouped bars and a coloured value table."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from gadjax import metrics
from gadjax.viz._draw import (_BLUE, _GRAY, _ORANGE, _RED, PALETTE, _Axes, _check_range, _dashed, _font,
                              _legend, _legend_size, _save_png, _text_size, heat_colormap)


def save_roc(path, y, s, size: int = 400, threshold: Optional[float] = None) -> str:
    """Draws the ROC curve of labels ``y`` (N,) and scores ``s`` (N,) to a PNG.

    The title shows the AUROC; the dashed diagonal is a random detector. With a
    ``threshold`` the detector's operating point there (``s >= threshold`` is
    flagged, as in :func:`gadjax.metrics.roc_curve`) is marked in red: a reader sees
    which false-alarm rate the reported F1 pays for. Output is ``size x size`` RGB.
    """
    fpr, tpr, _ = metrics.roc_curve(y, s)
    auc = metrics.roc_auc(y, s)
    img = Image.new("RGB", (size, size), "white")
    d = ImageDraw.Draw(img)
    ax = _Axes(d, (50, 45, size - 20, size - 50), (0.0, 1.0), (0.0, 1.0))
    _dashed(d, ax.px(0, 0), ax.px(1, 1), _GRAY)
    d.line([ax.px(a, b) for a, b in zip(fpr, tpr)], fill=_BLUE, width=2)
    legend = [(_BLUE, f"detector (AUROC {auc:.3f})", "line"), (_GRAY, "chance", "dash")]
    if threshold is not None and np.isfinite(threshold):
        yv, sv = np.asarray(y).reshape(-1), np.asarray(s, np.float64).reshape(-1)
        flagged = sv >= float(threshold)
        fp, tp = flagged[yv == 0].mean(), flagged[yv == 1].mean()
        x0, y0 = ax.px(fp, tp)
        d.ellipse([x0 - 4, y0 - 4, x0 + 4, y0 + 4], fill=_RED)
        legend.append((_RED, f"threshold {float(threshold):.4g}: FPR {fp:.2f}, TPR {tp:.2f}", "box"))
    ax.frame("false positive rate", "true positive rate", (0, 0.5, 1), (0, 0.5, 1))
    ax.title(f"ROC  (AUROC = {auc:.4f})")
    lw, lh = _legend_size(legend)  # bottom right: the curve of a useful detector stays top left
    _legend(d, ax.box[2] - lw - 4, ax.box[3] - lh - 4, legend)
    return _save_png(path, img)


def save_histogram(path, normal_scores, anomalous_scores, threshold: Optional[float] = None,
                   bins: int = 50, size: Tuple[int, int] = (520, 360)) -> str:
    """Overlapping score histograms of normal (blue) and anomalous (orange) samples.

    Both use the same bin edges over the joint range; counts are normalised to
    densities so classes of different sizes are comparable (the legend gives each
    class's count). An optional threshold is drawn as a dashed red line.

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
    ax.frame("anomaly score", "density (normalised count)", np.linspace(lo, hi, 5),
             np.linspace(0, ymax / 1.08, 3))
    ax.title("score distributions")
    legend = [(_BLUE, f"normal (n={s0.size})", "box"), (_ORANGE, f"anomalous (n={s1.size})", "box")]
    if threshold is not None:
        x, _ = ax.px(float(threshold), 0.0)
        _dashed(d, (x, ax_box[3]), (x, ax_box[1]), _RED, width=2)
        legend.append((_RED, f"threshold = {float(threshold):.4g}", "dash"))
    _legend(d, ax_box[2] - _legend_size(legend)[0] - 4, ax_box[1] + 4, legend)
    return _save_png(path, base)


def save_bars(path, values, row_labels: Sequence[str], col_labels: Sequence[str], title: str = "",
              value_range: Tuple[float, float] = (0.0, 1.0), chance: Optional[float] = 0.5,
              ylabel: str = "AUROC", xlabel: str = "class", bar: int = 8, height: int = 320) -> str:
    """Grouped bar chart of a (R, C) table: one group per column (a class), one bar per
    row (a model, coloured as in the legend), e.g. per-class AUROC of several detectors.

    The y axis spans ``value_range`` (values outside are clipped to it, NaN bars are left
    out); the default starts at 0 so bar lengths compare honestly, and AUROCs below
    chance stay visible. ``chance`` draws a dashed reference line (None: none). ``bar`` is
    a bar's width in px; the image widens with R*C and the legend sits right of the plot.
    """
    v = np.asarray(values, np.float64)
    if v.ndim != 2 or v.shape != (len(row_labels), len(col_labels)) or v.size == 0:
        raise ValueError(f"values must be (rows, cols) = ({len(row_labels)}, {len(col_labels)}), got {v.shape}")
    lo, hi = _check_range(value_range)
    r, c = v.shape
    gap = max(8, bar * 3 // 2)  # between groups, so groups read as one class each
    group = r * bar + gap
    # Past ten series the palette repeats darker, so every bar's colour stays unique.
    legend = [(tuple(int(c * 0.6 ** (i // len(PALETTE))) for c in PALETTE[i % len(PALETTE)]), str(name), "box")
              for i, name in enumerate(row_labels)]
    if chance is not None and lo < chance < hi:
        legend.append((_GRAY, f"chance ({chance:g})", "dash"))
    lw, lh = _legend_size(legend)
    left, top = 50, 45 + (0 if title else -14)
    box = (left, top, left + c * group, max(top + 80, height - 50))
    width = max(box[2] + 12 + lw + 8, _text_size(title)[0] + 20)
    img = Image.new("RGB", (width, max(height, top + lh + 10)), "white")
    d = ImageDraw.Draw(img)
    ax = _Axes(d, box, (0.0, float(c)), (lo, hi))
    yticks = np.linspace(lo, hi, 6)
    for t in yticks[1:-1]:  # light grid lines to read bar heights against the ticks
        d.line([ax.px(0, t), ax.px(c, t)], fill=(228, 228, 228))
    for j in range(c):
        x0 = box[0] + j * group + gap // 2
        for i in range(r):
            if np.isnan(v[i, j]):
                continue
            _, y_top = ax.px(0, min(max(v[i, j], lo), hi))
            if y_top < box[3]:
                d.rectangle([x0 + i * bar, y_top, x0 + (i + 1) * bar - 2, box[3] - 1], fill=legend[i][0])
        d.text((x0 + r * bar / 2, box[3] + 6), str(col_labels[j]), fill=(0, 0, 0), font=_font(), anchor="mt")
    if chance is not None and lo < chance < hi:
        _dashed(d, ax.px(0, chance), ax.px(c, chance), _GRAY, width=2)
    ax.frame(xlabel, ylabel, (), yticks)
    if title:
        ax.title(title)
    _legend(d, box[2] + 12, box[1], legend)
    return _save_png(path, img)


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
    lo, hi = _check_range(value_range)
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
