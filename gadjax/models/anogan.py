"""AnoGAN (Schlegl et al., IPMI 2017) as a detector: a GAN plus the latent search.

Scoring runs ``search_latent`` on whole batches (vmapped per-image searches in one
compiled program); see ``gadjax.models.anogan_search`` for the maths and loop forms.
"""
from __future__ import annotations

import jax

from gadjax.models.anogan_search import DEFAULT_LEARNING_RATE, search_latent
from gadjax.models.base import GANDetector
from gadjax.train import GANConfig, RunConfig


class AnoGAN(GANDetector):
    """``AnoGAN(...).fit(x).score_samples(x_test)``.

    Args:
      search_steps: Adam steps of the latent search per image (paper: 500).
      lam: weight of the feature-matching (discrimination) term (paper: 0.1).
      search_lr: Adam step size on z.
      restarts: starting codes per image; the best final loss is kept.
      loop: ``'auto'`` | ``'scan'`` | ``'unrolled'`` | ``'host'``.
      Other arguments as ``GANDetector``.
    """

    def __init__(self, gan: GANConfig = GANConfig(), run: RunConfig = RunConfig(), *, search_steps: int = 500,
                 lam: float = 0.1, search_lr: float = DEFAULT_LEARNING_RATE, restarts: int = 1,
                 loop: str = "auto", **kwargs):
        super().__init__(gan, run, **kwargs)
        self.search_steps, self.lam, self.search_lr = search_steps, lam, search_lr
        self.restarts, self.loop = restarts, loop

    def _score_batch(self, x, offset: int) -> dict:
        t, s = self.gan_trainer, self.gan_state
        result = search_latent(t.generator, s.params["generator"], s.stats["generator"], t.critic,
                               s.params["critic"], s.stats["critic"], x,
                               jax.random.PRNGKey(self.run.seed + 7), steps=self.search_steps, lam=self.lam,
                               learning_rate=self.search_lr, restarts=self.restarts,
                               prior=self.gan_config.prior, loop=self.loop, _index_offset=offset)
        return {"score": result.score, "reconstruction": result.reconstruction, "z": result.z}
