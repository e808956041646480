"""The detector wrapper every gadjax model shares (pyod-style).

    det = gadjax.EGBAD(learning_rate=2e-4, steps=800, out_dir="runs/e0")  # flat, validated settings
    det.fit(x_normal, x_val)          # train; threshold_ = percentile of x_val's scores (normal data only)
    det.score_samples(x_test)         # (N,), higher = more anomalous
    det.save("egbad.ckpt"); gadjax.load("egbad.ckpt")

A detector is its frozen config (``config_class``) plus what ``fit`` learns: one train
state per training phase (``phases``: ``("model",)`` for end-to-end detectors,
``("gan", "encoder")`` for f-AnoGAN), the threshold and the input range.

Scoring convention, the same for every detector: a pure function
``score_fn(nets, x, config) -> {'score': (B,), ...}`` where ``nets`` is a dict of
callables (gadjax networks bound to their variables with ``gadjax.nets.bind``, hence one
pytree of parameters) and ``config`` the detector's static config.  ``score_batch``
jits it once per detector; ``scoring_nets()`` gives the bound networks, so the same
function runs inside a user's own ``jit`` / ``vmap``.
"""
from __future__ import annotations

import contextlib
import pathlib
from functools import partial
from typing import Callable, ClassVar

import jax
import numpy as np

from gadjax.data.transforms import check_samples, to_float
from gadjax.metrics import threshold_from_normal
from gadjax.models.config import DetectorConfig
from gadjax.nets import NetSpec, bind
from gadjax.scores import anomaly_map
from gadjax.train import RunConfig, train_loop
from gadjax.train.rundir import RunLock, check_out_dir, check_record, fingerprint
from gadjax.train.runlog import progress_callback

RANGE_TOLERANCE = 1e-3


def map_batches(fn: Callable[[np.ndarray, int], dict], x: np.ndarray, batch_size: int, progress=None) -> dict:
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
        if progress is not None:
            progress(start + n)
    return {k: np.concatenate(v) for k, v in out.items()}


@partial(jax.jit, static_argnames=("score_fn", "config"))
def score_batch(score_fn: Callable, nets: dict, x: jax.Array, config) -> dict:
    """The one jitted scorer: ``score_fn(nets, x, config)`` (see the module docstring)."""
    return score_fn(nets, x, config)


def convert_range(x: np.ndarray, source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """Map ``x`` linearly from range ``source`` to range ``target`` (float32)."""
    (a, b), (c, d) = source, target
    return ((x - a) * ((d - c) / (b - a)) + c).astype(np.float32)


class Detector:
    """Base class of every detector: settings, input checks, training phases, batched
    scoring, threshold, maps and persistence.

    Args:
      config: the detector's config (``config_class``), a dict of its fields, or None
        for the paper defaults; ``**hyper`` replaces fields of it (validated).
      out_dir: checkpoints, metrics and, once fitted, the saved detector (``detector/``);
        refitting into it resumes; another model or other data there is an error.
      parallel: shard training and scoring batches over all devices.
      progress, log_every, checkpoint_every, sample_every, keep_checkpoints: run output.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = DetectorConfig
    phases: ClassVar[tuple[str, ...]] = ("model",)
    score_fn: ClassVar[Callable | None] = None  # set as staticmethod(fn) by subclasses

    def __init__(self, config=None, *, out_dir=None, parallel=False, progress: bool = True, log_every: int = 50,
                 checkpoint_every: int = 500, sample_every: int = 500, keep_checkpoints: int = 3, **hyper):
        if config is None:
            config = self.config_class()
        elif isinstance(config, dict):
            config = self.config_class.from_dict(config)
        if type(config) is not self.config_class:  # a subclass's extra fields would be ignored
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config.replace(**hyper) if hyper else config
        self.out_dir = None if out_dir is None else check_out_dir(out_dir)
        self.parallel = parallel
        self.run_options = dict(progress=progress, log_every=log_every, checkpoint_every=checkpoint_every,
                                sample_every=sample_every, keep_checkpoints=keep_checkpoints)
        RunConfig(**self.run_options)  # validate now, not after reading data
        self.image_shape_: tuple[int, ...] | None = None
        self.input_range_: tuple[float, float] | None = None
        self.threshold_: float | None = None
        self.states_: dict = {}
        self.trainers_: dict = {}

    # ------------------------------------------------------------------ building
    def net_spec(self, sample_shape: tuple[int, ...]) -> NetSpec:
        """The architecture for samples of ``sample_shape`` (net family from the data
        unless ``config.net`` names one)."""
        cfg = self.config
        family = getattr(cfg, "net", None) or cfg.default_family(tuple(sample_shape))
        return NetSpec(family, tuple(sample_shape), **self._net_fields(family))

    def _net_fields(self, family: str) -> dict:
        """NetSpec fields besides family and shape (z_dim, width, norms)."""
        return {"width": self.config.width}

    def build(self, sample_shape: tuple[int, ...]) -> None:
        """Fix the sample shape and the input range (no training, no data); trainers
        already built for the same shape are kept."""
        shape = tuple(int(s) for s in sample_shape)
        if shape != self.image_shape_:
            self.trainers_, self.states_ = {}, {}
        self.image_shape_ = shape
        self.input_range_ = self._model_range()

    def _model_range(self) -> tuple[float, float] | None:
        return self.net_spec(self.image_shape_).output_range

    def trainer(self, phase: str):
        """The trainer of ``phase`` (built on first use; may use earlier phases' states)."""
        if phase not in self.trainers_:
            self.trainers_[phase] = self._make_trainer(phase)
        return self.trainers_[phase]

    def _make_trainer(self, phase: str):
        raise NotImplementedError

    # ------------------------------------------------------------------- inputs
    def _prepare(self, x, name: str = "x", input_range=None) -> np.ndarray:
        """Checked float32 input in the model's range.

        uint8 images are scaled; floats must lie in the model's range, or in
        ``input_range``, which converts them on purpose.  [0, 1] floats given to a
        [-1, 1] model are refused (the commonest silent mistake)."""
        check_samples(x, self.image_shape_, name=name)
        x = np.asarray(x)
        model = self.input_range_
        if x.dtype == np.uint8:
            if input_range is not None:
                raise ValueError(f"{name} is uint8 (scaled from [0, 255] automatically); input_range is for floats")
            if model is None:
                return x.astype(np.float32)
            return to_float(x, "sigmoid" if model[0] == 0 else "tanh")
        x = x.astype(np.float32)
        lo, hi = float(x.min()), float(x.max())
        if input_range is not None:
            a, b = (float(v) for v in input_range)
            if not a < b:
                raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
            if lo < a - RANGE_TOLERANCE or hi > b + RANGE_TOLERANCE:
                raise ValueError(f"{name} lies in [{lo:.3g}, {hi:.3g}], outside input_range [{a:g}, {b:g}]")
            return x if model is None else convert_range(x, (a, b), model)
        if model is None:
            return x
        m_lo, m_hi = model
        if lo < m_lo - RANGE_TOLERANCE or hi > m_hi + RANGE_TOLERANCE:
            raise ValueError(f"{name} lies in [{lo:.3g}, {hi:.3g}] but the model takes [{m_lo:g}, {m_hi:g}]: "
                             f"pass uint8 images, scale the data, or pass input_range=(low, high) to convert")
        if m_lo < 0 and lo >= 0:
            raise ValueError(f"{name} lies in [{lo:.3g}, {hi:.3g}], inside [0, 1], but the model takes "
                             f"[{m_lo:g}, {m_hi:g}]: pass input_range=(0, 1) to convert it, or "
                             f"input_range=({m_lo:g}, {m_hi:g}) if it already is in the model's range")
        return x

    # ------------------------------------------------------------------ fitting
    def fit(self, x, x_val=None, *, input_range=None, **kwargs):
        """Train on normal samples ``x`` (uint8 images or floats in the model's range /
        ``input_range``); ``threshold_`` is the ``threshold_percentile`` of the scores of
        ``x_val`` (held-out normals) or, without it, of ``x``.  Everything is checked
        before training starts.  Returns self."""
        check_samples(x, None, name="x_train")
        self.build(np.shape(x)[1:])
        x = self._prepare(x, "x_train", input_range)
        normal = x if x_val is None else self._prepare(x_val, "x_val", input_range)
        self._check_fit_args(**kwargs)
        with self._output(x):
            self._fit(x, **kwargs)
            self._calibrate(normal)
            bar = progress_callback(len(normal), "threshold", enabled=self.run_options["progress"])
            self.threshold_ = float(threshold_from_normal(self._scores(normal, bar), self.config.threshold_percentile))
            if self.out_dir is not None and jax.process_index() == 0:
                self.save(self.out_dir / "detector", overwrite=True)
        return self

    def _calibrate(self, normal: np.ndarray) -> None:
        """After training, before ``threshold_``: fit score-side config fields on the prepared
        normal data (``x_val``, else the training data); see ``calibration``."""
        if type(self).calibration is not Detector.calibration:  # most have none: skip the scoring pass
            self.config = self.config.replace(**self.calibration(self._details(normal)))

    CALIBRATION_FIELDS: tuple[str, ...] = ()  # config fields ``calibration`` sets

    @classmethod
    def calibration(cls, details: dict) -> dict:
        """Score-side config fields fitted on a fitted model's scorer outputs for normal data
        (scored before calibration); ``{}`` for most detectors.  With ``rescore`` it lets a
        ``DetectorStack`` calibrate each model from one vmapped scoring pass."""
        del details
        return {}

    @classmethod
    def rescore(cls, details: dict, config) -> np.ndarray:
        """``details['score']`` as a model calibrated to ``config`` would give it, from the
        outputs of its scorer under the uncalibrated config (the identity for most)."""
        del config
        return details["score"]

    def _check_fit_args(self, **kwargs) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.fit got unexpected arguments {sorted(kwargs)}")

    @contextlib.contextmanager
    def _output(self, x: np.ndarray):
        """Lock ``out_dir`` and check that it holds this model and data (or nothing)."""
        if self.out_dir is None or jax.process_index() != 0:
            yield
            return
        with RunLock(self.out_dir):
            check_record(self.out_dir, self.fit_record(x))
            yield

    def fit_record(self, x: np.ndarray) -> dict:
        """What identifies a fit: model, training settings and a fingerprint of the data."""
        cfg = self.config
        return {"model": self.name, "data": fingerprint(x),
                "config": {k: v for k, v in cfg.to_dict().items() if k in cfg.training_fields()}}

    def run_config(self, phase: str, steps: int | None = None) -> RunConfig:
        out = None if self.out_dir is None else str(self.out_dir / phase)
        cfg = self.config
        return RunConfig(steps=cfg.steps if steps is None else steps, batch_size=cfg.batch_size, seed=cfg.seed,
                         out_dir=out, label=phase, **self.run_options)

    def _fit(self, x: np.ndarray) -> None:
        for phase in self.phases:
            self.states_[phase], _ = train_loop(self.trainer(phase), x, self.run_config(phase))

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if self.image_shape_ is None or not self.states_:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet: call fit(x) first (or gadjax.load)")

    def scoring_nets(self) -> dict:
        """``{name: callable}``: the networks ``score_fn`` takes, bound to the weights
        used for scoring (e.g. the EMA weights where the detector keeps one)."""
        raise NotImplementedError

    def _sharding(self):
        trainer = next(iter(self.trainers_.values()), None)
        return None if trainer is None else trainer.parallel

    def _put(self, x: np.ndarray):
        parallel = self._sharding()
        return jax.numpy.asarray(x) if parallel is None else parallel.put_batch(x, batch_axis=0)

    def _score_batch(self, x, offset: int) -> dict:
        del offset  # the default scorers are deterministic
        return score_batch(type(self).score_fn, self.scoring_nets(), x, self.config)

    def _scores(self, x: np.ndarray, progress=None) -> np.ndarray:
        return self._details(x, progress)["score"]

    def _details(self, x: np.ndarray, progress=None) -> dict:
        return map_batches(lambda b, off: self._score_batch(self._put(b), off), x, self.config.score_batch_size,
                           progress)

    def score_details(self, x, *, input_range=None, progress=None) -> dict:
        """Per-sample outputs of the scorer: {'score': (N,), 'reconstruction': ...}.
        ``progress(done)`` is called after each batch."""
        self._check_fitted()
        return self._details(self._prepare(x, "x", input_range), progress)

    def score_samples(self, x, *, input_range=None) -> np.ndarray:
        """Anomaly scores (N,), higher = more anomalous."""
        return self.score_details(x, input_range=input_range)["score"]

    decision_function = score_samples

    def predict(self, x, *, input_range=None) -> np.ndarray:
        """1 = anomalous (score above ``threshold_``), 0 = normal."""
        if self.threshold_ is None:
            raise RuntimeError("threshold_ is unset: call fit(x) first")
        return (self.score_samples(x, input_range=input_range) > self.threshold_).astype(np.int64)

    def reconstruct(self, x, *, input_range=None) -> np.ndarray:
        return self.score_details(x, input_range=input_range)["reconstruction"]

    def anomaly_map(self, x, sigma: float = 0.0, reconstruction=None, *, input_range=None) -> np.ndarray:
        """Per-pixel |x - reconstruction| (N, H, W), optionally Gaussian-smoothed.

        ``reconstruction``: ``score_details(x)["reconstruction"]`` when the caller already
        scored ``x``; it saves a second pass of the scorer (an AnoGAN search, say)."""
        x = self._prepare(x, "x", input_range)
        if reconstruction is None:
            self._check_fitted()
            reconstruction = self._details(x)["reconstruction"]
        return np.asarray(anomaly_map(x, reconstruction, sigma=sigma))

    @property
    def value_range(self) -> tuple[float, float] | None:
        """The model's input (and output) range; None = unbounded."""
        return self.input_range_

    # -------------------------------------------------------------- persistence
    def fitted_extra(self) -> dict:
        """Detector-specific fitted values (JSON) that ``save`` keeps beside the states."""
        return {}

    def load_extra(self, extra: dict) -> None:
        del extra

    def save(self, path, overwrite: bool = False) -> pathlib.Path:
        """Save the fitted detector (``gadjax.load(path)`` restores it); see ``persist``."""
        from gadjax.models.persist import save
        return save(self, path, overwrite=overwrite)


class PlayerDetector(Detector):
    """A detector trained end to end by one ``PlayerTrainer`` (BiGAN, ALAD, GANomaly, ...).

    Subclasses implement ``build_trainer() -> PlayerTrainer`` (reading ``self.spec``, the
    ``NetSpec`` for the training data) and set ``score_fn`` / ``score_nets`` (the names
    of the networks the scorer takes).
    """

    score_nets: ClassVar[tuple[str, ...]] = ()

    def build(self, sample_shape) -> None:
        super().build(sample_shape)
        self.spec = self.net_spec(self.image_shape_)

    def build_trainer(self):
        raise NotImplementedError

    def _make_trainer(self, phase: str):
        return self.build_trainer()

    @property
    def state(self):
        return self.states_.get("model")

    @property
    def trainer_(self):
        return self.trainer("model") if self.image_shape_ is not None else None

    def scoring_nets(self) -> dict:
        return self.nets_of(self.state)

    def nets_of(self, state) -> dict:
        """``scoring_nets`` of any train state of this detector (pure: vmappable)."""
        t = self.trainer("model")
        return {n: bind(t.nets[n], *v) for n, v in t.scoring_params(state, self.score_nets).items()}


class GANDetector(Detector):
    """A GAN trained on normal data plus a model-specific scorer (AnoGAN, f-AnoGAN).

    ``fit(x, x_val, gan=other)`` reuses the trained GAN of another fitted GAN detector
    whose GAN settings are the same (to compare scorers on one generator).
    """

    phases: ClassVar[tuple[str, ...]] = ("gan",)
    GAN_FIELDS: ClassVar[tuple[str, ...]] = ("gan_loss", "learning_rate", "n_critic", "gp_weight", "prior", "net",
                                             "z_dim", "width", "critic_norm", "steps", "batch_size", "seed")

    def build(self, sample_shape) -> None:
        super().build(sample_shape)
        self.gan_config = self.config.gan_config(self.net_spec(self.image_shape_))

    def _net_fields(self, family: str) -> dict:
        return self.config.net_fields(family)

    def _make_trainer(self, phase: str):
        from gadjax.train import GANTrainer
        if phase == "gan":
            return GANTrainer(self.gan_config, parallel=self.parallel)
        raise KeyError(phase)

    @property
    def gan_trainer(self):
        return self.trainer("gan")

    @property
    def gan_state(self):
        return self.states_.get("gan")

    def _check_fit_args(self, gan: "GANDetector | None" = None) -> None:
        if gan is None:
            return
        if not isinstance(gan, GANDetector) or gan.gan_state is None:
            raise TypeError(f"gan= takes a fitted AnoGAN / FAnoGAN detector, got {type(gan).__name__}")
        ours, theirs = self.config.to_dict(), gan.config.to_dict()
        diff = {k: (theirs.get(k), ours.get(k)) for k in self.GAN_FIELDS if ours.get(k) != theirs.get(k)}
        if diff or gan.image_shape_ != self.image_shape_:
            raise ValueError(f"gan= was trained with other GAN settings or samples (given vs ours: {diff}, "
                             f"shapes {gan.image_shape_} vs {self.image_shape_})")

    def _fit(self, x: np.ndarray, gan: "GANDetector | None" = None) -> None:
        if gan is not None:
            self.trainers_["gan"], self.states_["gan"] = gan.gan_trainer, gan.gan_state
        else:
            self.states_["gan"], _ = train_loop(self.gan_trainer, x, self.run_config("gan"),
                                                on_sample=self._sampler())
        for phase in self.phases[1:]:
            self.states_[phase], _ = train_loop(self.trainer(phase), x, self.run_config(phase, self._steps(phase)))

    def _steps(self, phase: str) -> int | None:
        return None

    def _sampler(self):
        """Sample grids under ``out_dir/samples`` every ``sample_every`` steps."""
        if self.out_dir is None:
            return None
        from gadjax.viz import save_grid
        trainer, out = self.gan_trainer, self.out_dir
        z = trainer.latent(jax.random.PRNGKey(self.config.seed + 1), 64)
        image = len(self.image_shape_) == 3

        def on_sample(step, state):
            images = np.asarray(trainer.generate(state, z))
            if image and jax.process_index() == 0:
                save_grid(out / "samples" / f"step_{step:06d}.png", images, value_range=self.input_range_)
        return on_sample
