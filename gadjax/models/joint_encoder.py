"""Joint encoder training (Berg, Ahlberg & Felsberg 2020; the thesis method).

A WGAN-GP whose encoder E is trained *jointly* with the GAN, on generated images only,
with an image-space loss (so it never needs clean real data, which makes the method
robust to anomalies contaminating the training set):

    L_E = E_z || G(z) - G(E(G(z))) ||_1

The anomaly score combines a normalised image residual with the latent code's distance
from the origin of the N(0, I) prior (``gadjax.scores.berg_score``):

    A(x) = lam * mean |minmax(x) - minmax(G(E(x)))| + (1 - lam) * ||E(x)||_2,  lam = 0.05
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from gadjax.models.base import PlayerDetector
from gadjax.nets import PureNet, build_nets
from gadjax.scores import berg_score, normalised_residual, origin_distance
from gadjax.train import GANConfig, GANTrainer, Player, RunConfig

NAME = "joint_encoder"


def image_space_loss(x_gen: jax.Array, x_cycle: jax.Array) -> jax.Array:
    """Berg et al.'s encoder loss: mean over the batch of sum |G(z) - G(E(G(z)))|, / pixels.

    Args:
      x_gen, x_cycle: (B, H, W, C). Returns a scalar (mean absolute error).
    """
    return jnp.mean(jnp.abs(x_gen - x_cycle))


class JointEncoderTrainer(GANTrainer):
    """WGAN-GP players (critic x n_critic, generator) plus an encoder player.

    The encoder's Adam uses the GAN's learning rate and betas unless ``encoder_lr`` is given.
    """

    def __init__(self, config: GANConfig, encoder_lr: float | None = None, parallel=False, unroll=None):
        encoder = build_nets(config.nets, parts=("encoder",))
        objective = config.objective()
        lr = objective.learning_rate if encoder_lr is None else encoder_lr
        player = Player("encoder", ("encoder",), self._encoder_loss, objective.optimizer(lr))
        super().__init__(config, parallel=parallel, unroll=unroll, extra_nets=encoder, extra_players=(player,))
        self.encoder = self.nets["encoder"]

    def _encoder_loss(self, params, stats, real, key):
        z = self.latent(key, real.shape[0], real.dtype)
        g = (params["generator"], stats["generator"])
        x_gen = self.generator(*g, z)  # inference-mode G: the encoder must not move G's statistics
        z_rec, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], x_gen, train=True)
        loss = image_space_loss(x_gen, self.generator(*g, z_rec))
        return loss, ({"encoder": e_stats}, {"latent_error": jnp.mean((z - z_rec) ** 2)})


@partial(jax.jit, static_argnames=("generator", "encoder"))
def joint_encoder_scores(generator: PureNet, encoder: PureNet, g_params, g_stats, e_params, e_stats,
                         x: jax.Array, lam: float = 0.05) -> dict:
    """Berg et al. scores of a batch x (B, H, W, C), networks in inference mode.

    Returns {'score': (B,), 'residual': (B,), 'origin': (B,), 'z': (B, z_dim),
    'reconstruction': (B, H, W, C)}: score = lam * residual + (1 - lam) * origin
    (``gadjax.scores.berg_score``), the normalised residual and origin distance kept so
    each can be judged alone.
    """
    z = encoder(e_params, e_stats, x)
    x_rec = generator(g_params, g_stats, z)
    return {"score": berg_score(x, x_rec, z, lam), "residual": normalised_residual(x, x_rec),
            "origin": origin_distance(z), "z": z, "reconstruction": x_rec}


class JointEncoder(PlayerDetector):
    """``JointEncoder(gan, run, lam=0.05).fit(x).score_samples(x_test)``.

    Args:
      gan: the WGAN-GP (``GANConfig``); its image shape is set from the data at fit time.
      lam: weight of the normalised image residual (paper: 0.05).
      encoder_lr: encoder learning rate (default: the GAN's).
    """

    def __init__(self, gan: GANConfig = GANConfig(), run: RunConfig = RunConfig(), *, lam: float = 0.05,
                 encoder_lr: float | None = None, **kwargs):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        super().__init__(gan.nets, run, **kwargs)
        self.gan, self.lam, self.encoder_lr = gan, lam, encoder_lr

    def build_trainer(self) -> JointEncoderTrainer:
        config = dataclasses.replace(self.gan, nets=self.nets)
        return JointEncoderTrainer(config, self.encoder_lr, parallel=self.parallel)

    def score_state(self, state, x) -> dict:
        t = self.trainer
        return joint_encoder_scores(t.generator, t.encoder, state.params["generator"], state.stats["generator"],
                                    state.params["encoder"], state.stats["encoder"], x, self.lam)
