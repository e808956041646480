"""GANomaly's encoder-decoder-encoder generator and DCGAN discriminator (Akcay et al., ACCV 2018).

The generator ``G`` is three DCGAN sub-networks trained together:

    x (B, H, W, C) --G_E--> z (B, z_dim) --G_D--> x_hat (B, H, W, C) --E--> z_hat (B, z_dim)

``G_E`` and ``E`` are the DCGAN ``Encoder`` (a ``ConvTrunk`` plus a linear head, the
reference's final 4x4 'valid' conv: both map the last feature map to z), ``G_D`` is the
DCGAN ``Generator``; every layer but the first conv is batch-normalised, as in the paper.
The discriminator is the DCGAN ``Critic`` -> ``(logit, features)``.

``dcgan_normal_init`` re-draws weights the way the reference code does (``weights_init``:
every conv / linear kernel ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02)); Skip-GANomaly's
U-Net uses it too.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
from flax import nnx

from gadjax.nets.dcgan import NORMS, Critic, Encoder, Generator
from gadjax.nets.pure import PureNet, init_fn

INITS = ("normal", "default")


def dcgan_normal_init(module: nnx.Module, rngs: nnx.Rngs, std: float = 0.02) -> nnx.Module:
    """Re-draw ``module``'s weights in place as the DCGAN / GANomaly reference does and return it.

    Kernels of every ``Conv``, ``ConvTranspose`` and ``Linear`` ~ N(0, std^2); BatchNorm
    scales ~ N(1, std^2); biases keep their zero init.  Traceable (runs inside ``init_fn``'s
    jitted initialiser).
    """
    for _, m in nnx.iter_modules(module):
        if isinstance(m, (nnx.Conv, nnx.ConvTranspose, nnx.Linear)):
            k = m.kernel
            k[...] = std * jax.random.normal(rngs.params(), k.shape, k.dtype)
        elif isinstance(m, nnx.BatchNorm) and m.scale is not None:
            s = m.scale
            s[...] = 1.0 + std * jax.random.normal(rngs.params(), s.shape, s.dtype)
    return module


def check_net_options(norm: str, init: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose 'normal' (N(0, 0.02), the reference) or 'default' (Flax)")


def pure_net(make: Callable[[nnx.Rngs], nnx.Module], name: str, init: str = "normal"):
    """``(PureNet, init(key) -> (params, stats))`` for ``make``, with the DCGAN init if asked."""
    if init == "normal":
        return init_fn(lambda rngs: dcgan_normal_init(make(rngs), rngs), name)
    return init_fn(make, name)


class GANomalyGenerator(nnx.Module):
    """images (B, H, W, C) -> ``(x_hat (B, H, W, C), z (B, z_dim), z_hat (B, z_dim))``.

    ``z = G_E(x)``, ``x_hat = G_D(z)`` in [-1, 1] (tanh), ``z_hat = E(x_hat)``.  The
    anomaly score is ``mean (z - z_hat)^2``: trained on normal images only, the second
    encoder learns to map reconstructions of *normal* images back to the first code.
    """

    def __init__(self, image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, norm: str = "batch",
                 rngs: nnx.Rngs):
        self.encoder = Encoder(image_shape, z_dim, width, norm=norm, rngs=rngs)
        self.decoder = Generator(image_shape, z_dim, width, norm=norm, output="tanh", rngs=rngs)
        self.encoder2 = Encoder(image_shape, z_dim, width, norm=norm, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False):
        z = self.encoder(x, train=train)
        x_hat = self.decoder(z, train=train)
        return x_hat, z, self.encoder2(x_hat, train=train)


def discriminator(image_shape: Sequence[int], width: int = 64, *, norm: str = "batch", rngs: nnx.Rngs) -> Critic:
    """The DCGAN discriminator of GANomaly / Skip-GANomaly: images -> ``(logit (B,), features (B, F))``.

    ``features`` are the last conv layer (flattened), those matched by L_adv / L_lat.
    BatchNorm by default (the paper's); no gradient penalty is used, so it may couple samples.
    """
    return Critic(image_shape, width, norm=norm, rngs=rngs)


def ganomaly_nets(image_shape: Sequence[int], z_dim: int = 100, width: int = 64, *, norm: str = "batch",
                  init: str = "normal") -> dict[str, tuple[PureNet, Callable]]:
    """``{'generator': (PureNet, init), 'discriminator': (PureNet, init)}`` for ``PlayerTrainer``."""
    check_net_options(norm, init)
    if z_dim < 1 or width < 1:
        raise ValueError(f"z_dim and width must be >= 1, got z_dim={z_dim}, width={width}")
    shape = tuple(image_shape)
    return {
        "generator": pure_net(lambda rngs: GANomalyGenerator(shape, z_dim, width, norm=norm, rngs=rngs),
                              "generator", init),
        "discriminator": pure_net(lambda rngs: discriminator(shape, width, norm=norm, rngs=rngs),
                                  "discriminator", init),
    }


__all__ = ["GANomalyGenerator", "INITS", "dcgan_normal_init", "discriminator", "ganomaly_nets", "pure_net"]
