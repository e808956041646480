"""Encoder training against a frozen GAN: f-AnoGAN's izi, ziz and izif strategies.

Schlegl et al. (Medical Image Analysis 2019) train an encoder E after the WGAN-GP, with
generator G and critic features f frozen:

* ``izi``:  image -> z -> image,  L = mean (x - G(E(x)))^2
* ``ziz``:  z -> image -> z,      L = mean (z - E(G(z)))^2
* ``izif``: izi plus the critic-feature residual,
            L = mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2

The frozen GAN parameters are an ordinary (non-donated) argument of the jitted step, so
they are neither baked into the compiled program nor copied into checkpoints.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gadjax.nets import build_nets
from gadjax.parallel import jit_init, jit_step, resolve
from gadjax.scores import feature_residual, mse_residual
from gadjax.train.gan import GANState, GANTrainer, put_batches

PyTree = Any
STRATEGIES = ("izi", "ziz", "izif")


@struct.dataclass
class EncoderState:
    """What encoder training updates; ``step`` counts encoder updates."""

    step: jax.Array
    key: jax.Array
    e_params: PyTree
    e_stats: PyTree
    e_opt: PyTree


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
    """f-AnoGAN encoder training: strategy, izif weight ``kappa`` and Adam settings
    (those of the WGAN-GP: lr 1e-4, betas (0, 0.9))."""

    strategy: str = "izif"
    kappa: float = 1.0
    learning_rate: float = 1e-4

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown encoder strategy {self.strategy!r}; choose one of {STRATEGIES}")
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")


class EncoderTrainer:
    """Trains an encoder for a trained ``GANTrainer``/``GANState`` pair.

    Follows the ``train_loop`` protocol (``init``, ``step``, ``put_batches``, ...), so
    encoder runs checkpoint, resume and log exactly like GAN runs.
    """

    batches_per_step = 1

    def __init__(self, gan: GANTrainer, gan_state: GANState, config: EncoderConfig = EncoderConfig(),
                 parallel=None):
        self.gan, self.config = gan, config
        self.parallel = resolve(gan.parallel if parallel is None else parallel)
        self.encoder, self._e_init = build_nets(gan.config.nets, parts=("encoder",))["encoder"]
        self.optimizer = optax.adam(config.learning_rate, b1=0.0, b2=0.9)
        frozen = (gan_state.g_params, gan_state.g_stats, gan_state.d_params, gan_state.d_stats)
        self.frozen = frozen if self.parallel is None else jax.device_put(frozen, self.parallel.replicated)
        self.trace_count = 0
        self.init = jit_init(self._init, self.parallel)
        self._step_fn = jit_step(self._step, self.parallel, n_replicated=2)

    image_shape = property(lambda self: self.gan.image_shape)
    value_range = property(lambda self: self.gan.value_range)

    def step(self, state: EncoderState, batches: jax.Array):
        """batches (1, B, H, W, C) -> (new state, metrics)."""
        return self._step_fn(state, self.frozen, batches)

    def put_batches(self, batches) -> jax.Array:
        return put_batches(batches, self.parallel)

    def _init(self, key: jax.Array) -> EncoderState:
        k_e, k_run = jax.random.split(key)
        e_params, e_stats = self._e_init(k_e)
        return EncoderState(jnp.zeros((), jnp.int32), k_run, e_params, e_stats, self.optimizer.init(e_params))

    def _loss(self, e_params, e_stats, frozen, x, key):
        g_params, g_stats, d_params, d_stats = frozen
        gen, critic, cfg = self.gan.generator, self.gan.critic, self.config
        if cfg.strategy == "ziz":
            z = self.gan.latent(key, x.shape[0], x.dtype)
            z_rec, e_stats = self.encoder.apply(e_params, e_stats, gen(g_params, g_stats, z), train=True)
            loss = jnp.mean((z - z_rec) ** 2)
            return loss, (e_stats, {"latent_loss": loss})
        z, e_stats = self.encoder.apply(e_params, e_stats, x, train=True)
        x_rec = gen(g_params, g_stats, z)
        image_loss = jnp.mean(mse_residual(x, x_rec))
        metrics = {"image_loss": image_loss}
        loss = image_loss
        if cfg.strategy == "izif":
            _, f_real = critic(d_params, d_stats, x)
            _, f_rec = critic(d_params, d_stats, x_rec)
            feature_loss = jnp.mean(feature_residual(f_real, f_rec))
            metrics["feature_loss"] = feature_loss
            loss = image_loss + cfg.kappa * feature_loss
        return loss, (e_stats, metrics)

    def _step(self, state: EncoderState, frozen, batches: jax.Array):
        self.trace_count += 1
        if batches.ndim != 5 or batches.shape[0] != 1:
            raise ValueError(f"encoder step expects batches of shape (1, B, H, W, C), got {batches.shape}")
        key = jax.random.fold_in(state.key, state.step)
        (loss, (e_stats, metrics)), grads = jax.value_and_grad(self._loss, has_aux=True)(
            state.e_params, state.e_stats, frozen, batches[0], key)
        updates, e_opt = self.optimizer.update(grads, state.e_opt, state.e_params)
        e_params = optax.apply_updates(state.e_params, updates)
        metrics = {"encoder_loss": loss, **metrics}
        metrics["finite"] = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(
            (metrics, e_params))]))
        return state.replace(step=state.step + 1, e_params=e_params, e_stats=e_stats, e_opt=e_opt), metrics

    def encode(self, state: EncoderState, x: jax.Array) -> jax.Array:
        """z (B, z_dim) = E(x) in inference mode."""
        return self.encoder(state.e_params, state.e_stats, x)
