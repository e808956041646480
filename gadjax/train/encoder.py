"""Encoder training against a frozen GAN: f-AnoGAN's izi, ziz and izif strategies.

Schlegl et al. (Medical Image Analysis 2019) train an encoder E after the WGAN-GP, with
generator G and critic features f frozen:

* ``izi``:  image -> z -> image,  L = mean (x - G(E(x)))^2
* ``ziz``:  z -> image -> z,      L = mean (z - E(G(z)))^2
* ``izif``: izi plus the critic-feature residual,
            L = mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2

It is a ``PlayerTrainer`` with one player (the encoder); the trained generator and
critic enter as fixed networks that no player updates.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gadjax import optim
from gadjax.config import Config, option
from gadjax.nets import build_nets
from gadjax.scores import feature_residual, mse_residual
from gadjax.train.gan import GANTrainer
from gadjax.train.players import Player, PlayerTrainer, TrainState

STRATEGIES = ("izi", "ziz", "izif")


@dataclasses.dataclass(frozen=True)
class EncoderConfig(Config):
    """f-AnoGAN encoder training: strategy, izif weight ``kappa`` and Adam's rate (the
    WGAN-GP's Adam: lr 1e-4, betas (0, 0.9)).  ``FAnoGAN`` builds it from its
    ``FAnoGANConfig`` (``encoder_strategy``, ``kappa``, the resolved encoder rate)."""

    strategy: str = option("izif", choices=STRATEGIES)
    kappa: float = option(1.0, ge=0)
    learning_rate: float = option(1e-4, gt=0)


class EncoderTrainer(PlayerTrainer):
    """Trains an encoder for a trained ``GANTrainer`` and its ``TrainState``."""

    def __init__(self, gan: GANTrainer, gan_state: TrainState, config: EncoderConfig = EncoderConfig(),
                 parallel=None):
        self.gan, self.config = gan, config
        nets = {"encoder": build_nets(gan.config.nets, parts=("encoder",))["encoder"],
                "generator": (gan.generator, None), "critic": (gan.critic, None)}
        self.encoder = nets["encoder"][0]
        fixed = {n: (gan_state.params[n], gan_state.stats[n]) for n in ("generator", "critic")}
        player = Player("encoder", ("encoder",), self._loss, optim.adam(config.learning_rate, b1=0.0, b2=0.9))
        super().__init__(nets, [player], image_shape=gan.image_shape, value_range=gan.value_range, fixed=fixed,
                         parallel=gan.parallel if parallel is None else parallel)

    def _loss(self, params, stats, x, key):
        gen, critic = self.gan.generator, self.gan.critic
        g = (params["generator"], stats["generator"])
        if self.config.strategy == "ziz":
            z = self.gan.latent(key, x.shape[0], x.dtype)
            z_rec, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], gen(*g, z), train=True)
            loss = jnp.mean((z - z_rec) ** 2)
            return loss, ({"encoder": e_stats}, {"latent_loss": loss})
        z, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], x, train=True)
        x_rec = gen(*g, z)
        image_loss = jnp.mean(mse_residual(x, x_rec))
        metrics = {"image_loss": image_loss}
        loss = image_loss
        if self.config.strategy == "izif":
            _, f_real = critic(params["critic"], stats["critic"], x)
            _, f_rec = critic(params["critic"], stats["critic"], x_rec)
            metrics["feature_loss"] = jnp.mean(feature_residual(f_real, f_rec))
            loss = image_loss + self.config.kappa * metrics["feature_loss"]
        return loss, ({"encoder": e_stats}, metrics)

    def encode(self, state: TrainState, x: jax.Array) -> jax.Array:
        """z (B, z_dim) = E(x) in inference mode."""
        return self.apply(state, "encoder", x)
