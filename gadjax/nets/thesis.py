"""The thesis networks (Berg et al. 2020; after Gulrajani et al.'s WGAN-GP MNIST model).

Generator: z (B, 128) -> FC to 4x4x(4 ngf) -> ReLU -> deconv 5x5/2 to 8x8x(2 ngf), cropped
to 7x7 -> deconv 5x5/2 to 14x14x(ngf) -> deconv 5x5/2 to 28x28xC -> sigmoid, so images
live in [0, 1].  ``latent_norm`` (off by default) pixel-normalises z first, as Berg et al.'s
progressive-GAN generator does (``gadjax.nets.dcgan.pixel_norm``).  Critic and encoder: three 5x5 stride-2 convs (ndf, 2 ndf, 4 ndf;
28 -> 14 -> 7 -> 4), LeakyReLU, no normalisation, then one FC layer.
"""
from __future__ import annotations

import jax
from flax import nnx

from gadjax.nets.conv import ConvTranspose
from gadjax.nets.dcgan import Critic, Encoder, pixel_norm

THESIS_SHAPE = (28, 28, 1)


def _check_shape(image_shape):
    if tuple(image_shape[:2]) != THESIS_SHAPE[:2]:
        raise ValueError(f"the thesis networks are built for 28x28 images, got {tuple(image_shape)}; "
                         f"use net='dcgan' for other sizes")


class ThesisGenerator(nnx.Module):
    """z (B, z_dim) -> images (B, 28, 28, C) in [0, 1]; ``latent_norm``: ``pixel_norm`` z first."""

    def __init__(self, image_shape=THESIS_SHAPE, z_dim: int = 128, ngf: int = 64, *, latent_norm: bool = False,
                 rngs: nnx.Rngs):
        _check_shape(image_shape)
        self.z_dim, self.ngf, self.latent_norm = z_dim, ngf, latent_norm
        self.project = nnx.Linear(z_dim, 4 * 4 * 4 * ngf, rngs=rngs)
        self.up1 = ConvTranspose(4 * ngf, 2 * ngf, (5, 5), strides=(2, 2), padding="SAME", rngs=rngs)
        self.up2 = ConvTranspose(2 * ngf, ngf, (5, 5), strides=(2, 2), padding="SAME", rngs=rngs)
        self.up3 = ConvTranspose(ngf, image_shape[2], (5, 5), strides=(2, 2), padding="SAME", rngs=rngs)

    def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no BatchNorm: the WGAN-GP thesis generator has none
        if z.ndim != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"generator expects z of shape (batch, {self.z_dim}), got {z.shape}")
        if self.latent_norm:
            z = pixel_norm(z)
        x = nnx.relu(self.project(z)).reshape(z.shape[0], 4, 4, 4 * self.ngf)
        # 8x8 -> 7x7 so that two doublings reach 28 (``used``: the AnoGAN search's per-phase form
        # skips the cropped row and column; training computes the same 8x8 and crops as before)
        x = nnx.relu(self.up1(x, used=(7, 7)))[:, :7, :7, :]
        x = nnx.relu(self.up2(x))
        return nnx.sigmoid(self.up3(x))


def thesis_critic(image_shape=THESIS_SHAPE, ndf: int = 64, *, rngs: nnx.Rngs) -> Critic:
    """Three 5x5/2 convs + FC; returns ``(logit, features)`` like every gadjax critic."""
    _check_shape(image_shape)
    return Critic(image_shape, ndf, norm="none", kernel=5, n_stages=3, rngs=rngs)


def thesis_encoder(image_shape=THESIS_SHAPE, z_dim: int = 128, ndf: int = 64, *, rngs: nnx.Rngs) -> Encoder:
    """The critic's conv stack with an FC head to ``z_dim`` (linear output, z ~ N(0, I))."""
    _check_shape(image_shape)
    return Encoder(image_shape, z_dim, ndf, norm="none", kernel=5, n_stages=3, rngs=rngs)
