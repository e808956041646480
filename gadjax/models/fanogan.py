"""f-AnoGAN (Schlegl et al., Medical Image Analysis 2019): WGAN-GP + a trained encoder.

Scoring is one forward pass, no latent search:

    A(x) = mean (x - G(E(x)))^2 + kappa * mean (f(x) - f(G(E(x))))^2

with ``f`` the critic's last-conv features (``gadjax.scores.fanogan_score``).
"""
from __future__ import annotations

import dataclasses
from functools import partial

import jax

from gadjax.models.base import GANDetector
from gadjax.nets import PureNet
from gadjax.scores import fanogan_score, feature_residual, mse_residual
from gadjax.train import GANConfig, RunConfig, train_loop
from gadjax.train.encoder import EncoderConfig, EncoderTrainer


@partial(jax.jit, static_argnames=("generator", "critic", "encoder"))
def fanogan_scores(generator: PureNet, critic: PureNet, encoder: PureNet, g_params, g_stats, d_params, d_stats,
                   e_params, e_stats, x: jax.Array, kappa: float = 1.0) -> dict:
    """f-AnoGAN scores of a batch, all networks in inference mode.

    Args:
      x: (B, H, W, C) images in the generator's output range.
      kappa: weight of the critic-feature residual.
    Returns:
      {'score': (B,), 'image': (B,), 'feature': (B,), 'z': (B, z_dim),
       'reconstruction': (B, H, W, C)}; score = image + kappa * feature
      (``gadjax.scores.fanogan_score``; XLA computes the shared terms once), the
      terms kept so each can be judged alone.
    """
    z = encoder(e_params, e_stats, x)
    x_rec = generator(g_params, g_stats, z)
    _, f_real = critic(d_params, d_stats, x)
    _, f_rec = critic(d_params, d_stats, x_rec)
    return {"score": fanogan_score(x, x_rec, f_real, f_rec, kappa), "image": mse_residual(x, x_rec),
            "feature": feature_residual(f_real, f_rec), "z": z, "reconstruction": x_rec}


class FAnoGAN(GANDetector):
    """``FAnoGAN(...).fit(x).score_samples(x_test)``.

    Args:
      encoder: strategy (izi / ziz / izif), kappa and learning rate of encoder training.
      encoder_steps: encoder updates (default: the GAN's step count).
      Other arguments as ``GANDetector``.
    """

    def __init__(self, gan: GANConfig = GANConfig(), run: RunConfig = RunConfig(), *,
                 encoder: EncoderConfig = EncoderConfig(), encoder_steps: int | None = None, **kwargs):
        super().__init__(gan, run, **kwargs)
        self.encoder_config, self.encoder_steps = encoder, encoder_steps
        self.encoder_trainer: EncoderTrainer | None = None
        self.encoder_state = None

    def _fit_scorer(self, x) -> None:
        self.encoder_trainer = EncoderTrainer(self.gan_trainer, self.gan_state, self.encoder_config)
        run = self._subrun("encoder")
        if self.encoder_steps is not None:
            run = dataclasses.replace(run, steps=self.encoder_steps)
        self.encoder_state, _ = train_loop(self.encoder_trainer, x, run)

    def _score_batch(self, x, offset: int) -> dict:
        del offset  # deterministic: no randomness in f-AnoGAN scoring
        e, s = self.encoder_trainer, self.encoder_state  # holds the frozen GAN as well
        return fanogan_scores(e.gan.generator, e.gan.critic, e.encoder, s.params["generator"], s.stats["generator"],
                              s.params["critic"], s.stats["critic"], s.params["encoder"], s.stats["encoder"], x,
                              self.encoder_config.kappa)
