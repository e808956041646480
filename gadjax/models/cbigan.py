"""Consistency-ensured BiGAN (Komoto et al., "Consistency Ensured Bi-directional GAN for
Anomaly Detection", IW-FCV 2020, CCIS 1212).

Komoto et al. name two reasons a BiGAN (EGBAD) trains badly: nothing makes E and G
mutual inverses except the adversarial game, and a concatenating discriminator
conditions weakly on the latent code.  Their fixes, both here:

* consistency losses on the generator/encoder player, for both cycles,

      L_GE = L_adv + lambda_x * ||x - G(E(x))||_1 + lambda_z * ||z - E(G(z))||_1

  (``CBiGANConfig.image_consistency`` / ``latent_consistency``; either may be 0 to
  ablate one cycle);
* a projection discriminator (``gadjax.nets.bigan.ProjectionDiscriminator``) in place
  of the concatenating one.

Everything else is EGBAD's: the same players, BCE game and anomaly score
``alpha * ||x - G(E(x))||_1 + (1 - alpha) * L_D`` (``gadjax.models.bigan``).

Only the chapter's abstract was available to us: the exact norm and weights of the
consistency terms, and the projection head's layout, are our reading of it.  The norms
are per-sample L1 sums (EGBAD's L_G norm) averaged over the batch, weights 1 by default;
at that weight the image cycle dominates the adversarial term early in training.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from gadjax.models.bigan import EGBAD, EGBAD_NETS, BiGANConfig, BiGANTrainer, Pairs
from gadjax.nets import NetSpec
from gadjax.scores import l1_residual
from gadjax.train import GANConfig, RunConfig

NAME = "cbigan"


@dataclasses.dataclass(frozen=True)
class CBiGANConfig(BiGANConfig):
    """``BiGANConfig`` plus the consistency weights; the discriminator defaults to
    ``'projection'`` (``'concat'`` gives EGBAD + consistency, an ablation)."""

    discriminator: str = "projection"
    image_consistency: float = 1.0
    latent_consistency: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        for name in ("image_consistency", "latent_consistency"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")


def consistency_losses(x: jax.Array, x_cycle: jax.Array, z: jax.Array, z_cycle: jax.Array):
    """Cycle-consistency terms ``(mean_B ||x - G(E(x))||_1, mean_B ||z - E(G(z))||_1)``.

    Args:
      x, x_cycle: (B, H, W, C) images and their reconstructions ``G(E(x))``.
      z, z_cycle: (B, z_dim) prior samples and ``E(G(z))``.
    Returns:
      two scalars: per-sample L1 norms (sums over H, W, C and over z, the same norm as
      EGBAD's L_G), averaged over the batch.
    """
    return jnp.mean(l1_residual(x, x_cycle)), jnp.mean(jnp.sum(jnp.abs(z - z_cycle), axis=-1))


class CBiGANTrainer(BiGANTrainer):
    """``BiGANTrainer`` whose generator/encoder player also closes both cycles."""

    def __init__(self, nets: NetSpec, config: CBiGANConfig = CBiGANConfig(), parallel=False,
                 unroll: bool | int | None = None):
        if not isinstance(config, CBiGANConfig):
            raise TypeError(f"CBiGANTrainer needs a CBiGANConfig (consistency weights), got {type(config).__name__}")
        super().__init__(nets, config, parallel=parallel, unroll=unroll)

    def _extra_loss(self, params, stats, x, pairs: Pairs, key):
        del key
        cfg = self.config
        # Both cycles reuse the adversarial pass: E(x) and G(z) are already computed, in
        # training mode, and their gradients reach both G and E.  G's BatchNorm running
        # averages move on this pass too, so at inference they describe both of G's inputs
        # (prior codes and encoded images), the ones scoring feeds it.
        x_cycle, g_stats = self.generator.apply(params["generator"], stats["generator"], pairs.z_enc, train=True)
        z_cycle, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], pairs.x_gen, train=True)
        image, latent = consistency_losses(x, x_cycle, pairs.z, z_cycle)
        loss = cfg.image_consistency * image + cfg.latent_consistency * latent
        return loss, {**stats, "generator": g_stats, "encoder": e_stats}, {"image_consistency": image,
                                                                          "latent_consistency": latent}


class CBiGAN(EGBAD):
    """``CBiGAN(nets, run, bigan=CBiGANConfig(...)).fit(x).score_samples(x_test)``.

    Arguments as ``EGBAD``; ``bigan`` must be a ``CBiGANConfig``.
    """

    trainer_class = CBiGANTrainer

    def __init__(self, nets: NetSpec | GANConfig = EGBAD_NETS, run: RunConfig = RunConfig(), *,
                 bigan: CBiGANConfig = CBiGANConfig(), alpha: float = 0.9, method: str = "feature-matching",
                 **kwargs):
        if not isinstance(bigan, CBiGANConfig):
            raise TypeError(f"CBiGAN needs bigan=CBiGANConfig(...), got {type(bigan).__name__}")
        super().__init__(nets, run, bigan=bigan, alpha=alpha, method=method, **kwargs)
