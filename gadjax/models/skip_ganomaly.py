"""Skip-GANomaly (Akcay, Atapour-Abarghouei and Breckon, IJCNN 2019): GANomaly's adversarial
training with a U-Net generator (skip connections) and a reconstruction-plus-feature score.

    det = SkipGANomaly(lam=0.9, steps=2000).fit(x_normal, x_val)
    det.score_details(x)   # {'score', 'residual', 'latent', 'reconstruction'}

Networks: U-Net ``G`` (``gadjax.nets.unet``; depth ``unet_depth``: a 1x1 bottleneck, the
five levels of the paper and of the reference code for 32x32; 28x28 allows only two, see
there), DCGAN discriminator ``D`` with last-conv features ``f`` (``gadjax.nets.ganomaly.discriminator``).
Two players:

    generator:      L_G = w_adv L_adv + w_con L_con + w_lat L_lat       (1, 50, 1)
                    L_adv = BCE(D(x_hat), 1)          (non-saturating)
                    L_con = mean |x - x_hat|,  L_lat = mean (f(x) - f(x_hat))^2  (paired)
    discriminator:  L_D = BCE(D(x), 1) + BCE(D(x_hat), 0)  [+ w_lat L_lat if d_latent]
                    re-initialised when L_D < 1e-5

with Adam(2e-4, beta1 0.5).  Score, every BatchNorm in inference mode:

    A(x) = lam * R(x) + (1 - lam) * L(x),   lam = 0.9,   L(x) = mean (f(x) - f(x_hat))^2
    R(x) = mean |x - x_hat|        (residual='l1': the paper's L1 residual, the default)
    R(x) = mean (x - x_hat)^2      (residual='l2': what the reference code's test() computes)

Both terms are per-element means, as in the reference code, so lam weighs them
independently of the image and feature sizes.

Where the paper and the reference code (github.com/samet-akcay/skip-ganomaly,
lib/models/skipganomaly.py) differ, the default is the paper's and the code's choice is an
option:

* ``residual``: the paper scores the L1 reconstruction error; the code squares it.
* ``d_latent``: the paper's discriminator plays only the adversarial loss; the code's
  ``backward_d`` also adds the generator's weighted latent term ``w_lat L_lat`` to D's
  loss, with a plus sign, so D too *minimises* the distance between the features of an
  image and of its reconstruction.  Here that term is computed on the same train-mode
  features of x and x_hat as D's BCE terms, and counts in the 1e-5 re-initialisation test
  (as the code's ``err_d`` does).

The U-Net depth needs no option: the paper (five down-sampling blocks for 32x32) and the
code (``int(log2(isize))`` levels) agree.  The loss pieces and the training step
(including D's re-initialisation) are GANomaly's, imported from ``gadjax.models.ganomaly``;
D trains on the just-updated G's reconstructions, as there (the code reuses the step's
earlier ones).  The U-Net has no latent vector, hence no ``z_dim`` setting.
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
RESIDUALS = ("l1", "l2")


def skip_ganomaly_score(x: jax.Array, x_hat: jax.Array, f: jax.Array, f_hat: jax.Array,
                        lam: float = 0.9, residual: str = "l1") -> jax.Array:
    """A(x) = lam * R(x) + (1 - lam) * mean_F (f - f_hat)^2, R = ``reconstruction_residual``.

    Args:
      x, x_hat: (B, H, W, C) images and their reconstructions G(x).
      f, f_hat: (B, F) discriminator features of ``x`` and ``x_hat``.
      lam: weight of the reconstruction term, in [0, 1].
      residual: ``'l1'`` (the paper) or ``'l2'`` (the reference code).
    Returns:
      (B,), higher = more anomalous.
    """
    return lam * reconstruction_residual(x, x_hat, residual) + (1.0 - lam) * feature_residual(f, f_hat)


def reconstruction_residual(x: jax.Array, x_hat: jax.Array, residual: str = "l1") -> jax.Array:
    """R(x): ``'l1'`` mean_{HWC} |x - x_hat| (the paper), ``'l2'`` mean_{HWC} (x - x_hat)^2
    (the reference code's score): (B, H, W, C) -> (B,)."""
    if residual == "l1":
        return l1_mean_residual(x, x_hat)
    if residual == "l2":
        return l2_mean_residual(x, x_hat)
    raise ValueError(f"unknown residual {residual!r}; choose one of {RESIDUALS}")


def l1_mean_residual(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    """R(x) = mean_{HWC} |x - x_hat|: (B, H, W, C) -> (B,)."""
    return jnp.mean(jnp.abs(x - x_hat), axis=(-3, -2, -1))


def l2_mean_residual(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    """R(x) = mean_{HWC} (x - x_hat)^2: (B, H, W, C) -> (B,)."""
    return jnp.mean(jnp.square(x - x_hat), axis=(-3, -2, -1))


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
      residual: the score's reconstruction term R(x): ``'l1'`` mean |x - x_hat| (the
        paper) or ``'l2'`` mean (x - x_hat)^2 (the reference code); score-only.
      d_latent: add ``w_lat L_lat`` to D's loss as the reference code does (False: the
        paper's D, adversarial loss only).
      n_stages: U-Net depth; None: ``gadjax.nets.unet.unet_depth`` (the paper's and the
        reference's 1x1 bottleneck: 5 levels for 32x32, 6 for 64x64; 2 for 28x28).
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
    residual: str = option("l1", choices=RESIDUALS, score=True,
                           doc="score's reconstruction term: 'l1' (paper) or 'l2' (reference code)")
    d_latent: bool = option(False, doc="add w_lat L_lat to D's loss (reference code; paper: no)")
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

    def _discriminator_loss(self, params, stats, x, key):
        # GANomaly's D loss (same passes, same fakes), plus the reference code's latent term.
        loss, metrics, d_stats, (f_real, f_fake) = self._discriminator_passes(params, stats, x)
        if self.config.d_latent:
            metrics["d_lat_loss"] = feature_matching_loss(f_real, f_fake, "paired")
            loss = loss + self.config.w_lat * metrics["d_lat_loss"]
        return loss, ({"discriminator": d_stats}, metrics)


def skip_ganomaly_scores(nets: dict, x: jax.Array, config: SkipGANomalyConfig = SkipGANomalyConfig()) -> dict:
    """Skip-GANomaly scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': G, 'discriminator': D}`` with ``G(x) -> x_hat`` and
        ``D(x) -> (logits, features)``, e.g. the trained nets bound with
        ``gadjax.nets.bind`` (BatchNorm in inference mode: batch-independent scores).
      x: (B, H, W, C) in [-1, 1].
      config: its ``lam`` weighs the two terms, its ``residual`` picks R(x).
    Returns:
      {'score': (B,), 'residual': R(x) (B,), 'latent': L(x) (B,), 'reconstruction': (B, H, W, C)}.
    """
    x_hat = nets["generator"](x)
    _, f = nets["discriminator"](x)
    _, f_hat = nets["discriminator"](x_hat)
    residual, latent = reconstruction_residual(x, x_hat, config.residual), feature_residual(f, f_hat)
    return {"score": config.lam * residual + (1.0 - config.lam) * latent, "residual": residual, "latent": latent,
            "reconstruction": x_hat}


class SkipGANomaly(PlayerDetector):
    """``SkipGANomaly(lam=0.9, steps=2000).fit(x_normal, x_val).score_samples(x)``.

    The paper's setup by default; the reference code's is
    ``SkipGANomaly(residual="l2", d_latent=True)`` on 32x32 images.

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
