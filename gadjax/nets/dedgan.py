"""DED-GAN's generator: two encoder-decoder sub-networks in series (Liu et al., 2021).

    x --E1--> z1 --D1--> x1 --E2--> z2 --D2--> x2

The first sub-network encodes the image and reconstructs it; the second re-encodes
that reconstruction and decodes it again.  The anomaly score compares ``z1`` and
``z2``: trained on normal data only, ``D1`` can only draw normal-looking images, so for
an anomaly ``x1`` (and hence ``z2 = E2(x1)``) drifts away from what ``z1 = E1(x)`` says.

The pieces are the DCGAN ones, not copies: each encoder is ``dcgan.Encoder`` (a
``ConvTrunk`` plus a linear head to ``z_dim``: first conv unnormalised, then norm +
LeakyReLU 0.2), each decoder is ``dcgan.Generator`` (norm + ReLU, tanh output).  The
discriminator is GANomaly's DCGAN ``Critic`` -> ``(logit, features)``, and both nets can
take the GANomaly / DCGAN reference initialisation (``init='normal'``: N(0, 0.02)).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
from flax import nnx

from gadjax.nets.dcgan import Encoder, Generator
from gadjax.nets.ganomaly import check_net_options, discriminator, pure_net
from gadjax.nets.pure import PureNet


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
    reconstructs that reconstruction.  Same architecture, separate parameters.
    images (B, H, W, C) -> ``DEDOutput``."""

    def __init__(self, image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, norm: str = "batch",
                 rngs: nnx.Rngs):
        self.first = EncoderDecoder(image_shape, z_dim, width, norm=norm, rngs=rngs)
        self.second = EncoderDecoder(image_shape, z_dim, width, norm=norm, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> DEDOutput:
        z1, x1 = self.first(x, train=train)
        # No stop-gradient on x1: the latent-consistency loss also trains the first
        # sub-network to produce reconstructions that E2 maps back onto z1.
        z2, x2 = self.second(x1, train=train)
        return DEDOutput(z1, x1, z2, x2)


def dedgan_nets(image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, norm: str = "batch",
                init: str = "normal") -> dict[str, tuple[PureNet, Callable]]:
    """``{'generator': (PureNet, init), 'discriminator': (PureNet, init)}`` for ``PlayerTrainer``.

    ``width`` is ngf = ndf; ``norm`` applies to every network (BatchNorm: the DCGAN
    discriminator and GANomaly-style sub-networks); ``init`` as ``gadjax.nets.ganomaly``.
    """
    check_net_options(norm, init)
    if z_dim < 1 or width < 1:
        raise ValueError(f"z_dim and width must be >= 1, got z_dim={z_dim}, width={width}")
    shape = tuple(int(s) for s in image_shape)
    return {
        "generator": pure_net(lambda rngs: DualEncoderDecoder(shape, z_dim, width, norm=norm, rngs=rngs),
                              "generator", init),
        "discriminator": pure_net(lambda rngs: discriminator(shape, width, norm=norm, rngs=rngs),
                                  "discriminator", init),
    }


__all__ = ["DEDOutput", "DualEncoderDecoder", "EncoderDecoder", "dedgan_nets"]
