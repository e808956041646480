"""Joint encoder training (Berg, Ahlberg & Felsberg 2020; the thesis method).

A WGAN-GP whose encoder E is trained *jointly* with the GAN, on generated images only,
with an image-space loss (so it never needs clean real data, which makes the method
robust to anomalies contaminating the training set):

    L_E = E_z || G(z) - G(E(G(z))) ||_1

As the authors built it (their released code, github.com/amandaberg/GANanomalyDetection:
``networks.G_paper`` with ``normalize_latents=True``, ``loss.py`` sampling ``0.1 * N(0, I)``),
the generator pixel-normalises its latent input (``latent_norm``), so G sees only the
direction of z and the norm of E(x) is free to separate anomalies, and z is drawn from
``latent_scale * N(0, I)`` with ``latent_scale = 0.1``.

The anomaly score combines a normalised image residual with the latent code's distance
from the origin:

    residual(x) = mean |minmax(x) - minmax(G(E(x)))|   (in [0, 1])
    origin(x)   = ||E(x)||_2                          (about sqrt(z_dim) and more)
    A(x) = lam * z_r(residual) + (1 - lam) * z_o(origin),  lam = 0.05

where ``z_r`` / ``z_o`` standardise each term by its mean and standard deviation on the
normal validation data, fixed at ``fit`` (``standardise=True``, the default), so that
``lam`` weighs the terms as it says; ``standardise=False`` is Berg et al.'s raw formula
``lam * residual + (1 - lam) * origin`` (``gadjax.scores.berg_score``), where the origin
term outweighs any small ``lam``.

    det = JointEncoder(lam=0.05, steps=2000).fit(x_normal, x_val)   # settings: JointEncoderConfig
    det.score_details(x)   # {'score', 'residual', 'origin', 'z', 'reconstruction'}: raw terms
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gadjax.models.base import PlayerDetector
from gadjax.models.config import ConfigError, GANConfigFields, option
from gadjax.nets import LATENT_NORM_FAMILIES, build_nets
from gadjax.scores import berg_score, normalised_residual, origin_distance, standardised_berg_score
from gadjax.train import GANConfig, GANTrainer, Player

NAME = "joint_encoder"
#: the score statistics ``fit`` sets: (mean, std) of the residual, then of the origin distance
STAT_FIELDS = ("residual_mean", "residual_std", "origin_mean", "origin_std")
#: ``fitted_extra()["format"]``; a saved joint encoder without it predates latent_norm,
#: latent_scale and the standardised score (its generator has no latent normalisation)
EXTRA_FORMAT = 2


def image_space_loss(x_gen: jax.Array, x_cycle: jax.Array) -> jax.Array:
    """Berg et al.'s encoder loss: mean over the batch of sum |G(z) - G(E(G(z)))|, / pixels.

    Args:
      x_gen, x_cycle: (B, H, W, C). Returns a scalar (mean absolute error).
    """
    return jnp.mean(jnp.abs(x_gen - x_cycle))


@dataclasses.dataclass(frozen=True)
class JointEncoderConfig(GANConfigFields):
    """The GAN's settings (``GANConfigFields``: WGAN-GP, Adam 1e-4 with betas (0, 0.9),
    n_critic 5, gradient penalty 10, as Berg et al.; the thesis nets for 28x28 gray
    images) plus the encoder's and the score's.

    Attributes:
      lam: weight of the normalised image residual in the score (Berg et al.'s 0.05);
        score-only.
      encoder_learning_rate: the encoder's rate; None follows the GAN's (``learning_rate``,
        else the objective's paper rate), as Berg et al. train all three nets alike.
      latent_norm: pixel-normalise z at the generator's input (``gadjax.nets.pixel_norm``),
        as the authors' progressive-GAN generator does; the ``thesis`` and ``dcgan``
        generators take it, the ``mlp`` generator (rows) has none and ignores it.
      latent_scale: z ~ latent_scale * prior (the authors' code: 0.1 * N(0, I)).  With
        ``latent_norm`` G ignores the scale; without it the scale is what G is trained on.
      standardise: score with each term standardised on normal validation data (see the
        module docstring); False: the raw ``lam * residual + (1 - lam) * origin``.
        Score-only.
      residual_mean, residual_std, origin_mean, origin_std: the statistics of the two
        terms that ``fit`` computes on the normal validation data (``x_val``, else the
        training data, like ``threshold_``); None until fitted, and the scorer then falls
        back to the raw formula.  They are saved with the detector.  Score-only.
    """

    lam: float = option(0.05, ge=0, le=1, score=True, doc="score weight of the normalised image residual")
    encoder_learning_rate: float | None = option(None, gt=0, doc="encoder rate; None: the GAN's")
    latent_norm: bool = option(True, doc="pixel-normalise z at the generator input (Berg et al.'s PixelNorm)")
    latent_scale: float = option(0.1, gt=0, doc="z ~ latent_scale * prior (the authors' code: 0.1)")
    standardise: bool = option(True, score=True, doc="standardise each score term on normal validation data")
    residual_mean: float | None = option(None, score=True, doc="set by fit: mean residual of normal data")
    residual_std: float | None = option(None, gt=0, score=True, doc="set by fit: its standard deviation")
    origin_mean: float | None = option(None, score=True, doc="set by fit: mean ||E(x)|| of normal data")
    origin_std: float | None = option(None, gt=0, score=True, doc="set by fit: its standard deviation")

    def check(self) -> None:
        super().check()
        unset = [f for f in STAT_FIELDS if getattr(self, f) is None]
        if unset and len(unset) < len(STAT_FIELDS):
            raise ConfigError(unset[0], f"the score statistics {', '.join(STAT_FIELDS)} are set together "
                                        f"(by fit); {', '.join(unset)} unset")

    @property
    def score_stats(self) -> tuple[float, float, float, float] | None:
        """``(residual_mean, residual_std, origin_mean, origin_std)``, or None before ``fit``."""
        stats = tuple(getattr(self, f) for f in STAT_FIELDS)
        return None if stats[0] is None else stats

    def net_fields(self, family: str) -> dict:
        fields = super().net_fields(family)
        return {**fields, "latent_norm": self.latent_norm} if family in LATENT_NORM_FAMILIES else fields


class JointEncoderTrainer(GANTrainer):
    """The GAN's players (critic x n_critic, generator) plus an encoder player.

    The encoder uses the GAN objective's optimiser (``gadjax.optim``: Adam for WGAN-GP,
    DCGAN and LSGAN, RMSProp for WGAN) at the GAN's rate unless ``encoder_lr`` is given.
    Every player draws z from ``latent_scale`` times the GAN's prior.
    """

    def __init__(self, config: GANConfig, encoder_lr: float | None = None, parallel=False, unroll=None,
                 latent_scale: float = 1.0):
        self.latent_scale = float(latent_scale)
        encoder = build_nets(config.nets, parts=("encoder",))
        objective = config.objective()
        lr = objective.learning_rate if encoder_lr is None else encoder_lr
        player = Player("encoder", ("encoder",), self._encoder_loss, objective.optimizer(lr))
        super().__init__(config, parallel=parallel, unroll=unroll, extra_nets=encoder, extra_players=(player,))
        self.encoder = self.nets["encoder"]

    def latent(self, key: jax.Array, batch: int, dtype=jnp.float32) -> jax.Array:
        z = super().latent(key, batch, dtype)
        return z if self.latent_scale == 1.0 else z * jnp.asarray(self.latent_scale, dtype)

    def _encoder_loss(self, params, stats, real, key):
        z = self.latent(key, real.shape[0], real.dtype)
        g = (params["generator"], stats["generator"])
        x_gen = self.generator(*g, z)  # inference-mode G: the encoder must not move G's statistics
        z_rec, e_stats = self.encoder.apply(params["encoder"], stats["encoder"], x_gen, train=True)
        loss = image_space_loss(x_gen, self.generator(*g, z_rec))
        return loss, ({"encoder": e_stats}, {"latent_error": jnp.mean((z - z_rec) ** 2)})


def joint_encoder_scores(nets: dict, x: jax.Array, config: JointEncoderConfig = JointEncoderConfig()) -> dict:
    """Berg et al. scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': G, 'encoder': E}`` with ``E(x) -> z`` and ``G(z) -> x``, e.g.
        the trained nets bound with ``gadjax.nets.bind`` (inference mode).
      x: (B, H, W, C) in the model's range.
      config: its ``lam`` weighs the two terms; with ``standardise`` and the statistics
        ``fit`` set (``config.score_stats``), each term is standardised first.
    Returns:
      {'score': (B,), 'residual': (B,), 'origin': (B,), 'z': (B, z_dim),
      'reconstruction': (B, H, W, C)}: score = lam * (residual - m_r) / s_r + (1 - lam) *
      (origin - m_o) / s_o (``gadjax.scores.standardised_berg_score``), or, with
      ``standardise=False`` or no statistics, lam * residual + (1 - lam) * origin
      (``gadjax.scores.berg_score``); the raw normalised residual and origin distance are
      kept so each can be judged alone.
    """
    z = nets["encoder"](x)
    x_rec = nets["generator"](z)
    residual, origin = normalised_residual(x, x_rec), origin_distance(z)
    stats = config.score_stats
    if config.standardise and stats is not None:
        score = standardised_berg_score(residual, origin, stats, config.lam)
    else:
        score = berg_score(x, x_rec, z, config.lam)
    return {"score": score, "residual": residual, "origin": origin, "z": z, "reconstruction": x_rec}


class JointEncoder(PlayerDetector):
    """``JointEncoder(lam=0.05, steps=2000).fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``JointEncoderConfig`` (pass one, or its fields as keywords); the nets
    come from the data unless ``net`` names them (the thesis nets for 28x28 gray images,
    DCGAN nets for other images, MLPs for rows).  Other arguments as ``Detector``.

    ``fit`` trains, then sets the score statistics (``residual_mean`` ... ``origin_std``)
    on the config from the raw terms of the normal validation data ``x_val`` (without
    ``x_val``, of the training data, as for ``threshold_``), then fixes ``threshold_``
    with the standardised score.  The statistics are score-only config fields: they are
    saved and loaded with the config, ``det.config`` carries them to the pure scorer
    ``joint_encoder_scores(det.scoring_nets(), x, det.config)``, and ``lam`` or
    ``standardise`` may change afterwards without refitting.
    """

    name = NAME
    config_class = JointEncoderConfig
    score_fn = staticmethod(joint_encoder_scores)
    score_nets = ("generator", "encoder")

    def _net_fields(self, family: str) -> dict:
        return self.config.net_fields(family)

    def build_trainer(self) -> JointEncoderTrainer:
        cfg = self.config
        gan = cfg.gan_config(self.spec)
        encoder_lr = cfg.rate("encoder", gan.objective().learning_rate)
        return JointEncoderTrainer(gan, encoder_lr, parallel=self.parallel, latent_scale=cfg.latent_scale)

    CALIBRATION_FIELDS = STAT_FIELDS

    @classmethod
    def calibration(cls, details: dict) -> dict:
        # The raw terms' statistics on the normal data, so that the threshold (fixed next,
        # on the same data) and every later score use the standardised score.
        return score_statistics(details)

    @classmethod
    def rescore(cls, details: dict, config) -> np.ndarray:
        stats = config.score_stats
        if not config.standardise or stats is None:
            return details["score"]
        return np.asarray(standardised_berg_score(details["residual"], details["origin"], stats, config.lam))

    def fitted_extra(self) -> dict:
        return {"format": EXTRA_FORMAT}

    def load_extra(self, extra: dict) -> None:
        if extra.get("format", 1) < EXTRA_FORMAT:
            # Saved before these options existed: the generator had no latent normalisation
            # and drew z from the plain prior; rebuild the nets so the saved weights mean what they did.
            self.config = self.config.replace(latent_norm=False, latent_scale=1.0, standardise=False)
            self.trainers_ = {}
            self.spec = self.net_spec(self.image_shape_)


def score_statistics(details: dict) -> dict:
    """``{residual_mean, residual_std, origin_mean, origin_std}`` of the raw terms of
    ``joint_encoder_scores`` outputs (normal samples), as Python floats (float64 sums).
    A term that is constant on the normal data gets std 1 (it is only centred)."""
    out = {}
    for term in ("residual", "origin"):
        values = np.asarray(details[term], np.float64)
        if not np.isfinite(values).all():
            raise FloatingPointError(f"the {term} term is not finite on the normal validation data (did training "
                                     f"diverge?); cannot standardise the score")
        std = float(values.std())
        out[f"{term}_mean"], out[f"{term}_std"] = float(values.mean()), std if std > 0 else 1.0
    return out
