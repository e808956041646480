"""M detectors of one kind and one config trained, scored and thresholded at once.

    stack = gadjax.train_stack("ganomaly", [x_class0, x_class1, x_class2], seeds=[0, 1, 2],
                               x_vals=[v0, v1, v2], steps=2000)
    stack.score_samples(x_test)          # (M, N): every model scores the same images
    stack.threshold_                     # (M,): each from its own model's normal validation data
    stack.detector(1).save("class1")     # model 1 as an ordinary fitted detector (gadjax.load)

Model i is the detector ``cls(config.replace(seed=seeds[i]))`` fitted alone on ``xs[i]``:
every phase is trained by a ``StackTrainer`` (``vmap`` of the lone trainer's step, see
``gadjax.train.stack``) and scoring is the detector's pure scorer ``vmap``-ed over the
model axis, so stacked and lone results agree up to float rounding (exactly, where XLA
computes the batched convolutions in the same order).  A detector with score-side
statistics (``Detector.calibration``: the joint encoder's) is scored under the shared,
uncalibrated config in one program, then each model's score is recomputed from those
outputs under its own calibrated config (``Detector.rescore``), as a lone fit would.
"""
from __future__ import annotations

import contextlib
import dataclasses
import pathlib
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gadjax.metrics import threshold_from_normal
from gadjax.models.anogan import AnoGAN
from gadjax.models.anogan_search import _search_batch
from gadjax.models.base import Detector, GANDetector
from gadjax.train.rundir import RunLock, check_out_dir, check_record, fingerprint
from gadjax.train.stack import StackTrainer, take_model, train_stack_loop


@partial(jax.jit, static_argnames=("score_fn", "config", "shared"))
def stack_score_batch(score_fn, nets: dict, x: jax.Array, config, shared: bool) -> dict:
    """``score_fn(nets_i, x_i, config)`` for every model i in one program; ``shared``: one
    (B, ...) batch for all models, else (M, B, ...)."""
    return jax.vmap(lambda n, b: score_fn(n, b, config), in_axes=(0, None if shared else 0))(nets, x)


@partial(jax.jit, static_argnames=("config", "shared", "z_dim"))
def anogan_stack_batch(nets: dict, x: jax.Array, keys: jax.Array, offset, config, shared: bool, z_dim: int) -> dict:
    """AnoGAN's latent search over models x images in one program.  Image j of the batch
    starts from ``fold_in(key_i, offset + j)`` as in a lone ``AnoGAN``; the search always
    runs compiled (the host loop, AnoGAN's CPU default, cannot be vmapped; same maths)."""
    c = config
    n_images = x.shape[0] if shared else x.shape[1]
    idx = jnp.arange(n_images, dtype=jnp.int32) + offset
    dtype = x.dtype

    def one(n, b, key):
        r = _search_batch(n["generator"], n["features"], b, idx, key, jnp.asarray(c.lam, dtype),
                          jnp.asarray(c.search_lr, dtype), None, z_dim=z_dim, steps=c.search_steps,
                          restarts=c.restarts, prior=c.prior, unroll=8 if c.loop == "unrolled" else 1,
                          clip_z=None, return_history=False)
        return {"score": r.score, "reconstruction": r.reconstruction, "z": r.z}
    return jax.vmap(one, in_axes=(0, None if shared else 0, 0))(nets, x, keys)


def stacked_fixed(base, states: dict) -> dict:
    """``{net: (params, stats)}`` for ``base``'s fixed networks, each taken (stacked) from the
    earlier phase's state that trained it, e.g. each model's own GAN under f-AnoGAN's encoder."""
    return {name: next((s.params[name], s.stats[name]) for s in states.values() if name in s.params)
            for name in getattr(base, "fixed", {})}


def check_stackable(cls: type) -> None:
    """Raise ``NotImplementedError`` for a detector class a stack cannot run."""
    # MAD-GAN's scorer takes a key per batch besides the nets; AnoGAN's search is vmapped here.
    if cls._score_batch is not Detector._score_batch and cls is not AnoGAN:
        raise NotImplementedError(f"{cls.__name__} cannot be stacked yet (its scorer is not a pure score_fn)")


def _detector_class(detector) -> type:
    from gadjax.models import DETECTORS
    if isinstance(detector, str):
        if detector not in DETECTORS:
            raise ValueError(f"unknown detector {detector!r}; known: {sorted(DETECTORS)}")
        return DETECTORS[detector]
    return detector if isinstance(detector, type) else type(detector)


class DetectorStack:
    """M detectors of class ``detector`` (a name, class or unfitted instance, whose config
    is used) that differ only in their seed and their data.

    Args:
      detector, seeds: model i is ``detector`` with ``seed=seeds[i]``.
      config, **hyper: the shared config (as ``Detector``); taken from ``detector`` when
        it is an instance.
      out_dir: checkpoints and metrics per phase (``out_dir/<phase>/``); refitting resumes.
      memory_limit: bytes a step may use per device (None: the device's limit; False: unchecked).
      shard: None, ``"model"`` or ``"batch"``: train over all local devices, splitting the
        model axis or each model's batch (``gadjax.train.stack``); same results.
    """

    def __init__(self, detector, seeds: Sequence[int], config=None, *, out_dir=None, progress: bool = True,
                 log_every: int = 50, checkpoint_every: int = 500, keep_checkpoints: int = 3,
                 memory_limit: int | bool | None = None, shard: str | None = None, **hyper):
        cls = _detector_class(detector)
        if config is None and isinstance(detector, Detector):
            config = detector.config
        check_stackable(cls)
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("seeds must name at least one model")
        self.cls = cls
        # The template holds the shared config, the lone trainers (which the stack vmaps)
        # and, once fitted, the stacked states, so its own scoring_nets() bind every model.
        self.template: Detector = cls(config, parallel=False, progress=False, **hyper)
        self.config = self._uncalibrated(self.template.config)
        self.template.config = self.config
        self.shard = shard
        self.out_dir = None if out_dir is None else check_out_dir(out_dir)
        self.progress, self.memory_limit = progress, memory_limit
        self.run_options = dict(progress=progress, log_every=log_every, checkpoint_every=checkpoint_every,
                                keep_checkpoints=keep_checkpoints)
        self.states_: dict = {}
        self.configs_: list = []  # model i's config: its seed, and its calibration when the class has one
        self.threshold_: np.ndarray | None = None

    def _uncalibrated(self, config):
        """``config`` with the class's calibration fields at their defaults (the shared config)."""
        defaults = self.cls.config_class()
        return config.replace(**{f: getattr(defaults, f) for f in self.cls.CALIBRATION_FIELDS})

    @property
    def members(self) -> int:
        return len(self.seeds)

    # ------------------------------------------------------------------ fitting
    def _each(self, xs, name: str) -> list:
        """One array for all models, or M arrays (sizes may differ)."""
        if isinstance(xs, (list, tuple)):
            if len(xs) != self.members:
                raise ValueError(f"{name}: {len(xs)} arrays for a stack of {self.members} models")
            return list(xs)
        return [xs] * self.members

    def fit(self, xs, x_vals=None, *, input_range=None, gan: "DetectorStack | None" = None) -> "DetectorStack":
        """Train model i on normal ``xs[i]`` (or one array for all); ``threshold_[i]`` is
        the ``threshold_percentile`` of model i's scores of ``x_vals[i]`` (else ``xs[i]``).
        ``gan=``: a fitted stack of GAN detectors (same seeds and GAN settings) whose GANs
        are reused, as ``GANDetector.fit(gan=)`` does for one model."""
        xs = self._each(xs, "xs")
        t = self.template
        t.build(np.shape(xs[0])[1:])
        xs = [t._prepare(x, f"x_train[{i}]", input_range) for i, x in enumerate(xs)]
        normals = xs if x_vals is None else [t._prepare(v, f"x_val[{i}]", input_range)
                                             for i, v in enumerate(self._each(x_vals, "x_vals"))]
        if gan is not None:
            self._check_gan(gan)
        with self._output(xs):
            self._fit(xs, gan)
        details = self._details(normals)  # one vmapped pass: calibration and thresholds
        self.configs_ = [self.config.replace(seed=s, **self.cls.calibration(d)) for s, d in zip(self.seeds, details)]
        self.threshold_ = np.array([threshold_from_normal(self.cls.rescore(d, c), self.config.threshold_percentile)
                                    for d, c in zip(details, self.configs_)])
        return self

    @contextlib.contextmanager
    def _output(self, xs):
        if self.out_dir is None:
            yield
            return
        cfg = self.config
        record = {"model": self.cls.name, "stack_seeds": self.seeds, "data": [fingerprint(x) for x in xs],
                  "config": {k: v for k, v in cfg.to_dict().items() if k in cfg.training_fields() and k != "seed"}}
        with RunLock(self.out_dir):
            check_record(self.out_dir, record)
            yield

    def _check_gan(self, gan: "DetectorStack") -> None:
        if not isinstance(gan, DetectorStack) or "gan" not in gan.states_ or not issubclass(self.cls, GANDetector):
            raise TypeError("gan= takes a fitted stack of AnoGAN / FAnoGAN detectors, for a stack of those")
        if gan.seeds != self.seeds:
            raise ValueError(f"gan= was trained with seeds {gan.seeds}, this stack has {self.seeds}")
        self.template._check_fit_args(gan=gan.template)  # the same GAN settings and sample shape

    def _fit(self, xs: list, gan: "DetectorStack | None" = None) -> None:
        t = self.template
        for phase in t.phases:
            if phase == "gan" and gan is not None:
                self.states_["gan"] = gan.states_["gan"]
                t.trainers_["gan"], t.states_["gan"] = gan.template.trainer("gan"), take_model(gan.states_["gan"], 0)
                continue
            base = t.trainer(phase)
            # Fixed nets of a later phase (f-AnoGAN's GAN under its encoder) come from each
            # model's own earlier phase, not from the one model the lone trainer was built on.
            trainer = StackTrainer(base, self.members, stacked_fixed(base, self.states_), shard=self.shard)
            steps = t._steps(phase) if isinstance(t, GANDetector) else None
            run = t.run_config(phase, steps)
            run = dataclasses.replace(run, **self.run_options, label=phase,
                                      out_dir=None if self.out_dir is None else str(self.out_dir / phase))
            self.states_[phase], _ = train_stack_loop(trainer, xs, self.seeds, run, self.memory_limit)
            # The lone trainer of the next phase may read this phase's state (one model's suffices).
            t.states_[phase] = take_model(self.states_[phase], 0)
        self._attach(self.states_)

    def _attach(self, states: dict) -> None:
        """Give the template the stacked states.  Its lone trainers are built first on one
        model's state (f-AnoGAN's encoder trainer reads a GAN state when it is made); they
        only select and bind, so its ``scoring_nets()`` then bind every model at once."""
        t = self.template
        for phase in t.phases:
            t.states_[phase] = take_model(states[phase], 0)
            t.trainer(phase)
        self.states_, t.states_ = dict(states), dict(states)

    # ------------------------------------------------------------------ scoring
    def _check_fitted(self) -> None:
        if not self.states_:
            raise RuntimeError("DetectorStack is not fitted yet: call fit(xs) first")

    def scoring_nets(self) -> dict:
        """The scorer's networks bound to the weights of every model (leading model axis)."""
        self._check_fitted()
        return self.template.scoring_nets()

    def _score_block(self, nets, x, offset: int, shared: bool) -> dict:
        if self.cls is AnoGAN:
            keys = jnp.stack([jax.random.PRNGKey(s + 7) for s in self.seeds])  # a lone AnoGAN's scoring key
            z_dim = self.template.gan_config.nets.z_dim
            return anogan_stack_batch(nets, x, keys, offset, self.config, shared, z_dim)
        return stack_score_batch(self.cls.score_fn, nets, x, self.config, shared)

    def _details(self, xs: list | np.ndarray) -> dict | list:
        shared = not isinstance(xs, list)
        lengths = [len(xs)] * self.members if shared else [len(x) for x in xs]
        n = max(lengths)
        if not shared:  # pad every model's data to the longest (edge rows repeated, trimmed after)
            xs = np.stack([np.concatenate([x, np.repeat(x[-1:], n - len(x), 0)]) for x in xs])
        axis = 0 if shared else 1
        bs, nets, out = self.config.score_batch_size, self.scoring_nets(), {}
        for start in range(0, n, bs):
            chunk = np.take(xs, np.arange(start, min(start + bs, n)), axis=axis)
            size = chunk.shape[axis]
            if size < bs:  # one shape for every batch: one compile
                chunk = np.concatenate([chunk, np.repeat(np.take(chunk, [-1], axis=axis), bs - size, axis)], axis)
            for k, v in self._score_block(nets, jnp.asarray(chunk), start, shared).items():
                out.setdefault(k, []).append(np.asarray(v)[:, :size])
        out = {k: np.concatenate(v, axis=1) for k, v in out.items()}
        if shared:
            return out
        return [{k: v[i, :lengths[i]] for k, v in out.items()} for i in range(self.members)]

    def score_details(self, x, *, input_range=None):
        """One array: ``{'score': (M, N), ...}`` for every model on the same samples.  A list
        of M arrays (sizes may differ): model i scores ``x[i]``; a list of M dicts."""
        self._check_fitted()
        t = self.template
        if isinstance(x, (list, tuple)):
            out = self._details([t._prepare(v, f"x[{i}]", input_range) for i, v in enumerate(self._each(list(x), "x"))])
            return [dict(d, score=self.cls.rescore(d, c)) for d, c in zip(out, self.configs_)]
        out = self._details(t._prepare(x, "x", input_range))
        if self.cls.CALIBRATION_FIELDS:
            models = [{k: v[i] for k, v in out.items()} for i in range(self.members)]
            out["score"] = np.stack([self.cls.rescore(d, c) for d, c in zip(models, self.configs_)])
        return out

    def score_samples(self, x, *, input_range=None):
        """(M, N) scores of one array, or a list of M (N_i,) scores of M arrays."""
        d = self.score_details(x, input_range=input_range)
        return [e["score"] for e in d] if isinstance(d, list) else d["score"]

    def predict(self, x, *, input_range=None) -> np.ndarray:
        """(M, N): 1 where model i's score is above its own ``threshold_[i]``."""
        if self.threshold_ is None:
            raise RuntimeError("threshold_ is unset: call fit(xs) first")
        scores = self.score_samples(x, input_range=input_range)
        return (np.asarray(scores) > self.threshold_[:, None]).astype(np.int64)

    # ------------------------------------------------------------------ export
    def detector(self, i: int) -> Detector:
        """Model ``i`` as an ordinary fitted detector (``save`` / ``gadjax.load`` as usual)."""
        self._check_fitted()
        det = self.cls(self.configs_[i], progress=False)
        det.build(self.template.image_shape_)
        det.states_ = {phase: take_model(s, i) for phase, s in self.states_.items()}
        det.threshold_ = None if self.threshold_ is None else float(self.threshold_[i])
        return det

    def save(self, directory, overwrite: bool = False) -> list[pathlib.Path]:
        """Every model saved as an ordinary detector under ``directory/model_<i>`` (each
        one ``gadjax.load``-able; ``DetectorStack.load(directory)`` restacks them)."""
        root = pathlib.Path(directory)
        return [self.detector(i).save(root / f"model_{i}", overwrite=overwrite) for i in range(self.members)]

    @classmethod
    def load(cls, directory) -> "DetectorStack":
        """The stack ``save`` wrote to ``directory``."""
        from gadjax.models.persist import load
        paths = sorted(pathlib.Path(directory).glob("model_*"), key=lambda p: int(p.name.split("_")[1]))
        if not paths:
            raise FileNotFoundError(f"{directory} holds no saved stack (model_<i> directories)")
        return cls.from_detectors([load(p) for p in paths])

    @classmethod
    def from_detectors(cls, detectors: Sequence[Detector]) -> "DetectorStack":
        """Fitted detectors of one class and config, seeds aside (trained alone or loaded),
        stacked so that they are scored as one program."""
        dets = list(detectors)
        first = dets[0] if dets else None
        if first is None or any(type(d) is not type(first) for d in dets):
            raise TypeError("from_detectors takes one or more fitted detectors of one class")
        stack = cls(first, [d.config.seed for d in dets], progress=False)
        for d in dets:
            d._check_fitted()
            if (stack._uncalibrated(d.config).replace(seed=first.config.seed) != stack.config
                    or d.image_shape_ != first.image_shape_):
                raise ValueError(f"{type(first).__name__}s with other settings than their seeds cannot be stacked")
        stack.configs_ = [d.config for d in dets]
        stack.template.build(first.image_shape_)
        stack._attach({phase: jax.tree.map(lambda *a: jnp.stack(a), *[d.states_[phase] for d in dets])
                       for phase in first.states_})
        if all(d.threshold_ is not None for d in dets):
            stack.threshold_ = np.array([d.threshold_ for d in dets])
        return stack


def train_stack(detector, xs, seeds: Sequence[int], x_vals=None, *, input_range=None, **options) -> DetectorStack:
    """Fit a ``DetectorStack``: model i = ``detector`` with seed ``seeds[i]`` on ``xs[i]``."""
    return DetectorStack(detector, seeds, **options).fit(xs, x_vals, input_range=input_range)
