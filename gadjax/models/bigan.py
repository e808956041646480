"""BiGAN / EGBAD (Zenati et al., "Efficient GAN-Based Anomaly Detection", 2018).

An encoder E, a generator G and a joint discriminator D(x, z) are trained together
(Donahue et al. 2017, BiGAN): D tells real pairs ``(x, E(x))`` from generated pairs
``(G(z), z)``; G and E, one player with one loss, try to make D swap its answers.  At the
optimum E inverts G on the data, so an image is scored in one forward pass:

    A(x) = alpha * L_G(x) + (1 - alpha) * L_D(x),     L_G(x) = ||x - G(E(x))||_1

with L_D either ``'cross-entropy'``, sigma(D(x, E(x)), 1) = BCE of the real pair's logit
against label 1, or ``'feature-matching'``, ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1 on
D's intermediate layer.  ``alpha = 0.9`` weights the RECONSTRUCTION term, as in the
authors' released code, which writes the score as ``(1 - w) * L_G + w * L_D`` with default
``w = 0.1`` (AnoGAN's lambda = 0.1 convention).  One deliberate difference from that
code: cross-entropy is taken on ``D(x, E(x))`` as the paper's equation says (the code uses
``D(G(E(x)), E(x))``).  As in that code, scoring uses an exponential moving average
(decay 0.999) of the weights (``BiGANConfig.ema_decay``, kept in the optimiser state).

Pure pieces: ``generator_encoder_loss``, ``egbad_score`` and the jitted ``egbad_scores``;
``BiGANTrainer`` is a ``PlayerTrainer`` (CBiGAN subclasses it); ``EGBAD`` is the detector.
"""
from __future__ import annotations

import dataclasses
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gadjax.losses import bce_critic_loss
from gadjax.models.base import PlayerDetector
from gadjax.nets import NetSpec, PureNet, build_nets
from gadjax.nets.bigan import DISCRIMINATORS, joint_discriminator
from gadjax.scores import feature_l1, l1_residual
from gadjax.train import GANConfig, Player, PlayerTrainer, RunConfig, TrainState, sample_latent
from gadjax.train.ema import check_adam_ema, with_ema

NAME = "egbad"
SCORE_METHODS = ("feature-matching", "cross-entropy")
# EGBAD's MNIST setup: latent size 200, BatchNorm in encoder and discriminator.
EGBAD_NETS = NetSpec("dcgan", (28, 28, 1), z_dim=200, width=64, critic_norm="batch")


@dataclasses.dataclass(frozen=True)
class BiGANConfig:
    """BiGAN training hyper-parameters (the architecture is the ``NetSpec``).

    Defaults are the EGBAD authors' MNIST settings: Adam lr 1e-5, beta1 0.5, N(0, I) prior,
    a concatenating discriminator with dropout 0.5 (they train for many epochs at batch
    100; short runs need a larger learning rate, e.g. 2e-4), and scoring with an
    exponential moving average of every network's weights (``ema_decay`` 0.999, their
    ``tf.train.ExponentialMovingAverage``; None scores the last iterate).  ``hidden`` / ``z_hidden`` size D's joint
    and latent layers (default ``16 * width`` / ``8 * width``: 1024 / 512 at width 64).
    """

    learning_rate: float = 1e-5
    beta1: float = 0.5
    prior: str = "normal"
    discriminator: str = "concat"
    dropout: float = 0.5
    hidden: int | None = None
    z_hidden: int | None = None
    ema_decay: float | None = 0.999

    def __post_init__(self):
        check_adam_ema(self.learning_rate, self.beta1, self.ema_decay)
        if self.prior not in ("normal", "uniform"):
            raise ValueError(f"unknown latent prior {self.prior!r}; use 'normal' or 'uniform'")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {self.discriminator!r}; choose one of {DISCRIMINATORS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def generator_encoder_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """BiGAN's non-saturating G+E loss: BCE(D(G(z), z), 1) + BCE(D(x, E(x)), 0).

    It is the discriminator's loss with the labels swapped, so G is pushed to make its
    pairs look real and E to make the real pairs look generated.  Logits: (B,) -> scalar.
    """
    return bce_critic_loss(fake_logits, real_logits)


def check_score_args(alpha: float, method: str) -> None:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (weight of the reconstruction term), got {alpha}")
    if method not in SCORE_METHODS:
        raise ValueError(f"unknown score method {method!r}; choose one of {SCORE_METHODS}")


def discrimination_loss(real_logits: jax.Array, f_real: jax.Array, f_rec: jax.Array,
                        method: str = "feature-matching") -> jax.Array:
    """EGBAD's discriminator-based term L_D, (B,).

    ``'cross-entropy'``: BCE of ``real_logits`` = D(x, E(x)) (B,) against label 1;
    ``'feature-matching'``: ``sum |f_real - f_rec|`` over D's intermediate features
    (B, F) of ``(x, E(x))`` and ``(G(E(x)), E(x))``.
    """
    if method == "cross-entropy":
        return optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
    if method == "feature-matching":
        return feature_l1(f_real, f_rec)
    raise ValueError(f"unknown score method {method!r}; choose one of {SCORE_METHODS}")


def egbad_score(x: jax.Array, x_rec: jax.Array, real_logits: jax.Array, f_real: jax.Array, f_rec: jax.Array,
                alpha: float = 0.9, method: str = "feature-matching") -> jax.Array:
    """EGBAD anomaly score ``alpha * ||x - x_rec||_1 + (1 - alpha) * L_D``.

    Args:
      x, x_rec: (B, H, W, C) images and ``G(E(x))``.
      real_logits, f_real, f_rec: as ``discrimination_loss``.
      alpha: weight of the reconstruction term, in [0, 1].
    Returns:
      (B,) scores, higher = more anomalous.
    """
    return alpha * l1_residual(x, x_rec) + (1.0 - alpha) * discrimination_loss(real_logits, f_real, f_rec, method)


@partial(jax.jit, static_argnames=("generator", "encoder", "discriminator", "method"))
def egbad_scores(generator: PureNet, encoder: PureNet, discriminator: PureNet, params: dict, stats: dict,
                 x: jax.Array, alpha: float = 0.9, method: str = "feature-matching") -> dict:
    """EGBAD scores of a batch, every network in inference mode (no dropout).

    Args:
      params, stats: ``{'generator', 'encoder', 'discriminator': pytree}``, e.g. a
        ``TrainState``'s ``params`` / ``stats``.
      x: (B, H, W, C) images in the generator's output range.
    Returns:
      {'score': (B,), 'residual': (B,) L_G, 'discrimination': (B,) L_D, 'z': (B, z_dim),
       'reconstruction': (B, H, W, C)}.
    """
    z = encoder(params["encoder"], stats["encoder"], x)
    x_rec = generator(params["generator"], stats["generator"], z)
    d = (params["discriminator"], stats["discriminator"])
    real_logits, f_real = discriminator(*d, x, z)
    _, f_rec = discriminator(*d, x_rec, z)
    residual = l1_residual(x, x_rec)
    discrimination = discrimination_loss(real_logits, f_real, f_rec, method)
    return {"score": alpha * residual + (1.0 - alpha) * discrimination, "residual": residual,
            "discrimination": discrimination, "z": z, "reconstruction": x_rec}


class Pairs(NamedTuple):
    """One training-mode pass over both kinds of pair (B = batch size)."""

    z: jax.Array            # (B, z_dim) prior sample
    z_enc: jax.Array        # (B, z_dim) E(x)
    x_gen: jax.Array        # (B, H, W, C) G(z)
    real_logits: jax.Array  # (B,) D(x, E(x))
    fake_logits: jax.Array  # (B,) D(G(z), z)
    stats: dict             # updated stats of generator, encoder, discriminator


class BiGANTrainer(PlayerTrainer):
    """Two players per step: the discriminator, then generator and encoder together.

    ``state.params`` / ``state.stats`` hold ``'generator'``, ``'encoder'`` and
    ``'discriminator'``.  Subclasses add terms to the G+E loss via ``_extra_loss``.
    """

    def __init__(self, nets: NetSpec, config: BiGANConfig = BiGANConfig(), parallel=False,
                 unroll: bool | int | None = None):
        self.spec, self.config = nets, config
        built = build_nets(nets, parts=("generator", "encoder"))
        built["discriminator"] = joint_discriminator(
            nets.image_shape, nets.z_dim, nets.width, kind=config.discriminator, norm=nets.critic_norm,
            dropout=config.dropout, hidden=config.hidden, z_hidden=config.z_hidden)
        self.generator, self.encoder = built["generator"][0], built["encoder"][0]
        self.discriminator = built["discriminator"][0]
        optimizer = with_ema(optax.adam(config.learning_rate, b1=config.beta1), config.ema_decay)
        players = [Player("discriminator", ("discriminator",), self._discriminator_loss, optimizer),
                   Player("generator_encoder", ("generator", "encoder"), self._generator_encoder_loss, optimizer)]
        super().__init__(built, players, image_shape=nets.image_shape, value_range=nets.output_range,
                         parallel=parallel, unroll=unroll)

    def latent(self, key: jax.Array, batch: int, dtype=jnp.float32) -> jax.Array:
        return sample_latent(key, batch, self.spec.z_dim, self.config.prior, dtype)

    def _pairs(self, params, stats, x, key, detach: bool) -> Pairs:
        """Train-mode E(x), G(z) and D on both pairs; ``detach`` stops gradients into
        E and G (the discriminator's update)."""
        k_z, k_real, k_fake = jax.random.split(key, 3)
        z = self.latent(k_z, x.shape[0], x.dtype)
        z_enc, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], x, train=True)
        x_gen, g_stats = self.generator.apply(params["generator"], stats["generator"], z, train=True)
        if detach:
            z_enc, x_gen = jax.lax.stop_gradient(z_enc), jax.lax.stop_gradient(x_gen)
        d = params["discriminator"]
        (real_logits, _), d_stats = self.discriminator.apply(d, stats["discriminator"], x, z_enc, train=True,
                                                             key=k_real)
        (fake_logits, _), d_stats = self.discriminator.apply(d, d_stats, x_gen, z, train=True, key=k_fake)
        return Pairs(z, z_enc, x_gen, real_logits, fake_logits,
                     {"generator": g_stats, "encoder": e_stats, "discriminator": d_stats})

    def _discriminator_loss(self, params, stats, x, key):
        p = self._pairs(params, stats, x, key, detach=True)
        metrics = {"d_real": jnp.mean(jax.nn.sigmoid(p.real_logits)),
                   "d_fake": jnp.mean(jax.nn.sigmoid(p.fake_logits))}
        # Only D's statistics move here; G's and E's move in their own update (as in EGBAD).
        return bce_critic_loss(p.real_logits, p.fake_logits), ({"discriminator": p.stats["discriminator"]}, metrics)

    def _generator_encoder_loss(self, params, stats, x, key):
        k_pairs, k_extra = jax.random.split(key)
        p = self._pairs(params, stats, x, k_pairs, detach=False)
        adversarial = generator_encoder_loss(p.real_logits, p.fake_logits)
        extra, new_stats, metrics = self._extra_loss(params, {**stats, **p.stats}, x, p, k_extra)
        # D runs in training mode here (dropout, batch statistics) but its running
        # averages are only updated by its own player.
        new_stats = {n: new_stats[n] for n in ("generator", "encoder")}
        return adversarial + extra, (new_stats, {"adversarial_loss": adversarial, **metrics})

    def _extra_loss(self, params, stats, x, pairs: Pairs, key):
        """Additional G+E terms: ``(scalar, stats, metrics)``; none for a plain BiGAN."""
        del params, x, pairs, key
        return jnp.zeros(()), stats, {}

    def encode(self, state: TrainState, x: jax.Array) -> jax.Array:
        """z (B, z_dim) = E(x), inference mode."""
        return self.apply(state, "encoder", x)

    def generate(self, state: TrainState, z: jax.Array) -> jax.Array:
        """Images (B, H, W, C) = G(z), inference mode."""
        return self.apply(state, "generator", z)

    def discriminate(self, state: TrainState, x: jax.Array, z: jax.Array):
        """``(logits (B,), features (B, F))`` of D(x, z), inference mode."""
        return self.apply(state, "discriminator", x, z)


class EGBAD(PlayerDetector):
    """``EGBAD(nets, run, alpha=0.9, method='feature-matching').fit(x).score_samples(x_test)``.

    Args:
      nets: architecture, a ``NetSpec`` (or a ``GANConfig``, whose nets are used); default
        ``EGBAD_NETS``: 28x28, z_dim 200, BatchNorm D and E.  Family ``'mlp'`` gives
        EGBAD's tabular (KDD) setting.  ``image_shape`` is set from the data at ``fit``.
      run: steps, batch size (paper: 100), seed, output directory.
      bigan: training hyper-parameters (``BiGANConfig``).
      alpha: weight of the reconstruction term in [0, 1] (EGBAD: 0.9).
      method: ``'feature-matching'`` or ``'cross-entropy'`` discriminator loss L_D.
      Other arguments as ``PlayerDetector`` (threshold_percentile, score_batch_size, parallel).
    """

    trainer_class = BiGANTrainer

    def __init__(self, nets: NetSpec | GANConfig = EGBAD_NETS, run: RunConfig = RunConfig(), *,
                 bigan: BiGANConfig = BiGANConfig(), alpha: float = 0.9, method: str = "feature-matching",
                 **kwargs):
        check_score_args(alpha, method)
        super().__init__(nets, run, **kwargs)
        self.bigan, self.alpha, self.method = bigan, alpha, method

    def build_trainer(self) -> BiGANTrainer:
        return self.trainer_class(self.nets, self.bigan, parallel=self.parallel)

    def score_state(self, state: TrainState, x: jax.Array) -> dict:
        """``egbad_scores`` of batch ``x`` under ``state`` (pure: ``GANEnsemble`` vmaps it)."""
        check_score_args(self.alpha, self.method)  # the attributes may have been changed after fit
        t = self.trainer
        nets = t.scoring_params(state, ("generator", "encoder", "discriminator"))  # EMA weights if tracked
        params, stats = ({n: v[i] for n, v in nets.items()} for i in (0, 1))
        return egbad_scores(t.generator, t.encoder, t.discriminator, params, stats, x, self.alpha, self.method)
