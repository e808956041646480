"""DED-GAN's generator: two encoder-decoder sub-networks in series.

    x --E1--> z1 --D1--> x1 --E2--> z2 --D2--> x2

The first sub-network encodes the image and reconstructs it; the second re-encodes
that reconstruction and decodes it again.  The anomaly score compares ``z1`` and
``z2``: trained on normal data only, ``D1`` can only draw normal-looking images, so for
an anomaly ``x1`` (and hence ``z2 = E2(x1)``) drifts away from what ``z1 = E1(x)`` says.

The pieces are the DCGAN ones (``gadjax.nets.dcgan``), not copies: each encoder is
``Encoder`` (a ``ConvTrunk`` plus a linear head to ``z_dim``; DCGAN layout, first conv
unnormalised, LeakyReLU 0.2), each decoder is ``Generator`` (BatchNorm + ReLU, tanh).
The discriminator is the DCGAN ``Critic`` -> ``(logit, features)``.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
from flax import nnx

from gadjax.nets.dcgan import Critic, Encoder, Generator
from gadjax.nets.pure import init_fn


class DEDOutput(NamedTuple):
    """Everything one generator pass produces (a pytree, so it crosses ``jit``).

    z1, z2: (B, z_dim) latent codes of ``x`` and of its first reconstruction.
    x1, x2: (B, H, W, C) first and second reconstructions, in [-1, 1].
    """

    z1: jax.Array
    x1: jax.Array
    z2: jax.Array
    x2: jax.Array


class EncoderDecoder(nnx.Module):
    """images (B, H, W, C) -> ``(z (B, z_dim), reconstruction (B, H, W, C))``."""

    def __init__(self, image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, norm: str = "batch",
                 rngs: nnx.Rngs):
        self.encoder = Encoder(image_shape, z_dim, width, norm=norm, output="linear", rngs=rngs)
        self.decoder = Generator(image_shape, z_dim, width, norm=norm, output="tanh", rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
        z = self.encoder(x, train=train)
        return z, self.decoder(z, train=train)


class DualEncoderDecoder(nnx.Module):
    """DED-GAN generator: ``first`` reconstructs ``x``, ``second`` re-encodes and
    reconstructs that reconstruction.  The two sub-networks share the architecture but
    not their parameters.  Returns a ``DEDOutput``."""

    def __init__(self, image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, norm: str = "batch",
                 rngs: nnx.Rngs):
        self.first = EncoderDecoder(image_shape, z_dim, width, norm=norm, rngs=rngs)
        self.second = EncoderDecoder(image_shape, z_dim, width, norm=norm, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> DEDOutput:
        z1, x1 = self.first(x, train=train)
        # The gradient flows through x1 into the first sub-network: the latent-consistency
        # term trains E1/D1 to produce reconstructions that E2 maps back onto z1.
        z2, x2 = self.second(x1, train=train)
        return DEDOutput(z1, x1, z2, x2)


def dedgan_nets(image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, generator_norm: str = "batch",
                discriminator_norm: str = "batch") -> dict:
    """``{"generator": (PureNet, init), "discriminator": (PureNet, init)}`` for DED-GAN.

    ``width`` is ngf = ndf.  ``discriminator_norm='batch'`` is the DCGAN discriminator
    the paper uses; 'layer' / 'none' are available for per-sample discriminators.
    """
    shape = tuple(int(s) for s in image_shape)
    return {
        "generator": init_fn(lambda rngs: DualEncoderDecoder(shape, z_dim, width, norm=generator_norm, rngs=rngs),
                             name="generator"),
        "discriminator": init_fn(lambda rngs: Critic(shape, width, norm=discriminator_norm, rngs=rngs),
                                 name="discriminator"),
    }
