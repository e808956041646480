"""DED-GAN (Liu et al., 2021): a GAN whose generator is two encoder-decoder sub-networks.

    x --E1--> z1 --D1--> x1 --E2--> z2 --D2--> x2         (gadjax.nets.dedgan)

    discriminator:  L_D = BCE(D(x), 1) + BCE(D([x1; x2]), 0)
    generator:      L_G = w_adv * L_adv + w_rec * L_rec + w_lat * L_lat
                    L_adv = mean_k mean (f(x) - f(x_k))^2          (feature matching, k = 1, 2)
                    L_rec = mean_k mean |x - x_k|                  (both sub-networks rebuild x)
                    L_lat = mean (z1 - z2)^2
    anomaly score:  A(x) = mean (z1 - z2)^2                        (higher = more anomalous)

where ``f`` is the DCGAN discriminator's last-conv features.

Sources.  The paper's text could not be retrieved, so only what its abstract-level
description states is taken as given: a generator made of two encoder-decoder
sub-networks, a DCGAN discriminator, a loss that weights reconstruction against the
adversarial term, and a score from the distance between the two latent vectors.  The
rest is this implementation's reading, following the GANomaly line (Akcay et al. 2018)
that DED-GAN extends: the second sub-network re-encodes the FIRST reconstruction; both
reconstructions are pulled to ``x`` with L1; an L2 latent-consistency term (without it
``z1`` and ``z2`` come from unrelated encoders and their distance means nothing);
feature-matching adversarial loss (``adversarial='bce'`` gives the non-saturating
-log D(x_k) instead); GANomaly's weights 1 / 50 / 1 and DCGAN's Adam (2e-4, betas 0.5,
0.999).  GANomaly's re-initialisation of a collapsed discriminator is not done.
"""
from __future__ import annotations

import dataclasses
import math
from functools import partial

import jax
import jax.numpy as jnp
import optax

from gadjax.losses import bce_critic_loss, bce_generator_loss
from gadjax.models.base import PlayerDetector
from gadjax.nets import NetSpec, PureNet
from gadjax.nets.dedgan import dedgan_nets
from gadjax.train import Player, PlayerTrainer, RunConfig

NAME = "dedgan"
ADVERSARIAL = ("feature", "bce")


@dataclasses.dataclass(frozen=True)
class DEDGANConfig:
    """DED-GAN's objective and optimiser.

    Attributes:
      w_adv, w_rec, w_lat: weights of the adversarial, reconstruction and latent terms
        of the generator loss (>= 0, not all zero).
      adversarial: 'feature' (feature matching on discriminator features) or 'bce'.
      learning_rate, beta1, beta2: Adam, shared by both players.
      score_p: the score is mean |z1 - z2|^p; 2 (squared L2, default) or 1 (L1).
    """

    w_adv: float = 1.0
    w_rec: float = 50.0
    w_lat: float = 1.0
    adversarial: str = "feature"
    learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    score_p: int = 2

    def __post_init__(self):
        weights = {"w_adv": self.w_adv, "w_rec": self.w_rec, "w_lat": self.w_lat}
        for name, w in weights.items():
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"DED-GAN loss weight {name} must be a finite number >= 0, got {w}")
        if not any(weights.values()):
            raise ValueError("DED-GAN loss weights are all zero: the generator would not train")
        if self.adversarial not in ADVERSARIAL:
            raise ValueError(f"unknown adversarial loss {self.adversarial!r}; choose one of {ADVERSARIAL}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.score_p not in (1, 2):
            raise ValueError(f"score_p must be 1 or 2, got {self.score_p}")


def latent_distance(z1: jax.Array, z2: jax.Array, p: int = 2) -> jax.Array:
    """DED-GAN anomaly score: ``mean |z1 - z2|^p`` over the last axis.

    Args:
      z1, z2: (..., Z) latent codes of the image and of its first reconstruction.
      p: 2 (mean squared difference) or 1 (mean absolute difference).
    Returns:
      (...,): one distance per code.
    """
    d = jnp.abs(z1 - z2)
    return jnp.mean(d * d if p == 2 else d, axis=-1)


def reconstruction_loss(x: jax.Array, x1: jax.Array, x2: jax.Array) -> jax.Array:
    """Both sub-networks rebuild the input: ``(mean |x - x1| + mean |x - x2|) / 2``.

    Args:
      x, x1, x2: (B, H, W, C) input and the two reconstructions.
    Returns:
      scalar.
    """
    return 0.5 * (jnp.mean(jnp.abs(x - x1)) + jnp.mean(jnp.abs(x - x2)))


def latent_loss(z1: jax.Array, z2: jax.Array) -> jax.Array:
    """Latent consistency ``mean (z1 - z2)^2`` over batch and latent axes; (B, Z) -> scalar."""
    return jnp.mean(latent_distance(z1, z2, 2))


def feature_matching_loss(f_real: jax.Array, f_fake: jax.Array) -> jax.Array:
    """``mean (f(x) - f(x_k))^2``, each image paired with its own reconstruction.

    Args:
      f_real, f_fake: (B, F) discriminator features of ``x`` and of a reconstruction.
    Returns:
      scalar.
    """
    return jnp.mean(jnp.square(f_real - f_fake))


class DEDGANTrainer(PlayerTrainer):
    """DED-GAN as two players: the generator (both sub-networks), then the discriminator.

    ``state.params`` / ``state.stats`` hold ``"generator"`` (a ``DualEncoderDecoder``)
    and ``"discriminator"`` (a DCGAN ``Critic``; its norm is ``nets.critic_norm``).
    """

    def __init__(self, nets: NetSpec, config: DEDGANConfig = DEDGANConfig(), parallel=False,
                 unroll: bool | int | None = None):
        _check_spec(nets)
        self.spec, self.config = nets, config
        built = dedgan_nets(nets.image_shape, nets.z_dim, nets.width, generator_norm=nets.generator_norm,
                            discriminator_norm=nets.critic_norm)
        self.generator, self.discriminator = built["generator"][0], built["discriminator"][0]
        adam = optax.adam(config.learning_rate, b1=config.beta1, b2=config.beta2)
        # Generator first, then discriminator, as in GANomaly's optimisation step.
        players = [Player("generator", ("generator",), self._generator_loss, adam),
                   Player("discriminator", ("discriminator",), self._discriminator_loss, adam)]
        super().__init__(built, players, image_shape=nets.image_shape, value_range=nets.output_range,
                         parallel=parallel, unroll=unroll)

    def _generator_loss(self, params, stats, x, key):
        del key  # deterministic: no noise in DED-GAN's generator
        cfg = self.config
        out, g_stats = self.generator.apply(params["generator"], stats["generator"], x, train=True)

        def disc(img):
            # BatchNorm in train mode as in the discriminator update; its running averages
            # are left alone here (only discriminator updates move them).
            return self.discriminator.apply(params["discriminator"], stats["discriminator"], img, train=True)[0]

        (logit1, f1), (logit2, f2) = disc(out.x1), disc(out.x2)
        if cfg.adversarial == "feature":
            _, f_real = disc(x)
            adv = 0.5 * (feature_matching_loss(f_real, f1) + feature_matching_loss(f_real, f2))
        else:
            adv = 0.5 * (bce_generator_loss(logit1) + bce_generator_loss(logit2))
        rec = reconstruction_loss(x, out.x1, out.x2)
        lat = latent_loss(out.z1, out.z2)
        loss = cfg.w_adv * adv + cfg.w_rec * rec + cfg.w_lat * lat
        return loss, ({"generator": g_stats}, {"adv_loss": adv, "rec_loss": rec, "lat_loss": lat})

    def _discriminator_loss(self, params, stats, x, key):
        del key
        out, _ = self.generator.apply(params["generator"], stats["generator"], x, train=True)
        fakes = jax.lax.stop_gradient(jnp.concatenate([out.x1, out.x2]))
        (real_logits, _), d_stats = self.discriminator.apply(params["discriminator"], stats["discriminator"], x,
                                                             train=True)
        (fake_logits, _), d_stats = self.discriminator.apply(params["discriminator"], d_stats, fakes, train=True)
        metrics = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
        return bce_critic_loss(real_logits, fake_logits), ({"discriminator": d_stats}, metrics)


def _check_spec(nets: NetSpec) -> None:
    if nets.family != "dcgan":
        raise ValueError(f"DED-GAN is built from the DCGAN networks: use NetSpec(family='dcgan'), got {nets.family!r}")


@partial(jax.jit, static_argnames=("generator", "p"))
def dedgan_scores(generator: PureNet, g_params, g_stats, x: jax.Array, p: int = 2) -> dict:
    """DED-GAN scores of a batch, the generator in inference mode (BatchNorm running
    averages, so one image's score does not depend on the rest of its batch).

    Args:
      generator: the trained ``DualEncoderDecoder`` (``DEDGANTrainer.generator``).
      x: (B, H, W, C) images in [-1, 1].
      p: see ``latent_distance``.
    Returns:
      {'score': (B,), 'z1': (B, Z), 'z2': (B, Z), 'reconstruction': (B, H, W, C) = x1,
       'reconstruction2': (B, H, W, C) = x2}.
    """
    out = generator(g_params, g_stats, x)
    return {"score": latent_distance(out.z1, out.z2, p), "z1": out.z1, "z2": out.z2, "reconstruction": out.x1,
            "reconstruction2": out.x2}


class DEDGAN(PlayerDetector):
    """``DEDGAN(nets, run).fit(x).score_samples(x_test)``: score = latent distance.

    Args:
      nets: a 'dcgan' ``NetSpec``; ``critic_norm`` is the discriminator's norm (default
        'batch', DCGAN's), ``generator_norm`` that of both sub-networks.
      run: steps, batch size, seed, ``out_dir``.
      config: loss weights, adversarial term, Adam settings, score exponent.
      Other arguments as ``PlayerDetector``.  ``anomaly_map`` uses ``|x - x1|``.
    """

    def __init__(self, nets: NetSpec = NetSpec(critic_norm="batch"), run: RunConfig = RunConfig(), *,
                 config: DEDGANConfig = DEDGANConfig(), **kwargs):
        _check_spec(nets)
        super().__init__(nets, run, **kwargs)
        self.config = config

    def build_trainer(self) -> DEDGANTrainer:
        return DEDGANTrainer(self.nets, self.config, parallel=self.parallel)

    def _score_batch(self, x, offset: int) -> dict:
        del offset  # deterministic scoring
        s = self.state
        return dedgan_scores(self.trainer.generator, s.params["generator"], s.stats["generator"], x,
                             self.config.score_p)
