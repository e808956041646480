"""DED-GAN (Liu et al., 2021): a GAN whose generator is two encoder-decoder sub-networks.

    x --E1--> z1 --D1--> x1 --E2--> z2 --D2--> x2         (gadjax.nets.dedgan)

    generator:      L_G = w_adv L_adv + w_rec L_rec + w_lat L_lat                 (1, 50, 1)
                    L_adv = (FM(x, x1) + FM(x, x2)) / 2     feature matching on D's last conv
                    L_rec = (mean |x - x1| + mean |x - x2|) / 2
                    L_lat = mean (z1 - z2)^2
    discriminator:  L_D = (BCE(D(x), 1) + BCE(D([x1; x2]), 0)) / 2
    anomaly score:  A(x) = mean (z1 - z2)^2          (every BatchNorm in inference mode)

    det = DEDGAN(w_rec=50, steps=2000).fit(x_normal, x_val)     # settings: DEDGANConfig
    det.score_details(x)   # {'score', 'z1', 'z2', 'reconstruction', 'reconstruction2'}

Sources.  The paper's full text could not be retrieved, so only its summary-level claims
are taken as given: the generator is two encoder-decoder sub-networks, the
discriminator is DCGAN's, the generator loss weights reconstruction against the
adversarial term, and the score is the distance between the two latent vectors.  The rest
is this implementation's reading, following GANomaly (``gadjax.models.ganomaly``), which
DED-GAN extends and whose training step (player order, Adam 2e-4 / beta1 0.5, N(0, 0.02)
init, re-initialising a discriminator whose loss falls below 1e-5) it reuses: the second
sub-network re-encodes the FIRST reconstruction; both reconstructions are pulled to ``x``
with L1; an L2 latent-consistency term (without it ``z1`` and ``z2`` come from unrelated
encoders and their distance carries no signal); GANomaly's weights 1 / 50 / 1;
``adversarial='bce'`` swaps feature matching for the non-saturating ``-log D(x_k)``;
``score_p=1`` scores with the L1 instead of the squared L2 distance.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from gadjax.losses import bce_critic_loss, bce_generator_loss
from gadjax.models.base import PlayerDetector
from gadjax.models.config import ConfigError, DetectorConfig, option
from gadjax.models.ganomaly import FEATURE_MATCHING, GANomalyTrainer, contextual_loss, feature_matching_loss
from gadjax.nets import NetSpec
from gadjax.nets.dcgan import NORMS
from gadjax.nets.dedgan import DEDOutput, dedgan_nets
from gadjax.nets.ganomaly import INITS

NAME = "dedgan"
ADVERSARIAL = ("feature", "bce")


def latent_distance(z1: jax.Array, z2: jax.Array, p: int = 2) -> jax.Array:
    """DED-GAN anomaly score ``mean_k |z1_k - z2_k|^p``: (..., Z), (..., Z) -> (...).

    ``p`` is 2 (mean squared difference, default) or 1 (mean absolute difference).
    Higher = more anomalous.
    """
    d = jnp.abs(z1 - z2)
    return jnp.mean(d * d if p == 2 else d, axis=-1)


def reconstruction_loss(x: jax.Array, x1: jax.Array, x2: jax.Array) -> jax.Array:
    """L_rec = (mean |x - x1| + mean |x - x2|) / 2: both sub-networks rebuild the input.

    Args:
      x, x1, x2: (B, H, W, C) images and the two reconstructions.
    Returns:
      scalar.
    """
    return 0.5 * (contextual_loss(x, x1) + contextual_loss(x, x2))


def latent_loss(z1: jax.Array, z2: jax.Array) -> jax.Array:
    """L_lat = batch mean of ``latent_distance(z1, z2, 2)``: (B, Z), (B, Z) -> scalar."""
    return jnp.mean(latent_distance(z1, z2, 2))


@dataclasses.dataclass(frozen=True)
class DEDGANConfig(DetectorConfig):
    """Every DED-GAN hyper-parameter (fields of ``DetectorConfig`` as documented there).

    The defaults are GANomaly's (its paper and reference code), which DED-GAN extends;
    see the module docstring for what is taken from the DED-GAN paper itself.

    Attributes:
      learning_rate, beta1, beta2: Adam, for both players (2e-4, 0.5, 0.999).
      z_dim, width, generator_norm: the nets (nz 100, ngf = ndf 64, BatchNorm in every network).
      w_adv, w_rec, w_lat: weights of L_adv, L_rec, L_lat (1, 50, 1; >= 0, not all zero).
      adversarial: 'feature' (feature matching) or 'bce' (non-saturating BCE).
      feature_match: 'mean' or 'paired', see ``ganomaly.feature_matching_loss``.
      reinit_threshold: re-initialise D when its loss drops below this (1e-5; 0 disables).
      init: 'normal' (N(0, 0.02), the DCGAN / GANomaly reference) or 'default' (Flax).
      score_p: the score is ``mean |z1 - z2|^p``, p = 2 (default) or 1; score-only.
    """

    learning_rate: float = option(2e-4, gt=0, doc="Adam rate of both players")
    beta1: float = option(0.5, ge=0, lt=1)
    beta2: float = option(0.999, ge=0, lt=1)
    z_dim: int = option(100, ge=1)
    generator_norm: str = option("batch", choices=NORMS, doc="norm of every network")
    w_adv: float = option(1.0, ge=0)
    w_rec: float = option(50.0, ge=0)
    w_lat: float = option(1.0, ge=0)
    adversarial: str = option("feature", choices=ADVERSARIAL)
    feature_match: str = option("mean", choices=FEATURE_MATCHING)
    reinit_threshold: float = option(1e-5, ge=0)
    init: str = option("normal", choices=INITS)
    score_p: int = option(2, choices=(1, 2), score=True, doc="score = mean |z1 - z2|^p")

    families: ClassVar[tuple[str, ...]] = ("dcgan",)

    def check(self) -> None:
        super().check()
        if not any((self.w_adv, self.w_rec, self.w_lat)):
            raise ConfigError("w_adv", "w_adv, w_rec and w_lat are all zero: the generator would not train")


class DEDGANTrainer(GANomalyTrainer):
    """GANomaly's two-player step with DED-GAN's generator, generator loss and fakes.

    ``state.params`` / ``state.stats`` hold ``'generator'`` (a ``DualEncoderDecoder``)
    and ``'discriminator'`` (DCGAN ``Critic``); every net uses ``nets.generator_norm``.
    """

    model = "DED-GAN"

    def __init__(self, nets: NetSpec, config: DEDGANConfig = DEDGANConfig(), parallel=False,
                 unroll: bool | int | None = None):
        super().__init__(nets, config, parallel=parallel, unroll=unroll)

    def build_nets(self):
        s = self.spec
        return dedgan_nets(s.image_shape, s.z_dim, s.width, norm=s.generator_norm, init=self.config.init)

    def forward(self, g_params, g_stats, x, train: bool = False) -> tuple[DEDOutput, object]:
        """``(DEDOutput, new generator stats)`` for images x (B, H, W, C)."""
        return self.generator.apply(g_params, g_stats, x, train=train)

    def reconstruct(self, g_params, g_stats, x, train: bool = False):
        """The first reconstruction x1 (B, H, W, C) and the generator's new statistics."""
        out, g_stats = self.forward(g_params, g_stats, x, train=train)
        return out.x1, g_stats

    def _generator_loss(self, params, stats, x, key):
        cfg = self.config

        def disc(img):
            # Train-mode BatchNorm, one batch per call (real, x1, x2), as D's own update;
            # D's running averages are left to D's player.
            return self.discriminator.apply(params["discriminator"], stats["discriminator"], img, train=True)[0]

        out, g_stats = self.forward(params["generator"], stats["generator"], x, train=True)
        (l1, f1), (l2, f2) = disc(out.x1), disc(out.x2)
        if cfg.adversarial == "feature":
            f_real = disc(x)[1]
            adv = 0.5 * (feature_matching_loss(f_real, f1, cfg.feature_match)
                         + feature_matching_loss(f_real, f2, cfg.feature_match))
        else:
            adv = 0.5 * (bce_generator_loss(l1) + bce_generator_loss(l2))
        terms = {"adv_loss": adv, "rec_loss": reconstruction_loss(x, out.x1, out.x2),
                 "lat_loss": latent_loss(out.z1, out.z2)}
        loss = cfg.w_adv * terms["adv_loss"] + cfg.w_rec * terms["rec_loss"] + cfg.w_lat * terms["lat_loss"]
        return loss, ({"generator": g_stats}, terms)

    def _discriminator_loss(self, params, stats, x, key):
        # Fakes from the just-updated generator in train mode (GANomaly's reference); both
        # reconstructions are fakes, since both are pushed towards D's "real" side.
        out, _ = self.forward(params["generator"], stats["generator"], x, train=True)
        fakes = jax.lax.stop_gradient(jnp.concatenate([out.x1, out.x2]))
        (l_real, _), d_stats = self.discriminator.apply(params["discriminator"], stats["discriminator"], x,
                                                        train=True)
        (l_fake, _), d_stats = self.discriminator.apply(params["discriminator"], d_stats, fakes, train=True)
        loss = self.d_loss_scale * bce_critic_loss(l_real, l_fake)
        metrics = {"d_real": jnp.mean(jax.nn.sigmoid(l_real)), "d_fake": jnp.mean(jax.nn.sigmoid(l_fake))}
        return loss, ({"discriminator": d_stats}, metrics)


def dedgan_scores(nets: dict, x: jax.Array, config: DEDGANConfig = DEDGANConfig()) -> dict:
    """DED-GAN scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': G}`` with ``G(x) -> DEDOutput(z1, x1, z2, x2)``, e.g. the
        trained ``DualEncoderDecoder`` bound with ``gadjax.nets.bind`` (BatchNorm on its
        running averages: an image's score does not depend on the rest of its batch).
      x: (B, H, W, C) images in [-1, 1].
      config: its ``score_p``, see ``latent_distance``.
    Returns:
      {'score': (B,), 'z1': (B, Z), 'z2': (B, Z), 'reconstruction': x1 (B, H, W, C),
       'reconstruction2': x2 (B, H, W, C)}.
    """
    out = nets["generator"](x)
    return {"score": latent_distance(out.z1, out.z2, config.score_p), "z1": out.z1, "z2": out.z2,
            "reconstruction": out.x1, "reconstruction2": out.x2}


class DEDGAN(PlayerDetector):
    """``DEDGAN(w_rec=50, steps=2000).fit(x_normal, x_val).score_samples(x)``;
    ``anomaly_map`` is ``|x - x1|``.

    Settings: ``DEDGANConfig`` (pass one, or its fields as keywords); the image shape
    comes from the training images.  Other arguments as ``Detector``.
    """

    name = NAME
    config_class = DEDGANConfig
    score_fn = staticmethod(dedgan_scores)
    score_nets = ("generator",)

    def _net_fields(self, family: str) -> dict:
        c = self.config
        return {"z_dim": c.z_dim, "width": c.width, "generator_norm": c.generator_norm}

    def build_trainer(self) -> DEDGANTrainer:
        return DEDGANTrainer(self.spec, self.config, parallel=self.parallel)
