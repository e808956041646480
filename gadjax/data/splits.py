"""Anomaly-detection evaluation protocols built from labelled datasets.

Three protocols, all deterministic in ``seed``:

* one-class image protocols (``one_class_split``) on class-labelled data such
  as MNIST: see ``PROTOCOLS``;
* the "industrial" protocol (``industrial_split``) for sets that ship a
  good/defective split with masks (MVTec AD, Magnetic Tile);
* the EGBAD/ALAD tabular protocol (``tabular_split``) for KDD Cup 99 and ODDS.

The validation set always holds NORMAL training images only. It exists to fix
thresholds and choose checkpoints without looking at test data.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from gadjax.data.shipped import ImageData

PROTOCOLS = {
    "one-normal": "one class is normal, all other classes are anomalous (Schlegl 2017/2019, Berg 2020)",
    "one-anomalous": "one class is anomalous, all others normal (GANomaly leave-one-class-out)",
    "industrial": "defect-free training images; the official good/defective test set, with pixel masks (MVTec AD)",
}
CLASS_PROTOCOLS = ("one-normal", "one-anomalous")  # the protocols of class-labelled datasets


@dataclasses.dataclass(frozen=True, eq=False)
class OneClassSplit:
    """Train/val/test arrays for one anomaly-detection experiment.

    Attributes:
      x_train: (N, H, W, C) training images: normal, plus anomalies when contamination > 0.
      y_train: (N,) uint8, 1 = anomalous contamination. For analysis only; an
        unsupervised model must not see it.
      x_val: (V, H, W, C) held-out normal training images (never test data).
      x_test: (M, H, W, C) test images.
      y_test: (M,) uint8, 1 = anomalous.
      masks_test: (M, H, W, 1) uint8 pixel ground truth, or None.
      protocol: "one-normal", "one-anomalous" or "industrial".
      normal: human-readable description of the normal class.
      cls: the class index the protocol is built around (None for industrial).
      contamination: fraction of x_train that is anomalous.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    masks_test: np.ndarray | None
    protocol: str
    normal: str
    cls: int | None
    contamination: float


def _split_val(idx: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    idx = rng.permutation(idx)
    n_val = int(round(val_fraction * len(idx)))
    if n_val >= len(idx):
        raise ValueError(f"val_fraction={val_fraction} leaves no training images (only {len(idx)} normals)")
    return idx[n_val:], idx[:n_val]


def _name(data: ImageData, c: int) -> str:
    return data.class_names[c] if data.class_names is not None and c < len(data.class_names) else str(c)


def one_class_split(data: ImageData, cls: int, protocol: str = "one-normal", val_fraction: float = 0.1,
                    contamination: float = 0.0, seed: int = 0) -> OneClassSplit:
    """Builds a one-class protocol from a class-labelled image dataset.

    Args:
      data: ImageData with class labels in y_train/y_test.
      cls: the distinguished class (normal for "one-normal", anomalous for
        "one-anomalous").
      protocol: one of ``CLASS_PROTOCOLS``.
      val_fraction: fraction of the normal training images held out as x_val.
      contamination: gamma in [0, 1): the fraction of the FINAL training set that
        is anomalous, drawn from the anomalous training images. With n normal
        training images, round(gamma * n / (1 - gamma)) anomalies are added.
      seed: makes the split deterministic.

    Returns:
      OneClassSplit; x_test/y_test cover the whole official test set.
    """
    if protocol == "industrial":
        raise ValueError(f"the 'industrial' protocol needs a good/defective dataset with masks (mvtec_transistor, "
                         f"magnetic_tile, load_mvtec), not the class-labelled {data.name or 'dataset'}; use one of "
                         f"{', '.join(CLASS_PROTOCOLS)}")
    if protocol not in CLASS_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(CLASS_PROTOCOLS)}")
    if not 0.0 <= contamination < 1.0:
        raise ValueError(f"contamination (gamma) must be in [0, 1), got {contamination}")
    cls = int(cls)
    for split, y in (("y_train", data.y_train), ("y_test", data.y_test)):
        if not np.any(y == cls):
            raise ValueError(f"class {cls} is not present in {data.name or 'data'}.{split} "
                             f"(classes: {np.unique(y).tolist()})")
    is_cls = data.y_train == cls
    if protocol == "one-normal":
        normal_mask, y_test = is_cls, (data.y_test != cls)
        normal = f"class {cls} ({_name(data, cls)})"
    else:
        normal_mask, y_test = ~is_cls, (data.y_test == cls)
        normal = f"all classes except {cls} ({_name(data, cls)})"
    if not np.any(y_test == 0) or not np.any(y_test == 1):
        raise ValueError(f"protocol {protocol!r} with class {cls} gives a test set with a single label")

    rng = np.random.default_rng(seed)
    train_idx, val_idx = _split_val(np.flatnonzero(normal_mask), val_fraction, rng)
    anom_pool = np.flatnonzero(~normal_mask)
    n_anom = int(round(contamination * len(train_idx) / (1.0 - contamination)))
    if n_anom > len(anom_pool):
        raise ValueError(f"contamination={contamination} needs {n_anom} anomalous training images but "
                         f"only {len(anom_pool)} exist; lower gamma")
    anom_idx = rng.choice(anom_pool, size=n_anom, replace=False)
    # Shuffle so that contaminating images are spread over the epoch rather than
    # sitting in one block at the end.
    all_idx = np.concatenate([train_idx, anom_idx])
    y_train = np.concatenate([np.zeros(len(train_idx), np.uint8), np.ones(n_anom, np.uint8)])
    order = rng.permutation(len(all_idx))
    all_idx, y_train = all_idx[order], y_train[order]
    return OneClassSplit(
        x_train=data.x_train[all_idx], y_train=y_train, x_val=data.x_train[np.sort(val_idx)],
        x_test=data.x_test, y_test=y_test.astype(np.uint8), masks_test=data.masks_test,
        protocol=protocol, normal=normal, cls=cls,
        contamination=float(n_anom / len(all_idx)))


def industrial_split(data: ImageData, val_fraction: float = 0.1, seed: int = 0) -> OneClassSplit:
    """Official good/defective protocol (MVTec AD, Magnetic Tile).

    x_train: good training images minus the held-out x_val (also good).
    x_test/y_test/masks_test: unchanged from ``data`` (1 = defective).
    """
    if np.any(data.y_train != 0):
        raise ValueError(f"industrial_split expects defect-free training images (y_train all 0); "
                         f"{data.name or 'data'} has {int(np.sum(data.y_train != 0))} non-zero labels. "
                         "Use one_class_split for class-labelled data.")
    train_idx, val_idx = _split_val(np.arange(len(data.x_train)), val_fraction, np.random.default_rng(seed))
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    return OneClassSplit(
        x_train=data.x_train[train_idx], y_train=np.zeros(len(train_idx), np.uint8),
        x_val=data.x_train[val_idx], x_test=data.x_test, y_test=np.asarray(data.y_test, np.uint8),
        masks_test=data.masks_test, protocol="industrial", normal="defect-free ('good') images",
        cls=None, contamination=0.0)


@dataclasses.dataclass(frozen=True, eq=False)
class TabularSplit:
    """Scaled tabular protocol arrays.

    Attributes:
      x_train: (N, d) float32 normal rows only, scaled.
      x_val: (V, d) float32 held-out normal training rows, scaled.
      x_test: (M, d) float32, scaled with the TRAINING statistics.
      y_test: (M,) uint8, 1 = anomaly.
      shift, scale: (d,) float32; scaled = (x - shift) / scale.
    """

    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    shift: np.ndarray
    scale: np.ndarray


_SCALINGS = ("minmax", "zscore", "none")


def tabular_split(x: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.5, val_fraction: float = 0.0,
                  scaling: str = "minmax", seed: int = 0) -> TabularSplit:
    """EGBAD/ALAD tabular protocol: random train/test split, train on normal rows only.

    Rows are split at random into train (1 - test_fraction) and test; anomalous
    rows (y == 1) are then dropped from train. Features are scaled with
    statistics of the remaining training rows only, so no test information
    leaks. For KDD Cup 99 pass ``y = kddcup99().y``, which already marks the
    "normal" traffic (is_attack == 0) as the anomaly, as in EGBAD/ALAD.

    Args:
      x: (n, d) features. y: (n,) 1 = anomaly.
      scaling: "minmax" -> training range maps to [0, 1]; "zscore" -> zero
        mean / unit variance; "none". Constant columns get scale 1.
    """
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"expected x (n, d) and y (n,); got {x.shape} and {y.shape}")
    if scaling not in _SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; valid: {', '.join(_SCALINGS)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test_idx, train_idx = np.sort(perm[:n_test]), perm[n_test:]
    train_idx, val_idx = _split_val(train_idx[y[train_idx] == 0], val_fraction, rng)
    x_tr = x[np.sort(train_idx)].astype(np.float64)  # statistics in float64 for stability
    if scaling == "minmax":
        shift, scale = x_tr.min(0), x_tr.max(0) - x_tr.min(0)
    elif scaling == "zscore":
        shift, scale = x_tr.mean(0), x_tr.std(0)
    else:
        shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
    scale = np.where(scale > 0, scale, 1.0)

    def f(a):
        return ((a - shift) / scale).astype(np.float32)

    return TabularSplit(f(x_tr), f(x[np.sort(val_idx)].astype(np.float64)), f(x[test_idx].astype(np.float64)),
                        y[test_idx].astype(np.uint8), shift.astype(np.float32), scale.astype(np.float32))


def image_split(data: ImageData, cls: int | None = None, protocol: str = "one-normal", val_fraction: float = 0.1,
                contamination: float = 0.0, seed: int = 0) -> OneClassSplit:
    """The protocol a dataset calls for: ``industrial`` for good/defective sets (MVTec,
    Magnetic Tile: ``cls`` must be None), else ``one_class_split`` around ``cls``."""
    industrial = data.masks_test is not None and not np.any(data.y_train)
    if industrial:
        if cls is not None or protocol not in ("industrial", "one-normal"):
            raise ValueError(f"{data.name or 'this dataset'} has a fixed good/defective split: it uses the "
                             "'industrial' protocol and takes no class")
        if contamination:
            raise ValueError("contamination is only available for class-labelled datasets")
        return industrial_split(data, val_fraction, seed)
    if cls is None:
        raise ValueError(f"{data.name or 'this dataset'} needs a class for protocol {protocol!r} "
                         f"(e.g. --normal-class 0)")
    return one_class_split(data, cls, protocol, val_fraction, contamination, seed)
