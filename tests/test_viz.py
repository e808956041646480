"""gadjax.viz writes valid PNGs of the expected size, with the labels, legends and bars it promises."""
import os

import numpy as np
import pytest
from PIL import Image

from gadjax import viz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _open(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    img = Image.open(path)
    img.verify()  # raises on a truncated / corrupt file
    return Image.open(path)


@pytest.mark.parametrize("n,nrow,rows,cols", [(16, None, 4, 4), (10, None, 3, 4), (10, 5, 2, 5),
                                              (3, 8, 1, 3), (1, None, 1, 1), (7, 1, 7, 1)])
def test_grid_shape_arithmetic(n, nrow, rows, cols):
    assert viz.grid_shape(n, nrow) == (rows, cols)
    g = viz.make_grid(np.zeros((n, 6, 5, 1)), nrow=nrow)
    p = viz.PAD
    assert g.shape == (rows * 6 + (rows + 1) * p, cols * 5 + (cols + 1) * p, 1)
    assert g.dtype == np.uint8


def test_grid_values_and_placement():
    imgs = np.stack([np.full((4, 4, 1), v) for v in (-1.0, 0.0, 1.0)])  # value_range (-1, 1)
    g = viz.make_grid(imgs, nrow=3)
    p = viz.PAD
    assert g[p, p, 0] == 0 and g[p, p + 4 + p, 0] == 128 and g[p, p + 2 * (4 + p), 0] == 255
    assert g[0].max() == 0  # padding row
    g01 = viz.make_grid(np.full((1, 2, 2, 3), 2.0), value_range=(0, 1))  # clipped
    assert g01.shape == (2 + 2 * p, 2 + 2 * p, 3) and g01[p, p].tolist() == [255, 255, 255]


@pytest.mark.parametrize("c", [1, 3])
def test_save_grid_png(tmp_path, c):
    rng = np.random.default_rng(0)
    path = tmp_path / "sub" / "grid.png"
    out = viz.save_grid(path, rng.uniform(-1, 1, (10, 8, 7, c)), nrow=5)
    assert out == str(path)
    img = _open(path)
    assert img.size == (5 * 7 + 6 * viz.PAD, 2 * 8 + 3 * viz.PAD)
    assert img.mode == ("L" if c == 1 else "RGB")
    assert [f for f in os.listdir(path.parent)] == ["grid.png"]  # no temp file left behind


def test_save_grid_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match="images"):
        viz.save_grid(tmp_path / "g.png", np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match="value_range"):
        viz.save_grid(tmp_path / "g.png", np.zeros((2, 4, 4)), value_range=(1, 1))


def test_heat_colormap():
    c = viz.heat_colormap(np.array([[0.0, 0.5, 1.0, 2.0, np.nan]]))
    assert c.shape == (1, 5, 3) and c.dtype == np.uint8
    assert c[0, 0].sum() < c[0, 1].sum() < c[0, 2].sum()  # dark -> bright
    assert c[0, 3].tolist() == c[0, 2].tolist()  # clipped
    assert c[0, 4].tolist() == c[0, 0].tolist()


HEADER = viz.images.HEADER


def _text_width(text):
    from gadjax.viz._draw import _text_size  # measured like the figures measure, whatever the font
    return _text_size(text)[0]


def _dark(a):
    """Mask of near-black pixels (text, ticks, frames) of an RGB array."""
    return (np.asarray(a).astype(int).sum(axis=-1) < 200)


def test_save_roc(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(size=200)
    img = _open(viz.save_roc(tmp_path / "roc.png", y, s, size=300))
    assert img.size == (300, 300) and img.mode == "RGB"
    a = np.asarray(img).astype(int)
    assert (a != 255).any(axis=-1).mean() > 0.01  # something was drawn
    box = (50, 45, 300 - 20, 300 - 50)
    assert _dark(a[box[3] + 18:, box[0]:box[2]]).any()  # the x-axis label under the plot
    assert _dark(a[:box[1] - 6, :box[0]]).any()  # the y-axis label above the y axis
    red = lambda im: (im[..., 0] > 180) & (im[..., 1] < 80) & (im[..., 2] < 80)  # noqa: E731
    assert not red(a).any()
    # A threshold marks the operating point (FPR, TPR) where s >= threshold, and adds a legend entry.
    t = 0.5
    a = np.asarray(_open(viz.save_roc(tmp_path / "roc_t.png", y, s, size=300, threshold=t))).astype(int)
    fpr, tpr = (s[y == 0] >= t).mean(), (s[y == 1] >= t).mean()
    x0 = box[0] + fpr * (box[2] - box[0])
    y0 = box[3] - tpr * (box[3] - box[1])
    assert red(a[int(y0) - 2:int(y0) + 3, int(x0) - 2:int(x0) + 3]).all()
    assert red(a[box[3] - 60:box[3], box[2] - 200:box[2]]).sum() >= 100  # its legend swatch, bottom right
    with pytest.raises(ValueError, match="one class"):
        viz.save_roc(tmp_path / "bad.png", np.zeros(5), np.arange(5.0))


def test_save_histogram(tmp_path):
    rng = np.random.default_rng(2)
    p = viz.save_histogram(tmp_path / "h.png", rng.normal(size=300), rng.normal(2, 1, 50),
                           threshold=1.5, bins=30, size=(400, 300))
    img = _open(p)
    assert img.size == (400, 300)
    a = np.asarray(img).astype(int)
    # The threshold line is drawn in red.
    red = (a[..., 0] > 180) & (a[..., 1] < 80) & (a[..., 2] < 80)
    assert red.sum() > 50
    box = (60, 45, 400 - 20, 300 - 50)
    assert _dark(a[box[3] + 18:, box[0]:box[2]]).any() and _dark(a[:box[1] - 6, :box[0]]).any()  # axis labels
    # The legend has one solid swatch per class, in the classes' exact colours, top right.
    top_right = a[box[1]:box[1] + 60, box[2] - 200:box[2]]
    for colour in ((31, 119, 180), (255, 127, 14)):
        assert (top_right == colour).all(axis=-1).sum() >= 100  # a 11x11 swatch (bars are translucent)
    # One class empty, or all scores equal, still works.
    _open(viz.save_histogram(tmp_path / "h2.png", [1.0, 1.0], []))
    with pytest.raises(ValueError, match="NaN"):
        viz.save_histogram(tmp_path / "h3.png", [np.nan], [1.0])


def _tile(a, left, cw, tw, th, row, col):
    """Pixels of save_triplets' tile (row, col), per the layout its docstring gives."""
    p = viz.PAD
    x0 = left + p + col * (cw + p) + (cw - tw) // 2
    y0 = HEADER + p + row * (th + p)
    return a[y0:y0 + th, x0:x0 + tw]


@pytest.mark.parametrize("c,map_chan", [(1, False), (3, True)])
def test_save_triplets(tmp_path, c, map_chan):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (10, 12, 9, c))
    x_rec = rng.uniform(-1, 1, (10, 12, 9, c))
    maps = rng.random((10, 12, 9, 1) if map_chan else (10, 12, 9))
    img = _open(viz.save_triplets(tmp_path / "t.png", x, x_rec, maps, n=4))
    p, s = viz.PAD, viz.tile_scale(12, 9)
    assert s == 8  # 9 px * 8 = 72 >= MIN_TILE (64), 9 px * 7 = 63 is not
    th, tw = 12 * s, 9 * s
    cw = max(tw, _text_width("reconstruction") + 4)  # the widest column name fits its column
    assert viz.triplet_layout(12, 9, 3) == (s, cw, 0)
    assert img.size == (3 * cw + 4 * p, HEADER + 4 * th + 5 * p) and img.mode == "RGB"
    a = np.asarray(img)
    # Third column holds the heat map: heat_colormap's pixels, each zoomed to an s x s block.
    m = maps.reshape(10, 12, 9)[:4]
    m = (m - m.min()) / (m.max() - m.min())
    zoom = lambda t: np.repeat(np.repeat(t, s, axis=0), s, axis=1)  # noqa: E731
    np.testing.assert_array_equal(_tile(a, 0, cw, tw, th, 0, 2), zoom(viz.heat_colormap(m[0])))
    first = np.repeat(viz.make_grid(x[1:2], padding=0), 3 // c, axis=-1)  # row 1's input, as uint8 RGB
    np.testing.assert_array_equal(_tile(a, 0, cw, tw, th, 1, 0), zoom(first))
    # The header names each column: dark text pixels over every column, on white.
    for j in range(3):
        head = a[:HEADER, p + j * (cw + p):p + j * (cw + p) + cw]
        assert _dark(head).sum() > 10
    with pytest.raises(ValueError, match="shape mismatch"):
        viz.save_triplets(tmp_path / "bad.png", x, x_rec, maps[:, :5])
    # Ground-truth masks add a fourth, named column: defect pixels white, the rest black.
    masks = np.zeros((10, 12, 9, 1), np.uint8)
    masks[0, 2:5, 3:6] = 1
    a = np.asarray(_open(viz.save_triplets(tmp_path / "m.png", x, x_rec, maps, n=4, masks=masks)))
    assert a.shape == (HEADER + 4 * th + 5 * p, 4 * cw + 5 * p, 3)
    np.testing.assert_array_equal(_tile(a, 0, cw, tw, th, 0, 3)[..., 0], zoom(masks[0, ..., 0] * 255))
    assert _dark(a[:HEADER, p + 3 * (cw + p):]).sum() > 10
    with pytest.raises(ValueError, match="masks"):
        viz.save_triplets(tmp_path / "bad.png", x, x_rec, maps, masks=masks[:, :5])


def test_save_triplets_row_labels(tmp_path):
    rng = np.random.default_rng(4)
    x, x_rec, maps = rng.uniform(-1, 1, (3, 28, 28, 1)), rng.uniform(-1, 1, (3, 28, 28, 1)), rng.random((3, 28, 28))
    plain = np.asarray(_open(viz.save_triplets(tmp_path / "p.png", x, x_rec, maps, n=3)))
    labels = ["normal\nscore 0.12", "anomalous\nscore 3.4", "anomalous"]
    a = np.asarray(_open(viz.save_triplets(tmp_path / "l.png", x, x_rec, maps, n=3, row_labels=labels)))
    s, cw, left = viz.triplet_layout(28, 28, 3, labels)
    assert s == 3 and left == _text_width("anomalous\nscore 3.4") + 2 * viz.images.LABEL_PAD
    # The labels add a left margin of exactly `left` px; the tiles and header are unchanged, shifted.
    assert a.shape == (plain.shape[0], plain.shape[1] + left, 3)
    np.testing.assert_array_equal(a[:, left:], plain)
    th = 28 * s
    for i in range(3):  # every row's label is drawn beside its row
        band = a[HEADER + viz.PAD + i * (th + viz.PAD):HEADER + (i + 1) * (th + viz.PAD), :left]
        assert _dark(band).sum() > 20
    other = np.asarray(_open(viz.save_triplets(tmp_path / "o.png", x, x_rec, maps, n=3,
                                               row_labels=["normal\nscore 9.99", "anomalous\nscore 3.4", "x"])))
    assert other.shape == a.shape and not np.array_equal(other, a)  # the text itself is drawn
    with pytest.raises(ValueError, match="row_labels"):
        viz.save_triplets(tmp_path / "bad.png", x, x_rec, maps, n=3, row_labels=["a", "b"])


def _bar_heights(a, colour, right):
    """Heights (px) of the runs of columns left of ``right`` holding ``colour``, left to right."""
    cols = (a[:, :right] == colour).all(axis=-1).sum(axis=0)
    runs, cur = [], 0
    for v in list(cols) + [0]:
        if v:
            cur = max(cur, v)
        elif cur:
            runs.append(int(cur))
            cur = 0
    return runs


def test_save_bars(tmp_path):
    values = np.array([[0.9, 0.3, 1.2], [0.6, np.nan, 0.5]])  # 1.2: clipped to the top
    img = _open(viz.save_bars(tmp_path / "b.png", values, ["alad", "ganomaly"], [0, 1, 2], title="AUROC",
                              height=300))
    a = np.asarray(img).astype(int)
    assert img.height == 300
    box_h = (300 - 50) - 45  # plot box: 45 px below the top to 50 px above the bottom
    bar, gap = 8, 12
    right = 50 + 3 * (2 * bar + gap)  # right edge of the plot; the legend lies beyond it
    assert img.width > right + _text_width("ganomaly")  # room for the legend
    blue, orange = viz.PALETTE[0], viz.PALETTE[1]
    h0 = _bar_heights(a, blue, right)
    # Bar heights follow the values on a (0, 1) axis: 0.9 -> 0.9 of the box, 0.3 -> 0.3, 1.2 -> the box.
    assert len(h0) == 3
    for h, v in zip(h0, (0.9, 0.3, 1.0)):
        assert abs(h - v * box_h) <= 2
    h1 = _bar_heights(a, orange, right)
    assert len(h1) == 2 and h1[0] > h1[1]  # the NaN bar is left out; 0.6 taller than 0.5
    # Each model has one legend swatch, right of the plot.
    for colour in (blue, orange):
        assert (a[:, right:] == colour).all(axis=-1).sum() >= 100
    # The dashed chance line at 0.5 crosses the plot in gray.
    y_chance = round(45 + 0.5 * box_h)
    gray = (np.abs(a[y_chance - 1:y_chance + 2, 50:right] - 150) <= 1).all(axis=-1).any(axis=0)
    assert 0.2 < gray.mean() < 0.8  # dashed, not solid
    # A truncated axis (0.5, 1): the 0.5 bar vanishes and 0.9 vs 0.6 is 0.8 vs 0.2 of the box.
    a = np.asarray(_open(viz.save_bars(tmp_path / "b2.png", values, ["alad", "ganomaly"], [0, 1, 2],
                                       value_range=(0.5, 1.0), height=300))).astype(int)
    box_h = (300 - 50) - 31  # no title: the box starts 14 px higher
    h0, h1 = _bar_heights(a, blue, right), _bar_heights(a, orange, right)
    assert len(h0) == 2 and abs(h0[0] - 0.8 * box_h) <= 2 and len(h1) == 1 and abs(h1[0] - 0.2 * box_h) <= 2
    with pytest.raises(ValueError, match="rows, cols"):
        viz.save_bars(tmp_path / "bad.png", values, ["a"], [0, 1, 2])
    with pytest.raises(ValueError, match="value_range"):
        viz.save_bars(tmp_path / "bad.png", values, ["a", "b"], [0, 1, 2], value_range=(1, 0))


def test_save_value_table(tmp_path):
    values = np.array([[0.5, 0.75, 1.0], [0.9, np.nan, 0.6]])
    img = _open(viz.save_value_table(tmp_path / "t.png", values, ["alad", "ganomaly"], [0, 1, 2],
                                     title="AUROC", cell=(40, 18)))
    a = np.asarray(img).astype(int)
    w, h = img.size
    left, top = 12 + 6 * len("ganomaly"), h - 8 - 2 * 18
    corner = lambda i, j: a[top + i * 18 + 2, left + j * 40 + 2]  # noqa: E731 (a cell's background)
    assert corner(0, 0).sum() < corner(0, 1).sum() < corner(0, 2).sum()  # chance dark -> 1.0 bright
    assert corner(1, 1).tolist() == [255, 255, 255]  # NaN left blank
    with pytest.raises(ValueError, match="rows, cols"):
        viz.save_value_table(tmp_path / "bad.png", values, ["a"], [0, 1, 2])
