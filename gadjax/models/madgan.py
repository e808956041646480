"""MAD-GAN (Li, Chen, Shi, Jin, Goh & Ng, ICANN 2019): multivariate time-series anomaly
detection with an LSTM GAN and the discrimination-and-reconstruction score (DR-score).

    windows = sliding_windows(MinMaxScaling.fit(train)(train), 30, 1)     # (N, T, F) in [-1, 1]
    det = MADGAN(window=30, steps=2000).fit(windows, val_windows)
    det.score_samples(test_windows); det.score_series(scaled_test_series)

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

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gadjax import optim
from gadjax.losses import bce_critic_loss, bce_generator_loss
from gadjax.models.anogan_search import DEFAULT_LEARNING_RATE, LOOPS, search_latent
from gadjax.models.base import RANGE_TOLERANCE, PlayerDetector
from gadjax.models.config import ConfigError, DetectorConfig, option
from gadjax.nets.lstm import LSTMSpec, build_lstm_nets
from gadjax.nets.pure import as_callable_pytree
from gadjax.timeseries import sliding_windows, windows_to_steps
from gadjax.train import Player, PlayerTrainer
from gadjax.train.gan import sample_latent

NAME = "madgan"

__all__ = ["NAME", "MADGAN", "MADGANConfig", "MADGANTrainer", "madgan_scores", "dr_scores", "per_step_critic"]


@dataclasses.dataclass(frozen=True)
class MADGANConfig(DetectorConfig):
    """Every MAD-GAN hyper-parameter; defaults from the paper and the authors' released
    settings (fields of ``DetectorConfig`` as documented there).

    Attributes:
      learning_rate: G's Adam rate (authors: 1e-3); with ``d_learning_rate`` None, D's too.
      d_learning_rate: D's SGD rate (authors: 0.1); None = follow ``learning_rate``.
      generator_repeats: G updates per D update (authors: 3).
      width, z_dim: LSTM units of both players (100) and the latent size PER TIME STEP (15);
        the generator takes ``T * z_dim`` numbers per window.
      generator_depth, discriminator_depth: stacked LSTM layers (3 and 1).
      output: generator output, ``'tanh'`` (training windows scaled to [-1, 1], the
        paper's) or ``'linear'``.
      window, stride: the sliding windows cut from a series (paper: 30, stride 1 for
        training); the detector takes windows, whose length must be ``window``;
        ``score_series`` cuts every ``stride`` steps.
      lam: DR-score weight of the reconstruction residual, 1 - lam on discrimination (0.5).
      search_steps, search_lr, restarts, loop: the inversion (Adam on Z, see
        ``gadjax.models.anogan_search``; the authors ran 500 steps).
    """

    learning_rate: float = option(1e-3, gt=0, doc="G's Adam rate (and D's unless d_learning_rate)")
    d_learning_rate: float | None = option(0.1, gt=0, doc="D's SGD rate; None: learning_rate")
    generator_repeats: int = option(3, ge=1)
    width: int = option(100, ge=1, doc="LSTM units (both players)")
    z_dim: int = option(15, ge=1, doc="latent size per time step")
    generator_depth: int = option(3, ge=1)
    discriminator_depth: int = option(1, ge=1)
    output: str = option("tanh", choices=("tanh", "linear"))
    window: int = option(30, ge=1, doc="window length T")
    stride: int = option(1, ge=1, doc="steps between windows cut from a series")
    lam: float = option(0.5, ge=0, le=1, score=True)
    search_steps: int = option(500, ge=1, score=True)
    search_lr: float = option(DEFAULT_LEARNING_RATE, gt=0, score=True)
    restarts: int = option(1, ge=1, score=True)
    loop: str = option("auto", choices=LOOPS, score=True)

    families: ClassVar[tuple[str, ...]] = ("lstm",)

    def lstm_spec(self, window_shape: tuple[int, int]) -> LSTMSpec:
        """The LSTM architecture for windows of shape (T, F)."""
        return LSTMSpec(tuple(window_shape), latent=self.z_dim, hidden=self.width,
                        generator_depth=self.generator_depth, discriminator_depth=self.discriminator_depth,
                        output=self.output)


# --------------------------------------------------------------------------- training

class MADGANTrainer(PlayerTrainer):
    """MAD-GAN's two players on windows (B, T, F): the discriminator (per-step BCE, SGD at
    ``config.rate('d', 0.1)``), then the generator (non-saturating per-step BCE, Adam at
    ``config.learning_rate``) ``config.generator_repeats`` times.  ``spec.image_shape`` is
    the window shape (T, F).
    """

    def __init__(self, spec: LSTMSpec, config: MADGANConfig = MADGANConfig(), parallel=False, unroll=None):
        self.spec, self.config = spec, config
        nets = build_lstm_nets(spec, ("generator", "critic"))
        self.generator, self.critic = nets["generator"][0], nets["critic"][0]
        players = [Player("critic", ("critic",), self._critic_loss, optim.sgd(config.rate("d", 0.1))),
                   Player("generator", ("generator",), self._generator_loss, optim.adam(config.learning_rate),
                          repeats=config.generator_repeats)]
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

def _no_features(x):
    """MAD-GAN's inversion uses the reconstruction only (``lam=0``): no discriminator runs
    inside the search.  A plain function, hence static in the compiled search."""
    return jnp.zeros((x.shape[0], 1), x.dtype)


def _per_step(critic, x):
    return critic(x, per_step=True)


def per_step_critic(critic) -> jax.tree_util.Partial:
    """A bound ``LSTMDiscriminator`` as the per-step critic ``madgan_scores`` takes:
    ``x -> (logits (B, T), features)``; still a pytree (its parameters stay traced)."""
    return jax.tree_util.Partial(_per_step, critic)


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


@jax.jit
def _discriminate_and_combine(critic, x, reconstruction, lam):
    return dr_scores(x, reconstruction, critic(x)[0], lam)


def madgan_scores(nets: dict, x: jax.Array, config: MADGANConfig, key: jax.Array, *, index_offset: int = 0) -> dict:
    """MAD-GAN DR-scores of a batch of windows, every window inverted at once.

    The inversion is :func:`~gadjax.models.anogan_search.search_latent` with ``lam=0``
    over the whole batch (one compiled program with ``loop='scan'``; on CPU the
    ``'auto'`` host loop runs one compiled Adam step for all windows per iteration);
    the discriminator pass and the DR combination are one more compiled program.

    Args:
      nets: ``{'generator': z (B, T * z_dim) -> (B, T, F), 'critic': x -> (per-step
        logits (B, T), features)}``: e.g. ``bind(G, ...)`` and ``per_step_critic(bind(D, ...))``,
        or any JAX callables.
      x: (B, T, F) windows, scaled as the training windows were.
      config: ``lam`` and the search settings (``search_steps``, ``search_lr``, ``restarts``,
        ``loop``); ``z_dim`` is the latent size per time step.
      key: PRNG key of the starting codes; window ``i`` uses ``fold_in(key, index_offset + i)``,
        so a window's score does not depend on the batch it is scored in.

    Returns:
      :func:`dr_scores`'s dict plus 'reconstruction' (B, T, F), 'z' (B, T * z_dim) and
      'inversion_loss' (B,) (the final L1 residual of the search).
    """
    c = config
    inv = search_latent(nets["generator"], _no_features, x, key, steps=c.search_steps, lam=0.0,
                        learning_rate=c.search_lr, restarts=c.restarts, prior="normal", loop=c.loop,
                        z_dim=int(np.shape(x)[1]) * c.z_dim, index_offset=index_offset)
    x = jnp.asarray(x)
    out = _discriminate_and_combine(as_callable_pytree(nets["critic"]), x, inv.reconstruction,
                                    jnp.asarray(c.lam, x.dtype))
    return {**out, "reconstruction": inv.reconstruction, "z": inv.z, "inversion_loss": inv.score}


# --------------------------------------------------------------------------- detector

class MADGAN(PlayerDetector):
    """``MADGAN(window=30).fit(train_windows, val_windows).score_samples(test_windows)``.

    Windows are (N, T, F) arrays cut by :func:`gadjax.timeseries.sliding_windows` from a
    series scaled to [-1, 1] with TRAINING statistics (:class:`gadjax.timeseries.
    MinMaxScaling`); test windows may leave that range (anomalies do), so only the
    training windows are range-checked.  ``score_series(series)`` gives per-time-step
    scores.  Settings: ``MADGANConfig``; other arguments as ``Detector``.
    """

    name = NAME
    config_class = MADGANConfig
    score_nets = ("generator", "critic")

    def net_spec(self, sample_shape) -> LSTMSpec:
        return self.config.lstm_spec(tuple(sample_shape))

    def build(self, sample_shape) -> None:
        shape = tuple(int(s) for s in sample_shape)
        if len(shape) != 2:
            raise ValueError(f"MADGAN takes windows (N, T, F); got samples of shape {shape}. "
                             f"Cut a series with gadjax.timeseries.sliding_windows")
        if shape[0] != self.config.window:
            raise ConfigError("window", f"window is {self.config.window} but the windows have {shape[0]} steps: "
                                        f"pass window={shape[0]} (the window length is part of the model)")
        super().build(shape)

    def _model_range(self):
        """None: test windows are not range-checked (anomalies may leave the training
        range); the training windows are, in ``_fit``."""
        return None

    def _fit(self, x: np.ndarray) -> None:
        rng = self.spec.output_range
        if rng is not None and (x.min() < rng[0] - RANGE_TOLERANCE or x.max() > rng[1] + RANGE_TOLERANCE):
            raise ValueError(f"training windows lie in [{x.min():.3g}, {x.max():.3g}] but the tanh generator "
                             f"outputs [{rng[0]:g}, {rng[1]:g}]: scale the series with "
                             f"gadjax.timeseries.MinMaxScaling.fit(train_series) first")
        super()._fit(x)

    def build_trainer(self) -> MADGANTrainer:
        return MADGANTrainer(self.spec, self.config, parallel=self.parallel)

    def scoring_nets(self) -> dict:
        nets = super().scoring_nets()
        return {**nets, "critic": per_step_critic(nets["critic"])}

    def _score_batch(self, x, offset: int) -> dict:
        return madgan_scores(self.scoring_nets(), x, self.config, jax.random.PRNGKey(self.config.seed + 7),
                             index_offset=offset)

    def score_series(self, series, stride: int | None = None) -> np.ndarray:
        """Per-time-step DR-scores (N,) of a scaled series (N, F): windows of the fitted
        length every ``stride`` steps (default: ``config.stride``), each step's DRS
        averaged over the windows that contain it.  Steps in no window (a tail shorter
        than the stride) are NaN."""
        self._check_fitted()
        stride = self.config.stride if stride is None else stride
        series = np.asarray(series)
        windows = sliding_windows(series, self.image_shape_[0], stride)
        steps = self.score_details(windows)["step_scores"]
        return np.asarray(windows_to_steps(steps, stride, len(series)))
