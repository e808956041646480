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

Everything else is EGBAD's: the same players, BCE game, BatchNorm updates, settings
(``CBiGANConfig`` extends ``EGBADConfig``, scoring ``weights`` included) and anomaly score
``alpha * ||x - G(E(x))||_1 + (1 - alpha) * L_D`` (``egbad_scores``, ``gadjax.models.bigan``).

    det = CBiGAN(learning_rate=2e-4, steps=800, latent_consistency=0.5).fit(x_normal, x_val)

Only the chapter's abstract was available to us: the exact norm and weights of the
consistency terms, and the projection head's layout, are our reading of it.  The norms
are per-sample L1 sums (EGBAD's L_G norm) averaged over the batch, weights 1 by default;
at that weight the image cycle dominates the adversarial term early in training.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gadjax.models.bigan import EGBAD, BiGANTrainer, EGBADConfig, Pairs
from gadjax.models.config import option
from gadjax.nets import NetSpec
from gadjax.nets.bigan import DISCRIMINATORS
from gadjax.scores import l1_residual

NAME = "cbigan"


@dataclasses.dataclass(frozen=True)
class CBiGANConfig(EGBADConfig):
    """``EGBADConfig`` (the EGBAD authors' defaults) plus the consistency weights.

    Attributes:
      discriminator: ``'projection'`` (Komoto et al.); ``'concat'`` gives EGBAD +
        consistency, an ablation.
      image_consistency, latent_consistency: lambda_x and lambda_z, weights of the image
        and latent cycles (1 each: our reading of the abstract; 0 ablates a cycle).
    """

    discriminator: str = option("projection", choices=DISCRIMINATORS)
    image_consistency: float = option(1.0, ge=0, doc="lambda_x, weight of ||x - G(E(x))||_1")
    latent_consistency: float = option(1.0, ge=0, doc="lambda_z, weight of ||z - E(G(z))||_1")


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

    def _extra_loss(self, params, stats, x, pairs: Pairs, x_rec, key):
        del key
        cfg = self.config
        # Both cycles reuse the training-mode passes of the G+E update, whose gradients
        # reach both G and E: the image cycle is BiGANTrainer's reconstruction pass
        # G(E(x)) (which has already moved G's BatchNorm averages, as EGBAD's), the latent
        # cycle runs E on G(z), moving E's averages too.
        z_cycle, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], pairs.x_gen, train=True)
        image, latent = consistency_losses(x, x_rec, pairs.z, z_cycle)
        loss = cfg.image_consistency * image + cfg.latent_consistency * latent
        return loss, {**stats, "encoder": e_stats}, {"image_consistency": image, "latent_consistency": latent}


class CBiGAN(EGBAD):
    """``CBiGAN(image_consistency=1, steps=800).fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``CBiGANConfig`` (pass one, or its fields as keywords); everything else as
    ``EGBAD``.
    """

    name = NAME
    config_class = CBiGANConfig
    trainer_class = CBiGANTrainer
