"""Multivariate time series: loading, scaling, sliding windows and back to time steps.

    series = load_series("plant.csv")                      # (N, F) float32, header optional
    scale = MinMaxScaling.fit(series[:n_train])            # training statistics only
    windows = sliding_windows(scale(series), window=30, stride=10)   # (W, 30, F), zero-copy
    ...                                                    # score windows, e.g. gadjax.models.madgan
    per_step = windows_to_steps(step_scores, stride=10, n_steps=len(series))   # (N,)

MAD-GAN (Li et al. 2019) cuts a series into windows of ``s_w`` steps every ``s_s``
steps (paper/code: 30 and 10), scores every time step of every window and maps the
scores back to the series by averaging, for each time step, the scores it received in
all the windows that contain it: :func:`windows_to_steps`.

Depends on numpy and jax only.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import pathlib
from typing import Sequence

import jax.numpy as jnp
import numpy as np

__all__ = ["load_series", "sliding_windows", "window_labels", "windows_to_steps", "MinMaxScaling",
           "synthetic_series"]


# ------------------------------------------------------------------------------ loading

def _finite_2d(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 1:
        a = a[:, None]  # a univariate series
    if a.ndim != 2:
        raise ValueError(f"{where}: a series must be 2-D (time steps, features) or 1-D, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{where}: empty series, shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{where}: a series must be real-valued and numeric, got dtype {a.dtype}")
    a = a.astype(np.float32)
    bad = ~np.isfinite(a)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(f"{where}: {int(bad.sum())} NaN/Inf values (missing or non-finite), first at time step "
                         f"{int(rows[0])}, column {int(cols[0])}; impute or drop them before windowing")
    return a


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _resolve_columns(columns, header: list[str] | None, width: int, where: str) -> list[int]:
    """Column names / indices -> indices into the file's columns, validated."""
    if columns is None:
        return list(range(width))
    idx = []
    for c in columns:
        if isinstance(c, (int, np.integer)):
            if not -width <= c < width:
                raise ValueError(f"{where}: column index {c} out of range for {width} columns")
            idx.append(int(c) % width)
        elif header is None:
            raise ValueError(f"{where}: column {c!r} given by name but there is no header")
        elif c not in header:
            raise ValueError(f"{where}: no column {c!r}; columns: {header}")
        else:
            idx.append(header.index(c))
    if not idx:
        raise ValueError(f"{where}: columns selects nothing")
    return idx


def _load_csv(path: pathlib.Path, delimiter: str, columns) -> np.ndarray:
    with open(path, newline="") as f:
        first = next((r for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)), None)
    if first is None:
        raise ValueError(f"{path}: empty file")
    header = None if all(_is_number(c) for c in first) else [c.strip() for c in first]   # header optional
    width = len(first)
    keep = _resolve_columns(columns, header, width, str(path))
    try:  # numpy's C parser: fast for large files
        return np.loadtxt(path, delimiter=delimiter, skiprows=int(header is not None), usecols=keep,
                          dtype=np.float64, ndmin=2)
    except ValueError:
        pass  # re-read in Python below to say exactly which cell is wrong
    with open(path, newline="") as f:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(f, delimiter=delimiter)) if any(c.strip() for c in r)]
    if header is not None:
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path}: header but no data rows")
    names = header or [str(i) for i in range(width)]
    out = np.empty((len(rows), len(keep)), np.float64)
    for i, (line, row) in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}: line {line} has {len(row)} fields, expected {width}")
        for j, k in enumerate(keep):
            cell = row[k].strip()
            if cell == "":
                out[i, j] = np.nan  # a missing value: reported with its position by _finite_2d
                continue
            try:
                out[i, j] = float(cell)
            except ValueError:
                raise ValueError(f"{path}: non-numeric value {cell!r} at line {line}, column {names[k]!r}; "
                                 f"select numeric columns with columns=[...]") from None
    return out


def load_series(path: str | os.PathLike, key: str | None = None, *, columns: Sequence[str | int] | None = None,
                delimiter: str = ",") -> np.ndarray:
    """Read a multivariate series as float32 (N time steps, F features).

    Formats by suffix:
      * ``.csv`` / ``.txt`` / ``.tsv``: numeric columns, header line optional (detected:
        a first line that is not all numbers is a header); ``columns`` picks columns by
        header name or index (e.g. to skip a timestamp column).
      * ``.npz``: the array ``key`` (may be omitted when the archive holds one array).
      * ``.npy``: the array itself.
    A 1-D array is a univariate series (N, 1).

    Raises:
      FileNotFoundError: no such file.
      KeyError: ``key`` missing from the npz (or needed and not given).
      ValueError: unknown suffix, non-numeric cells, ragged rows, wrong number of
        dimensions, empty data, or any NaN/Inf/missing value (with its position).
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no series file at {path}")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt", ".tsv"):
        a = _load_csv(path, "\t" if suffix == ".tsv" and delimiter == "," else delimiter, columns)
        return _finite_2d(a, str(path))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as d:
            names = list(d.keys())
            if key is None:
                if len(names) != 1:
                    raise KeyError(f"{path} holds arrays {names}: pass key= to choose one")
                key = names[0]
            if key not in names:
                raise KeyError(f"{path} has no array {key!r}; arrays: {names}")
            a = d[key]
    elif suffix == ".npy":
        a = np.load(path, allow_pickle=False)
    else:
        raise ValueError(f"{path}: unknown series format {suffix!r}; use .csv, .tsv, .txt, .npz or .npy")
    a = _finite_2d(np.asarray(a), f"{path}" + (f"[{key!r}]" if key else ""))
    return a[:, _resolve_columns(columns, None, a.shape[1], str(path))]


# ----------------------------------------------------------------------------- scaling

@dataclasses.dataclass(frozen=True)
class MinMaxScaling:
    """Per-feature affine map of the training range onto ``feature_range`` (MAD-GAN's
    generator ends in tanh: [-1, 1]).  Fit on training (normal) steps only; test values
    outside the training range map outside ``feature_range`` -- that is information,
    not an error.  Constant features get scale 1."""

    lo: np.ndarray
    span: np.ndarray
    feature_range: tuple[float, float] = (-1.0, 1.0)

    @classmethod
    def fit(cls, series, feature_range: tuple[float, float] = (-1.0, 1.0)) -> "MinMaxScaling":
        a = _finite_2d(np.asarray(series), "MinMaxScaling.fit")
        lo, hi = a.min(0).astype(np.float64), a.max(0).astype(np.float64)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        if not feature_range[0] < feature_range[1]:
            raise ValueError(f"feature_range must be increasing, got {feature_range}")
        return cls(lo, span, (float(feature_range[0]), float(feature_range[1])))

    def __call__(self, series) -> np.ndarray:
        a = np.asarray(series, np.float64)
        if a.shape[-1] != self.lo.shape[0]:
            raise ValueError(f"series has {a.shape[-1]} features, the scaling was fit on {self.lo.shape[0]}")
        a0, a1 = self.feature_range
        return (a0 + (a - self.lo) / self.span * (a1 - a0)).astype(np.float32)

    def inverse(self, scaled) -> np.ndarray:
        a0, a1 = self.feature_range
        return ((np.asarray(scaled, np.float64) - a0) / (a1 - a0) * self.span + self.lo).astype(np.float32)


# ----------------------------------------------------------------------------- windows

def _n_windows(n_steps: int, window: int, stride: int) -> int:
    return (n_steps - window) // stride + 1


def _check_window_args(window, stride):
    for name, v in (("window", window), ("stride", stride)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def sliding_windows(series, window: int, stride: int = 1) -> np.ndarray:
    """Windows ``series[s : s + window]`` for ``s = 0, stride, 2 * stride, ...``.

    Args:
      series: (N, F) array (a 1-D series is rejected: reshape it to (N, 1)).
      window, stride: positive integers, ``window <= N``.

    Returns:
      (W, window, F) with ``W = (N - window) // stride + 1``: a read-only strided VIEW
      of ``series`` (no copy; ``np.array(...)`` it to get a writable copy).  The last
      ``(N - window) % stride`` steps are in no window when the stride does not divide.
    """
    a = np.asarray(series)
    if a.ndim != 2:
        raise ValueError(f"series must be 2-D (time steps, features), got shape {a.shape}; "
                         f"reshape a univariate series with series.reshape(-1, 1)")
    _check_window_args(window, stride)
    if window > a.shape[0]:
        raise ValueError(f"window {window} is longer than the series ({a.shape[0]} steps)")
    view = np.lib.stride_tricks.sliding_window_view(a, window, axis=0)   # (N - window + 1, F, window)
    return np.swapaxes(view, 1, 2)[::stride]


def window_labels(labels, window: int, stride: int = 1) -> np.ndarray:
    """(W,) uint8 window labels from (N,) per-step labels: 1 when any step is anomalous."""
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (time steps,), got shape {y.shape}")
    return sliding_windows(y[:, None] != 0, window, stride).any(axis=(1, 2)).astype(np.uint8)


def windows_to_steps(values, stride: int, n_steps: int | None = None, window: int | None = None) -> jnp.ndarray:
    """Per-time-step scores from window scores: each step gets the MEAN of the values it
    received in every window that contains it (MAD-GAN's mapping back to the series).

    Args:
      values: (W, T) one value per time step of each window (MAD-GAN's DR-score of
        every step), or (W,) one value per window, with ``window`` = T given (each step
        then averages the scores of the windows covering it).  Windows start every
        ``stride`` steps from step 0, as :func:`sliding_windows` cuts them.
      stride, n_steps, window: static Python integers.  ``n_steps`` defaults to
        ``(W - 1) * stride + T``; steps that no window covers (the tail when the stride
        does not divide ``N - T``) get NaN.

    Returns:
      (n_steps,) float array.  Pure ``jnp``: one scatter-add for the whole series, usable
      under ``jit`` (with ``stride``, ``n_steps``, ``window`` static).
    """
    v = jnp.asarray(values)
    _check_window_args(1, stride)
    if v.ndim == 1:
        if window is None:
            raise ValueError("(W,) window scores need the window length: pass window=T")
        _check_window_args(window, 1)
        v = jnp.broadcast_to(v[:, None], (v.shape[0], window))
    elif v.ndim != 2:
        raise ValueError(f"values must be (W,) or (W, T) window scores, got shape {v.shape}")
    elif window is not None and window != v.shape[1]:
        raise ValueError(f"window={window} but values have {v.shape[1]} steps per window")
    w, t = v.shape
    if w < 1:
        raise ValueError("values hold no windows")
    covered = (w - 1) * stride + t
    n_steps = covered if n_steps is None else int(n_steps)
    if n_steps < covered:
        raise ValueError(f"n_steps={n_steps} is shorter than the {covered} steps the windows cover")
    idx = (jnp.arange(w)[:, None] * stride + jnp.arange(t)[None, :]).reshape(-1)
    dtype = v.dtype if jnp.issubdtype(v.dtype, jnp.floating) else jnp.float32
    sums = jnp.zeros((n_steps,), dtype).at[idx].add(v.reshape(-1).astype(dtype))
    counts = jnp.zeros((n_steps,), dtype).at[idx].add(1.0)
    return jnp.where(counts > 0, sums / jnp.where(counts > 0, counts, 1.0), jnp.nan)


# ----------------------------------------------------------------------- synthetic data

def synthetic_series(n_steps: int = 4000, n_features: int = 6, *, n_anomalies: int = 6, anomaly_start: int = 0,
                     noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A generated multivariate series with labelled anomalies, for tests and demos.

    Channels are sinusoids driven by two shared latent oscillations (so they are
    correlated) plus Gaussian noise.  After step ``anomaly_start``, ``n_anomalies``
    non-overlapping segments are corrupted, cycling through three kinds: a spike
    (a few steps of one channel jump by 2-3 amplitudes), a level shift of one channel,
    and a broken correlation (one channel swaps to an unrelated phase while keeping
    its range).

    Returns:
      series (n_steps, n_features) float32, labels (n_steps,) uint8 (1 = anomalous step).
    """
    if n_features < 2:
        raise ValueError("synthetic_series needs n_features >= 2 (correlated channels)")
    rng = np.random.default_rng(seed)
    t = np.arange(n_steps, dtype=np.float64)
    base = np.stack([np.sin(2 * np.pi * t / 50.0), np.sin(2 * np.pi * t / 23.0 + 1.0)], axis=1)   # (N, 2)
    mix = rng.uniform(-1.0, 1.0, size=(2, n_features))
    mix /= np.abs(mix).sum(0, keepdims=True)        # every channel in about [-1, 1]
    x = base @ mix + noise * rng.standard_normal((n_steps, n_features))
    y = np.zeros(n_steps, np.uint8)
    if n_anomalies:
        seg = 20                                     # length of level shifts / broken correlations
        slots = np.arange(anomaly_start, n_steps - seg, 3 * seg)   # non-overlapping, gaps between
        if len(slots) < n_anomalies:
            raise ValueError(f"room for only {len(slots)} anomalies after step {anomaly_start}")
        for k, s in enumerate(np.sort(rng.choice(slots, size=n_anomalies, replace=False))):
            ch = int(rng.integers(n_features))
            kind = k % 3
            if kind == 0:    # spike: a few steps jump far out of the channel's range
                length = int(rng.integers(2, 5))
                x[s:s + length, ch] += rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 3.0)
                y[s:s + length] = 1
            elif kind == 1:  # level shift
                x[s:s + seg, ch] += rng.choice([-1.0, 1.0]) * 0.8
                y[s:s + seg] = 1
            else:            # broken correlation: the channel's range, an unrelated rhythm
                amp = np.abs(x[:, ch]).max() * 0.9
                x[s:s + seg, ch] = amp * np.sin(2 * np.pi * t[s:s + seg] / 7.0) + noise * rng.standard_normal(seg)
                y[s:s + seg] = 1
    return x.astype(np.float32), y
