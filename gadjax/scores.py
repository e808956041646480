"""Anomaly scores for GAN-based detectors, as pure JAX functions.

Every function is pure, has no Python-side state and maps a batch to one
score per sample, ``(B, ...) -> (B,)``: sample scores reduce over every axis
but the leading one (H, W, C for images, D for tabular rows, T, F for
time-series windows); feature / latent scores over the last axis.  They work
under ``jax.jit`` and ``jax.vmap`` (e.g. over a stack of batches) unchanged.

Higher score = more anomalous.

References:
  * AnoGAN: Schlegl et al., "Unsupervised Anomaly Detection with Generative
    Adversarial Networks to Guide Marker Discovery", IPMI 2017.
  * f-AnoGAN: Schlegl et al., "f-AnoGAN: Fast unsupervised anomaly detection
    with generative adversarial networks", MedIA 2019.
  * Berg, Ahlberg and Felsberg, "Unsupervised Adversarial Learning of Anomaly
    Detection in the Wild", ECAI 2020: the min-max normalised residual
    combined with the distance of the latent code to the origin.
"""
from __future__ import annotations

import math
from typing import Callable, Dict

import jax
import jax.numpy as jnp

__all__ = [
    "l1_residual",
    "mse_residual",
    "feature_residual",
    "feature_l1",
    "minmax_normalise",
    "normalised_residual",
    "origin_distance",
    "berg_score",
    "standardised_berg_score",
    "fanogan_score",
    "anogan_loss",
    "anomaly_map",
    "gaussian_kernel1d",
    "SCORES",
]

_FEAT_AXES = -1  # F (or Z)


def _sample_axes(x: jax.Array) -> tuple[int, ...]:
    """Every axis but the leading batch axis: (H, W, C) for images, (D,) for tabular
    rows, (T, F) for time-series windows, so one score serves every data type."""
    return tuple(range(1, x.ndim))


def l1_residual(x: jax.Array, x_rec: jax.Array) -> jax.Array:
    """AnoGAN residual loss: ``sum |x - x_rec|`` over H, W, C.

    Args:
      x, x_rec: (B, H, W, C) images and their reconstructions G(z).

    Returns:
      (B,) per-sample residuals.
    """
    return jnp.sum(jnp.abs(x - x_rec), axis=_sample_axes(x))


def mse_residual(x: jax.Array, x_rec: jax.Array) -> jax.Array:
    """f-AnoGAN image residual: ``mean (x - x_rec)^2`` over H, W, C.

    Args:
      x, x_rec: (B, H, W, C).

    Returns:
      (B,).
    """
    return jnp.mean(jnp.square(x - x_rec), axis=_sample_axes(x))


def feature_residual(f: jax.Array, f_rec: jax.Array) -> jax.Array:
    """f-AnoGAN feature residual (izi_f): ``mean (f - f_rec)^2`` over features.

    Args:
      f, f_rec: (B, F) intermediate critic/discriminator features of ``x`` and
        of its reconstruction.

    Returns:
      (B,).
    """
    return jnp.mean(jnp.square(f - f_rec), axis=_FEAT_AXES)


def feature_l1(f: jax.Array, f_rec: jax.Array) -> jax.Array:
    """AnoGAN discrimination loss (feature matching): ``sum |f - f_rec|``.

    Args:
      f, f_rec: (B, F).

    Returns:
      (B,).
    """
    return jnp.sum(jnp.abs(f - f_rec), axis=_FEAT_AXES)


def minmax_normalise(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rescales each image to [0, 1] over its own H, W, C.

    A constant image (max - min <= eps) maps to all zeros. The division is
    guarded with a double ``where`` so that neither the value nor its gradient
    is NaN for constant images (a single ``where`` would still back-propagate
    the 0/0 of the untaken branch).

    Args:
      x: (B, H, W, C).

    Returns:
      (B, H, W, C) in [0, 1].
    """
    lo = jnp.min(x, axis=_sample_axes(x), keepdims=True)
    hi = jnp.max(x, axis=_sample_axes(x), keepdims=True)
    rng = hi - lo
    ok = rng > eps
    safe = jnp.where(ok, rng, jnp.ones_like(rng))
    return jnp.where(ok, (x - lo) / safe, jnp.zeros_like(x))


def normalised_residual(x: jax.Array, x_rec: jax.Array) -> jax.Array:
    """Berg et al. residual: ``mean |minmax(x) - minmax(x_rec)|`` over H, W, C.

    Normalising both images first makes the score insensitive to global
    brightness / contrast shifts of the reconstruction.

    Args:
      x, x_rec: (B, H, W, C).

    Returns:
      (B,) in [0, 1].
    """
    return jnp.mean(jnp.abs(minmax_normalise(x) - minmax_normalise(x_rec)), axis=_sample_axes(x))


def origin_distance(z: jax.Array) -> jax.Array:
    """L2 norm of the latent code, ``||z||_2`` over the last axis.

    Under a N(0, I) prior, codes of anomalies found by the encoder / latent
    search tend to lie far from the origin.

    Args:
      z: (B, Z) latent codes (reshape (B, 1, 1, Z) codes to (B, Z) first).

    Returns:
      (B,).
    """
    # sqrt(sum z^2) with a safe gradient at z = 0 (d sqrt/dx is inf at 0).
    sq = jnp.sum(jnp.square(z), axis=_FEAT_AXES)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def berg_score(x: jax.Array, x_rec: jax.Array, z: jax.Array, lam: float = 0.05) -> jax.Array:
    """``lam * normalised_residual(x, x_rec) + (1 - lam) * origin_distance(z)``.

    Args:
      x, x_rec: (B, H, W, C).
      z: (B, Z) latent code of ``x``.
      lam: weight of the image term, in [0, 1].

    Returns:
      (B,).
    """
    return lam * normalised_residual(x, x_rec) + (1.0 - lam) * origin_distance(z)


def standardised_berg_score(residual: jax.Array, origin: jax.Array, stats: tuple[float, float, float, float],
                            lam: float = 0.05) -> jax.Array:
    """``lam * (residual - m_r) / s_r + (1 - lam) * (origin - m_o) / s_o``.

    The Berg score with each term standardised by its mean and standard deviation on
    normal data, so that ``lam`` weighs the two terms as it says: the raw normalised
    residual lies in [0, 1] while ``||z||`` grows with sqrt(z_dim), so in
    :func:`berg_score` the origin term outweighs ``lam``.

    Args:
      residual: (B,) :func:`normalised_residual` of the samples.
      origin: (B,) :func:`origin_distance` of their latent codes.
      stats: ``(m_r, s_r, m_o, s_o)``: mean and standard deviation (> 0) of the residual
        and of the origin distance on normal data.
      lam: weight of the residual term, in [0, 1].

    Returns:
      (B,).
    """
    m_r, s_r, m_o, s_o = stats
    return lam * ((residual - m_r) / s_r) + (1.0 - lam) * ((origin - m_o) / s_o)


def fanogan_score(x: jax.Array, x_rec: jax.Array, f: jax.Array, f_rec: jax.Array,
                  kappa: float = 1.0) -> jax.Array:
    """f-AnoGAN anomaly score ``A(x) = A_R(x) + kappa * A_D(x)``.

    ``A_R`` is :func:`mse_residual` of the image, ``A_D`` is
    :func:`feature_residual` of the critic features.

    Args:
      x, x_rec: (B, H, W, C); ``x_rec = G(E(x))``.
      f, f_rec: (B, F) critic features of ``x`` and ``x_rec``.
      kappa: weight of the feature term.

    Returns:
      (B,).
    """
    return mse_residual(x, x_rec) + kappa * feature_residual(f, f_rec)


def anogan_loss(x: jax.Array, x_rec: jax.Array, f: jax.Array, f_rec: jax.Array,
                lam: float = 0.1) -> jax.Array:
    """AnoGAN mapping loss / anomaly score ``(1 - lam) * R(x) + lam * D(x)``.

    ``R`` is :func:`l1_residual`, ``D`` the feature-matching
    :func:`feature_l1`. Used both as the objective of the latent search and,
    at its optimum, as the anomaly score.

    Args:
      x, x_rec: (B, H, W, C); ``x_rec = G(z)``.
      f, f_rec: (B, F) discriminator features of ``x`` and ``G(z)``.
      lam: weight of the discrimination term, in [0, 1].

    Returns:
      (B,).
    """
    return (1.0 - lam) * l1_residual(x, x_rec) + lam * feature_l1(f, f_rec)


def gaussian_kernel1d(sigma: float) -> jax.Array:
    """Normalised 1-D Gaussian of radius ``ceil(3 * sigma)``.

    Args:
      sigma: standard deviation in pixels, a Python float > 0.

    Returns:
      (2 * radius + 1,) float32 kernel summing to 1.
    """
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    k = jnp.exp(-0.5 * jnp.square(t / sigma))
    return k / jnp.sum(k)


def anomaly_map(x: jax.Array, x_rec: jax.Array, sigma: float = 0.0) -> jax.Array:
    """Per-pixel anomaly map ``mean_C |x - x_rec|``, optionally Gaussian-smoothed.

    Smoothing uses a separable Gaussian (two 1-D convolutions via
    ``lax.conv_general_dilated``) after *symmetric* padding (edge pixel
    repeated, ``d c b a | a b c d | d c b a``; the same as
    ``scipy.ndimage.gaussian_filter``'s default ``mode='reflect'``). Unlike
    zero padding, this keeps a constant map constant, so border pixels are not
    darkened.

    Args:
      x, x_rec: (B, H, W, C) images.
      sigma: Gaussian standard deviation in pixels; ``0`` means no smoothing.
        Must be a static Python number (the kernel size depends on it): under
        ``jax.jit`` pass it via ``static_argnames=("sigma",)``.

    Returns:
      (B, H, W) maps (any extra leading axes are preserved).
    """
    m = jnp.mean(jnp.abs(x - x_rec), axis=-1)
    sigma = float(sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}.")
    if sigma == 0.0:
        return m
    k = gaussian_kernel1d(sigma).astype(m.dtype)
    r = (k.shape[0] - 1) // 2
    lead, (h, w) = m.shape[:-2], m.shape[-2:]
    flat = m.reshape((-1, 1, h, w))  # (N, C=1, H, W)
    # numpy 'symmetric' padding reflects repeatedly, so radius > H is fine.
    flat = jnp.pad(flat, ((0, 0), (0, 0), (r, r), (r, r)), mode="symmetric")
    dn = ("NCHW", "OIHW", "NCHW")
    flat = jax.lax.conv_general_dilated(flat, k.reshape(1, 1, -1, 1), (1, 1), "VALID",
                                        dimension_numbers=dn)
    flat = jax.lax.conv_general_dilated(flat, k.reshape(1, 1, 1, -1), (1, 1), "VALID",
                                        dimension_numbers=dn)
    return flat.reshape(lead + (h, w))


# Name -> score function. All return per-sample scores of shape (B,); the
# argument names (x, x_rec, f, f_rec, z) say which arrays each one needs.
SCORES: Dict[str, Callable[..., jax.Array]] = {
    "l1_residual": l1_residual,
    "mse_residual": mse_residual,
    "feature_residual": feature_residual,
    "feature_l1": feature_l1,
    "normalised_residual": normalised_residual,
    "origin_distance": origin_distance,
    "berg_score": berg_score,
    "fanogan_score": fanogan_score,
    "anogan_loss": anogan_loss,
}
