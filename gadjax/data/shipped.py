"""Loaders for the benchmark arrays shipped as npz files in ``shared/data``.

Every loader reads local files only; nothing is ever downloaded. The data
directory is, in order of precedence:

1. the ``data_dir`` argument of a loader;
2. the ``GADJAX_DATA`` environment variable;
3. ``../shared/data`` relative to the current working directory;
4. ``<repo>/../shared/data`` relative to this package.

The npz members are LZMA-compressed and every ``NpzFile[key]`` access
decompresses again, so each file is read exactly once into a dict and cached
per process (``functools.lru_cache`` on the resolved path). Cached arrays are
marked read-only so that one caller cannot silently corrupt another's copy;
use ``np.array(x)`` for a writable copy.

Conventions (see ``shared/data/SOURCES.md``): images are uint8 NHWC, labels
uint8, masks uint8 in {0, 1} with shape (N, H, W, 1).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib

import numpy as np

ENV_VAR = "GADJAX_DATA"

ODDS_NAMES = (
    "annthyroid", "arrhythmia", "breastw", "cardio", "glass", "ionosphere", "letter",
    "lympho", "mammography", "pima", "satellite", "satimage_2", "shuttle", "thyroid",
    "vertebral", "vowels", "wbc",
)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
    """An image dataset with a train/test split.

    Attributes:
      x_train: (N, H, W, C) uint8.
      y_train: (N,) uint8 class labels (all 0 for industrial sets: good only).
      x_test: (M, H, W, C) uint8.
      y_test: (M,) uint8 class labels; for industrial sets 1 = defective.
      masks_test: (M, H, W, 1) uint8 in {0, 1} pixel ground truth, or None.
      class_names: names indexed by the values of ``y_*``, or None.
      name: dataset name.
      defect_type: (M,) uint8 index into ``defect_names`` (industrial sets), or None.
      defect_names: defect category names, ``defect_names[0] == "good"``, or None.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    masks_test: np.ndarray | None = None
    class_names: tuple[str, ...] | None = None
    name: str = ""
    defect_type: np.ndarray | None = None
    defect_names: tuple[str, ...] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one image."""
        return tuple(self.x_train.shape[1:])


@dataclasses.dataclass(frozen=True, eq=False)
class TabularData:
    """A tabular outlier-detection dataset (no split: see ``splits.tabular_split``).

    Attributes:
      x: (n, d) float32 features.
      y: (n,) uint8, 1 = anomaly under the dataset's standard protocol.
      feature_names: (d,) names, or None when the source has none (ODDS).
      name: dataset name.
      label: (n,) uint8 codes into ``label_names`` (KDD only), or None.
      label_names: original class names (KDD only), or None.
    """

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...] | None
    name: str
    label: np.ndarray | None = None
    label_names: tuple[str, ...] | None = None


# ----------------------------------------------------------------------------- paths


def _candidates() -> list[pathlib.Path]:
    here = pathlib.Path(__file__).resolve()
    # gadjax/data/shipped.py: parents[2] is the repository root, parents[3] its parent.
    return [pathlib.Path.cwd() / ".." / "shared" / "data", here.parents[3] / "shared" / "data"]


def data_dir(path: str | os.PathLike | None = None) -> pathlib.Path:
    """Resolves the shipped-data directory (see module docstring for the order).

    Raises:
      FileNotFoundError: naming the directory tried and the ``GADJAX_DATA`` variable.
    """
    if path is not None:
        p = pathlib.Path(path).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"data directory {str(p)!r} (from data_dir=) does not exist")
        return p.resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        # An explicit setting wins: falling back silently would hide a typo.
        p = pathlib.Path(env).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"data directory {str(p)!r} from ${ENV_VAR} does not exist")
        return p.resolve()
    tried = _candidates()
    for p in tried:
        if p.is_dir():
            return p.resolve()
    raise FileNotFoundError(
        "shipped data directory not found; tried " + ", ".join(repr(str(p)) for p in tried)
        + f". Set ${ENV_VAR} to the folder holding mnist.npz etc.")


def _file(fname: str, data_dir_: str | os.PathLike | None) -> pathlib.Path:
    p = data_dir(data_dir_) / fname
    if not p.is_file():
        raise FileNotFoundError(f"{str(p)!r} not found (set ${ENV_VAR} or pass data_dir=)")
    return p


@functools.lru_cache(maxsize=None)
def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Decompresses every member once; the result is cached for the process."""
    with np.load(path, allow_pickle=False) as f:
        d = dict(f)
    for v in d.values():
        v.flags.writeable = False
    return d


def _npz(fname: str, data_dir_) -> dict[str, np.ndarray]:
    return _read_npz(str(_file(fname, data_dir_)))


def _ro(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False
    return x


# ----------------------------------------------------------------------------- images


def mnist(data_dir: str | os.PathLike | None = None) -> ImageData:
    """Full MNIST: x_train (60000, 28, 28, 1), x_test (10000, 28, 28, 1) uint8."""
    d = _npz("mnist.npz", data_dir)
    return ImageData(d["x_train"], d["y_train"], d["x_test"], d["y_test"],
                     class_names=tuple(str(i) for i in range(10)), name="mnist")


def fashion_mnist(data_dir: str | os.PathLike | None = None) -> ImageData:
    """Full Fashion-MNIST: same shapes as MNIST, with the 10 class names."""
    d = _npz("fashion_mnist.npz", data_dir)
    return ImageData(d["x_train"], d["y_train"], d["x_test"], d["y_test"],
                     class_names=tuple(str(s) for s in d["class_names"]), name="fashion_mnist")


def mvtec_transistor(data_dir: str | os.PathLike | None = None) -> ImageData:
    """MVTec AD "transistor" at 64x64, official split.

    x_train (213, 64, 64, 3) all good; x_test (100, 64, 64, 3) with y_test
    1 = defective (40), masks_test (100, 64, 64, 1), defect_type/defect_names.
    """
    d = _npz("mvtec_transistor_64.npz", data_dir)
    return ImageData(d["x_train"], d["y_train"], d["x_test"], d["y_test"], masks_test=d["masks"],
                     class_names=("good", "defective"), name="mvtec_transistor",
                     defect_type=d["defect_type"], defect_names=tuple(str(s) for s in d["defect_names"]))


@functools.lru_cache(maxsize=16)
def _magnetic_tile(path: str, train_fraction: float, seed: int) -> ImageData:
    d = _read_npz(path)
    good = np.flatnonzero(d["y"] == 0)
    bad = np.flatnonzero(d["y"] == 1)
    # Seeded permutation of the good images only: the split is a pure function of
    # (train_fraction, seed), so every run and every process sees the same split.
    good = np.random.default_rng(seed).permutation(good)
    n_train = int(round(train_fraction * len(good)))
    tr = np.sort(good[:n_train])
    te = np.concatenate([np.sort(good[n_train:]), bad])  # good first, like MVTec
    return ImageData(
        _ro(d["x"][tr]), _ro(np.zeros(len(tr), np.uint8)), _ro(d["x"][te]), _ro(d["y"][te]),
        masks_test=_ro(d["masks"][te]), class_names=("good", "defective"), name="magnetic_tile",
        defect_type=_ro(d["defect_type"][te]), defect_names=tuple(str(s) for s in d["defect_names"]))


def magnetic_tile(data_dir: str | os.PathLike | None = None, *, train_fraction: float = 0.7,
                  seed: int = 0) -> ImageData:
    """Magnetic Tile Defect at 64x64 (grayscale), with a deterministic split.

    The source has no official split: ``train_fraction`` of the 952 good images
    (chosen by ``seed``) form x_train; x_test holds the remaining good images
    followed by all 392 defective ones, with masks (N, 64, 64, 1).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    return _magnetic_tile(str(_file("magnetic_tile_64.npz", data_dir)), float(train_fraction), int(seed))


# ----------------------------------------------------------------------------- tabular


@functools.lru_cache(maxsize=4)
def _kddcup99(path: str) -> TabularData:
    d = _read_npz(path)
    parts = [d["x_numeric"].astype(np.float32)]
    names = [str(s) for s in d["numeric_feature_names"]]
    for col in ("protocol_type", "service", "flag"):
        vocab = d[col + "_names"]
        # One-hot by indexing an identity matrix: one vectorised gather, no pandas.
        parts.append(np.eye(len(vocab), dtype=np.float32)[d[col]])
        names += [f"{col}={v}" for v in vocab]
    x = np.concatenate(parts, axis=1)
    is_attack = d["is_attack"]
    return TabularData(_ro(x), _ro((1 - is_attack).astype(np.uint8)), tuple(names), "kddcup99",
                       label=d["label"], label_names=tuple(str(s) for s in d["label_names"]))


def kddcup99(data_dir: str | os.PathLike | None = None) -> TabularData:
    """KDD Cup 99, 10 % file: x (494021, 118) float32 = 38 numeric + one-hot
    protocol_type (3), service (66), flag (11).

    ``y`` follows the EGBAD/ALAD/DAGMM protocol, where "normal" traffic is the
    minority and therefore the ANOMALY: ``y = 1 - is_attack`` (97,278 ones).
    ``label``/``label_names`` keep the 23 original classes; ``is_attack`` of a
    row is ``label_names[label] != "normal"``.
    """
    return _kddcup99(str(_file("kddcup99_10pct.npz", data_dir)))


def is_attack(data: TabularData) -> np.ndarray:
    """(n,) uint8, 1 for every KDD row whose label is not "normal"."""
    if data.label is None or data.label_names is None:
        raise ValueError(f"{data.name!r} has no original labels (only kddcup99 does)")
    return (data.label != data.label_names.index("normal")).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _odds(path: str, name: str) -> TabularData:
    d = _read_npz(path)
    # float32 for every set (shuttle is int16, satellite/letter/breastw uint8 on
    # disk) so that models see one dtype.
    return TabularData(_ro(d["x"].astype(np.float32)), d["y"], None, "odds_" + name)


def odds(name: str, data_dir: str | os.PathLike | None = None) -> TabularData:
    """One of the 17 ODDS benchmarks: x (n, d) float32, y (n,) uint8 1 = outlier."""
    name = name.removeprefix("odds_")
    if name not in ODDS_NAMES:
        raise KeyError(f"unknown ODDS dataset {name!r}; known: {', '.join(ODDS_NAMES)}")
    return _odds(str(_file(f"odds_{name}.npz", data_dir)), name)


def clear_cache() -> None:
    """Frees every cached array (they are otherwise kept for the process)."""
    for f in (_read_npz, _magnetic_tile, _kddcup99, _odds):
        f.cache_clear()
