"""Joint encoder training (Berg, Ahlberg & Felsberg 2020; the thesis method).

A WGAN-GP whose encoder E is trained *jointly* with the GAN, on generated images only,
with an image-space loss (so it never needs clean real data, which makes the method
robust to anomalies contaminating the training set):

    L_E = E_z || G(z) - G(E(G(z))) ||_1

The anomaly score combines a normalised image residual with the latent code's distance
from the origin of the N(0, I) prior (``gadjax.scores.berg_score``):

    A(x) = lam * mean |minmax(x) - minmax(G(E(x)))| + (1 - lam) * ||E(x)||_2,  lam = 0.05

    det = JointEncoder(lam=0.05, steps=2000).fit(x_normal, x_val)   # settings: JointEncoderConfig
    det.score_details(x)   # {'score', 'residual', 'origin', 'z', 'reconstruction'}
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gadjax.models.base import PlayerDetector
from gadjax.models.config import GANConfigFields, option
from gadjax.nets import build_nets
from gadjax.scores import berg_score, normalised_residual, origin_distance
from gadjax.train import GANConfig, GANTrainer, Player

NAME = "joint_encoder"


def image_space_loss(x_gen: jax.Array, x_cycle: jax.Array) -> jax.Array:
    """Berg et al.'s encoder loss: mean over the batch of sum |G(z) - G(E(G(z)))|, / pixels.

    Args:
      x_gen, x_cycle: (B, H, W, C). Returns a scalar (mean absolute error).
    """
    return jnp.mean(jnp.abs(x_gen - x_cycle))


@dataclasses.dataclass(frozen=True)
class JointEncoderConfig(GANConfigFields):
    """The GAN's settings (``GANConfigFields``: WGAN-GP, Adam 1e-4 with betas (0, 0.9),
    n_critic 5, gradient penalty 10, as Berg et al.; the thesis nets for 28x28 gray
    images) plus the encoder's and the score's.

    Attributes:
      lam: weight of the normalised image residual in the score (Berg et al.'s 0.05);
        score-only.
      encoder_learning_rate: the encoder's rate; None follows the GAN's (``learning_rate``,
        else the objective's paper rate), as Berg et al. train all three nets alike.
    """

    lam: float = option(0.05, ge=0, le=1, score=True, doc="score weight of the normalised image residual")
    encoder_learning_rate: float | None = option(None, gt=0, doc="encoder rate; None: the GAN's")


class JointEncoderTrainer(GANTrainer):
    """The GAN's players (critic x n_critic, generator) plus an encoder player.

    The encoder uses the GAN objective's optimiser (``gadjax.optim``: Adam for WGAN-GP,
    DCGAN and LSGAN, RMSProp for WGAN) at the GAN's rate unless ``encoder_lr`` is given.
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


def joint_encoder_scores(nets: dict, x: jax.Array, config: JointEncoderConfig = JointEncoderConfig()) -> dict:
    """Berg et al. scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': G, 'encoder': E}`` with ``E(x) -> z`` and ``G(z) -> x``, e.g.
        the trained nets bound with ``gadjax.nets.bind`` (inference mode).
      x: (B, H, W, C) in the model's range.
      config: its ``lam`` weighs the two terms.
    Returns:
      {'score': (B,), 'residual': (B,), 'origin': (B,), 'z': (B, z_dim),
      'reconstruction': (B, H, W, C)}: score = lam * residual + (1 - lam) * origin
      (``gadjax.scores.berg_score``), the normalised residual and origin distance kept so
      each can be judged alone.
    """
    z = nets["encoder"](x)
    x_rec = nets["generator"](z)
    return {"score": berg_score(x, x_rec, z, config.lam), "residual": normalised_residual(x, x_rec),
            "origin": origin_distance(z), "z": z, "reconstruction": x_rec}


class JointEncoder(PlayerDetector):
    """``JointEncoder(lam=0.05, steps=2000).fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``JointEncoderConfig`` (pass one, or its fields as keywords); the nets
    come from the data unless ``net`` names them (the thesis nets for 28x28 gray images,
    DCGAN nets for other images, MLPs for rows).  Other arguments as ``Detector``.
    """

    name = NAME
    config_class = JointEncoderConfig
    score_fn = staticmethod(joint_encoder_scores)
    score_nets = ("generator", "encoder")

    def _net_fields(self, family: str) -> dict:
        return self.config.net_fields(family)

    def build_trainer(self) -> JointEncoderTrainer:
        cfg = self.config
        gan = cfg.gan_config(self.spec)
        encoder_lr = cfg.rate("encoder", gan.objective().learning_rate)
        return JointEncoderTrainer(gan, encoder_lr, parallel=self.parallel)
