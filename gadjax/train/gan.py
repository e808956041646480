"""GAN training (DCGAN, LSGAN, WGAN, WGAN-GP), single- or multi-device.

``GANTrainer`` is a ``PlayerTrainer`` with two players, so one ``TrainState`` pytree
holds everything that changes and one jitted, state-donating step does ``n_critic``
critic updates followed by one generator update.  Randomness is
``fold_in(state.key, state.step)``: a step's noise depends only on the seed and the
step number, so resumed runs repeat exactly.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gadjax.losses import GAN_LOSSES, GANLoss, clip_weights, gradient_penalty
from gadjax.nets import NetSpec, build_nets
from gadjax.parallel import DataParallel
from gadjax.train.players import Player, PlayerTrainer, TrainState


def sample_latent(key: jax.Array, batch: int, z_dim: int, prior: str = "normal", dtype=jnp.float32) -> jax.Array:
    """z (batch, z_dim) from N(0, I) (``'normal'``) or U[-1, 1] (``'uniform'``)."""
    if prior == "normal":
        return jax.random.normal(key, (batch, z_dim), dtype)
    if prior == "uniform":
        return jax.random.uniform(key, (batch, z_dim), dtype, -1.0, 1.0)
    raise ValueError(f"unknown latent prior {prior!r}; use 'normal' or 'uniform'")


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


class GANTrainer(PlayerTrainer):
    """A GAN as two players: the critic (``n_critic`` updates on fresh real batches, with
    gradient penalty or weight clipping as the objective says), then the generator.

    ``parallel=True`` (or a ``DataParallel``) shards every batch over all devices and
    replicates the state; results equal the single-device step up to float rounding.
    ``state.params`` / ``state.stats`` hold ``"generator"`` and ``"critic"``.
    Models that extend a GAN (e.g. a jointly trained encoder) pass ``extra_nets`` and
    ``extra_players``, updated after the generator.
    """

    def __init__(self, config: GANConfig, parallel: bool | DataParallel = False, unroll: bool | int | None = None,
                 extra_nets: dict | None = None, extra_players: tuple = ()):
        self.config = config
        self.objective = obj = config.objective()
        nets = build_nets(config.nets, parts=("generator", "critic"))
        self.generator, self.critic = nets["generator"][0], nets["critic"][0]
        optimizer = obj.optimizer(obj.learning_rate)
        clip = (lambda own: {"critic": clip_weights(own["critic"], obj.clip)}) if obj.clip else None
        players = [Player("critic", ("critic",), self._critic_loss, optimizer, obj.n_critic, clip),
                   Player("generator", ("generator",), self._generator_loss, optimizer), *extra_players]
        super().__init__({**nets, **(extra_nets or {})}, players, image_shape=config.nets.image_shape, value_range=config.nets.output_range,
                         parallel=parallel, unroll=unroll)

    @property
    def n_critic(self) -> int:
        return self.objective.n_critic

    def latent(self, key: jax.Array, batch: int, dtype=jnp.float32) -> jax.Array:
        return sample_latent(key, batch, self.config.nets.z_dim, self.config.prior, dtype)

    def _critic_loss(self, params, stats, real, key):
        k_z, k_gp = jax.random.split(key)
        z = self.latent(k_z, real.shape[0], real.dtype)
        fake, g_stats = self.generator.apply(params["generator"], stats["generator"], z, train=True)
        fake = jax.lax.stop_gradient(fake)
        (real_logits, _), d_stats = self.critic.apply(params["critic"], stats["critic"], real, train=True)
        (fake_logits, _), d_stats = self.critic.apply(params["critic"], d_stats, fake, train=True)
        obj = self.objective
        loss = obj.critic_loss(real_logits, fake_logits)
        penalty = jnp.zeros((), loss.dtype)
        if obj.gp_weight:
            penalty = gradient_penalty(lambda x: self.critic.apply(params["critic"], d_stats, x, train=True)[0][0],
                                       real, fake, k_gp)
        metrics = {"critic_gap": jnp.mean(real_logits) - jnp.mean(fake_logits), "gradient_penalty": penalty}
        return loss + obj.gp_weight * penalty, ({"generator": g_stats, "critic": d_stats}, metrics)

    def _generator_loss(self, params, stats, real, key):
        fake, g_stats = self.generator.apply(params["generator"], stats["generator"],
                                             self.latent(key, real.shape[0], real.dtype), train=True)
        # BatchNorm critics see the fakes in train mode, as in the critic update; their
        # running averages are left alone here (only critic updates move them).
        (fake_logits, _), _ = self.critic.apply(params["critic"], stats["critic"], fake, train=True)
        return self.objective.generator_loss(fake_logits), ({"generator": g_stats}, {})

    def generate(self, state: TrainState, z: jax.Array) -> jax.Array:
        """Images (B, H, W, C) from z (B, z_dim), BatchNorm in inference mode."""
        return self.apply(state, "generator", z)

    def critic_features(self, state: TrainState, x: jax.Array):
        """``(logits (B,), features (B, F))`` of the critic in inference mode."""
        return self.apply(state, "critic", x)
