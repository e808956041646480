"""AnoGAN (Schlegl et al., IPMI 2017) as a detector: a GAN plus the latent search.

    det = AnoGAN(steps=2000, search_steps=500, lam=0.1).fit(x_normal, x_val)
    det.score_samples(x_test)
    AnoGAN(search_steps=200).fit(x, x_val, gan=fitted_fanogan)   # same GAN, another scorer

Scoring runs ``search_latent`` on whole batches (vmapped per-image searches in one
compiled program); see ``gadjax.models.anogan_search`` for the maths and loop forms.
"""
from __future__ import annotations

import dataclasses

import jax

from gadjax.models.anogan_search import DEFAULT_LEARNING_RATE, LOOPS, search_latent
from gadjax.models.base import GANDetector
from gadjax.models.config import GANConfigFields, option
from gadjax.nets import bind, features_of

NAME = "anogan"


@dataclasses.dataclass(frozen=True)
class AnoGANConfig(GANConfigFields):
    """AnoGAN: the GAN's fields (``GANConfigFields``: WGAN-GP by default) plus the latent
    search, all score-only (changing them needs no retraining).

    Attributes:
      search_steps: Adam steps on z per image (paper: 500).
      lam: weight of the feature-matching (discrimination) term in [0, 1] (paper: 0.1).
      search_lr: Adam step size on z (``anogan_search.DEFAULT_LEARNING_RATE``, 0.01: with
        500 steps z can cross the prior and still settle; the paper gives no value).
      restarts: starting codes per image; the lowest final loss is kept (paper: 1).
      loop: ``'auto'`` | ``'scan'`` | ``'unrolled'`` | ``'host'`` (same maths; speed only).
    """

    search_steps: int = option(500, ge=1, score=True)
    lam: float = option(0.1, ge=0, le=1, score=True)
    search_lr: float = option(DEFAULT_LEARNING_RATE, gt=0, score=True)
    restarts: int = option(1, ge=1, score=True)
    loop: str = option("auto", choices=LOOPS, score=True)


def anogan_scores(nets: dict, x: jax.Array, config: AnoGANConfig, key: jax.Array, *, index_offset: int = 0) -> dict:
    """AnoGAN scores of a batch: the latent search with ``config``'s settings.

    Args:
      nets: ``{'generator': z -> x, 'features': x -> f}`` (bound gadjax nets or any JAX
        callables).
      x: (B, ...) samples in the generator's output range.
      config: the search settings (``search_steps``, ``lam``, ``search_lr``, ``restarts``,
        ``loop``) and the latent ``prior``.
      key, index_offset: sample ``i`` starts from ``fold_in(key, index_offset + i)``.
    Returns:
      {'score': (B,), 'reconstruction': (B, ...), 'z': (B, z_dim)}.
    """
    c = config
    r = search_latent(nets["generator"], nets["features"], x, key, steps=c.search_steps, lam=c.lam,
                      learning_rate=c.search_lr, restarts=c.restarts, prior=c.prior, loop=c.loop,
                      index_offset=index_offset)
    return {"score": r.score, "reconstruction": r.reconstruction, "z": r.z}


class AnoGAN(GANDetector):
    """``AnoGAN(search_steps=500).fit(x_normal, x_val).score_samples(x_test)``.

    Settings: ``AnoGANConfig`` (pass one, or its fields as keywords).  Other arguments as
    ``Detector``; ``fit(..., gan=other)`` reuses another fitted GAN detector's GAN.
    """

    name = NAME
    config_class = AnoGANConfig
    phases = ("gan",)

    def scoring_nets(self) -> dict:
        t = self.gan_trainer
        p = t.scoring_params(self.gan_state, ("generator", "critic"))
        return {"generator": bind(t.generator, *p["generator"]),
                "features": features_of(bind(t.critic, *p["critic"]))}

    def _score_batch(self, x, offset: int) -> dict:
        # A fixed key per detector and per-image fold_in(key, offset + i): an image's score
        # does not depend on the batch it is scored in.
        return anogan_scores(self.scoring_nets(), x, self.config, jax.random.PRNGKey(self.config.seed + 7),
                             index_offset=offset)
