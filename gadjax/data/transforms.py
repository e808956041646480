"""Host-side array transforms, input validation and a stateless batch sampler.

Everything here is plain numpy: it runs before arrays are handed to JAX.
"""
from __future__ import annotations

import numpy as np

_RANGES = ("tanh", "sigmoid")


def to_float(x: np.ndarray, out_range: str = "tanh") -> np.ndarray:
    """Scales uint8 images to float32.

    Args:
      x: (..., H, W, C) uint8 in [0, 255].
      out_range: "tanh" -> [-1, 1] (DCGAN generators end in tanh), or
        "sigmoid" -> [0, 1].

    Returns:
      float32 array of the same shape.
    """
    if out_range not in _RANGES:
        raise ValueError(f"out_range must be one of {_RANGES}, got {out_range!r}")
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 images in [0, 255], got dtype {x.dtype}")
    y = x.astype(np.float32) / np.float32(255.0)
    return y * np.float32(2.0) - np.float32(1.0) if out_range == "tanh" else y


def _check_finite(x, dtype: np.dtype, name: str) -> None:
    if np.issubdtype(dtype, np.inexact):
        a = np.asarray(x)
        n_nan, n_inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
        if n_nan or n_inf:
            raise ValueError(f"{name} contains {n_nan} NaN and {n_inf} Inf values (of {a.size})")


def check_images(x, *, name: str = "x", expected_hw: tuple[int, int] | None = None,
                 channels: int | None = None):
    """Validates an image batch and returns it unchanged.

    Args:
      x: (N, H, W, C) array (numpy or jax).
      name: how to call the array in error messages.
      expected_hw: required (H, W), if any.
      channels: required C, if any.

    Raises:
      ValueError: not 4-D NHWC, wrong size or channel count, NaN/Inf present.
      TypeError: non-numeric dtype.
    """
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 4:
        hint = " (add a channel axis: x[..., None])" if len(shape) == 3 else ""
        raise ValueError(f"{name} must be a 4-D NHWC image batch (N, H, W, C); got shape {shape}{hint}")
    if shape[0] == 0:
        raise ValueError(f"{name} holds no images (shape {shape})")
    dtype = np.dtype(getattr(x, "dtype", np.asarray(x).dtype))
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise TypeError(f"{name} must have a numeric dtype; got {dtype}")
    if expected_hw is not None and shape[1:3] != tuple(expected_hw):
        raise ValueError(f"{name} has images of size {shape[1]}x{shape[2]} (shape {shape}); "
                         f"expected {expected_hw[0]}x{expected_hw[1]}")
    if channels is not None and shape[3] != channels:
        hint = " (is the array NCHW instead of NHWC?)" if shape[1] == channels else ""
        raise ValueError(f"{name} has {shape[3]} channels (shape {shape}); expected {channels}{hint}")
    _check_finite(x, dtype, name)
    return x


def check_samples(x, sample_shape: tuple[int, ...] | None, *, name: str = "x"):
    """Validates a batch of samples of any kind and returns it unchanged.

    Images (``len(sample_shape) == 3``) get ``check_images``'s messages; tabular rows
    (D,) and time-series windows (T, F) get the same checks: batch axis present,
    numeric dtype, matching sample shape, no NaN/Inf.
    """
    if sample_shape is not None and len(sample_shape) == 3:
        return check_images(x, name=name, expected_hw=tuple(sample_shape[:2]), channels=sample_shape[2])
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if sample_shape is not None and shape[1:] != tuple(sample_shape):
        raise ValueError(f"{name} must have shape (N, {', '.join(map(str, sample_shape))}); got {shape}")
    if len(shape) < 2:
        raise ValueError(f"{name} must be a batch (N, ...) of samples; got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{name} holds no samples (shape {shape})")
    dtype = np.dtype(getattr(x, "dtype", np.asarray(x).dtype))
    if not np.issubdtype(dtype, np.number):
        raise TypeError(f"{name} must have a numeric dtype; got {dtype}")
    _check_finite(x, dtype, name)
    return x


def pad_to(x: np.ndarray, size: int, value=0) -> np.ndarray:
    """Pads (N, H, W, C) images symmetrically to (N, size, size, C).

    Used for 28x28 MNIST into 32x32 DCGAN stacks that halve the size 4-5 times.
    Pad before ``to_float`` so that ``value=0`` means black.
    """
    x = np.asarray(x)
    check_images(x, name="pad_to input")
    h, w = x.shape[1:3]
    if h > size or w > size:
        raise ValueError(f"cannot pad {h}x{w} images to the smaller size {size}x{size}")
    ph, pw = size - h, size - w
    return np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)), constant_values=value)


class BatchSampler:
    """Stateless shuffled minibatch indices: a pure function of (seed, step).

    Sample positions ``step * batch_size + j`` run through a sequence of epochs;
    position p belongs to epoch ``p // n`` and takes element ``p % n`` of that
    epoch's permutation, drawn from ``np.random.default_rng([seed, epoch])``.
    Every example is seen exactly once per epoch, and a run resumed at step s
    sees exactly the batches it would have seen without the interruption: there
    is no iterator state to checkpoint. A batch that straddles an epoch
    boundary mixes the tail of one permutation with the head of the next.

    Example:
      >>> s = BatchSampler(n=1000, batch_size=64, seed=0)
      >>> s.indices(0).shape
      (64,)
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        if n <= 0 or batch_size <= 0:
            raise ValueError(f"need n > 0 and batch_size > 0; got n={n}, batch_size={batch_size}")
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} is larger than the dataset (n={n})")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self._perms: dict[int, np.ndarray] = {}  # small cache; results never depend on it

    def __repr__(self):
        return f"BatchSampler(n={self.n}, batch_size={self.batch_size}, seed={self.seed})"

    @property
    def steps_per_epoch(self) -> float:
        return self.n / self.batch_size

    def permutation(self, epoch: int) -> np.ndarray:
        """(n,) int64 permutation used in ``epoch``."""
        perm = self._perms.get(epoch)
        if perm is None:
            perm = np.random.default_rng([self.seed, int(epoch)]).permutation(self.n)
            if len(self._perms) >= 4:  # only the current and next epoch are ever hot
                self._perms.pop(next(iter(self._perms)))
            self._perms[epoch] = perm
        return perm

    def _take(self, start: int, count: int) -> np.ndarray:
        pos = np.arange(start, start + count, dtype=np.int64)
        epochs, offsets = np.divmod(pos, self.n)
        out = np.empty(count, np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self.permutation(int(e))[offsets[sel]]
        return out

    def indices(self, step: int) -> np.ndarray:
        """(batch_size,) int64 example indices of batch ``step`` (step >= 0)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return self._take(int(step) * self.batch_size, self.batch_size)

    def batches(self, step: int, k: int) -> np.ndarray:
        """(k, batch_size) indices for k sub-batches of outer step ``step``.

        Sub-batch i is global batch ``step * k + i``, e.g. the n_critic critic
        updates of one WGAN generator step; with k fixed, each step is still a
        pure function of (seed, step).
        """
        if step < 0 or k <= 0:
            raise ValueError(f"need step >= 0 and k > 0; got step={step}, k={k}")
        return self._take(int(step) * k * self.batch_size, k * self.batch_size).reshape(k, self.batch_size)
