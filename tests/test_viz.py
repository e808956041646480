"""gadjax.viz writes valid PNGs of the expected size."""
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


def test_save_roc(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(size=200)
    img = _open(viz.save_roc(tmp_path / "roc.png", y, s, size=300))
    assert img.size == (300, 300) and img.mode == "RGB"
    a = np.asarray(img)
    assert (a != 255).any(axis=-1).mean() > 0.01  # something was drawn
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
    # One class empty, or all scores equal, still works.
    _open(viz.save_histogram(tmp_path / "h2.png", [1.0, 1.0], []))
    with pytest.raises(ValueError, match="NaN"):
        viz.save_histogram(tmp_path / "h3.png", [np.nan], [1.0])


@pytest.mark.parametrize("c,map_chan", [(1, False), (3, True)])
def test_save_triplets(tmp_path, c, map_chan):
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (10, 12, 9, c))
    x_rec = rng.uniform(-1, 1, (10, 12, 9, c))
    maps = rng.random((10, 12, 9, 1) if map_chan else (10, 12, 9))
    img = _open(viz.save_triplets(tmp_path / "t.png", x, x_rec, maps, n=4))
    p = viz.PAD
    assert img.size == (3 * 9 + 4 * p, 4 * 12 + 5 * p) and img.mode == "RGB"
    a = np.asarray(img)
    # Third column holds the heat map: the same pixels as heat_colormap.
    m = maps.reshape(10, 12, 9)[:4]
    m = (m - m.min()) / (m.max() - m.min())
    np.testing.assert_array_equal(a[p:p + 12, p + 2 * (9 + p):p + 2 * (9 + p) + 9],
                                  viz.heat_colormap(m[0]))
    with pytest.raises(ValueError, match="shape mismatch"):
        viz.save_triplets(tmp_path / "bad.png", x, x_rec, maps[:, :5])
    # Ground-truth masks add a fourth column: defect pixels white, the rest black.
    masks = np.zeros((10, 12, 9, 1), np.uint8)
    masks[0, 2:5, 3:6] = 1
    a = np.asarray(_open(viz.save_triplets(tmp_path / "m.png", x, x_rec, maps, n=4, masks=masks)))
    assert a.shape == (4 * 12 + 5 * p, 4 * 9 + 5 * p, 3)
    tile = a[p:p + 12, p + 3 * (9 + p):p + 3 * (9 + p) + 9]
    np.testing.assert_array_equal(tile[..., 0], masks[0, ..., 0] * 255)
    with pytest.raises(ValueError, match="masks"):
        viz.save_triplets(tmp_path / "bad.png", x, x_rec, maps, masks=masks[:, :5])


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
