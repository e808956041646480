"""f-AnoGAN (Schlegl et al., Medical Image Analysis 2019): WGAN-GP + a trained encoder.

    det = FAnoGAN(steps=2000, encoder_strategy="izif", kappa=1.0).fit(x_normal, x_val)
    det.score_samples(x_test)

Two training phases: the GAN, then an encoder E against the frozen GAN
(``gadjax.train.encoder``: izi / ziz / izif).  Scoring is one forward pass, no latent
search:

    A(x) = mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2

with ``f`` the critic's last-conv features (``gadjax.scores.fanogan_score``).  The
scorer takes any callables, so it scores plain-JAX networks too:

    fanogan_scores({"generator": g, "encoder": e, "features": f}, x, FAnoGANConfig(kappa=1.0))
"""
from __future__ import annotations

import dataclasses

import jax

from gadjax.losses import GAN_LOSSES
from gadjax.models.base import GANDetector
from gadjax.models.config import GANConfigFields, option
from gadjax.nets import bind, features_of
from gadjax.scores import fanogan_score, feature_residual, mse_residual
from gadjax.train.encoder import STRATEGIES, EncoderConfig, EncoderTrainer

NAME = "fanogan"


@dataclasses.dataclass(frozen=True)
class FAnoGANConfig(GANConfigFields):
    """f-AnoGAN: the GAN's fields (``GANConfigFields``; WGAN-GP, as in the paper) plus the
    encoder's.

    Attributes:
      encoder_strategy: ``'izif'`` (the paper's best), ``'izi'`` or ``'ziz'``.
      kappa: weight of the critic-feature residual, in izif training AND in the score
        (paper: 1.0); a training field, since the encoder was fitted with it.
      encoder_steps: encoder updates; None = ``steps`` (the paper trains E as long as G).
      encoder_learning_rate: the encoder's Adam rate; None = follow ``learning_rate``,
        whose None is the GAN objective's paper rate (1e-4 for WGAN-GP).
    """

    encoder_strategy: str = option("izif", choices=STRATEGIES)
    kappa: float = option(1.0, ge=0)
    encoder_steps: int | None = option(None, ge=1, doc="encoder updates; None: steps")
    encoder_learning_rate: float | None = option(None, gt=0, doc="encoder Adam rate; None: learning_rate")

    def encoder_config(self) -> EncoderConfig:
        """The ``EncoderConfig`` of the encoder phase (its rate resolved)."""
        rate = self.rate("encoder", GAN_LOSSES[self.gan_loss].learning_rate)
        return EncoderConfig(self.encoder_strategy, kappa=self.kappa, learning_rate=rate)


def fanogan_scores(nets: dict, x: jax.Array, config: FAnoGANConfig | None = None) -> dict:
    """f-AnoGAN scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: ``{'generator': z -> x, 'encoder': x -> z, 'features': x -> f}``: bound gadjax
        nets (inference mode) or any JAX callables.
      x: (B, ...) samples in the generator's output range.
      config: its ``kappa`` weighs the feature residual (None: the paper's 1.0).
    Returns:
      {'score': (B,), 'image': (B,), 'feature': (B,), 'z': (B, z_dim),
       'reconstruction': (B, ...)}; score = image + kappa * feature
      (``gadjax.scores.fanogan_score``; XLA computes the shared terms once), the terms
      kept so each can be judged alone.
    """
    kappa = 1.0 if config is None else config.kappa
    z = nets["encoder"](x)
    x_rec = nets["generator"](z)
    f_real, f_rec = nets["features"](x), nets["features"](x_rec)
    return {"score": fanogan_score(x, x_rec, f_real, f_rec, kappa), "image": mse_residual(x, x_rec),
            "feature": feature_residual(f_real, f_rec), "z": z, "reconstruction": x_rec}


class FAnoGAN(GANDetector):
    """``FAnoGAN(encoder_strategy="izif").fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``FAnoGANConfig`` (pass one, or its fields as keywords).  Other arguments as
    ``Detector``; ``fit(..., gan=other)`` reuses another fitted GAN detector's GAN and
    trains only the encoder.
    """

    name = NAME
    config_class = FAnoGANConfig
    phases = ("gan", "encoder")
    score_fn = staticmethod(fanogan_scores)
    score_nets = ("generator", "encoder", "features")

    def _make_trainer(self, phase: str):
        if phase == "encoder":
            # On the GAN trainer's devices (also when the GAN came from another detector).
            return EncoderTrainer(self.gan_trainer, self.states_["gan"], self.config.encoder_config())
        return super()._make_trainer(phase)

    def _steps(self, phase: str) -> int | None:
        return self.config.encoder_steps if phase == "encoder" else None

    @property
    def encoder_trainer(self) -> EncoderTrainer | None:
        return self.trainer("encoder") if "gan" in self.states_ else None

    @property
    def encoder_state(self):
        return self.states_.get("encoder")

    def scoring_nets(self) -> dict:
        # The encoder's state holds the frozen GAN as well (fixed networks of its trainer).
        t = self.encoder_trainer
        p = t.scoring_params(self.encoder_state, ("generator", "critic", "encoder"))
        return {"generator": bind(t.gan.generator, *p["generator"]), "encoder": bind(t.encoder, *p["encoder"]),
                "features": features_of(bind(t.gan.critic, *p["critic"]))}
