"""The detector wrappers every gadjax model shares (pyod-style).

``fit(x, x_val=None)`` trains on normal images, ``score_samples(x)`` returns one score
per image (higher = more anomalous) and ``threshold_`` is a percentile of the scores of
NORMAL data only: ``x_val`` when given (held-out normals), else the training images.
Test data never enter the threshold.
"""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable

import jax
import numpy as np

from gadjax.data.transforms import check_samples, to_float
from gadjax.metrics import threshold_from_normal
from gadjax.nets import NetSpec
from gadjax.scores import anomaly_map
from gadjax.train import GANConfig, GANTrainer, RunConfig, check_range, train_loop


def map_batches(fn: Callable[[np.ndarray, int], dict], x: np.ndarray, batch_size: int) -> dict:
    """Apply ``fn(batch, offset) -> dict of (b, ...) arrays`` over ``x`` in fixed-size
    batches and concatenate.  The last batch is padded (edge rows repeated) so every call
    has the same shape and the jitted scorer compiles once."""
    out: dict[str, list] = {}
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        n = len(chunk)
        if n < batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch_size - n, axis=0)])
        for k, v in fn(chunk, start).items():
            out.setdefault(k, []).append(np.asarray(v)[:n])
    return {k: np.concatenate(v) for k, v in out.items()}


class Detector:
    """Base class of every detector: input checks, batched scoring, threshold, maps.

    Subclasses implement ``_fit(x)`` (train on scaled normal images) and
    ``_score_batch(x, offset) -> {'score': (b,), 'reconstruction': (b, H, W, C), ...}``
    for one fixed-size device batch, and set ``image_shape_`` during ``_fit``.

    Args:
      run: steps, batch size, seed and (optionally) ``out_dir`` for checkpoints/logs.
      threshold_percentile: percentile of normal scores used as ``threshold_``.
      score_batch_size: images per compiled scoring call.
      parallel: shard training and scoring batches over all devices.
    """

    value_range: tuple[float, float] = (-1.0, 1.0)

    def __init__(self, run: RunConfig = RunConfig(), threshold_percentile: float = 95.0,
                 score_batch_size: int = 64, parallel: bool = False):
        self.run = run
        self.threshold_percentile = threshold_percentile
        self.score_batch_size = score_batch_size
        self.parallel = parallel
        self.image_shape_: tuple[int, int, int] | None = None
        self.threshold_: float | None = None

    def _prepare(self, x, name: str = "x") -> np.ndarray:
        """uint8 images are scaled to the model's range; floats must already be in it."""
        check_samples(x, self.image_shape_, name=name)
        if np.asarray(x).dtype == np.uint8 and np.ndim(x) == 4 and self.value_range is not None:
            return to_float(np.asarray(x), "sigmoid" if self.value_range[0] == 0 else "tanh")
        x = np.asarray(x, np.float32)
        if self.value_range is not None:
            check_range(x, self.value_range, name)
        return x

    def _subrun(self, name: str) -> RunConfig:
        out = self.run.out_dir and str(pathlib.Path(self.run.out_dir) / name)
        return dataclasses.replace(self.run, out_dir=out)

    def fit(self, x, x_val=None, **kwargs):
        """Train on normal images ``x`` (N, H, W, C), uint8 or scaled floats; the
        threshold is the ``threshold_percentile`` of the scores of ``x_val`` (held-out
        normals) or, without it, of ``x``.  Returns self."""
        self.image_shape_ = None  # a refit may change the image size
        x = self._prepare(x, "x_train")
        self._fit(x, **kwargs)
        self.image_shape_ = tuple(x.shape[1:])
        normal = x if x_val is None else self._prepare(x_val, "x_val")
        self.threshold_ = float(threshold_from_normal(self.score_samples(normal), self.threshold_percentile))
        return self

    def _fit(self, x: np.ndarray, **kwargs) -> None:
        raise NotImplementedError

    def _score_batch(self, x, offset: int) -> dict:
        raise NotImplementedError

    def _sharding(self):
        return None

    def _put(self, x: np.ndarray):
        parallel = self._sharding()
        return jax.numpy.asarray(x) if parallel is None else parallel.put_batch(x, batch_axis=0)

    def score_details(self, x) -> dict:
        """Per-image outputs of the scorer: {'score': (N,), 'reconstruction': ...}."""
        if self.image_shape_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(x) first")
        x = self._prepare(x)
        return map_batches(lambda b, off: self._score_batch(self._put(b), off), x, self.score_batch_size)

    def score_samples(self, x) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous."""
        return self.score_details(x)["score"]

    decision_function = score_samples

    def predict(self, x) -> np.ndarray:
        """1 = anomalous (score above ``threshold_``), 0 = normal."""
        if self.threshold_ is None:
            raise RuntimeError("threshold_ is unset: call fit(x) first")
        return (self.score_samples(x) > self.threshold_).astype(np.int64)

    def reconstruct(self, x) -> np.ndarray:
        return self.score_details(x)["reconstruction"]

    def anomaly_map(self, x, sigma: float = 0.0, reconstruction=None) -> np.ndarray:
        """Per-pixel |x - reconstruction| (N, H, W), optionally Gaussian-smoothed.

        ``reconstruction``: ``score_details(x)["reconstruction"]`` when the caller already
        scored ``x``; it saves a second pass of the scorer (an AnoGAN search, say)."""
        if reconstruction is None:
            reconstruction = self.score_details(x)["reconstruction"]
        return np.asarray(anomaly_map(self._prepare(x), reconstruction, sigma=sigma))


class PlayerDetector(Detector):
    """A detector trained end to end by one ``PlayerTrainer`` (BiGAN, ALAD, GANomaly, ...).

    Subclasses implement ``build_trainer() -> PlayerTrainer`` (reading ``self.nets``,
    whose ``image_shape`` is set from the training images at ``fit`` time) and either
    ``score_state(state, x) -> dict`` (a pure function of the train state, which lets
    ``GANEnsemble`` vmap it over members) or ``_score_batch``; ``self.trainer`` /
    ``self.state`` hold the trained model.
    """

    def __init__(self, nets: NetSpec = NetSpec(), run: RunConfig = RunConfig(), **kwargs):
        super().__init__(run, **kwargs)
        # A GANConfig is accepted too, so every registry entry takes (config, run, ...).
        self.nets = nets.nets if isinstance(nets, GANConfig) else nets
        self.trainer = None
        self.state = None

    @property
    def value_range(self) -> tuple[float, float]:
        return self.nets.output_range

    def build_trainer(self):
        raise NotImplementedError

    def _fit(self, x: np.ndarray) -> None:
        self.nets = dataclasses.replace(self.nets, image_shape=tuple(x.shape[1:]))
        self.trainer = self.build_trainer()
        self.state, _ = train_loop(self.trainer, x, self.run)

    def score_state(self, state, x) -> dict:
        """Scores of batch ``x`` under train state ``state`` (pure; traceable)."""
        raise NotImplementedError

    def _score_batch(self, x, offset: int) -> dict:
        del offset  # PlayerDetector scorers are deterministic
        return self.score_state(self.state, x)

    def _sharding(self):
        return self.trainer.parallel


class GANDetector(Detector):
    """A GAN trained on normal data plus a model-specific scorer (AnoGAN, f-AnoGAN).

    Args:
      gan: the GAN to train (``GANConfig``); its ``nets.image_shape`` is replaced by the
        training images' shape at ``fit`` time.
      Other arguments as ``Detector``.
    """

    def __init__(self, gan: GANConfig = GANConfig(), run: RunConfig = RunConfig(), **kwargs):
        super().__init__(run, **kwargs)
        self.gan_config = gan
        self.gan_trainer: GANTrainer | None = None
        self.gan_state = None

    @property
    def value_range(self) -> tuple[float, float]:
        return self.gan_config.nets.output_range

    def fit(self, x, x_val=None, gan: tuple[GANTrainer, object] | None = None):
        """As ``Detector.fit``; ``gan=(trainer, state)`` reuses a trained GAN (e.g. to
        compare detectors on the same generator)."""
        if gan is not None:
            self.gan_trainer, self.gan_state = gan
            self.gan_config = self.gan_trainer.config
        return super().fit(x, x_val, reuse=gan is not None)

    def _fit(self, x: np.ndarray, reuse: bool = False) -> None:
        if not reuse:
            nets = dataclasses.replace(self.gan_config.nets, image_shape=tuple(x.shape[1:]))
            self.gan_config = dataclasses.replace(self.gan_config, nets=nets)
            self.gan_trainer = GANTrainer(self.gan_config, parallel=self.parallel)
            self.gan_state, _ = train_loop(self.gan_trainer, x, self._subrun("gan"))
        elif self.gan_trainer.image_shape != tuple(x.shape[1:]):
            raise ValueError(f"the given GAN was built for images {self.gan_trainer.image_shape}, "
                             f"x_train has {tuple(x.shape[1:])}")
        self._fit_scorer(x)

    def _fit_scorer(self, x: np.ndarray) -> None:
        """Model-specific training after the GAN (e.g. f-AnoGAN's encoder)."""

    def _sharding(self):
        return self.gan_trainer.parallel


def default_gan(image_shape=(28, 28, 1), family: str = "dcgan", width: int = 64) -> GANConfig:
    """WGAN-GP with the chosen net family; the paper defaults otherwise."""
    return GANConfig(NetSpec(family, tuple(image_shape), 128 if family == "thesis" else 100, width))
