"""GANomaly (Akcay, Atapour-Abarghouei and Breckon, ACCV 2018): an adversarially trained
encoder-decoder-encoder whose anomaly score is the distance between the two latent codes.

Networks (``gadjax.nets.ganomaly``): generator ``G = (G_E, G_D, E)`` with
``z = G_E(x)``, ``x_hat = G_D(z)``, ``z_hat = E(x_hat)``; DCGAN discriminator ``D`` with
last-conv features ``f``.  Two players, updated in the reference's order every step:

    generator:      L_G = w_adv L_adv + w_con L_con + w_enc L_enc       (1, 50, 1)
                    L_adv = feature matching of D's last-conv features f(x), f(x_hat)
                            (batch means by default; ``feature_matching_loss``)
                    L_con = mean |x - x_hat|,   L_enc = mean (z - z_hat)^2
    discriminator:  L_D = (BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2

both with Adam(2e-4, beta1 0.5).  As in the reference code, D is re-initialised when L_D
falls below 1e-5 (it has won outright and gives the generator no signal); here this is a
``lax.cond`` inside the same compiled step.  Score: ``A(x) = mean (z - z_hat)^2`` per image,
every BatchNorm in inference mode, so an image's score never depends on its batch (the
reference scored in train mode).  The paper min-max normalises scores over the test set
before computing AUROC; that is monotone, so raw scores are returned here.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from gadjax.losses import bce_critic_loss
from gadjax import optim
from gadjax.models.base import PlayerDetector
from gadjax.models.config import DetectorConfig, option
from gadjax.nets import NetSpec
from gadjax.nets.ganomaly import INITS, ganomaly_nets
from gadjax.nets.dcgan import NORMS
from gadjax.train import Player, PlayerTrainer, TrainState

NAME = "ganomaly"
FEATURE_MATCHING = ("mean", "paired")


def feature_matching_loss(f_real: jax.Array, f_fake: jax.Array, mode: str = "mean") -> jax.Array:
    """Feature-matching loss between discriminator features, a scalar.

    Args:
      f_real, f_fake: (B, F) features of real images and of their reconstructions.
      mode: ``'mean'``: ``mean_F (mean_B f_real - mean_B f_fake)^2``, matching the batch
        statistics of the features (Salimans et al. 2016; GANomaly's L_adv as written in the
        paper); ``'paired'``: ``mean_{B,F} (f_real - f_fake)^2``, image against its own
        reconstruction (the reference code's ``l2_loss``; Skip-GANomaly's L_lat).
    """
    if mode == "mean":
        return jnp.mean(jnp.square(jnp.mean(f_real, axis=0) - jnp.mean(f_fake, axis=0)))
    if mode == "paired":
        return jnp.mean(jnp.square(f_real - f_fake))
    raise ValueError(f"unknown feature matching mode {mode!r}; choose one of {FEATURE_MATCHING}")


def contextual_loss(x: jax.Array, x_hat: jax.Array) -> jax.Array:
    """L_con = mean |x - x_hat| over (B, H, W, C), a scalar (L1 gives sharper reconstructions than L2)."""
    return jnp.mean(jnp.abs(x - x_hat))


def ganomaly_score(z: jax.Array, z_hat: jax.Array) -> jax.Array:
    """A(x) = mean_k (z_k - z_hat_k)^2: (B, Z), (B, Z) -> (B,).  Higher = more anomalous."""
    return jnp.mean(jnp.square(z - z_hat), axis=-1)


def encoder_loss(z: jax.Array, z_hat: jax.Array) -> jax.Array:
    """L_enc = batch mean of ``ganomaly_score``: (B, Z), (B, Z) -> scalar."""
    return jnp.mean(ganomaly_score(z, z_hat))


def reinit_if(collapsed: jax.Array, init, key: jax.Array, params, stats):
    """``init(key)`` where ``collapsed`` (scalar bool), else ``(params, stats)``; jittable.

    ``lax.cond`` runs the initialiser only on the steps where it fires.
    """
    return jax.lax.cond(collapsed, lambda: init(key), lambda: (params, stats))


@dataclasses.dataclass(frozen=True)
class GANomalyConfig(DetectorConfig):
    """Every GANomaly hyper-parameter, with the paper's defaults (fields of
    ``DetectorConfig`` as documented there).

    Attributes:
      learning_rate, beta1, beta2: Adam, for both players (2e-4, 0.5, 0.999).
      z_dim, width, generator_norm: the nets (nz 100, ngf = ndf 64, BatchNorm everywhere).
      w_adv, w_con, w_enc: weights of L_adv, L_con, L_enc.
      feature_match: ``'mean'`` (paper) or ``'paired'`` (reference code), see ``feature_matching_loss``.
      reinit_threshold: re-initialise D when its loss drops below this (0 disables).
      init: ``'normal'`` (N(0, 0.02) weights, the reference) or ``'default'`` (Flax).
    """

    learning_rate: float = option(2e-4, gt=0, doc="Adam rate of both players")
    z_dim: int = option(100, ge=1)
    generator_norm: str = option("batch", choices=NORMS)
    w_adv: float = option(1.0, ge=0)
    w_con: float = option(50.0, ge=0)
    w_enc: float = option(1.0, ge=0)
    feature_match: str = option("mean", choices=FEATURE_MATCHING)
    beta1: float = option(0.5, ge=0, lt=1)
    beta2: float = option(0.999, ge=0, lt=1)
    reinit_threshold: float = option(1e-5, ge=0)
    init: str = option("normal", choices=INITS)

    families: ClassVar[tuple[str, ...]] = ("dcgan",)


class GANomalyTrainer(PlayerTrainer):
    """GANomaly's two players in one jitted step, plus D's conditional re-initialisation.

    Every network uses ``nets.generator_norm`` (default BatchNorm, as in the paper):
    ``critic_norm`` exists for WGAN-GP's per-sample critic and is not used here.
    ``state.params`` / ``state.stats`` hold ``'generator'`` and ``'discriminator'``.
    """

    model = "GANomaly"
    d_loss_scale = 0.5  # the reference averages D's real and fake BCE terms

    def __init__(self, nets: NetSpec, config: GANomalyConfig = GANomalyConfig(), parallel=False,
                 unroll: bool | int | None = None):
        if nets.family != "dcgan":
            raise ValueError(f"{self.model} is built from the DCGAN nets: use NetSpec family 'dcgan', got {nets.family!r}")
        self.spec, self.config = nets, config
        built = self.build_nets()
        self.generator, self.discriminator = built["generator"][0], built["discriminator"][0]
        self._discriminator_init = built["discriminator"][1]
        adam = lambda: optim.adam(config.learning_rate, b1=config.beta1, b2=config.beta2)  # noqa: E731
        # Generator first, then discriminator: the order of the reference's optimize_params.
        players = [Player("generator", ("generator",), self._generator_loss, adam()),
                   Player("discriminator", ("discriminator",), self._discriminator_loss, adam())]
        super().__init__(built, players, image_shape=nets.image_shape, value_range=nets.output_range,
                         parallel=parallel, unroll=unroll)

    def build_nets(self):
        s = self.spec
        return ganomaly_nets(s.image_shape, s.z_dim, s.width, norm=s.generator_norm, init=self.config.init)

    def reconstruct(self, g_params, g_stats, x, train: bool = False):
        """x_hat (B, H, W, C); with ``train=True`` also G's new BatchNorm statistics."""
        (x_hat, _, _), g_stats = self.generator.apply(g_params, g_stats, x, train=train)
        return x_hat, g_stats

    def _discriminate(self, params, stats, x, x_hat):
        """D in train mode on reals and reconstructions (separate BatchNorm batches, as the
        reference); D's statistics are left to D's own update.  -> (fake logits, f(x), f(x_hat))."""
        (_, f_real), _ = self.discriminator.apply(params["discriminator"], stats["discriminator"], x, train=True)
        (l_fake, f_fake), _ = self.discriminator.apply(params["discriminator"], stats["discriminator"], x_hat,
                                                       train=True)
        return l_fake, f_real, f_fake

    def _generator_loss(self, params, stats, x, key):
        cfg = self.config
        (x_hat, z, z_hat), g_stats = self.generator.apply(params["generator"], stats["generator"], x, train=True)
        _, f_real, f_fake = self._discriminate(params, stats, x, x_hat)
        terms = {"adv_loss": feature_matching_loss(f_real, f_fake, cfg.feature_match),
                 "con_loss": contextual_loss(x, x_hat), "enc_loss": encoder_loss(z, z_hat)}
        loss = cfg.w_adv * terms["adv_loss"] + cfg.w_con * terms["con_loss"] + cfg.w_enc * terms["enc_loss"]
        return loss, ({"generator": g_stats}, terms)

    def _discriminator_passes(self, params, stats, x):
        """D's BCE loss on real x and on the reconstructions, its metrics, new statistics and
        the (real, fake) features (which Skip-GANomaly's D loss also uses)."""
        # Fakes from the just-updated G, in train mode like the reference's; G's statistics
        # were already updated once this step by its own player.
        x_hat, _ = self.reconstruct(params["generator"], stats["generator"], x, train=True)
        x_hat = jax.lax.stop_gradient(x_hat)
        (l_real, f_real), d_stats = self.discriminator.apply(params["discriminator"], stats["discriminator"], x,
                                                             train=True)
        (l_fake, f_fake), d_stats = self.discriminator.apply(params["discriminator"], d_stats, x_hat, train=True)
        loss = self.d_loss_scale * bce_critic_loss(l_real, l_fake)
        metrics = {"d_real": jnp.mean(jax.nn.sigmoid(l_real)), "d_fake": jnp.mean(jax.nn.sigmoid(l_fake))}
        return loss, metrics, d_stats, (f_real, f_fake)

    def _discriminator_loss(self, params, stats, x, key):
        loss, metrics, d_stats, _ = self._discriminator_passes(params, stats, x)
        return loss, ({"discriminator": d_stats}, metrics)

    def _step(self, state: TrainState, batches: jax.Array):
        # The players' step (shared machinery), then the reference's check on this step's
        # D loss; the key stream after the players' (fold_in index len(players)).
        key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), len(self.players))
        state, metrics = super()._step(state, batches)
        collapsed = metrics["discriminator_loss"] < self.config.reinit_threshold
        d_params, d_stats = reinit_if(collapsed, self._discriminator_init, key, state.params["discriminator"],
                                      state.stats["discriminator"])
        # Weights and BatchNorm averages are re-drawn (the old averages belong to the old
        # weights); D's Adam moments are kept, as in the reference's reinit_d.
        metrics["discriminator_reinit"] = collapsed.astype(jnp.float32)
        return state.replace(params={**state.params, "discriminator": d_params},
                             stats={**state.stats, "discriminator": d_stats}), metrics


def ganomaly_scores(nets: dict, x: jax.Array, config: GANomalyConfig | None = None) -> dict:
    """GANomaly scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': G}`` with ``G(x) -> (x_hat, z, z_hat)``, e.g. the trained
        ``GANomalyGenerator`` bound with ``gadjax.nets.bind`` (BatchNorm in inference
        mode, so an image's score does not depend on its batch).
      x: (B, H, W, C) in [-1, 1].
      config: unused (GANomaly's score has no settings); kept for the common signature.
    Returns:
      {'score': (B,), 'z': (B, Z), 'z_hat': (B, Z), 'reconstruction': (B, H, W, C)}.
    """
    del config
    x_hat, z, z_hat = nets["generator"](x)
    return {"score": ganomaly_score(z, z_hat), "z": z, "z_hat": z_hat, "reconstruction": x_hat}


class GANomaly(PlayerDetector):
    """``GANomaly(w_con=50, steps=2000).fit(x_normal, x_val).score_samples(x)``.

    Settings: ``GANomalyConfig`` (pass one, or its fields as keywords); the image shape
    comes from the training images.  Other arguments as ``Detector``.
    """

    name = NAME
    config_class = GANomalyConfig
    score_fn = staticmethod(ganomaly_scores)
    score_nets = ("generator",)

    def _net_fields(self, family: str) -> dict:
        c = self.config
        return {"z_dim": c.z_dim, "width": c.width, "generator_norm": c.generator_norm}

    def build_trainer(self) -> GANomalyTrainer:
        return GANomalyTrainer(self.spec, self.config, parallel=self.parallel)

