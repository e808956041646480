"""Optional TensorFlow Datasets bridge.

``tensorflow_datasets`` is imported lazily, inside ``load_tfds``, so that
gadjax never pulls TensorFlow in unless this function is called. It runs with
``download=False``: the dataset must already be prepared in ``data_dir``
(e.g. by ``tfds build mnist`` on a machine with network access).
"""
from __future__ import annotations

import importlib
import os

import numpy as np

from gadjax.data.shipped import ImageData

_INSTALL_HINT = ("load_tfds needs tensorflow_datasets, which is not installed; "
                 "install it with `pip install gadjax[tfds]` (or `pip install tensorflow-datasets`)")


def _import_tfds():
    try:
        return importlib.import_module("tensorflow_datasets")
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e


def _to_numpy(split: dict, image_key: str, label_key: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    if image_key not in split or label_key not in split:
        raise KeyError(f"{where} has features {sorted(split)}; expected {image_key!r} and {label_key!r}")
    x = np.asarray(split[image_key])
    if x.ndim == 3:  # some builders drop the channel axis for grayscale
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{where}: {image_key!r} has shape {x.shape}, expected (N, H, W, C)")
    return x.astype(np.uint8, copy=False), np.asarray(split[label_key]).astype(np.uint8)


def load_tfds(name: str, data_dir: str | os.PathLike | None = None, *, train_split: str = "train",
              test_split: str = "test", image_key: str = "image", label_key: str = "label") -> ImageData:
    """Loads an already-prepared TFDS image-classification dataset as ``ImageData``.

    Args:
      name: TFDS name, e.g. "mnist", "fashion_mnist", "cifar10".
      data_dir: TFDS data directory (default: TFDS's own default, ~/tensorflow_datasets).
      train_split, test_split: split names.
      image_key, label_key: feature names in the TFDS examples.

    Returns:
      ImageData with uint8 NHWC images (N, H, W, C) and uint8 labels (N,).

    Raises:
      ImportError: tensorflow_datasets missing (the message says what to install).
    """
    tfds = _import_tfds()
    # batch_size=-1 returns each split as one dict of full tensors; download=False
    # keeps the no-network promise (TFDS raises if the data is not prepared).
    splits, info = tfds.load(name, split=[train_split, test_split], data_dir=data_dir, batch_size=-1,
                             download=False, with_info=True)
    train, test = (tfds.as_numpy(s) for s in splits)
    x_train, y_train = _to_numpy(train, image_key, label_key, f"{name}[{train_split}]")
    x_test, y_test = _to_numpy(test, image_key, label_key, f"{name}[{test_split}]")
    class_names = None
    try:
        class_names = tuple(info.features[label_key].names)
    except (AttributeError, KeyError, TypeError):
        pass  # not a ClassLabel feature: names are optional
    return ImageData(x_train, y_train, x_test, y_test, class_names=class_names, name=name)
