"""ALAD's three discriminators (Zenati et al., "Adversarially Learned Anomaly Detection", ICDM 2018).

* ``DiscriminatorXZ``: (x, z) pairs, real (x, E(x)) vs fake (G(z), z): the BiGAN/ALI game;
* ``DiscriminatorXX``: (x, x') pairs, real (x, x) vs fake (x, G(E(x))): data-space cycle
  consistency (ALICE); its last hidden layer ``f_xx`` gives ALAD's anomaly score;
* ``DiscriminatorZZ``: (z, z') pairs, real (z, z) vs fake (z, E(G(z))): latent-space cycle.

Each returns ``(logit (B,), features (B, F))`` with ``features`` the last hidden layer.
Samples are images (H, W, C) (the authors' SVHN / CIFAR-10 nets) or feature rows (D,)
(their KDD99 / Arrhythmia nets: dense layers instead of convolutions, smaller heads).
Following the authors' code, every hidden layer is spectrally normalised (Miyato et al.
2018, ``nnx.SpectralNorm``: one power iteration per call, the vectors ``u`` / ``sigma``
are non-``Param`` state, updated in train mode only, so ``PureNet.apply`` returns them
as new stats and inference is deterministic); the logit layer is a plain ``Linear``;
hidden layers use LeakyReLU(0.2) and dropout 0.2 (not in D_xz's x branch).  Widths
scale with ``width`` and equal the authors' CIFAR-10 networks at ``width=128`` and their
KDD99 discriminators at ``width=64`` (which they ran without spectral norm and with
dropout 0.5 in D_xz: ``ALADConfig(spectral_norm=False)`` for that ablation).

Dropout takes an explicit ``key`` (required in train mode when ``dropout > 0``), so the
nets hold no RNG state and a step's randomness is a function of the step's key.

Each ``__call__`` runs every layer exactly once: ``nnx.SpectralNorm`` writes the
normalised kernel into the (merged, throw-away) module, so to score several pairs with
one parameter set, concatenate them along the batch instead of calling twice.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gadjax.nets.dcgan import NORMS, _apply_norm, _norm, spatial_plan, trunk_features
from gadjax.nets.pure import init_fn


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Inverted dropout; the identity when ``key`` is None (inference) or ``rate == 0``.

    The mask comes from XLA's RngBitGenerator keyed by ``key`` (any threefry key, raw or
    typed): as good as threefry bits for dropout, and on CPU an image-sized threefry draw
    costs ~1.5 s of compile time each, which ALAD's 28 masks per step would multiply.
    """
    if key is None or rate == 0.0:
        return x
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    rbg = jax.random.wrap_key_data(jnp.concatenate([key, key ^ jnp.uint32(0x9E3779B9)]), impl="rbg")
    keep = jax.random.bernoulli(rbg, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _maybe_sn(layer: nnx.Module, spectral_norm: bool, rngs: nnx.Rngs) -> nnx.Module:
    return nnx.SpectralNorm(layer, rngs=rngs) if spectral_norm else layer


def _call(layer: nnx.Module, x: jax.Array, train: bool) -> jax.Array:
    # The power-iteration vector moves only while training; in inference the stored u
    # is used as is, so scores do not depend on how often a model has been evaluated.
    return layer(x, update_stats=train) if isinstance(layer, nnx.SpectralNorm) else layer(x)


def _keys(key: jax.Array | None, train: bool, rate: float, n: int, who: str) -> list:
    if not train or rate == 0.0:
        return [None] * n
    if key is None:
        raise ValueError(f"{who}: train=True with dropout {rate} needs a PRNG key (key=...)")
    return list(jax.random.split(key, n))


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")


class SNConvStack(nnx.Module):
    """images (B, H, W, C) -> (B, F): ``n_stages`` stride-2 convs, LeakyReLU(0.2).

    ``dcgan.ConvTrunk``'s layout (first layer never normalised), plus what ConvTrunk
    cannot take: spectral norm (whose update needs ``train`` at every conv) and dropout
    after each layer (D_xx).
    """

    def __init__(self, image_shape: Sequence[int], ndf: int, n_stages: int, *, kernel: int = 4,
                 norm: str = "none", dropout: float = 0.0, spectral_norm: bool = True, rngs: nnx.Rngs):
        _check_rate(dropout)
        self.image_shape = tuple(image_shape)
        self.dropout = dropout
        widths = [ndf * 2 ** i for i in range(n_stages)]
        ins = [image_shape[-1]] + widths[:-1]
        self.convs = nnx.List([
            _maybe_sn(nnx.Conv(a, b, (kernel, kernel), strides=(2, 2), padding="SAME", rngs=rngs), spectral_norm, rngs)
            for a, b in zip(ins, widths)])
        self.norms = nnx.List([None] + [_norm(norm, w, rngs) for w in widths[1:]])
        self.out_features = trunk_features(image_shape, ndf, n_stages)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected inputs of shape (batch, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")
        keys = _keys(key, train, self.dropout, len(self.convs), type(self).__name__)
        for conv, norm, k in zip(self.convs, self.norms, keys):
            x = dropout(nnx.leaky_relu(_apply_norm(norm, _call(conv, x, train), train), 0.2), self.dropout, k)
        return x.reshape(x.shape[0], -1)


class SNDenseStack(nnx.Module):
    """(B, sizes[0]) -> (B, sizes[-1]): dense layers, each spectrally normalised, [norm],
    LeakyReLU(0.2), dropout; ``norm`` ('batch' / 'layer' / 'none') on every layer."""

    def __init__(self, sizes: Sequence[int], *, norm: str = "none", dropout: float = 0.0, spectral_norm: bool = True,
                 rngs: nnx.Rngs):
        _check_rate(dropout)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        self.dropout, self.out_features = dropout, sizes[-1]
        self.layers = nnx.List([_maybe_sn(nnx.Linear(a, b, rngs=rngs), spectral_norm, rngs)
                                for a, b in zip(sizes[:-1], sizes[1:])])
        self.norms = nnx.List([None if norm == "none" else nnx.BatchNorm(b, momentum=0.9, epsilon=1e-5, rngs=rngs)
                               if norm == "batch" else nnx.LayerNorm(b, rngs=rngs) for b in sizes[1:]])

    def __call__(self, h: jax.Array, *, train: bool = False, key: jax.Array | None = None) -> jax.Array:
        keys = _keys(key, train, self.dropout, len(self.layers), type(self).__name__)
        for layer, norm, k in zip(self.layers, self.norms, keys):
            h = dropout(nnx.leaky_relu(_apply_norm(norm, _call(layer, h, train), train), 0.2), self.dropout, k)
        return h


def _is_rows(sample_shape: Sequence[int]) -> bool:
    if len(sample_shape) not in (1, 3):
        raise ValueError(f"ALAD discriminators take images (H, W, C) or feature rows (D,), got {tuple(sample_shape)}")
    return len(sample_shape) == 1


class DiscriminatorXZ(nnx.Module):
    """(x (B, *sample_shape), z (B, z_dim)) -> (logit (B,), features (B, F)).

    x branch: images ``SNConvStack`` with ``norm`` (BatchNorm in the paper), rows one dense
    layer of ``2 * width`` with ``norm``; z branch: two dense layers of ``4 * width`` (rows:
    one of ``2 * width``); the joint layer, ``8 * width`` (rows ``2 * width``), is ``features``.
    """

    def __init__(self, sample_shape: Sequence[int], z_dim: int, width: int = 64, *, norm: str = "batch",
                 dropout: float = 0.2, spectral_norm: bool = True, rngs: nnx.Rngs):
        self.sample_shape, self.z_dim = tuple(sample_shape), z_dim
        if _is_rows(sample_shape):
            self.x_net = SNDenseStack([sample_shape[0], 2 * width], norm=norm, spectral_norm=spectral_norm, rngs=rngs)
            z_sizes, joint = [z_dim, 2 * width], 2 * width
        else:
            n = spatial_plan(sample_shape[0], sample_shape[1])[0]
            self.x_net = SNConvStack(sample_shape, width, n, norm=norm, spectral_norm=spectral_norm, rngs=rngs)
            z_sizes, joint = [z_dim, 4 * width, 4 * width], 8 * width
        self.z_net = SNDenseStack(z_sizes, dropout=dropout, spectral_norm=spectral_norm, rngs=rngs)
        self.joint = SNDenseStack([self.x_net.out_features + z_sizes[-1], joint], dropout=dropout,
                                  spectral_norm=spectral_norm, rngs=rngs)
        self.head = nnx.Linear(joint, 1, rngs=rngs)

    def __call__(self, x: jax.Array, z: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        if tuple(x.shape[1:]) != self.sample_shape or z.shape != (x.shape[0], self.z_dim):
            raise ValueError(f"D_xz expects x of shape (batch, {', '.join(map(str, self.sample_shape))}) and z of "
                             f"shape (batch, {self.z_dim}), got {tuple(x.shape)} and {tuple(z.shape)}")
        k_z, k_joint = jax.random.split(key) if key is not None else (None, None)
        h = jnp.concatenate([self.x_net(x, train=train), self.z_net(z, train=train, key=k_z)], axis=-1)
        h = self.joint(h, train=train, key=k_joint)
        return self.head(h)[:, 0], h


class DiscriminatorXX(nnx.Module):
    """(x, x' (B, *sample_shape)) -> (logit (B,), features (B, F)).

    The pair is stacked on the last axis (images: channels, a (B, H, W, 2C) input), then
    two 5x5 stride-2 convs of ``width/2`` and ``width`` channels (rows: one dense layer of
    ``2 * width``), each with dropout; ``features`` (the paper's ``f_xx``) is the
    flattened output.
    """

    def __init__(self, sample_shape: Sequence[int], width: int = 64, *, dropout: float = 0.2,
                 spectral_norm: bool = True, rngs: nnx.Rngs):
        self.sample_shape = tuple(sample_shape)
        if _is_rows(sample_shape):
            self.trunk = SNDenseStack([2 * sample_shape[0], 2 * width], dropout=dropout,
                                      spectral_norm=spectral_norm, rngs=rngs)
        else:
            h, w, c = sample_shape
            spatial_plan(h, w)  # same size rules (and errors) as the other nets
            self.trunk = SNConvStack((h, w, 2 * c), max(width // 2, 1), 2, kernel=5, dropout=dropout,
                                     spectral_norm=spectral_norm, rngs=rngs)
        self.head = nnx.Linear(self.trunk.out_features, 1, rngs=rngs)

    def __call__(self, x: jax.Array, x_pair: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        if x.shape != x_pair.shape or tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"D_xx expects two batches of shape (batch, {', '.join(map(str, self.sample_shape))}),"
                             f" got {tuple(x.shape)} and {tuple(x_pair.shape)}")
        features = self.trunk(jnp.concatenate([x, x_pair], axis=-1), train=train, key=key)
        return self.head(features)[:, 0], features


class DiscriminatorZZ(nnx.Module):
    """(z, z' (B, z_dim)) -> (logit (B,), features (B, F)): dense ``width/2``, ``width/4``
    (``rows=True``: one dense layer of ``width/2``)."""

    def __init__(self, z_dim: int, width: int = 64, *, rows: bool = False, dropout: float = 0.2,
                 spectral_norm: bool = True, rngs: nnx.Rngs):
        self.z_dim = z_dim
        sizes = [2 * z_dim, max(width // 2, 1)] + ([] if rows else [max(width // 4, 1)])
        self.hidden = SNDenseStack(sizes, dropout=dropout, spectral_norm=spectral_norm, rngs=rngs)
        self.head = nnx.Linear(sizes[-1], 1, rngs=rngs)

    def __call__(self, z: jax.Array, z_pair: jax.Array, *, train: bool = False, key: jax.Array | None = None):
        if z.shape != z_pair.shape or z.ndim != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"D_zz expects two latent batches of shape (batch, {self.z_dim}), "
                             f"got {tuple(z.shape)} and {tuple(z_pair.shape)}")
        h = self.hidden(jnp.concatenate([z, z_pair], axis=-1), train=train, key=key)
        return self.head(h)[:, 0], h


def build_discriminators(spec, *, dropout: float = 0.2, spectral_norm: bool = True, latent_cycle: bool = True):
    """``{'dxz', 'dxx'[, 'dzz']: (PureNet, init)}`` for a ``NetSpec`` (image_shape: an image
    or row shape, z_dim, width; ``critic_norm`` is the norm of D_xz's x branch).
    ``latent_cycle=False`` leaves out D_zz (the paper's ablation)."""
    shape, z_dim, width = spec.image_shape, spec.z_dim, spec.width
    makers = {
        "dxz": lambda rngs: DiscriminatorXZ(shape, z_dim, width, norm=spec.critic_norm, dropout=dropout,
                                            spectral_norm=spectral_norm, rngs=rngs),
        "dxx": lambda rngs: DiscriminatorXX(shape, width, dropout=dropout, spectral_norm=spectral_norm, rngs=rngs),
    }
    if latent_cycle:
        makers["dzz"] = lambda rngs: DiscriminatorZZ(z_dim, width, rows=len(shape) == 1, dropout=dropout,
                                                     spectral_norm=spectral_norm, rngs=rngs)
    return {name: init_fn(make, name=name) for name, make in makers.items()}
