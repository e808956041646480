"""MAD-GAN (Li, Chen, Shi, Jin, Goh & Ng, ICANN 2019): multivariate time-series anomaly
detection with an LSTM GAN and the discrimination-and-reconstruction score (DR-score).

Training: a standard GAN (Goodfellow 2014, non-saturating BCE) between an LSTM generator
``G: Z (T, latent) -> X (T, F)`` and an LSTM discriminator that outputs a real/fake logit
at EVERY time step; the BCE averages over the steps of every window (as RGAN, on which
the authors built).  Optimisers as in the authors' released settings: plain SGD
(lr 0.1) for D, Adam (lr 1e-3) for G, three G updates per D update
(``generator_repeats``).

Scoring a test window ``x`` (T, F):
  1. inversion: find ``Z*`` minimising a reconstruction error of ``G(Z)`` against ``x``
     by gradient descent on Z -- gadjax's batched :func:`~gadjax.models.anogan_search.
     search_latent` with ``lam=0`` (a pure residual search), vmapped over all windows of a
     batch; the authors' code instead built and ran a new TF graph per window (about
     60 hours on their test sets) -- no per-window loop exists here.
  2. per time step ``t``: ``Res_t = sum_F |x_t - G(Z*)_t|`` and the discrimination score
     ``Dis_t = 1 - sigmoid(D(x)_t)`` (low "real" probability = anomalous), and
         DRS_t = lam * Res_t + (1 - lam) * Dis_t.
  3. the window score is the mean of its steps' DRS; per-time-step scores of the series
     average DRS_t over all windows containing ``t`` (:func:`gadjax.timeseries.windows_to_steps`).

Deviation, stated: the authors' inversion minimises ``1 - K(x, G(Z))`` with an RBF kernel
``K`` (bandwidth by the median heuristic) using RMSProp; that is a monotone function of
``||x - G(Z)||_2``.  gadjax reuses its one latent search, whose objective at ``lam=0`` is
the L1 residual ``sum |x - G(Z)|`` (AnoGAN's) with Adam; the reconstruction enters the
DR-score through the same L1 residual either way.
"""
from __future__ import annotations

import collections
import functools
from functools import partial
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gadjax.losses import bce_critic_loss, bce_generator_loss
from gadjax.models.anogan_search import DEFAULT_LEARNING_RATE, search_latent
from gadjax.models.base import PlayerDetector
from gadjax.nets.lstm import LSTMSpec, build_lstm_nets
from gadjax.nets.pure import PureNet, init_fn
from gadjax.timeseries import sliding_windows, windows_to_steps
from gadjax.train import Player, PlayerTrainer, RunConfig
from gadjax.train.gan import sample_latent

NAME = "madgan"

__all__ = ["NAME", "MADGAN", "MADGANTrainer", "madgan_scores", "dr_scores", "dr_trace_count"]

_TRACES: collections.Counter = collections.Counter()


def dr_trace_count() -> int:
    """How often the DR-score combination program was traced (tests: stays 1 per shape)."""
    return _TRACES["dr"]


# --------------------------------------------------------------------------- training

class MADGANTrainer(PlayerTrainer):
    """MAD-GAN's two players on windows (B, T, F): the discriminator (per-step BCE), then
    the generator (non-saturating per-step BCE) ``generator_repeats`` times.

    Args:
      spec: the LSTM architecture; ``spec.image_shape`` is the window shape (T, F).
      d_learning_rate, g_learning_rate: SGD step of D and Adam step of G (authors' code:
        0.1 and 1e-3).
      generator_repeats: G updates per step (authors' settings: 3).
    """

    def __init__(self, spec: LSTMSpec, *, d_learning_rate: float = 0.1, g_learning_rate: float = 1e-3,
                 generator_repeats: int = 3, parallel=False, unroll=None):
        if generator_repeats < 1:
            raise ValueError(f"generator_repeats must be >= 1, got {generator_repeats}")
        self.spec = spec
        nets = build_lstm_nets(spec, ("generator", "critic"))
        self.generator, self.critic = nets["generator"][0], nets["critic"][0]
        players = [Player("critic", ("critic",), self._critic_loss, optax.sgd(d_learning_rate)),
                   Player("generator", ("generator",), self._generator_loss, optax.adam(g_learning_rate),
                          repeats=generator_repeats)]
        super().__init__(nets, players, image_shape=spec.image_shape, value_range=spec.output_range,
                         parallel=parallel, unroll=unroll)

    def latent(self, key: jax.Array, batch: int, dtype=jnp.float32) -> jax.Array:
        """Flattened latent sequences (batch, T * latent), i.i.d. N(0, 1) per step."""
        return sample_latent(key, batch, self.spec.z_dim, "normal", dtype)

    def _critic_loss(self, params, stats, real, key):
        fake = self.generator(params["generator"], stats["generator"], self.latent(key, real.shape[0], real.dtype))
        fake = jax.lax.stop_gradient(fake)
        d = lambda x: self.critic(params["critic"], stats["critic"], x, per_step=True)[0]   # (B, T)
        real_logits, fake_logits = d(real), d(fake)
        loss = bce_critic_loss(real_logits.reshape(-1), fake_logits.reshape(-1))
        metrics = {"d_real": jnp.mean(nnx.sigmoid(real_logits)), "d_fake": jnp.mean(nnx.sigmoid(fake_logits))}
        return loss, ({}, metrics)

    def _generator_loss(self, params, stats, real, key):
        fake = self.generator(params["generator"], stats["generator"], self.latent(key, real.shape[0], real.dtype))
        logits = self.critic(params["critic"], stats["critic"], fake, per_step=True)[0]
        return bce_generator_loss(logits.reshape(-1)), ({}, {})

    def generate(self, state, z: jax.Array) -> jax.Array:
        """Windows (B, T, F) from flattened latent sequences z (B, T * latent)."""
        return self.apply(state, "generator", z)


# ---------------------------------------------------------------------------- scoring

class _NoFeatures(nnx.Module):
    """A parameter-free stand-in for the critic in the inversion: MAD-GAN's latent search
    uses the reconstruction only (``lam=0``), so no discriminator runs inside it."""

    def __call__(self, x, *, train: bool = False):
        del train
        b = x.shape[0]
        return jnp.zeros((b,), x.dtype), jnp.zeros((b, 1), x.dtype)


@functools.lru_cache(maxsize=None)
def _no_features():
    """(PureNet, params, stats) of the stand-in critic; built once, on first use (not at import)."""
    net, init = init_fn(lambda rngs: _NoFeatures(), name="no_features")
    return (net, *init(jax.random.PRNGKey(0)))


def dr_scores(x: jax.Array, reconstruction: jax.Array, step_logits: jax.Array, lam: float = 0.5) -> dict:
    """MAD-GAN's DR-score from its parts (pure; jit/vmap-able).

    Args:
      x, reconstruction: (B, T, F) windows and ``G(Z*)``.
      step_logits: (B, T) discriminator logits of ``x`` per time step.
      lam: weight of the reconstruction residual, in [0, 1].

    Returns:
      {'step_scores': (B, T) DRS per step, 'score': (B,) mean over steps,
       'residual': (B, T) ``sum_F |x - G(Z*)|``, 'discrimination': (B, T) ``1 - D(x)``}.
    """
    residual = jnp.sum(jnp.abs(x - reconstruction), axis=-1)
    discrimination = 1.0 - nnx.sigmoid(step_logits)
    steps = lam * residual + (1.0 - lam) * discrimination
    return {"step_scores": steps, "score": jnp.mean(steps, axis=-1), "residual": residual,
            "discrimination": discrimination}


@partial(jax.jit, static_argnames=("critic",))
def _discriminate_and_combine(critic: PureNet, d_params, d_stats, x, reconstruction, lam):
    _TRACES["dr"] += 1
    logits = critic(d_params, d_stats, x, per_step=True)[0]
    return dr_scores(x, reconstruction, logits, lam)


def madgan_scores(generator: PureNet, g_params, g_stats, critic: PureNet, d_params, d_stats, x: jax.Array,
                  key: jax.Array, *, lam: float = 0.5, steps: int = 500,
                  learning_rate: float = DEFAULT_LEARNING_RATE, restarts: int = 1, loop: str = "auto",
                  index_offset: int = 0) -> dict:
    """MAD-GAN DR-scores of a batch of windows, every window inverted at once.

    The inversion is :func:`~gadjax.models.anogan_search.search_latent` with ``lam=0``
    over the whole batch (one compiled program with ``loop='scan'``; on CPU the
    ``'auto'`` host loop runs one compiled Adam step for all windows per iteration);
    the discriminator pass and the DR combination are one more compiled program.

    Args:
      generator, g_params, g_stats: ``z (B, T * latent) -> (B, T, F)``.
      critic, d_params, d_stats: the LSTM discriminator (per-step logits with ``per_step=True``).
      x: (B, T, F) windows, scaled as the training windows were.
      key: PRNG key of the starting codes; window ``i`` uses ``fold_in(key, index_offset + i)``,
        so a window's score does not depend on the batch it is scored in.
      lam: DR-score weight of the reconstruction residual, in [0, 1].
      steps, learning_rate, restarts, loop: of the latent search (Adam on Z).

    Returns:
      :func:`dr_scores`'s dict plus 'reconstruction' (B, T, F), 'z' (B, T * latent) and
      'inversion_loss' (B,) (the final L1 residual of the search).
    """
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    inv = search_latent(generator, g_params, g_stats, *_no_features(), x, key,
                        steps=steps, lam=0.0, learning_rate=learning_rate, restarts=restarts, prior="normal",
                        loop=loop, _index_offset=index_offset)
    x = jnp.asarray(x)
    out = _discriminate_and_combine(critic, d_params, d_stats, x, inv.reconstruction, jnp.asarray(lam, x.dtype))
    return {**out, "reconstruction": inv.reconstruction, "z": inv.z, "inversion_loss": inv.score}


# --------------------------------------------------------------------------- detector

class MADGAN(PlayerDetector):
    """``MADGAN(LSTMSpec(), run).fit(train_windows).score_samples(test_windows)``.

    Windows are (N, T, F) arrays cut by :func:`gadjax.timeseries.sliding_windows` from a
    series scaled to [-1, 1] with TRAINING statistics (:class:`gadjax.timeseries.
    MinMaxScaling`); test windows may leave that range (anomalies do).
    ``score_series(series, stride)`` gives per-time-step scores.

    Args:
      nets: the LSTM architecture (paper defaults); the window shape is set at ``fit``.
      lam: DR-score weight of the reconstruction residual (1 - lam on discrimination).
      search_steps, search_lr, restarts, loop: the batched inversion (see :func:`madgan_scores`).
      d_learning_rate, g_learning_rate, generator_repeats: training (see :class:`MADGANTrainer`).
      Other arguments as ``Detector`` (threshold percentile of normal scores, batch sizes).
    """

    def __init__(self, nets: LSTMSpec = LSTMSpec(), run: RunConfig = RunConfig(), *, lam: float = 0.5,
                 search_steps: int = 500, search_lr: float = DEFAULT_LEARNING_RATE, restarts: int = 1,
                 loop: str = "auto", d_learning_rate: float = 0.1, g_learning_rate: float = 1e-3,
                 generator_repeats: int = 3, **kwargs):
        if not isinstance(nets, LSTMSpec):
            raise TypeError(f"MADGAN takes an LSTMSpec, got {type(nets).__name__}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        super().__init__(nets, run, **kwargs)
        self.lam, self.search_steps, self.search_lr = lam, search_steps, search_lr
        self.restarts, self.loop = restarts, loop
        self.d_learning_rate, self.g_learning_rate = d_learning_rate, g_learning_rate
        self.generator_repeats = generator_repeats

    @property
    def value_range(self):
        """None: test windows are not range-checked (anomalies may leave the training range);
        the training windows are, in ``_fit``."""
        return None

    def _fit(self, x: np.ndarray) -> None:
        if x.ndim != 3:
            raise ValueError(f"MADGAN trains on windows (N, T, F); got shape {x.shape}. "
                             f"Cut a series with gadjax.timeseries.sliding_windows")
        rng = self.nets.output_range
        if rng is not None and (x.min() < rng[0] - 1e-3 or x.max() > rng[1] + 1e-3):
            raise ValueError(f"training windows lie in [{x.min():.3g}, {x.max():.3g}] but the tanh generator "
                             f"outputs [{rng[0]:g}, {rng[1]:g}]: scale the series with "
                             f"gadjax.timeseries.MinMaxScaling.fit(train_series) first")
        super()._fit(x)

    def build_trainer(self) -> MADGANTrainer:
        return MADGANTrainer(self.nets, d_learning_rate=self.d_learning_rate, g_learning_rate=self.g_learning_rate,
                             generator_repeats=self.generator_repeats, parallel=self.parallel)

    def _score_batch(self, x, offset: int) -> dict:
        t, s = self.trainer, self.state
        return madgan_scores(t.generator, s.params["generator"], s.stats["generator"], t.critic,
                             s.params["critic"], s.stats["critic"], x, jax.random.PRNGKey(self.run.seed + 7),
                             lam=self.lam, steps=self.search_steps, learning_rate=self.search_lr,
                             restarts=self.restarts, loop=self.loop, index_offset=offset)

    def score_series(self, series, stride: int = 1) -> np.ndarray:
        """Per-time-step DR-scores (N,) of a scaled series (N, F): windows of the fitted
        length every ``stride`` steps, each step's DRS averaged over the windows that
        contain it.  Steps in no window (a tail shorter than the stride) are NaN."""
        if self.image_shape_ is None:
            raise RuntimeError("MADGAN is not fitted yet: call fit(windows) first")
        series = np.asarray(series)
        windows = sliding_windows(series, self.image_shape_[0], stride)
        steps = self.score_details(windows)["step_scores"]
        return np.asarray(windows_to_steps(steps, stride, len(series)))
