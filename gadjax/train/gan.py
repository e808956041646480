"""Jitted GAN training steps (DCGAN, LSGAN, WGAN, WGAN-GP), single- or multi-device.

One ``GANState`` pytree holds everything that changes during training.  ``GANTrainer``
holds what does not (networks, objective, optimisers, shardings) and compiles one step:
``n_critic`` critic updates followed by one generator update, donated state in, new
state out.  Randomness is ``fold_in(state.key, state.step)``: a step's noise depends
only on the seed and the step number, so resumed runs repeat exactly.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gadjax.losses import GAN_LOSSES, GANLoss, clip_weights, gradient_penalty
from gadjax.nets import NetSpec, build_nets
from gadjax.parallel import DataParallel, jit_init, jit_step, resolve

PyTree = Any


@struct.dataclass
class GANState:
    """Everything a GAN run updates. ``step`` counts generator updates."""

    step: jax.Array
    key: jax.Array
    g_params: PyTree
    g_stats: PyTree
    g_opt: PyTree
    d_params: PyTree
    d_stats: PyTree
    d_opt: PyTree


def sample_latent(key: jax.Array, batch: int, z_dim: int, prior: str = "normal", dtype=jnp.float32) -> jax.Array:
    """z (batch, z_dim) from N(0, I) (``'normal'``) or U[-1, 1] (``'uniform'``)."""
    if prior == "normal":
        return jax.random.normal(key, (batch, z_dim), dtype)
    if prior == "uniform":
        return jax.random.uniform(key, (batch, z_dim), dtype, -1.0, 1.0)
    raise ValueError(f"unknown latent prior {prior!r}; use 'normal' or 'uniform'")


def default_unroll() -> bool | int:
    """Loop form for the n_critic loop: XLA:CPU runs convolutions inside a rolled
    ``lax.scan`` far slower than unrolled (jax-ml/jax#12868); GPUs prefer the rolled
    loop (smaller program, faster compile).  See bench/README.md for the measurements."""
    return True if jax.default_backend() == "cpu" else 1


@dataclasses.dataclass(frozen=True)
class GANConfig:
    """What a GAN run is: architecture, objective and its hyper-parameters.

    ``None`` for ``learning_rate`` / ``n_critic`` means the objective's paper default.
    """

    nets: NetSpec = NetSpec()
    loss: str = "wgan-gp"
    learning_rate: float | None = None
    n_critic: int | None = None
    gp_weight: float | None = None
    prior: str = "normal"

    def objective(self) -> GANLoss:
        if self.loss not in GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {self.loss!r}; known: {sorted(GAN_LOSSES)}")
        base = GAN_LOSSES[self.loss]
        if base.gp_weight and self.nets.critic_norm == "batch":
            raise ValueError("a gradient penalty needs a per-sample critic: use critic_norm 'layer' or 'none'")
        return dataclasses.replace(
            base,
            learning_rate=base.learning_rate if self.learning_rate is None else self.learning_rate,
            n_critic=base.n_critic if self.n_critic is None else self.n_critic,
            gp_weight=base.gp_weight if self.gp_weight is None else self.gp_weight)


class GANTrainer:
    """Compiles ``init`` and ``step`` for one ``GANConfig``.

    ``parallel=True`` (or a ``DataParallel``) shards every batch over all devices and
    replicates the state; results equal the single-device step up to float rounding.
    """

    def __init__(self, config: GANConfig, parallel: bool | DataParallel = False, unroll: bool | int | None = None):
        self.config = config
        self.objective = config.objective()
        nets = build_nets(config.nets, parts=("generator", "critic"))
        self.generator, self._g_init = nets["generator"]
        self.critic, self._d_init = nets["critic"]
        self.optimizer = self.objective.optimizer(self.objective.learning_rate)
        self.unroll = default_unroll() if unroll is None else unroll
        self.parallel = resolve(parallel)
        self.trace_count = 0  # incremented each time the step is traced: a test checks it stays 1
        self.init = jit_init(self._init, self.parallel)
        self.step = jit_step(self._step, self.parallel)

    @property
    def n_critic(self) -> int:
        return self.objective.n_critic

    # The train_loop protocol: each step consumes n_critic real batches.
    batches_per_step = n_critic

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.nets.image_shape

    @property
    def value_range(self) -> tuple[float, float]:
        return self.config.nets.output_range

    def _init(self, key: jax.Array) -> GANState:
        k_g, k_d, k_run = jax.random.split(key, 3)
        g_params, g_stats = self._g_init(k_g)
        d_params, d_stats = self._d_init(k_d)
        return GANState(step=jnp.zeros((), jnp.int32), key=k_run, g_params=g_params, g_stats=g_stats,
                        g_opt=self.optimizer.init(g_params), d_params=d_params, d_stats=d_stats,
                        d_opt=self.optimizer.init(d_params))

    def latent(self, key: jax.Array, batch: int, dtype=jnp.float32) -> jax.Array:
        return sample_latent(key, batch, self.config.nets.z_dim, self.config.prior, dtype)

    def _critic_update(self, g_params, carry, inputs):
        d_params, d_stats, d_opt, g_stats = carry
        real, key = inputs
        k_z, k_gp = jax.random.split(key)
        fake, g_stats = self.generator.apply(g_params, g_stats, self.latent(k_z, real.shape[0], real.dtype), train=True)
        fake = jax.lax.stop_gradient(fake)
        obj = self.objective

        def loss_fn(params):
            (real_logits, _), stats = self.critic.apply(params, d_stats, real, train=True)
            (fake_logits, _), stats = self.critic.apply(params, stats, fake, train=True)
            loss = obj.critic_loss(real_logits, fake_logits)
            penalty = jnp.zeros((), loss.dtype)
            if obj.gp_weight:
                penalty = gradient_penalty(lambda x: self.critic.apply(params, stats, x, train=True)[0][0],
                                           real, fake, k_gp)
            gap = jnp.mean(real_logits) - jnp.mean(fake_logits)
            return loss + obj.gp_weight * penalty, (stats, {"critic_loss": loss, "gradient_penalty": penalty,
                                                             "critic_gap": gap})

        grads, (d_stats, metrics) = jax.grad(loss_fn, has_aux=True)(d_params)
        updates, d_opt = self.optimizer.update(grads, d_opt, d_params)
        d_params = optax.apply_updates(d_params, updates)
        if obj.clip:
            d_params = clip_weights(d_params, obj.clip)
        return (d_params, d_stats, d_opt, g_stats), metrics

    def _step(self, state: GANState, real: jax.Array):
        """real: (n_critic, B, H, W, C) -> (new state, metrics dict of scalars)."""
        self.trace_count += 1
        if real.ndim != 5 or real.shape[0] != self.n_critic:
            raise ValueError(f"step expects real batches of shape (n_critic={self.n_critic}, B, H, W, C), "
                             f"got {real.shape}")
        key = jax.random.fold_in(state.key, state.step)
        k_critic, k_gen = jax.random.split(key)
        carry = (state.d_params, state.d_stats, state.d_opt, state.g_stats)
        keys = jax.random.split(k_critic, self.n_critic)
        carry, critic_metrics = jax.lax.scan(lambda c, i: self._critic_update(state.g_params, c, i),
                                             carry, (real, keys), unroll=self.unroll)
        d_params, d_stats, d_opt, g_stats = carry
        z = self.latent(k_gen, real.shape[1], real.dtype)

        def g_loss_fn(params):
            fake, stats = self.generator.apply(params, g_stats, z, train=True)
            # BatchNorm critics see the fakes in train mode, as in the critic update;
            # their running averages are left alone here (only critic updates move them).
            (fake_logits, _), _ = self.critic.apply(d_params, d_stats, fake, train=True)
            return self.objective.generator_loss(fake_logits), stats

        (g_loss, g_stats), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
        g_updates, g_opt = self.optimizer.update(g_grads, state.g_opt, state.g_params)
        g_params = optax.apply_updates(state.g_params, g_updates)
        metrics = {k: jnp.mean(v) for k, v in critic_metrics.items()}
        metrics["generator_loss"] = g_loss
        metrics["finite"] = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(
            (metrics, g_params, d_params))]))
        new_state = state.replace(step=state.step + 1, g_params=g_params, g_stats=g_stats, g_opt=g_opt,
                                  d_params=d_params, d_stats=d_stats, d_opt=d_opt)
        return new_state, metrics

    def generate(self, state: GANState, z: jax.Array) -> jax.Array:
        """Images (B, H, W, C) from z (B, z_dim), BatchNorm in inference mode."""
        return self.generator(state.g_params, state.g_stats, z)

    def put_batches(self, real) -> jax.Array:
        """Host (n_critic, B, ...) array -> device array with this trainer's sharding."""
        return put_batches(real, self.parallel)


def put_batches(batches, parallel: DataParallel | None) -> jax.Array:
    """Host (k, B, ...) sub-batches -> device array, sharded along B when parallel."""
    return jnp.asarray(batches) if parallel is None else parallel.put_batch(batches, batch_axis=1)
