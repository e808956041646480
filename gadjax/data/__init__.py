"""Datasets, file-format readers, evaluation protocols and batch sampling.

This package depends on numpy, the standard library and Pillow only (plus
tensorflow_datasets, imported lazily by ``load_tfds``); it never downloads.

    from gadjax import data
    ds = data.load("mnist")                       # ImageData, uint8 NHWC
    split = data.one_class_split(ds, cls=0, protocol="one-normal")
    sampler = data.BatchSampler(len(split.x_train), batch_size=64, seed=0)
    x = data.to_float(split.x_train[sampler.indices(step)])
"""
from __future__ import annotations

import functools
import os
from typing import Callable

from gadjax.data.formats import load_cifar10, load_mnist_idx, load_mvtec, read_idx
from gadjax.data.shipped import (
    ENV_VAR,
    ODDS_NAMES,
    ImageData,
    TabularData,
    clear_cache,
    data_dir,
    fashion_mnist,
    is_attack,
    kddcup99,
    magnetic_tile,
    mnist,
    mvtec_transistor,
    odds,
)
from gadjax.data.splits import (
    PROTOCOLS,
    CLASS_PROTOCOLS,
    OneClassSplit,
    TabularSplit,
    image_split,
    industrial_split,
    one_class_split,
    tabular_split,
)
from gadjax.data.tfds import load_tfds
from gadjax.data.transforms import BatchSampler, check_images, check_samples, pad_to, to_float

# name -> loader(data_dir=None); every entry reads a shipped npz file.
DATASETS: dict[str, Callable[..., ImageData | TabularData]] = {
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "mvtec_transistor": mvtec_transistor,
    "magnetic_tile": magnetic_tile,
    "kddcup99": kddcup99,
    **{f"odds_{n}": functools.partial(odds, n) for n in ODDS_NAMES},
}

IMAGE_DATASETS = ("mnist", "fashion_mnist", "mvtec_transistor", "magnetic_tile")


def load(name: str, data_dir: str | os.PathLike | None = None, **kwargs) -> ImageData | TabularData:
    """Loads a shipped dataset by registry name (see ``DATASETS``).

    Raises:
      KeyError: unknown name; the message lists the known ones.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
    return loader(data_dir=data_dir, **kwargs)


__all__ = [
    "CLASS_PROTOCOLS", "DATASETS", "image_split", "ENV_VAR", "IMAGE_DATASETS", "ODDS_NAMES", "PROTOCOLS",
    "BatchSampler", "ImageData", "OneClassSplit", "TabularData", "TabularSplit",
    "check_images", "check_samples", "clear_cache", "data_dir", "fashion_mnist", "industrial_split", "is_attack",
    "kddcup99", "load", "load_cifar10", "load_mnist_idx", "load_mvtec", "load_tfds", "magnetic_tile",
    "mnist", "mvtec_transistor", "odds", "one_class_split", "pad_to", "read_idx", "tabular_split",
    "to_float",
]
