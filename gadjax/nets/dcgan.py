"""DCGAN-style generator, critic and encoder for any image size that is a multiple of 4.

The spatial plan: an image of side ``S`` is reached from a ``base = S / 2**n`` grid by
``n`` stride-2 (de)convolutions, with ``n >= 2`` as large as possible while
``base >= 4`` and ``2**n`` divides both sides.  28x28 -> base 7 (n=2), 32x32 -> 4 (n=3),
64x64 -> 4 (n=4).  Sides that are not a multiple of 4 raise a ``ValueError``.

The (transposed) convs are ``gadjax.nets.conv``'s: Flax's parameters and function, computed
as im2col / sub-pixel matmuls on CPU (``GADJAX_CONV_FORM=stock`` for Flax's ``lax`` convs).
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gadjax.nets.conv import Conv, ConvTranspose

NORMS = ("batch", "layer", "none")
PIXEL_NORM_EPS = 1e-8


def pixel_norm(z: jax.Array, eps: float = PIXEL_NORM_EPS) -> jax.Array:
    """``z / sqrt(mean(z^2) + eps)`` over the last axis (progressive GAN's PixelNorm, which
    Berg et al.'s generator applies to its latent input): G then sees only the direction
    of z, so ``G(c z) == G(z)`` for every ``c > 0`` (up to ``eps``)."""
    return z * jax.lax.rsqrt(jnp.mean(jnp.square(z), axis=-1, keepdims=True) + eps)


def spatial_plan(height: int, width: int) -> tuple[int, int, int]:
    """Return ``(n_stages, base_h, base_w)`` for an image of ``height x width``."""
    for side, label in ((height, "height"), (width, "width")):
        if not isinstance(side, int) or side < 8 or side % 4:
            raise ValueError(
                f"image {label} {side} is not supported: the DCGAN nets need sides that are "
                f"multiples of 4 and at least 8 (e.g. 28, 32, 64); resize or pad the images")
    n = 2
    while height % 2 ** (n + 1) == 0 and width % 2 ** (n + 1) == 0 and min(height, width) // 2 ** (n + 1) >= 4:
        n += 1
    return n, height // 2 ** n, width // 2 ** n


def _norm(kind: str, features: int, rngs: nnx.Rngs):
    if kind == "batch":
        return nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)
    if kind == "layer":
        # Per-sample normalisation over H, W, C: keeps the critic's output for one
        # image independent of the rest of the batch, which the gradient penalty needs.
        return nnx.LayerNorm(features, reduction_axes=(-3, -2, -1), feature_axes=-1, rngs=rngs)
    if kind == "none":
        return None
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def _apply_norm(norm, x, train: bool):
    if norm is None:
        return x
    if isinstance(norm, nnx.BatchNorm):
        return norm(x, use_running_average=not train)
    return norm(x)


class Generator(nnx.Module):
    """z (B, z_dim) -> images (B, H, W, C) in [-1, 1] (tanh) or [0, 1] (sigmoid).

    ``latent_norm``: ``pixel_norm`` z before the first layer (off by default)."""

    def __init__(self, image_shape: Sequence[int], z_dim: int = 100, ngf: int = 64, *,
                 norm: str = "batch", output: str = "tanh", latent_norm: bool = False, rngs: nnx.Rngs):
        height, width, channels = image_shape
        n, self.base_h, self.base_w = spatial_plan(height, width)
        if output not in ("tanh", "sigmoid"):
            raise ValueError(f"output must be 'tanh' or 'sigmoid', got {output!r}")
        self.output = output
        self.z_dim = z_dim
        self.latent_norm = latent_norm
        widths = [ngf * 2 ** i for i in reversed(range(n))]  # e.g. 512, 256, 128, 64
        self.base_features = widths[0]
        self.project = nnx.Linear(z_dim, self.base_h * self.base_w * widths[0], rngs=rngs)
        self.project_norm = _norm(norm, widths[0], rngs)
        self.ups = nnx.List([ConvTranspose(w_in, w_out, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)
                            for w_in, w_out in zip(widths[:-1], widths[1:])])
        self.up_norms = nnx.List([_norm(norm, w, rngs) for w in widths[1:]])
        self.to_image = ConvTranspose(widths[-1], channels, (4, 4), strides=(2, 2), padding="SAME", rngs=rngs)

    def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
        if z.ndim != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"generator expects z of shape (batch, {self.z_dim}), got {z.shape}")
        if self.latent_norm:
            z = pixel_norm(z)
        x = self.project(z).reshape(z.shape[0], self.base_h, self.base_w, self.base_features)
        x = nnx.relu(_apply_norm(self.project_norm, x, train))
        for up, norm in zip(self.ups, self.up_norms):
            x = nnx.relu(_apply_norm(norm, up(x), train))
        x = self.to_image(x)
        return jnp.tanh(x) if self.output == "tanh" else nnx.sigmoid(x)


class ConvTrunk(nnx.Module):
    """images (B, H, W, C) -> flattened features (B, F): ``n`` stride-2 convs, LeakyReLU 0.2.

    Shared by the critic and the encoder.  The first layer is never normalised (DCGAN).
    """

    def __init__(self, image_shape: Sequence[int], ndf: int = 64, *, norm: str = "layer",
                 kernel: int = 4, n_stages: int | None = None, rngs: nnx.Rngs):
        height, width, channels = image_shape
        n = n_stages or spatial_plan(height, width)[0]
        self.image_shape = tuple(image_shape)
        self.out_features = trunk_features(image_shape, ndf, n)
        widths = [ndf * 2 ** i for i in range(n)]
        ins = [channels] + widths[:-1]
        self.convs = nnx.List([Conv(a, b, (kernel, kernel), strides=(2, 2), padding="SAME", rngs=rngs)
                              for a, b in zip(ins, widths)])
        self.norms = nnx.List([None] + [_norm(norm, w, rngs) for w in widths[1:]])

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (batch, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")
        for conv, norm in zip(self.convs, self.norms):
            x = nnx.leaky_relu(_apply_norm(norm, conv(x), train), 0.2)
        return x.reshape(x.shape[0], -1)


def trunk_features(image_shape: Sequence[int], ndf: int, n_stages: int) -> int:
    """Flattened feature size after ``n_stages`` 'SAME' stride-2 convs (each ceil-halves)."""
    height, width = image_shape[0], image_shape[1]
    for _ in range(n_stages):
        height, width = -(-height // 2), -(-width // 2)
    return height * width * ndf * 2 ** (n_stages - 1)


class Critic(nnx.Module):
    """images (B, H, W, C) -> ``(logit (B,), features (B, F))``.

    ``features`` is the last conv layer, flattened: AnoGAN's discrimination loss and
    f-AnoGAN's izif loss match these.  Use ``norm='layer'`` or ``'none'`` with a
    gradient penalty (BatchNorm couples samples), ``'batch'`` for DCGAN/LSGAN.
    """

    def __init__(self, image_shape: Sequence[int], ndf: int = 64, *, norm: str = "layer", kernel: int = 4,
                 n_stages: int | None = None, rngs: nnx.Rngs):
        self.trunk = ConvTrunk(image_shape, ndf, norm=norm, kernel=kernel, n_stages=n_stages, rngs=rngs)
        self.head = nnx.Linear(self.trunk.out_features, 1, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False):
        features = self.trunk(x, train=train)
        return self.head(features)[:, 0], features


class Encoder(nnx.Module):
    """images (B, H, W, C) -> z (B, z_dim); ``output='tanh'`` bounds z to [-1, 1]."""

    def __init__(self, image_shape: Sequence[int], z_dim: int = 100, ndf: int = 64, *,
                 norm: str = "layer", output: str = "linear", kernel: int = 4, n_stages: int | None = None,
                 rngs: nnx.Rngs):
        if output not in ("linear", "tanh"):
            raise ValueError(f"encoder output must be 'linear' or 'tanh', got {output!r}")
        self.output = output
        self.trunk = ConvTrunk(image_shape, ndf, norm=norm, kernel=kernel, n_stages=n_stages, rngs=rngs)
        self.head = nnx.Linear(self.trunk.out_features, z_dim, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        z = self.head(self.trunk(x, train=train))
        return jnp.tanh(z) if self.output == "tanh" else z
