"""Skip-GANomaly (Akcay, Atapour-Abarghouei and Breckon, IJCNN 2019): GANomaly's adversarial
training with a U-Net generator (skip connections) and a reconstruction-plus-feature score.

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
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp

from gadjax.losses import bce_generator_loss
from gadjax.models.base import PlayerDetector
from gadjax.models.ganomaly import GANomalyTrainer, check_config, check_spec, contextual_loss, feature_matching_loss
from gadjax.nets import NetSpec, PureNet
from gadjax.nets.ganomaly import check_net_options, discriminator, pure_net
from gadjax.nets.unet import UNetGenerator
from gadjax.scores import feature_residual
from gadjax.train import RunConfig, TrainState

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
class SkipGANomalyConfig:
    """Loss weights, score weight and optimiser of Skip-GANomaly (paper defaults).

    Attributes:
      w_adv, w_con, w_lat: weights of L_adv, L_con, L_lat.
      lam: weight of the reconstruction term of the score, in [0, 1].
      n_stages: U-Net depth (default: ``spatial_plan``'s stage count).
      learning_rate, beta1, beta2, reinit_threshold, init: as ``GANomalyConfig``.
    """

    w_adv: float = 1.0
    w_con: float = 50.0
    w_lat: float = 1.0
    lam: float = 0.9
    n_stages: int | None = None
    learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    reinit_threshold: float = 1e-5
    init: str = "normal"

    def __post_init__(self):
        check_config(self, weights=("w_adv", "w_con", "w_lat"))
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {self.lam}")
        if self.n_stages is not None and self.n_stages < 2:
            raise ValueError(f"n_stages must be >= 2, got {self.n_stages}")


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


@partial(jax.jit, static_argnames=("generator", "discriminator"))
def skip_ganomaly_scores(generator: PureNet, discriminator: PureNet, g_params, g_stats, d_params, d_stats,
                         x: jax.Array, lam: float = 0.9) -> dict:
    """Skip-GANomaly scores of a batch, BatchNorm in inference mode (batch-independent).

    Args:
      x: (B, H, W, C) in [-1, 1]; lam: weight of the reconstruction term (traced: no recompile).
    Returns:
      {'score': (B,), 'residual': (B,), 'latent': (B,), 'reconstruction': (B, H, W, C)}.
    """
    x_hat = generator(g_params, g_stats, x)
    _, f = discriminator(d_params, d_stats, x)
    _, f_hat = discriminator(d_params, d_stats, x_hat)
    return {"score": skip_ganomaly_score(x, x_hat, f, f_hat, lam),
            "residual": l1_mean_residual(x, x_hat),
            "latent": feature_residual(f, f_hat), "reconstruction": x_hat}


class SkipGANomaly(PlayerDetector):
    """``SkipGANomaly(nets, run).fit(x_normal).score_samples(x)``.

    Args:
      nets: ``NetSpec`` (family 'dcgan'; width = ngf = ndf, paper 64; z_dim is unused), or a
        ``GANConfig`` whose nets are used.
      run: steps, batch size (paper: 64), seed, checkpoints.
      config: loss weights, score weight ``lam`` and optimiser, ``SkipGANomalyConfig``.
      Other arguments as ``PlayerDetector``.
    """

    def __init__(self, nets: NetSpec = NetSpec(), run: RunConfig = RunConfig(), *,
                 config: SkipGANomalyConfig = SkipGANomalyConfig(), **kwargs):
        super().__init__(nets, run, **kwargs)
        check_spec(self.nets, "Skip-GANomaly")
        self.config = config

    def build_trainer(self) -> SkipGANomalyTrainer:
        return SkipGANomalyTrainer(self.nets, self.config, parallel=self.parallel)

    def score_state(self, state: TrainState, x: jax.Array) -> dict:
        """Scores of batch ``x`` (B, H, W, C) under ``state`` (pure; see ``skip_ganomaly_scores``)."""
        t, p, s = self.trainer, state.params, state.stats
        return skip_ganomaly_scores(t.generator, t.discriminator, p["generator"], s["generator"],
                                    p["discriminator"], s["discriminator"], x, self.config.lam)
