"""ALAD (Zenati et al., "Adversarially Learned Anomaly Detection", ICDM 2018).

A bidirectional GAN (encoder E, generator G) with three discriminators (``gadjax.nets.alad``):
D_xz plays the BiGAN game on (x, E(x)) vs (G(z), z); D_xx and D_zz enforce the data- and
latent-space cycles with real pairs (x, x), (z, z) vs fake pairs (x, G(E(x))), (z, E(G(z))).
Two players per step, in the authors' order:

* discriminators: sum of the three BCE losses (real pair -> 1, fake pair -> 0);
* G + E: the same three BCE terms with the labels swapped (non-saturating).  One Adam over
  {G, E} equals the authors' separate G and E optimisers: each of their two losses adds a
  term the other network does not appear in, so every parameter gets the same gradient.

Adam lr 2e-4, beta1 0.5, z ~ N(0, I), dropout 0.2 and spectral norm in the discriminators.
The anomaly score compares D_xx's last hidden layer on (x, x) and on (x, G(E(x))):

    A(x) = || f_xx(x, x) - f_xx(x, G(E(x))) ||_1        ("features", the paper's best)

with the paper's other variants selectable: "features_l2", "logits" (-log D_xx(x, G(E(x))),
i.e. BCE of the fake-pair logit against 'real'), and the image residuals "l1" / "l2".
The authors score with an exponential moving average (0.999) of the weights; ``ema_decay``
does the same (with a warm-up, see ``track_ema``; kept in the optimiser state), and
``weights='last'`` scores the last iterate instead (score-only, as EGBAD's).

    det = ALAD(learning_rate=1e-3, steps=1000, score="features").fit(x_normal, x_val)
    det.score_samples(x_test)
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from gadjax import optim
from gadjax.losses import bce_critic_loss
from gadjax.models.base import PlayerDetector
from gadjax.models.bigan import WEIGHTS, ScoringWeights, scoring_params
from gadjax.models.config import DetectorConfig, option
from gadjax.nets import NetSpec, bind, build_nets
from gadjax.nets.alad import build_discriminators
from gadjax.nets.dcgan import NORMS
from gadjax.scores import feature_l1, l1_residual
from gadjax.train import Player, PlayerTrainer, sample_latent
from gadjax.train.ema import with_ema

NAME = "alad"
SCORES = ("features", "features_l2", "logits", "l1", "l2")
PAIRS = ("xz", "xx", "zz")  # discriminator of each pair: "d" + pair


def discriminator_loss(logits: dict[str, tuple[jax.Array, jax.Array]]) -> tuple[jax.Array, dict]:
    """Sum over pairs of BCE(real logits, 1) + BCE(fake logits, 0).

    Args:
      logits: ``{pair: (real (B,), fake (B,))}`` for pairs in ``PAIRS`` (``zz`` optional).
    Returns ``(scalar, {f"d_{pair}": scalar})``.
    """
    terms = {f"d_{p}": bce_critic_loss(real, fake) for p, (real, fake) in logits.items()}
    return sum(terms.values()), terms


def generator_encoder_loss(logits: dict[str, tuple[jax.Array, jax.Array]]) -> tuple[jax.Array, dict]:
    """G + E loss: the discriminator terms with labels swapped, BCE(real, 0) + BCE(fake, 1).

    For ``xz`` that is the BiGAN generator + encoder loss, for ``xx`` / ``zz`` the cycle-
    consistency terms.  The real-pair terms of ``xx`` / ``zz`` are constant in G and E (kept
    so the value is the paper's objective).  Returns ``(scalar, {f"ge_{pair}": scalar})``.
    """
    terms = {f"ge_{p}": bce_critic_loss(fake, real) for p, (real, fake) in logits.items()}
    return sum(terms.values()), terms


def _norm(v: jax.Array, axes) -> jax.Array:
    # L2 norm with a finite gradient at 0 (x' == x), for users who differentiate scores.
    sq = jnp.sum(jnp.square(v), axis=axes)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def alad_score(x: jax.Array, x_rec: jax.Array, f_real: jax.Array, f_rec: jax.Array, logit_rec: jax.Array,
               variant: str = "features") -> jax.Array:
    """ALAD anomaly scores (B,), higher = more anomalous.

    Args:
      x, x_rec: (B, ...) samples (images (B, H, W, C) or rows (B, D)) and G(E(x)).
      f_real, f_rec: (B, F) D_xx features of (x, x) and (x, G(E(x))).
      logit_rec: (B,) D_xx logit of (x, G(E(x))).
      variant: one of ``SCORES``.
    """
    if variant == "features":
        return feature_l1(f_real, f_rec)
    if variant == "features_l2":
        return _norm(f_real - f_rec, -1)
    if variant == "logits":
        return jax.nn.softplus(-logit_rec)  # BCE(logit, 1) = -log sigmoid(logit)
    if variant == "l1":
        return l1_residual(x, x_rec)
    if variant == "l2":
        return _norm(x - x_rec, tuple(range(1, x.ndim)))
    raise ValueError(f"unknown ALAD score {variant!r}; choose one of {SCORES}")


@dataclasses.dataclass(frozen=True)
class ALADConfig(ScoringWeights, DetectorConfig):
    """Every ALAD hyper-parameter, with the authors' defaults (fields of ``DetectorConfig``
    as documented there).

    Attributes:
      learning_rate, beta1: Adam of both players (2e-4, 0.5).
      z_dim, width, critic_norm: latent size 100; width (the discriminators scale with it:
        the authors' CIFAR-10 nets at 128, their KDD99 ones at 64); the norm of D_xz's
        x-branch and of the image encoder (BatchNorm, as the paper; the MLP encoder has none).
      dropout: in the discriminators (0.2).
      spectral_norm, latent_cycle: spectral norm in the discriminators and D_zz (both on;
        the paper ablates each).
      ema_decay: decay of the exponential moving average of the weights that training keeps
        (0.999, the authors'); None keeps none.
      weights: scoring weights (score-only), ``'ema'`` (that average) or ``'last'`` (the
        last iterate); None: ``'ema'`` when ``ema_decay`` is set, else ``'last'``.
      score: the anomaly score, one of ``SCORES`` (``'features'``, the paper's best).
    """

    learning_rate: float = option(2e-4, gt=0, doc="Adam rate of both players")
    beta1: float = option(0.5, ge=0, lt=1)
    z_dim: int = option(100, ge=1)
    critic_norm: str = option("batch", choices=NORMS, doc="norm of D_xz's x-branch and the image encoder")
    dropout: float = option(0.2, ge=0, lt=1)
    spectral_norm: bool = option(True)
    latent_cycle: bool = option(True, doc="train D_zz (the latent cycle)")
    ema_decay: float | None = option(0.999, gt=0, lt=1, doc="decay of the weight average kept; None: none")
    weights: str | None = option(None, choices=WEIGHTS, score=True,
                                 doc="scoring weights, 'ema' average or 'last' iterate; None: 'ema' if ema_decay")
    score: str = option("features", choices=SCORES, score=True)

    # Images (DCGAN nets, the thesis nets at 28x28) and rows (the paper's KDD99 / Arrhythmia MLPs).
    families: ClassVar[tuple[str, ...]] = ("dcgan", "thesis", "mlp")



def alad_scores(nets: dict, x: jax.Array, config: ALADConfig | None = None) -> dict:
    """ALAD scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': z -> x, 'encoder': x -> z, 'dxx': (x, x') -> (logits, features)}``,
        e.g. the trained nets bound with ``gadjax.nets.bind`` (inference mode).
      x: (B, ...) samples (images (B, H, W, C) in the generator's range, or rows (B, D)).
      config: its ``score`` variant (None: ``'features'``).
    Returns ``{'score': (B,), 'z': (B, z_dim), 'reconstruction': (B, ...)}``.
    """
    variant = "features" if config is None else config.score
    z = nets["encoder"](x)
    x_rec = nets["generator"](z)
    # One D_xx call on both pairs: inference is per sample, so this equals two calls, and a
    # spectrally normalised net must run each layer once per call (``gadjax.nets.alad``).
    logits, feats = nets["dxx"](jnp.concatenate([x, x]), jnp.concatenate([x, x_rec]))
    b = x.shape[0]
    return {"score": alad_score(x, x_rec, feats[:b], feats[b:], logits[b:], variant), "z": z, "reconstruction": x_rec}


class ALADTrainer(PlayerTrainer):
    """ALAD's two players over nets ``generator``, ``encoder``, ``dxz``, ``dxx`` (, ``dzz``)."""

    def __init__(self, nets: NetSpec, config: ALADConfig = ALADConfig(), parallel=False,
                 unroll: bool | int | None = None):
        self.spec, self.config = nets, config
        # Adam for each player (each keeps its own moments); the EMA, if any, rides in that state.
        optimizer = with_ema(optim.adam(config.learning_rate, b1=config.beta1), config.ema_decay)
        all_nets = {**build_nets(nets, parts=("generator", "encoder")),
                    **build_discriminators(nets, dropout=config.dropout, spectral_norm=config.spectral_norm,
                                           latent_cycle=config.latent_cycle)}
        self.pairs = PAIRS if config.latent_cycle else PAIRS[:2]
        self.discriminators = tuple("d" + p for p in self.pairs)
        players = [Player("discriminators", self.discriminators, self._d_loss, optimizer),
                   Player("generator_encoder", ("generator", "encoder"), self._ge_loss, optimizer)]
        super().__init__(all_nets, players, image_shape=nets.image_shape, value_range=nets.output_range,
                         parallel=parallel, unroll=unroll)

    def _logits(self, params, stats, x, key):
        """Every pair's (real, fake) logits, all nets in train mode; returns their new stats."""
        net, new = self.nets, dict(stats)

        def run(name, *args, **kw):
            out, new[name] = net[name].apply(params[name], new[name], *args, train=True, **kw)
            return out

        def pair(name, real, fake, key):
            """(real logits, fake logits) of one discriminator."""
            k_real, k_fake = jax.random.split(key)
            if name == "dxz" and self.spec.critic_norm == "batch":
                # BatchNorm normalises real and fake batches separately (DCGAN practice, as
                # the authors' code); the per-sample nets see both in one call: half the
                # graph to compile, one spectral-norm power iteration per update.
                return run(name, *real, key=k_real)[0], run(name, *fake, key=k_fake)[0]
            logits = run(name, *(jnp.concatenate([r, f]) for r, f in zip(real, fake)), key=k_real)[0]
            return logits[:b], logits[b:]

        b = x.shape[0]
        keys = jax.random.split(key, 4)
        z = sample_latent(keys[0], b, self.spec.z_dim, "normal", x.dtype)
        z_enc = run("encoder", x)
        x_gen = run("generator", z)
        x_rec = run("generator", z_enc)
        logits = {"xz": pair("dxz", (x, z_enc), (x_gen, z), keys[1]), "xx": pair("dxx", (x, x), (x, x_rec), keys[2])}
        if "zz" in self.pairs:
            logits["zz"] = pair("dzz", (z, z), (z, run("encoder", x_gen)), keys[3])
        return logits, new

    # Each player keeps the statistics (BatchNorm averages, spectral-norm vectors) of its own
    # nets only, as the authors' per-network update ops do.
    def _d_loss(self, params, stats, x, key):
        logits, new = self._logits(params, stats, x, key)
        loss, metrics = discriminator_loss(logits)
        return loss, ({n: new[n] for n in self.discriminators}, metrics)

    def _ge_loss(self, params, stats, x, key):
        logits, new = self._logits(params, stats, x, key)
        loss, metrics = generator_encoder_loss(logits)
        return loss, ({n: new[n] for n in ("generator", "encoder")}, metrics)


class ALAD(PlayerDetector):
    """``ALAD(learning_rate=1e-3, steps=1000).fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``ALADConfig`` (pass one, or its fields as keywords); the sample shape comes
    from the training data (images: DCGAN nets, rows (N, D): the paper's tabular nets).
    ``score`` is score-only: ``det.config = det.config.replace(score="l1")`` rescores
    without retraining, as does ``weights``: the EMA weights when ``ema_decay`` is set,
    unless ``weights='last'``.  Other arguments as ``Detector``.
    """

    name = NAME
    config_class = ALADConfig
    score_fn = staticmethod(alad_scores)
    score_nets = ("generator", "encoder", "dxx")

    def _net_fields(self, family: str) -> dict:
        c = self.config
        return {"z_dim": c.z_dim, "width": c.width, "critic_norm": c.critic_norm}

    def build_trainer(self) -> ALADTrainer:
        return ALADTrainer(self.spec, self.config, parallel=self.parallel)

    def nets_of(self, state) -> dict:
        t = self.trainer("model")
        return {n: bind(t.nets[n], *v)
                for n, v in scoring_params(t, state, self.score_nets, self.config.scoring_weights).items()}
