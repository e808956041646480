"""MLP generator, critic and encoder for tabular data (KDDCup99, ODDS).

Sizes follow the EGBAD/ALAD KDD networks (Zenati et al. 2018): hidden layers of
``width`` and ``2 * width`` units with LeakyReLU(0.2) in the critic/encoder and ReLU in
the generator; outputs are linear because features are standardised with training
statistics and may exceed any fixed range on test data.
"""
from __future__ import annotations

from typing import Sequence

import jax
from flax import nnx


def _check_shape(sample_shape: Sequence[int]) -> int:
    if len(sample_shape) != 1 or sample_shape[0] < 1:
        raise ValueError(f"the MLP nets take feature vectors: sample shape (D,), got {tuple(sample_shape)}")
    return int(sample_shape[0])


class MLPGenerator(nnx.Module):
    """z (B, z_dim) -> rows (B, D); linear output."""

    def __init__(self, sample_shape: Sequence[int], z_dim: int = 32, width: int = 64, *, rngs: nnx.Rngs):
        dim = _check_shape(sample_shape)
        self.z_dim = z_dim
        self.hidden = nnx.List([nnx.Linear(z_dim, width, rngs=rngs), nnx.Linear(width, 2 * width, rngs=rngs)])
        self.out = nnx.Linear(2 * width, dim, rngs=rngs)

    def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no BatchNorm
        if z.ndim != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"generator expects z of shape (batch, {self.z_dim}), got {z.shape}")
        for layer in self.hidden:
            z = nnx.relu(layer(z))
        return self.out(z)


class MLPTrunk(nnx.Module):
    """rows (B, D) -> features (B, width): two LeakyReLU layers (shared by critic and encoder)."""

    def __init__(self, sample_shape: Sequence[int], width: int = 64, *, rngs: nnx.Rngs):
        self.dim = _check_shape(sample_shape)
        self.layers = nnx.List([nnx.Linear(self.dim, 2 * width, rngs=rngs), nnx.Linear(2 * width, width, rngs=rngs)])
        self.out_features = width

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        if x.ndim != 2 or x.shape[-1] != self.dim:
            raise ValueError(f"expected rows of shape (batch, {self.dim}), got {tuple(x.shape)}")
        for layer in self.layers:
            x = nnx.leaky_relu(layer(x), 0.2)
        return x


class MLPCritic(nnx.Module):
    """rows (B, D) -> ``(logit (B,), features (B, width))``."""

    def __init__(self, sample_shape: Sequence[int], width: int = 64, *, rngs: nnx.Rngs):
        self.trunk = MLPTrunk(sample_shape, width, rngs=rngs)
        self.head = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False):
        features = self.trunk(x, train=train)
        return self.head(features)[:, 0], features


class MLPEncoder(nnx.Module):
    """rows (B, D) -> z (B, z_dim)."""

    def __init__(self, sample_shape: Sequence[int], z_dim: int = 32, width: int = 64, *, rngs: nnx.Rngs):
        self.trunk = MLPTrunk(sample_shape, width, rngs=rngs)
        self.head = nnx.Linear(width, z_dim, rngs=rngs)

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        return self.head(self.trunk(x, train=train))
