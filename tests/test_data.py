"""Tests for gadjax.data: shipped loaders, file formats, protocols, transforms."""
import gzip
import pickle
import struct
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from gadjax import data

# Outlier counts and shapes from shared/data/SOURCES.md.
ODDS_TABLE = {
    "arrhythmia": ((452, 274), 66), "cardio": ((1831, 21), 176), "thyroid": ((3772, 6), 93),
    "annthyroid": ((7200, 6), 534), "mammography": ((11183, 6), 260), "satellite": ((6435, 36), 2036),
    "satimage_2": ((5803, 36), 71), "shuttle": ((49097, 9), 3511), "ionosphere": ((351, 33), 126),
    "pima": ((768, 8), 268), "breastw": ((683, 9), 239), "wbc": ((378, 30), 21), "glass": ((214, 9), 9),
    "lympho": ((148, 18), 6), "vertebral": ((240, 6), 30), "letter": ((1600, 32), 100),
    "vowels": ((1456, 12), 50),
}


def _hashes(x):
    return [row.tobytes() for row in x]


# ============================================================================ shipped


@pytest.mark.parametrize("name", sorted(data.DATASETS))
def test_every_registry_entry_loads(shared_data, name):
    d = data.load(name, data_dir=shared_data)
    if isinstance(d, data.ImageData):
        for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
            assert x.dtype == np.uint8 and x.ndim == 4 and y.dtype == np.uint8 and len(x) == len(y)
        assert d.x_train.shape[1:] == d.x_test.shape[1:]
        if d.masks_test is not None:
            assert d.masks_test.shape == d.x_test.shape[:3] + (1,)
            assert set(np.unique(d.masks_test)) <= {0, 1}
            assert not d.masks_test[d.y_test == 0].any()  # good images have empty masks
    else:
        assert isinstance(d, data.TabularData)
        assert d.x.dtype == np.float32 and d.x.ndim == 2 and d.y.shape == (len(d.x),)
        assert set(np.unique(d.y)) == {0, 1}
        assert np.isfinite(d.x).all()
        if name.startswith("odds_"):
            shape, n_out = ODDS_TABLE[name[5:]]
            assert d.x.shape == shape and int(d.y.sum()) == n_out


def test_mnist_and_fashion_official_counts(shared_data):
    m = data.mnist(shared_data)
    assert m.x_train.shape == (60000, 28, 28, 1) and m.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(m.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert m.y_test[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    assert abs(m.x_train.mean() / 255 - 0.1307) < 1e-3
    f = data.fashion_mnist(shared_data)
    assert np.bincount(f.y_train).tolist() == [6000] * 10 and np.bincount(f.y_test).tolist() == [1000] * 10
    assert f.class_names[0] == "T-shirt/top" and f.class_names[9] == "Ankle boot"


def test_loads_are_cached_and_read_only(shared_data):
    a = data.mnist(shared_data)
    t = time.perf_counter()
    b = data.mnist(shared_data)
    assert time.perf_counter() - t < 0.05  # no second LZMA decompression
    assert a.x_train is b.x_train
    with pytest.raises(ValueError):
        b.x_train[0, 0, 0, 0] = 1  # cached arrays are shared, so they are frozen


def test_mvtec_transistor_official_split(shared_data):
    d = data.mvtec_transistor(shared_data)
    assert d.x_train.shape == (213, 64, 64, 3) and d.x_test.shape == (100, 64, 64, 3)
    assert not d.y_train.any() and int(d.y_test.sum()) == 40
    assert d.defect_names == ("good", "bent_lead", "cut_lead", "damaged_case", "misplaced")
    assert np.bincount(d.defect_type).tolist() == [60, 10, 10, 10, 10]
    assert ((d.defect_type > 0) == (d.y_test == 1)).all()
    assert d.masks_test[d.y_test == 1].reshape(40, -1).any(axis=1).all()


def test_magnetic_tile_split_is_deterministic_and_disjoint(shared_data):
    d = data.magnetic_tile(shared_data, train_fraction=0.7, seed=0)
    assert len(d.x_train) == round(0.7 * 952) and not d.y_train.any()
    assert int(d.y_test.sum()) == 392 and int((d.y_test == 0).sum()) == 952 - len(d.x_train)
    assert np.bincount(d.defect_type).tolist() == [952 - len(d.x_train), 115, 85, 57, 32, 103]
    # 10 defective tiles have an empty 64x64 mask (defect under half a pixel).
    assert int((~d.masks_test[d.y_test == 1].reshape(392, -1).any(1)).sum()) == 10
    assert not set(_hashes(d.x_train)) & set(_hashes(d.x_test[d.y_test == 0]))
    again = data.magnetic_tile(shared_data, train_fraction=0.7, seed=0)
    other = data.magnetic_tile(shared_data, train_fraction=0.7, seed=1)
    assert np.array_equal(again.x_train, d.x_train)
    assert not np.array_equal(other.x_train, d.x_train)
    with pytest.raises(ValueError, match="train_fraction"):
        data.magnetic_tile(shared_data, train_fraction=1.0)


def test_kddcup99_features_and_egbad_labels(shared_data):
    d = data.kddcup99(shared_data)
    assert d.x.shape == (494021, 118) and len(d.feature_names) == 118
    assert d.feature_names[38] == "protocol_type=icmp"
    # Exactly one hot per categorical group.
    for group, width in (("protocol_type=", 3), ("service=", 66), ("flag=", 11)):
        cols = [i for i, n in enumerate(d.feature_names) if n.startswith(group)]
        assert len(cols) == width and (d.x[:, cols].sum(1) == 1).all()
    # EGBAD/ALAD: "normal" traffic (is_attack == 0) is the anomaly class.
    normal = np.asarray(d.label_names)[d.label] == "normal"
    assert (d.y == normal).all() and int(d.y.sum()) == 97278
    assert (data.is_attack(d) == 1 - d.y).all()


def test_data_dir_resolution_and_missing_files(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    monkeypatch.setenv("GADJAX_DATA", str(missing))
    with pytest.raises(FileNotFoundError, match="GADJAX_DATA") as e:
        data.mnist()
    assert str(missing) in str(e.value)
    with pytest.raises(FileNotFoundError, match="nope"):
        data.mnist(data_dir=missing)
    # An existing directory without the file: the message names the full path.
    monkeypatch.setenv("GADJAX_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        data.mnist()
    # Fallback ../shared/data relative to the working directory.
    monkeypatch.delenv("GADJAX_DATA")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    np.savez(tmp_path / "shared" / "data" / "odds_glass.npz", x=np.ones((3, 2)), y=np.array([0, 1, 0], np.uint8))
    monkeypatch.chdir(tmp_path / "work")
    assert data.data_dir() == (tmp_path / "shared" / "data").resolve()
    assert data.load("odds_glass").x.shape == (3, 2)


def test_unknown_names_list_known_ones():
    with pytest.raises(KeyError, match="mvtec_transistor"):
        data.load("mvtec_bottle")
    with pytest.raises(KeyError, match="vowels"):
        data.odds("musk")


# ============================================================================ formats


def _write_idx(path, arr, opener=open):
    code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[arr.dtype]
    with opener(path, "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes())


@pytest.mark.parametrize("sep,gz", [("-", False), (".", False), ("-", True)])
def test_idx_roundtrip(tmp_path, sep, gz):
    rng = np.random.default_rng(0)
    arrays = {"train-images": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              "train-labels": rng.integers(0, 10, 5, dtype=np.uint8),
              "t10k-images": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
              "t10k-labels": np.array([7, 2, 1], np.uint8)}
    for stem, arr in arrays.items():
        name = f"{stem}{sep}idx{3 if arr.ndim == 3 else 1}-ubyte" + (".gz" if gz else "")
        _write_idx(tmp_path / name, arr, gzip.open if gz else open)
    d = data.load_mnist_idx(tmp_path)
    assert d.x_train.shape == (5, 28, 28, 1) and d.x_train.dtype == np.uint8
    assert np.array_equal(d.x_train[..., 0], arrays["train-images"])
    assert np.array_equal(d.x_test[..., 0], arrays["t10k-images"]) and d.y_test.tolist() == [7, 2, 1]


def test_idx_errors(tmp_path):
    p = tmp_path / "a.idx"
    _write_idx(p, np.arange(6, dtype=">i4").reshape(2, 3))
    assert data.read_idx(p).tolist() == [[0, 1, 2], [3, 4, 5]]  # big-endian int32 decoded
    (tmp_path / "bad").write_bytes(b"\x12\x34\x08\x01" + b"\0" * 8)
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(tmp_path / "bad")
    _write_idx(tmp_path / "trunc", np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "trunc").write_bytes((tmp_path / "trunc").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(tmp_path / "trunc")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist_idx(tmp_path)


def _write_cifar(root, n=4):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        b = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        batches[name] = b
        (folder / name).write_bytes(pickle.dumps(b, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return batches


def test_cifar10_roundtrip(tmp_path):
    batches = _write_cifar(tmp_path)
    d = data.load_cifar10(tmp_path)
    assert d.x_train.shape == (20, 32, 32, 3) and d.x_test.shape == (4, 32, 32, 3)
    raw = batches["data_batch_2"][b"data"][1]
    img = d.x_train[4 + 1]
    # Row layout is 1024 R, then G, then B, each row-major 32x32.
    assert img[3, 5].tolist() == [raw[3 * 32 + 5], raw[1024 + 3 * 32 + 5], raw[2048 + 3 * 32 + 5]]
    assert d.y_test.tolist() == list(batches["test_batch"][b"labels"])
    assert d.class_names[3] == "cat"


def test_cifar10_refuses_arbitrary_pickles(tmp_path):
    _write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": types.SimpleNamespace()}))
    with pytest.raises(ValueError, match="refusing"):
        data.load_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        data.load_cifar10(tmp_path)


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_mvtec_layout(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "widget"
    imgs = {}
    for rel in ["train/good/000.png", "train/good/001.png", "test/good/000.png",
                "test/scratch/000.png", "test/crack/000.png", "test/crack/001.png"]:
        imgs[rel] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        _png(base / rel, imgs[rel])
    mask = np.zeros((32, 32), np.uint8)
    mask[0:4, 0:4] = 255     # block (0, 0) fully covered -> 1
    mask[4:8, 0:2] = 255     # block (1, 0) half covered -> 1 (coverage >= 0.5)
    mask[0:4, 4:5] = 200     # block (0, 1) quarter covered -> 0
    mask[8:12, 8:12] = 100   # <= 127 is background before averaging -> 0
    for rel in ["crack/000", "crack/001", "scratch/000"]:
        _png(base / "ground_truth" / f"{rel}_mask.png", mask)
    d = data.load_mvtec(tmp_path, "widget", size=8)
    assert d.x_train.shape == (2, 8, 8, 3) and d.x_test.shape == (4, 8, 8, 3)
    assert d.defect_names == ("good", "crack", "scratch")
    assert d.defect_type.tolist() == [0, 1, 1, 2] and d.y_test.tolist() == [0, 1, 1, 1]
    # BOX resampling = mean over 4x4 blocks.
    block_mean = imgs["test/crack/001.png"].reshape(8, 4, 8, 4, 3).astype(float).mean((1, 3))
    assert np.abs(d.x_test[2].astype(float) - block_mean).max() <= 1
    m = d.masks_test[1, :, :, 0]
    assert m[0, 0] == 1 and m[1, 0] == 1 and m[0, 1] == 0 and m[2, 2] == 0 and m.sum() == 2
    assert not d.masks_test[0].any()
    (base / "ground_truth" / "scratch" / "000_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match="000_mask.png"):
        data.load_mvtec(tmp_path, "widget", size=8)
    with pytest.raises(FileNotFoundError, match="train/good"):
        data.load_mvtec(tmp_path, "gadget")


def test_mvtec_grayscale_keeps_one_channel(tmp_path):
    for rel in ["train/good/0.png", "test/good/0.png"]:
        _png(tmp_path / "grid" / rel, np.full((16, 16), 7, np.uint8))
    d = data.load_mvtec(tmp_path, "grid", size=4)
    assert d.x_train.shape == (1, 4, 4, 1) and (d.x_train == 7).all()


# ============================================================================ tfds


def test_tfds_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"pip install gadjax\[tfds\]"):
        data.load_tfds("mnist")


def test_tfds_conversion_with_fake_module(monkeypatch):
    calls = {}
    info = types.SimpleNamespace(features={"label": types.SimpleNamespace(names=["a", "b"])})

    def load(name, **kw):
        calls.update(kw, name=name)
        split = {"image": np.zeros((3, 4, 4), np.uint8), "label": np.array([0, 1, 1])}
        return [split, dict(split)], info

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", types.SimpleNamespace(load=load, as_numpy=lambda s: s))
    d = data.load_tfds("fake", data_dir="/somewhere")
    assert calls["download"] is False and calls["data_dir"] == "/somewhere"
    assert d.x_train.shape == (3, 4, 4, 1) and d.y_test.dtype == np.uint8 and d.class_names == ("a", "b")


def test_tfds_real_if_installed():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(Exception):  # nothing is prepared offline, and nothing may be downloaded
        data.load_tfds("mnist", data_dir="/nonexistent/tfds")


# ============================================================================ splits


@pytest.fixture(scope="module")
def small(mnist_small):
    return data.ImageData(mnist_small["x_train"], mnist_small["y_train"], mnist_small["x_test"],
                          mnist_small["y_test"], name="mnist_small")


def _labels_of(x, ref_x, ref_y):
    lookup = dict(zip(_hashes(ref_x), ref_y.tolist()))
    return np.array([lookup[h] for h in _hashes(x)])


def test_one_normal_protocol(small):
    s = data.one_class_split(small, cls=3, protocol="one-normal", val_fraction=0.1, seed=0)
    n3 = int((small.y_train == 3).sum())
    assert len(s.x_train) + len(s.x_val) == n3 and len(s.x_val) == round(0.1 * n3)
    assert (_labels_of(s.x_train, small.x_train, small.y_train) == 3).all()
    assert (_labels_of(s.x_val, small.x_train, small.y_train) == 3).all()
    assert not set(_hashes(s.x_val)) & set(_hashes(s.x_train))
    assert not set(_hashes(s.x_val)) & set(_hashes(s.x_test))  # validation never touches test data
    assert np.array_equal(s.y_test, (small.y_test != 3).astype(np.uint8))
    assert s.protocol == "one-normal" and s.cls == 3 and "3" in s.normal and s.contamination == 0.0
    assert not s.y_train.any() and s.masks_test is None


def test_one_anomalous_protocol(small):
    s = data.one_class_split(small, cls=7, protocol="one-anomalous", val_fraction=0.2, seed=1)
    assert (_labels_of(s.x_train, small.x_train, small.y_train) != 7).all()
    assert (_labels_of(s.x_val, small.x_train, small.y_train) != 7).all()
    assert np.array_equal(s.y_test, (small.y_test == 7).astype(np.uint8))
    assert len(s.x_train) + len(s.x_val) == int((small.y_train != 7).sum())


def test_every_protocol_is_named_and_misuse_is_explained(small):
    assert set(data.PROTOCOLS) == {"one-normal", "one-anomalous", "industrial"}
    with pytest.raises(ValueError, match="industrial.*good/defective"):
        data.one_class_split(small, cls=0, protocol="industrial")
    with pytest.raises(ValueError, match="unknown protocol"):
        data.one_class_split(small, cls=0, protocol="leave-one-out")


@pytest.mark.parametrize("gamma", [0.05, 0.2])
def test_contamination_fraction(small, gamma):
    s = data.one_class_split(small, cls=1, protocol="one-normal", contamination=gamma, seed=0)
    labels = _labels_of(s.x_train, small.x_train, small.y_train)
    assert np.array_equal(s.y_train, (labels != 1).astype(np.uint8))  # y_train marks true anomalies
    frac = s.y_train.mean()
    assert abs(frac - gamma) < 1.0 / len(s.x_train) and s.contamination == pytest.approx(frac)
    assert (_labels_of(s.x_val, small.x_train, small.y_train) == 1).all()  # val stays clean
    # Contaminants are spread through the set, not appended as a block.
    assert s.y_train[: len(s.y_train) // 2].any()


def test_split_is_deterministic(small):
    a = data.one_class_split(small, 2, "one-normal", contamination=0.1, seed=5)
    b = data.one_class_split(small, 2, "one-normal", contamination=0.1, seed=5)
    c = data.one_class_split(small, 2, "one-normal", contamination=0.1, seed=6)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_split_errors(small):
    with pytest.raises(ValueError, match="one-normal, one-anomalous"):
        data.one_class_split(small, 0, "leave-one-out")
    with pytest.raises(ValueError, match="class 11 is not present"):
        data.one_class_split(small, 11, "one-normal")
    for gamma in (-0.1, 1.0):
        with pytest.raises(ValueError, match="gamma"):
            data.one_class_split(small, 0, "one-normal", contamination=gamma)
    with pytest.raises(ValueError, match="lower gamma"):  # 99 % would need more anomalies than exist
        data.one_class_split(small, 0, "one-anomalous", contamination=0.99)
    with pytest.raises(ValueError, match="industrial_split expects"):
        data.industrial_split(small)


def test_industrial_split(shared_data):
    d = data.mvtec_transistor(shared_data)
    s = data.industrial_split(d, val_fraction=0.1, seed=0)
    assert len(s.x_train) + len(s.x_val) == 213 and len(s.x_val) == 21
    assert not set(_hashes(s.x_val)) & set(_hashes(s.x_train))
    assert s.x_test.shape == (100, 64, 64, 3) and int(s.y_test.sum()) == 40
    assert s.masks_test.shape == (100, 64, 64, 1) and s.protocol == "industrial" and s.cls is None


def test_tabular_split_uses_training_statistics_only():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 3)).astype(np.float32)
    y = (rng.random(1000) < 0.2).astype(np.uint8)
    x[y == 1] += 100.0  # anomalies far away: they must not influence the scaling
    x[:, 2] = 5.0       # constant column must not divide by zero
    s = data.tabular_split(x, y, test_fraction=0.5, val_fraction=0.1, scaling="minmax", seed=0)
    assert s.x_train.min() == 0.0 and s.x_train[:, :2].max() == 1.0 and (s.x_train[:, 2] == 0).all()
    assert len(s.x_test) == 500 and s.x_test[s.y_test == 1, :2].min() > 10  # scaled with train stats
    n_normal_train = len(s.x_train) + len(s.x_val)
    assert n_normal_train == int((y == 0).sum()) - int((s.y_test == 0).sum())  # anomalies dropped
    z = data.tabular_split(x, y, scaling="zscore", seed=0)
    assert np.allclose(z.x_train[:, :2].mean(0), 0, atol=1e-5) and np.allclose(z.x_train[:, :2].std(0), 1, atol=1e-4)
    with pytest.raises(ValueError, match="minmax, zscore, none"):
        data.tabular_split(x, y, scaling="robust")


def test_tabular_split_on_odds(shared_data):
    d = data.odds("cardio", shared_data)
    s = data.tabular_split(d.x, d.y, seed=0)
    assert s.x_train.shape[1] == 21 and len(s.x_test) == round(0.5 * 1831)
    assert 0 < s.y_test.mean() < 0.2


# ============================================================================ transforms


def test_to_float_ranges():
    x = np.array([0, 128, 255], np.uint8).reshape(1, 1, 3, 1)
    t = data.to_float(x)
    assert t.dtype == np.float32 and t.min() == -1.0 and t.max() == 1.0
    s = data.to_float(x, out_range="sigmoid")
    assert s.min() == 0.0 and s.max() == 1.0
    with pytest.raises(TypeError, match="uint8"):
        data.to_float(t)
    with pytest.raises(ValueError, match="tanh"):
        data.to_float(x, out_range="relu")


def test_check_images_errors():
    ok = np.zeros((2, 28, 28, 1), np.float32)
    assert data.check_images(ok, expected_hw=(28, 28), channels=1) is ok
    with pytest.raises(ValueError, match=r"4-D NHWC.*\(2, 28, 28\)"):
        data.check_images(ok[..., 0])
    with pytest.raises(TypeError, match="numeric"):
        data.check_images(np.full((1, 2, 2, 1), "a"))
    bad = ok.copy()
    bad[0, 0, 0, 0], bad[1, 1, 1, 0], bad[1, 2, 2, 0] = np.nan, np.nan, np.inf
    with pytest.raises(ValueError, match="2 NaN and 1 Inf"):
        data.check_images(bad, name="batch")
    with pytest.raises(ValueError, match="28x28.*expected 32x32"):
        data.check_images(ok, expected_hw=(32, 32))
    with pytest.raises(ValueError, match="1 channels.*expected 3"):
        data.check_images(ok, channels=3)


def test_pad_to():
    x = np.full((2, 28, 28, 1), 9, np.uint8)
    p = data.pad_to(x, 32)
    assert p.shape == (2, 32, 32, 1) and p.dtype == np.uint8
    assert (p[:, 2:30, 2:30] == 9).all() and p.sum() == x.sum()
    with pytest.raises(ValueError, match="smaller"):
        data.pad_to(x, 16)


@pytest.mark.parametrize("n,bs", [(100, 10), (103, 16)])
def test_batch_sampler_epochs_cover_every_index(n, bs):
    s = data.BatchSampler(n, bs, seed=3)
    flat = np.concatenate([s.indices(i) for i in range(-(-3 * n // bs))])
    for e in range(2):  # every full epoch is a permutation
        assert sorted(flat[e * n:(e + 1) * n].tolist()) == list(range(n))
    assert not np.array_equal(flat[:n], flat[n:2 * n])  # reshuffled every epoch
    assert s.indices(0).shape == (bs,) and s.indices(0).dtype == np.int64


def test_batch_sampler_is_a_pure_function_of_seed_and_step():
    a = data.BatchSampler(1000, 64, seed=0)
    seq = [a.indices(i) for i in range(40)]
    resumed = data.BatchSampler(1000, 64, seed=0)  # fresh object: no iterator state
    assert all(np.array_equal(resumed.indices(i), seq[i]) for i in (37, 12, 39, 0))
    assert not np.array_equal(data.BatchSampler(1000, 64, seed=1).indices(0), seq[0])
    b = a.batches(3, k=5)
    assert b.shape == (5, 64)
    assert np.array_equal(b, np.stack([a.indices(15 + i) for i in range(5)]))
    with pytest.raises(ValueError, match="larger than the dataset"):
        data.BatchSampler(10, 64)
    with pytest.raises(ValueError, match="step"):
        a.indices(-1)
