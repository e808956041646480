"""Joint discriminators D(x, z) for bidirectional GANs (BiGAN / EGBAD, CBiGAN).

A BiGAN discriminator tells real pairs ``(x, E(x))`` from generated pairs ``(G(z), z)``,
so it reads an image AND a latent code.  Two ways of joining them:

* ``JointDiscriminator`` (Donahue 2017; Zenati et al. 2018, EGBAD): a trunk on x
  (``ConvTrunk`` for images, ``MLPTrunk`` for tabular rows, as EGBAD's MNIST and KDD
  networks; shared with the critic and encoder) and a dense layer on z are
  concatenated and mixed by a dense layer; its output is the intermediate layer used for
  feature matching, a linear head gives the logit.
* ``ProjectionDiscriminator`` (Miyato & Koyama 2018, as used by Komoto et al. 2020 for
  CBiGAN): ``logit = psi(phi(x)) + <phi(x), v(z)>``: z enters by an inner product with
  the image features instead of through concatenation, which conditions D on z much
  more directly than a concat head that may learn to ignore it.

Both return ``(logit (B,), features (B, F))`` like ``Critic``.  Dropout (EGBAD uses 0.5
on every discriminator layer) is drawn from an explicit ``key`` when ``train=True``, so
the step stays a pure function of ``fold_in(state.key, step)`` and no RNG state hides in
``stats``.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gadjax.nets.dcgan import ConvTrunk
from gadjax.nets.mlp import MLPTrunk
from gadjax.nets.pure import init_fn

DISCRIMINATORS = ("concat", "projection")


def _dropout(h: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout with an explicit key; identity when ``key`` is None (inference)."""
    if key is None or rate == 0.0:
        return h
    keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
    return jnp.where(keep, h / (1.0 - rate), jnp.zeros_like(h))


def _check(image_shape, z_dim: int, dropout: float, hidden: int, z_hidden: int) -> None:
    if z_dim < 1 or hidden < 1 or z_hidden < 1:
        raise ValueError(f"z_dim, hidden and z_hidden must be >= 1, got {z_dim}, {hidden}, {z_hidden}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if len(image_shape) not in (1, 3):
        raise ValueError(f"sample shape must be (H, W, C) for images or (D,) for rows, got {tuple(image_shape)}")


class _PairDiscriminator(nnx.Module):
    """Shared input handling: shape checks, dropout keys, the x trunk and the z layer."""

    def __init__(self, image_shape: Sequence[int], z_dim: int, ndf: int, hidden: int, z_hidden: int,
                 norm: str, dropout: float, rngs: nnx.Rngs):
        _check(image_shape, z_dim, dropout, hidden, z_hidden)
        self.z_dim, self.dropout = z_dim, dropout
        # Images: strided convs (the critic's trunk); rows: two dense layers (the MLP critic's).
        self.trunk = (ConvTrunk(image_shape, ndf, norm=norm, rngs=rngs) if len(image_shape) == 3
                      else MLPTrunk(image_shape, ndf, rngs=rngs))
        self.z_layer = nnx.Linear(z_dim, z_hidden, rngs=rngs)

    def _inputs(self, x, z, train: bool, key):
        if z.ndim != 2 or z.shape[-1] != self.z_dim or z.shape[0] != x.shape[0]:
            raise ValueError(f"discriminator expects z of shape ({x.shape[0]}, {self.z_dim}), got {z.shape}")
        if train and self.dropout > 0 and key is None:
            raise ValueError("a training-mode discriminator with dropout needs key=...")
        keys = list(jax.random.split(key, 3)) if (train and self.dropout > 0) else [None] * 3
        hx = _dropout(self.trunk(x, train=train), self.dropout, keys[0])
        hz = _dropout(nnx.leaky_relu(self.z_layer(z), 0.2), self.dropout, keys[1])
        return hx, hz, keys[2]


class JointDiscriminator(_PairDiscriminator):
    """``(x (B, H, W, C) or (B, D), z (B, z_dim)) -> (logit (B,), features (B, hidden))``.

    EGBAD's MNIST discriminator with ``ndf=64, z_hidden=512, hidden=1024``: conv trunk on
    x, dense on z, concatenation, a dense ``hidden`` layer (the feature-matching layer),
    then a linear logit.
    """

    def __init__(self, image_shape: Sequence[int], z_dim: int, ndf: int = 64, *, hidden: int = 1024,
                 z_hidden: int = 512, norm: str = "layer", dropout: float = 0.5, rngs: nnx.Rngs):
        super().__init__(image_shape, z_dim, ndf, hidden, z_hidden, norm, dropout, rngs)
        self.joint = nnx.Linear(self.trunk.out_features + z_hidden, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array, z: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        hx, hz, key = self._inputs(x, z, train, key)
        features = _dropout(nnx.leaky_relu(self.joint(jnp.concatenate([hx, hz], axis=-1)), 0.2), self.dropout, key)
        return self.head(features)[:, 0], features


class ProjectionDiscriminator(_PairDiscriminator):
    """``(x, z) -> (logit (B,), features (B, 2 * hidden))`` with a projection on z.

    ``phi(x)`` is the conv trunk followed by a dense ``hidden`` layer, ``v(z)`` a
    two-layer MLP into the same space; ``logit = w . phi(x) + b + phi(x) . v(z)``.  The
    features are ``[phi(x), phi(x) * v(z)]``: the unconditional image representation and
    the per-unit terms of the projection, i.e. everything the logit is a linear function of.
    """

    def __init__(self, image_shape: Sequence[int], z_dim: int, ndf: int = 64, *, hidden: int = 1024,
                 z_hidden: int = 512, norm: str = "layer", dropout: float = 0.5, rngs: nnx.Rngs):
        super().__init__(image_shape, z_dim, ndf, hidden, z_hidden, norm, dropout, rngs)
        self.phi = nnx.Linear(self.trunk.out_features, hidden, rngs=rngs)
        self.embed = nnx.Linear(z_hidden, hidden, rngs=rngs)
        self.psi = nnx.Linear(hidden, 1, rngs=rngs)

    def __call__(self, x: jax.Array, z: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        hx, hz, key = self._inputs(x, z, train, key)
        phi = _dropout(nnx.leaky_relu(self.phi(hx), 0.2), self.dropout, key)
        projection = phi * self.embed(hz)
        logit = self.psi(phi)[:, 0] + jnp.sum(projection, axis=-1)
        return logit, jnp.concatenate([phi, projection], axis=-1)


def joint_discriminator(image_shape: Sequence[int], z_dim: int, width: int = 64, *, kind: str = "concat",
                        norm: str = "layer", dropout: float = 0.5, hidden: int | None = None,
                        z_hidden: int | None = None):
    """``(PureNet, init)`` of a pair discriminator.

    ``hidden`` / ``z_hidden`` default to ``16 * width`` / ``8 * width`` (EGBAD's 1024 / 512
    at ``width=64``), so tiny test nets stay tiny.
    """
    if kind not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator {kind!r}; choose one of {DISCRIMINATORS}")
    cls = JointDiscriminator if kind == "concat" else ProjectionDiscriminator
    hidden, z_hidden = hidden or 16 * width, z_hidden or 8 * width
    _check(image_shape, z_dim, dropout, hidden, z_hidden)  # fail before tracing
    return init_fn(lambda rngs: cls(tuple(image_shape), z_dim, width, hidden=hidden, z_hidden=z_hidden, norm=norm,
                                    dropout=dropout, rngs=rngs), name="discriminator")
