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
import math
from functools import partial

import jax
import jax.numpy as jnp
import optax

from gadjax.losses import bce_critic_loss
from gadjax.models.base import PlayerDetector
from gadjax.nets import NetSpec, PureNet
from gadjax.nets.ganomaly import INITS, ganomaly_nets
from gadjax.train import GANConfig, Player, PlayerTrainer, RunConfig, TrainState

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
class GANomalyConfig:
    """Loss weights and optimiser of GANomaly (paper defaults).

    Attributes:
      w_adv, w_con, w_enc: weights of L_adv, L_con, L_enc.
      feature_match: ``'mean'`` (paper) or ``'paired'`` (reference code), see ``feature_matching_loss``.
      learning_rate, beta1, beta2: Adam, for both players.
      reinit_threshold: re-initialise D when its loss drops below this (0 disables).
      init: ``'normal'`` (N(0, 0.02) weights, the reference) or ``'default'`` (Flax).
    """

    w_adv: float = 1.0
    w_con: float = 50.0
    w_enc: float = 1.0
    feature_match: str = "mean"
    learning_rate: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    reinit_threshold: float = 1e-5
    init: str = "normal"

    def __post_init__(self):
        check_config(self, weights=("w_adv", "w_con", "w_enc"))
        if self.feature_match not in FEATURE_MATCHING:
            raise ValueError(f"unknown feature_match {self.feature_match!r}; choose one of {FEATURE_MATCHING}")


def check_config(cfg, weights: tuple[str, ...]) -> None:
    """The checks GANomaly and Skip-GANomaly configs share."""
    for name in weights:  # NaN fails ">= 0" silently, so check finiteness too
        if not (math.isfinite(getattr(cfg, name)) and getattr(cfg, name) >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {getattr(cfg, name)}")
    if not cfg.learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {cfg.learning_rate}")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.reinit_threshold < 0:
        raise ValueError(f"reinit_threshold must be >= 0 (0 disables), got {cfg.reinit_threshold}")
    if cfg.init not in INITS:
        raise ValueError(f"unknown init {cfg.init!r}; choose one of {INITS}")


def check_spec(spec: NetSpec | GANConfig, model: str) -> None:
    """GANomaly-style models are built from the DCGAN nets (a ``GANConfig``'s nets count)."""
    spec = spec.nets if isinstance(spec, GANConfig) else spec
    if spec.family != "dcgan":
        raise ValueError(f"{model} is built from the DCGAN nets: use NetSpec family 'dcgan', got {spec.family!r}")


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
        check_spec(nets, self.model)
        self.spec, self.config = nets, config
        built = self.build_nets()
        self.generator, self.discriminator = built["generator"][0], built["discriminator"][0]
        self._discriminator_init = built["discriminator"][1]
        adam = lambda: optax.adam(config.learning_rate, b1=config.beta1, b2=config.beta2)  # noqa: E731
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

    def _discriminator_loss(self, params, stats, x, key):
        # Fakes from the just-updated G, in train mode like the reference's; G's statistics
        # were already updated once this step by its own player.
        x_hat, _ = self.reconstruct(params["generator"], stats["generator"], x, train=True)
        x_hat = jax.lax.stop_gradient(x_hat)
        (l_real, _), d_stats = self.discriminator.apply(params["discriminator"], stats["discriminator"], x,
                                                        train=True)
        (l_fake, _), d_stats = self.discriminator.apply(params["discriminator"], d_stats, x_hat, train=True)
        loss = self.d_loss_scale * bce_critic_loss(l_real, l_fake)
        metrics = {"d_real": jnp.mean(jax.nn.sigmoid(l_real)), "d_fake": jnp.mean(jax.nn.sigmoid(l_fake))}
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


@partial(jax.jit, static_argnames=("generator",))
def ganomaly_scores(generator: PureNet, g_params, g_stats, x: jax.Array) -> dict:
    """GANomaly scores of a batch, BatchNorm in inference mode (batch-independent).

    Args:
      generator: the ``GANomalyGenerator`` PureNet; x: (B, H, W, C) in [-1, 1].
    Returns:
      {'score': (B,), 'z': (B, Z), 'z_hat': (B, Z), 'reconstruction': (B, H, W, C)}.
    """
    x_hat, z, z_hat = generator(g_params, g_stats, x)
    return {"score": ganomaly_score(z, z_hat), "z": z, "z_hat": z_hat, "reconstruction": x_hat}


class GANomaly(PlayerDetector):
    """``GANomaly(nets, run).fit(x_normal).score_samples(x)``.

    Args:
      nets: ``NetSpec`` (family 'dcgan'; z_dim = nz, width = ngf = ndf; the paper uses
        z_dim 100, width 64), or a ``GANConfig`` whose nets are used; ``image_shape`` is
        taken from the training images.
      run: steps, batch size (paper: 64), seed, checkpoints.
      config: loss weights and optimiser, ``GANomalyConfig``.
      Other arguments as ``PlayerDetector``.
    """

    def __init__(self, nets: NetSpec = NetSpec(), run: RunConfig = RunConfig(), *,
                 config: GANomalyConfig = GANomalyConfig(), **kwargs):
        super().__init__(nets, run, **kwargs)
        check_spec(self.nets, "GANomaly")
        self.config = config

    def build_trainer(self) -> GANomalyTrainer:
        return GANomalyTrainer(self.nets, self.config, parallel=self.parallel)

    def score_state(self, state: TrainState, x: jax.Array) -> dict:
        """Scores of batch ``x`` (B, H, W, C) under ``state`` (pure; see ``ganomaly_scores``)."""
        return ganomaly_scores(self.trainer.generator, state.params["generator"], state.stats["generator"], x)
