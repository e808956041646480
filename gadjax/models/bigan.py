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
``D(G(E(x)), E(x))``).

Which passes move the BatchNorm running averages follows the authors' training graph
(bigan/run_mnist.py): D's update moves D's (on both pairs); the G+E update moves E's (on
E(x)) and G's on BOTH of G's training-mode passes, the prior pass G(z) and the
reconstruction G(E(x)).  Their graph builds ``reconstruct = G(E(x))`` with
``is_training`` fed True, and G's optimiser step runs under every BatchNorm update op
whose name holds ``generator_model``, this one included, although ``reconstruct``
enters no loss.  So G's inference statistics describe both of its inputs, prior codes
and encoded images, and the scorer feeds it the latter; no trained weight changes (a
training-mode pass normalises with its batch's statistics).  The two updates run one
after the other here (prior pass first); in their graph they are unordered, a difference
of O((1 - momentum)^2).

Scoring weights (``EGBADConfig.weights``, score-only): ``'ema'``, an exponential moving
average of every network's weights (decay ``ema_decay`` = 0.999 with TensorFlow's warm-up,
kept in the optimiser state), as the authors score, or ``'last'``, the last iterate; unset,
the average whenever ``ema_decay`` keeps one.  Measured on the one-class grid (MNIST, 800
steps at lr 2e-4, both choices scored on the same runs; experiments/README.md) the average
is the better default: CBiGAN scores higher with it on all 10 digits (mean AUROC 0.861 vs
0.837) and EGBAD is even (0.610 vs 0.620, each ahead on some digits).
``det.config = det.config.replace(weights="last")`` rescores without retraining.

    det = EGBAD(learning_rate=2e-4, steps=800, width=16).fit(x_normal, x_val)
    det.score_samples(x_test)

Pure pieces: ``generator_encoder_loss``, ``egbad_score`` and the scorer ``egbad_scores``
(shared with CBiGAN); ``BiGANTrainer`` is a ``PlayerTrainer`` (CBiGAN subclasses it);
``EGBAD`` is the detector.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gadjax import optim
from gadjax.losses import bce_critic_loss
from gadjax.models.base import PlayerDetector
from gadjax.models.config import ConfigError, DetectorConfig, option
from gadjax.nets import NetSpec, bind, build_nets
from gadjax.nets.bigan import DISCRIMINATORS, joint_discriminator
from gadjax.nets.dcgan import NORMS
from gadjax.scores import feature_l1, l1_residual
from gadjax.train import Player, PlayerTrainer, TrainState, sample_latent
from gadjax.train.ema import with_ema

NAME = "egbad"
SCORE_METHODS = ("feature-matching", "cross-entropy")
WEIGHTS = ("last", "ema")  # scoring weights: the last iterate or the weight average
# The nets EGBADConfig() gives for MNIST (latent size 200, BatchNorm in encoder and
# discriminator): what the benchmarks build a BiGANTrainer from.
EGBAD_NETS = NetSpec("dcgan", (28, 28, 1), z_dim=200, width=64, critic_norm="batch")


class ScoringWeights:
    """Config mixin of the detectors that score with a weight average (EGBAD, CBiGAN, ALAD):
    their ``weights`` / ``ema_decay`` fields are checked together and resolved once."""

    def check(self) -> None:
        super().check()
        check_weights(self)

    @property
    def scoring_weights(self) -> str:
        return resolve_weights(self)


def check_weights(config) -> None:
    """``weights='ema'`` needs the average that ``ema_decay`` keeps (EGBAD, CBiGAN, ALAD)."""
    if config.weights == "ema" and config.ema_decay is None:
        raise ConfigError("weights", "weights='ema' scores with the weight average, which ema_decay=None does not "
                                     "keep: set ema_decay (e.g. 0.999) or use weights='last'")


def resolve_weights(config) -> str:
    """``config.weights``, or unset: ``'ema'`` when ``config.ema_decay`` keeps an average."""
    if config.weights is not None:
        return config.weights
    return "last" if config.ema_decay is None else "ema"


@dataclasses.dataclass(frozen=True)
class EGBADConfig(ScoringWeights, DetectorConfig):
    """Every EGBAD hyper-parameter (fields of ``DetectorConfig`` as documented there).

    Defaults are the EGBAD authors' MNIST settings (their released code): they train for
    many epochs at batch 100, so short runs need a larger learning rate, e.g. 2e-4.

    Attributes:
      learning_rate, beta1: Adam of both players (1e-5, 0.5).
      z_dim, width, critic_norm: the nets (latent size 200, ngf = ndf 64, BatchNorm in
        the encoder and in D's x-branch; the MLP nets of ``net='mlp'`` have no norm).
      prior: the latent prior, N(0, I) (``'normal'``) or U[-1, 1].
      discriminator: ``'concat'`` (EGBAD's: x and z features concatenated) or
        ``'projection'`` (Miyato & Koyama 2018, CBiGAN's), see ``gadjax.nets.bigan``.
      dropout: on every discriminator layer (0.5).
      hidden, z_hidden: D's joint and latent layer sizes; None: ``16 * width`` /
        ``8 * width`` (the authors' 1024 / 512 at width 64).
      ema_decay: decay of the exponential moving average of every network's weights that
        training keeps (0.999, their ``tf.train.ExponentialMovingAverage``); None keeps none.
      weights: the weights scoring uses (score-only): ``'ema'``, that average (the
        authors'; needs ``ema_decay``), or ``'last'``, the last iterate; None: ``'ema'``
        when ``ema_decay`` is set, else ``'last'`` (``scoring_weights`` resolves it).
      alpha: weight of the reconstruction term of the score (0.9, see the module docstring).
      method: L_D of the score, ``'feature-matching'`` (the paper's best) or ``'cross-entropy'``.
    """

    learning_rate: float = option(1e-5, gt=0, doc="Adam rate of both players")
    beta1: float = option(0.5, ge=0, lt=1)
    z_dim: int = option(200, ge=1)
    critic_norm: str = option("batch", choices=NORMS, doc="norm of the encoder and of D's x-branch")
    prior: str = option("normal", choices=("normal", "uniform"))
    discriminator: str = option("concat", choices=DISCRIMINATORS)
    dropout: float = option(0.5, ge=0, lt=1)
    hidden: int | None = option(None, ge=1, doc="D's joint layer; None: 16 * width")
    z_hidden: int | None = option(None, ge=1, doc="D's latent layer; None: 8 * width")
    ema_decay: float | None = option(0.999, gt=0, lt=1, doc="decay of the weight average kept; None: none")
    weights: str | None = option(None, choices=WEIGHTS, score=True,
                                 doc="scoring weights, 'ema' average or 'last' iterate; None: 'ema' if ema_decay")
    alpha: float = option(0.9, ge=0, le=1, score=True, doc="weight of the reconstruction term")
    method: str = option("feature-matching", choices=SCORE_METHODS, score=True)

    # Image nets (DCGAN at any size, the thesis nets at 28x28) and EGBAD's KDD setting
    # (MLPs on feature rows); D's x-branch is a conv trunk for images, an MLP for rows.
    families: ClassVar[tuple[str, ...]] = ("dcgan", "thesis", "mlp")



def scoring_params(trainer, state, names, weights: str) -> dict:
    """``{net: (params, stats)}`` to score with: the last iterate (``'last'``) or the weight
    average that the nets' optimisers keep (``'ema'``); BatchNorm statistics are the
    running averages either way (the authors average trainable weights only)."""
    if weights == "last":
        return {n: (state.params[n], state.stats[n]) for n in names}
    if weights == "ema":
        return trainer.scoring_params(state, names)
    raise ValueError(f"unknown weights {weights!r}; choose one of {WEIGHTS}")


def generator_encoder_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """BiGAN's non-saturating G+E loss: BCE(D(G(z), z), 1) + BCE(D(x, E(x)), 0).

    It is the discriminator's loss with the labels swapped, so G is pushed to make its
    pairs look real and E to make the real pairs look generated.  Logits: (B,) -> scalar.
    """
    return bce_critic_loss(fake_logits, real_logits)


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


def egbad_scores(nets: dict, x: jax.Array, config: EGBADConfig | None = None) -> dict:
    """EGBAD (and CBiGAN) scores of a batch (the gadjax scorer convention, see
    ``gadjax.models.base``).

    Args:
      nets: ``{'generator': z -> x, 'encoder': x -> z, 'discriminator': (x, z) ->
        (logits, features)}``, e.g. the trained nets bound with ``gadjax.nets.bind``
        (inference mode: no dropout, BatchNorm running averages).
      x: (B, H, W, C) images in the generator's output range, or (B, D) rows.
      config: ``alpha`` and ``method`` (None: ``EGBADConfig()``'s).
    Returns:
      {'score': (B,), 'residual': (B,) L_G, 'discrimination': (B,) L_D, 'z': (B, z_dim),
       'reconstruction': (B, ...)}.
    """
    cfg = EGBADConfig() if config is None else config
    z = nets["encoder"](x)
    x_rec = nets["generator"](z)
    real_logits, f_real = nets["discriminator"](x, z)
    _, f_rec = nets["discriminator"](x_rec, z)
    residual = l1_residual(x, x_rec)
    discrimination = discrimination_loss(real_logits, f_real, f_rec, cfg.method)
    return {"score": cfg.alpha * residual + (1.0 - cfg.alpha) * discrimination, "residual": residual,
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

    The nets (z_dim, width, critic_norm) come from ``nets``; the discriminator's layout,
    optimiser, prior and EMA from ``config``.  ``state.params`` / ``state.stats`` hold
    ``'generator'``, ``'encoder'`` and ``'discriminator'``.  Subclasses add terms to the
    G+E loss via ``_extra_loss``.
    """

    def __init__(self, nets: NetSpec, config: EGBADConfig = EGBADConfig(), parallel=False,
                 unroll: bool | int | None = None):
        self.spec, self.config = nets, config
        built = build_nets(nets, parts=("generator", "encoder"))
        built["discriminator"] = joint_discriminator(
            nets.image_shape, nets.z_dim, nets.width, kind=config.discriminator, norm=nets.critic_norm,
            dropout=config.dropout, hidden=config.hidden, z_hidden=config.z_hidden)
        self.generator, self.encoder = built["generator"][0], built["encoder"][0]
        self.discriminator = built["discriminator"][0]
        # The authors' Adam for both players (each keeps its own moments); the EMA, if any,
        # rides in that state, so it is checkpointed and sharded with everything else.
        optimizer = with_ema(optim.adam(config.learning_rate, b1=config.beta1), config.ema_decay)
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
        # The reconstruction pass G(E(x)), training mode, after the prior pass: as in the
        # authors' training graph it moves G's BatchNorm averages (see the module
        # docstring), so at inference they also fit encoded codes.  BiGAN's loss does not
        # use it (XLA keeps only what the statistics need); CBiGAN's image cycle does.
        x_rec, g_stats = self.generator.apply(params["generator"], p.stats["generator"], p.z_enc, train=True)
        adversarial = generator_encoder_loss(p.real_logits, p.fake_logits)
        extra, new_stats, metrics = self._extra_loss(params, {**stats, **p.stats, "generator": g_stats}, x, p,
                                                     x_rec, k_extra)
        # D runs in training mode here (dropout, batch statistics) but its running
        # averages are only updated by its own player.
        new_stats = {n: new_stats[n] for n in ("generator", "encoder")}
        return adversarial + extra, (new_stats, {"adversarial_loss": adversarial, **metrics})

    def _extra_loss(self, params, stats, x, pairs: Pairs, x_rec, key):
        """Additional G+E terms: ``(scalar, stats, metrics)``; none for a plain BiGAN.
        ``x_rec`` is the training-mode G(E(x)) (gradients reach G and E)."""
        del params, x, pairs, x_rec, key
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
    """``EGBAD(learning_rate=2e-4, steps=800).fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``EGBADConfig`` (pass one, or its fields as keywords); the sample shape
    comes from the training data (images: DCGAN nets, rows (N, D): EGBAD's tabular MLP
    setting).  Scores use the weight average (``ema_decay``), or the last iterate with
    ``weights='last'`` (score-only: ``det.config = det.config.replace(weights="last")``
    rescores without retraining).  Other arguments as ``Detector``.
    """

    name = NAME
    config_class = EGBADConfig
    score_fn = staticmethod(egbad_scores)
    score_nets = ("generator", "encoder", "discriminator")
    trainer_class: ClassVar[type] = BiGANTrainer

    def _net_fields(self, family: str) -> dict:
        c = self.config
        return {"z_dim": c.z_dim, "width": c.width, "critic_norm": c.critic_norm}

    def build_trainer(self) -> BiGANTrainer:
        return self.trainer_class(self.spec, self.config, parallel=self.parallel)

    def nets_of(self, state) -> dict:
        t = self.trainer("model")
        return {n: bind(t.nets[n], *v)
                for n, v in scoring_params(t, state, self.score_nets, self.config.scoring_weights).items()}
