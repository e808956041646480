"""Skip-GANomaly (Akcay, Atapour-Abarghouei and Breckon, IJCNN 2019): GANomaly's adversarial
training with a U-Net generator (skip connections) and a reconstruction-plus-feature score.

    det = SkipGANomaly(lam=0.9, steps=2000).fit(x_normal, x_val)
    det.score_details(x)   # {'score', 'residual', 'latent', 'reconstruction'}

Networks: U-Net ``G`` (``gadjax.nets.unet``), DCGAN discriminator ``D`` with last-conv
features ``f`` (``gadjax.nets.ganomaly.discriminator``).  Two players:

    generator:      L_G = w_adv L_adv + w_con L_con + w_lat L_lat       (1, 50, 1)
                    L_adv = BCE(D(x_hat), 1)          (non-saturating)
                    L_con = mean |x - x_hat|,  L_lat = mean (f(x) - f(x_hat))^2  (paired)
    discriminator:  L_D = BCE(D(x), 1) + BCE(D(x_hat), 0), re-initialised below 1e-5

with Adam(2e-4, beta1 0.5).  Score, every BatchNorm in inference mode:

    A(x) = lam * R(x) + (1 - lam) * L(x),   lam = 0.9
    R(x) = mean |x - x_hat|  (the paper's L1 residual),  L(x) = mean (f(x) - f(x_hat))^2

Both terms are per-element means, as in the reference code, so lam weighs them
independently of the image and feature sizes.  The loss pieces and the training step
(including D's re-initialisation) are GANomaly's, imported from ``gadjax.models.ganomaly``.
The U-Net has no latent vector, hence no ``z_dim`` setting.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from gadjax.losses import bce_generator_loss
from gadjax.models.base import PlayerDetector
from gadjax.models.config import DetectorConfig, option
from gadjax.models.ganomaly import GANomalyTrainer, contextual_loss, feature_matching_loss
from gadjax.nets import NetSpec
from gadjax.nets.dcgan import NORMS
from gadjax.nets.ganomaly import INITS, check_net_options, discriminator, pure_net
from gadjax.nets.unet import UNetGenerator
from gadjax.scores import feature_residual

NAME = "skip_ganomaly"


def skip_ganomaly_score(x: jax.Array, x_hat: jax.Array, f: jax.Array, f_hat: jax.Array,
                        lam: float = 0.9) -> jax.Array:
    """A(x) = lam * mean_{HWC} |x - x_hat| + (1 - lam) * mean_F (f - f_hat)^2.

    Args:
      x, x_hat: (B, H, W, C) images and their reconstructions G(x).
      f, f_hat: (B, F) discriminator features of ``x`` and ``x_hat``.
      lam: weight of the reconstruction term, in [0, 1].
    Returns:
      (B,), higher = more anomalous.
    """
    return lam * l1_mean_residual(x, x_hat) + (1.0 - lam) * feature_residual(f, f_hat)


def l1_mean_residual(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    """R(x) = mean_{HWC} |x - x_hat|: (B, H, W, C) -> (B,)."""
    return jnp.mean(jnp.abs(x - x_hat), axis=(-3, -2, -1))


@dataclasses.dataclass(frozen=True)
class SkipGANomalyConfig(DetectorConfig):
    """Every Skip-GANomaly hyper-parameter, with the paper's defaults (fields of
    ``DetectorConfig`` as documented there).

    Attributes:
      learning_rate, beta1, beta2: Adam, for both players (2e-4, 0.5, 0.999: the paper
        and its reference code, inherited from GANomaly).
      width, generator_norm: the nets (ngf = ndf 64, BatchNorm everywhere, as the paper).
      w_adv, w_con, w_lat: weights of L_adv, L_con, L_lat (the paper's 1, 50, 1).
      lam: weight of the reconstruction term of the score, in [0, 1] (the paper's 0.9);
        score-only.
      n_stages: U-Net depth; None: ``spatial_plan``'s stage count for the image size.
      reinit_threshold: re-initialise D when its loss drops below this (the reference's
        1e-5; 0 disables).
      init: ``'normal'`` (N(0, 0.02) weights, the reference) or ``'default'`` (Flax).
    """

    learning_rate: float = option(2e-4, gt=0, doc="Adam rate of both players")
    beta1: float = option(0.5, ge=0, lt=1)
    beta2: float = option(0.999, ge=0, lt=1)
    generator_norm: str = option("batch", choices=NORMS, doc="norm of every network")
    w_adv: float = option(1.0, ge=0)
    w_con: float = option(50.0, ge=0)
    w_lat: float = option(1.0, ge=0)
    lam: float = option(0.9, ge=0, le=1, score=True, doc="score weight of the reconstruction term")
    n_stages: int | None = option(None, ge=2, doc="U-Net depth; None: from the image size")
    reinit_threshold: float = option(1e-5, ge=0)
    init: str = option("normal", choices=INITS)

    families: ClassVar[tuple[str, ...]] = ("dcgan",)


class SkipGANomalyTrainer(GANomalyTrainer):
    """GANomaly's trainer with the U-Net generator and Skip-GANomaly's generator loss."""

    model = "Skip-GANomaly"
    d_loss_scale = 1.0  # the reference sums D's real and fake BCE terms

    def __init__(self, nets: NetSpec, config: SkipGANomalyConfig = SkipGANomalyConfig(), parallel=False,
                 unroll: bool | int | None = None):
        super().__init__(nets, config, parallel=parallel, unroll=unroll)

    def build_nets(self):
        s, cfg = self.spec, self.config
        check_net_options(s.generator_norm, cfg.init)
        shape, norm = s.image_shape, s.generator_norm
        return {"generator": pure_net(lambda rngs: UNetGenerator(shape, s.width, norm=norm, n_stages=cfg.n_stages,
                                                                 rngs=rngs), "generator", cfg.init),
                "discriminator": pure_net(lambda rngs: discriminator(shape, s.width, norm=norm, rngs=rngs),
                                          "discriminator", cfg.init)}

    def reconstruct(self, g_params, g_stats, x, train: bool = False):
        return self.generator.apply(g_params, g_stats, x, train=train)

    def _generator_loss(self, params, stats, x, key):
        cfg = self.config
        x_hat, g_stats = self.reconstruct(params["generator"], stats["generator"], x, train=True)
        l_fake, f_real, f_fake = self._discriminate(params, stats, x, x_hat)
        terms = {"adv_loss": bce_generator_loss(l_fake), "con_loss": contextual_loss(x, x_hat),
                 "lat_loss": feature_matching_loss(f_real, f_fake, "paired")}
        loss = cfg.w_adv * terms["adv_loss"] + cfg.w_con * terms["con_loss"] + cfg.w_lat * terms["lat_loss"]
        return loss, ({"generator": g_stats}, terms)


def skip_ganomaly_scores(nets: dict, x: jax.Array, config: SkipGANomalyConfig = SkipGANomalyConfig()) -> dict:
    """Skip-GANomaly scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': G, 'discriminator': D}`` with ``G(x) -> x_hat`` and
        ``D(x) -> (logits, features)``, e.g. the trained nets bound with
        ``gadjax.nets.bind`` (BatchNorm in inference mode: batch-independent scores).
      x: (B, H, W, C) in [-1, 1].
      config: its ``lam`` weighs the two terms.
    Returns:
      {'score': (B,), 'residual': (B,), 'latent': (B,), 'reconstruction': (B, H, W, C)}.
    """
    x_hat = nets["generator"](x)
    _, f = nets["discriminator"](x)
    _, f_hat = nets["discriminator"](x_hat)
    return {"score": skip_ganomaly_score(x, x_hat, f, f_hat, config.lam), "residual": l1_mean_residual(x, x_hat),
            "latent": feature_residual(f, f_hat), "reconstruction": x_hat}


class SkipGANomaly(PlayerDetector):
    """``SkipGANomaly(lam=0.9, steps=2000).fit(x_normal, x_val).score_samples(x)``.

    Settings: ``SkipGANomalyConfig`` (pass one, or its fields as keywords); the image
    shape comes from the training images.  Other arguments as ``Detector``.
    """

    name = NAME
    config_class = SkipGANomalyConfig
    score_fn = staticmethod(skip_ganomaly_scores)
    score_nets = ("generator", "discriminator")

    def _net_fields(self, family: str) -> dict:
        # NetSpec's z_dim is left at its default: the U-Net never reads it.
        return {"width": self.config.width, "generator_norm": self.config.generator_norm}

    def build_trainer(self) -> SkipGANomalyTrainer:
        return SkipGANomalyTrainer(self.spec, self.config, parallel=self.parallel)
