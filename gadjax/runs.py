"""Run directories: train a GAN or detector from a flat config, evaluate it later.

A run directory holds ``config.json`` (every option), ``gan/`` (GAN checkpoints and
metrics), ``encoder/`` for encoder-based detectors, ``samples/`` and, after
``evaluate_run``, ``evaluation.json`` with ROC / histogram / reconstruction PNGs.
Re-running ``train_run`` on the same directory resumes from the last checkpoints.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import pathlib
import sys

import jax
import numpy as np

from gadjax import data
from gadjax.metrics import evaluate, roc_auc
from gadjax.losses import GAN_LOSSES
from gadjax.models import DETECTORS, GANDetector
from gadjax.nets import NetSpec
from gadjax.scores import anomaly_map
from gadjax.train import Checkpointer, GANConfig, GANTrainer, RunConfig, train_loop
from gadjax.train.encoder import EncoderConfig
from gadjax.viz import save_grid, save_histogram, save_roc, save_triplets

INDUSTRIAL = ("mvtec_transistor", "magnetic_tile")
# Options that may change between a run and its resumption without changing the model.
VOLATILE = ("steps", "log_every", "sample_every", "checkpoint_every", "progress")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run; mirrors the ``gadjax train`` options."""

    model: str = "wgan-gp"  # a GAN objective, or a detector name (anogan, fanogan)
    gan_loss: str = "wgan-gp"  # the GAN objective of a detector
    dataset: str = "mnist"
    data_dir: str | None = None
    normal_class: int | None = 0
    protocol: str = "one-normal"
    contamination: float = 0.0
    val_fraction: float = 0.1
    net: str | None = None  # None: "thesis" for GAN-based models on 28x28x1, else "dcgan"
    z_dim: int | None = None
    width: int = 64
    critic_norm: str | None = None
    steps: int = 2000
    encoder_steps: int | None = None
    encoder_strategy: str = "izif"
    kappa: float = 1.0
    search_steps: int = 500
    options: dict = dataclasses.field(default_factory=dict)  # model-specific keyword arguments
    base: str = "joint_encoder"  # the member model of --model ensemble
    members: int = 3
    batch_size: int = 64
    lr: float | None = None
    n_critic: int | None = None
    seed: int = 0
    log_every: int = 50
    sample_every: int = 250
    checkpoint_every: int = 250
    data_parallel: bool = False
    progress: bool = True

    @property
    def objective(self) -> str:
        return self.gan_loss if self.model in DETECTORS else self.model

    def split(self) -> data.OneClassSplit:
        dataset = data.load(self.dataset, self.data_dir)
        protocol = "industrial" if self.dataset in INDUSTRIAL else self.protocol
        cls = None if self.dataset in INDUSTRIAL else self.normal_class
        return data.image_split(dataset, cls, protocol, self.val_fraction, self.contamination, self.seed)

    def paper_nets(self) -> NetSpec | None:
        """The detector's own default ``NetSpec`` (its paper's latent size and norms, e.g.
        EGBAD's z_dim 200 with BatchNorm), or None for GAN-based detectors and plain GANs."""
        name = self.base if self.model == "ensemble" else self.model
        param = inspect.signature(DETECTORS[name].__init__).parameters.get("nets") if name in DETECTORS else None
        return param.default if param is not None and isinstance(param.default, NetSpec) else None

    def gan_config(self, image_shape) -> GANConfig:
        family = self.net or self.default_net(tuple(image_shape))
        paper = self.paper_nets()
        # Unset options follow the detector's paper nets, else the GAN objective's practice
        # (BatchNorm critics for DCGAN / LSGAN, none for WGAN-GP's gradient penalty).
        critic_norm = self.critic_norm or (paper.critic_norm if paper else
                                           "batch" if self.objective in ("dcgan", "lsgan") else "layer")
        z_dim = self.z_dim or (paper.z_dim if paper and family == paper.family else
                               128 if family == "thesis" else 100)
        nets = NetSpec(family, tuple(image_shape), z_dim, self.width, critic_norm=critic_norm)
        return GANConfig(nets, self.objective, learning_rate=self.lr, n_critic=self.n_critic)

    def default_net(self, image_shape: tuple) -> str:
        """The thesis nets for GAN-based models on 28x28 gray images; DCGAN nets otherwise
        (other sizes, and the encoder-decoder models, which build on the DCGAN blocks)."""
        gan_based = self.model in GAN_LOSSES or self.model in ("anogan", "fanogan", "joint_encoder") or (
            self.model == "ensemble" and self.base == "joint_encoder")
        return "thesis" if gan_based and image_shape == (28, 28, 1) else "dcgan"

    def run_config(self, out: pathlib.Path) -> RunConfig:
        return RunConfig(steps=self.steps, batch_size=self.batch_size, seed=self.seed, out_dir=str(out),
                         log_every=self.log_every, sample_every=self.sample_every,
                         checkpoint_every=self.checkpoint_every, progress=self.progress)

    def detector(self, gan: GANConfig, out: pathlib.Path):
        """The unfitted detector; GAN-based ones write under ``out/gan``, others ``out/model``."""
        if self.model not in DETECTORS:
            raise ValueError(f"model {self.model!r} is a GAN objective, not a detector; "
                             f"detectors: {sorted(DETECTORS)}")
        name = self.base if self.model == "ensemble" else self.model
        if name not in DETECTORS or name == "ensemble":
            raise ValueError(f"unknown ensemble base {name!r}; choose a detector from {sorted(DETECTORS)}")
        cls = DETECTORS[name]
        kwargs = {"parallel": self.data_parallel, **self.options}
        if name == "fanogan":
            kwargs.update(encoder=EncoderConfig(self.encoder_strategy, self.kappa), encoder_steps=self.encoder_steps)
        elif name == "anogan":
            kwargs.update(search_steps=self.search_steps)
        run = self.run_config(out if issubclass(cls, GANDetector) else out / "model")
        detector = cls(gan, run, **route_options(cls, kwargs))
        if self.model == "ensemble":
            return DETECTORS["ensemble"](detector, members=self.members, parallel=self.data_parallel)
        return detector


def route_options(cls, options: dict) -> dict:
    """Fold flat options into the detector's config dataclasses: an option named like a
    field of a keyword argument whose default is a dataclass (``config=GANomalyConfig()``,
    ``encoder=EncoderConfig()``, ...) replaces that field; the rest pass through.
    Unknown names raise, listing what the detector accepts."""
    params = inspect.signature(cls.__init__).parameters
    kwargs, configs = dict(options), {}
    # Skip self and the two positional arguments (the net/GAN config and the RunConfig),
    # which the run spec sets itself: e.g. "width" must not be routed into the NetSpec.
    for pname, param in list(params.items())[3:]:
        default = param.default
        if dataclasses.is_dataclass(default) and not isinstance(default, type):
            fields = {f.name for f in dataclasses.fields(default)}
            picked = {k: kwargs.pop(k) for k in list(kwargs) if k in fields and k not in params}
            if picked:
                base = kwargs.pop(pname, default)
                configs[pname] = dataclasses.replace(base, **picked)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    known = set(params) | ({"parallel", "threshold_percentile", "score_batch_size"} if takes_any else set())
    unknown = sorted(set(kwargs) - known)
    if unknown:
        accepted = sorted(set(params) - {"self", "kwargs"} | {f.name for p in params.values()
                          if dataclasses.is_dataclass(p.default) for f in dataclasses.fields(p.default)})
        raise ValueError(f"{cls.__name__} has no option(s) {unknown}; it accepts {accepted}")
    return {**kwargs, **configs}


def save_spec(out: pathlib.Path, spec: RunSpec) -> None:
    """Write config.json, refusing to reuse a directory whose run differs."""
    path = out / "config.json"
    new = dataclasses.asdict(spec)
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), v) for k, v in new.items() if k not in VOLATILE and old.get(k) != v}
        if changed:
            raise ValueError(f"{out} holds a run with a different configuration (saved vs now: {changed}); "
                             "use another output directory")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=2, sort_keys=True))


def load_spec(out: pathlib.Path) -> RunSpec:
    path = pathlib.Path(out) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {out} a gadjax run directory (made by gadjax train)?")
    return RunSpec(**json.loads(path.read_text()))


def _scale(spec_range, x):
    return data.to_float(x, "sigmoid" if spec_range[0] == 0 else "tanh")


def train_run(spec: RunSpec, out: str | pathlib.Path, log=None):
    """Train (or resume) the GAN, then the detector's own parts. Returns the detector or
    ``(trainer, state)`` for a plain GAN."""
    out = pathlib.Path(out)
    save_spec(out, spec)
    split = spec.split()
    gan = spec.gan_config(split.x_train.shape[1:])
    print(f"gadjax: {spec.model} on {spec.dataset} ({split.protocol}: normal = {split.normal}; "
          f"{len(split.x_train)} training images), {jax.device_count()} device(s) [{jax.default_backend()}]",
          file=log or sys.stderr)
    detector = spec.detector(gan, out) if spec.model not in GAN_LOSSES else None
    if detector is not None and not isinstance(detector, GANDetector):
        return detector.fit(split.x_train, split.x_val)  # trained end to end under out/model
    trainer = GANTrainer(gan, parallel=spec.data_parallel)
    z_fixed = trainer.latent(jax.random.PRNGKey(spec.seed + 1), 64)

    def on_sample(step, state):
        images = np.asarray(trainer.generate(state, z_fixed))
        if jax.process_index() == 0:
            save_grid(out / "samples" / f"step_{step:06d}.png", images, value_range=gan.nets.output_range)

    gan_state, _ = train_loop(trainer, _scale(gan.nets.output_range, split.x_train),
                              spec.run_config(out / "gan"), on_sample=on_sample)
    if detector is None:
        return trainer, gan_state
    return detector.fit(split.x_train, split.x_val, gan=(trainer, gan_state))


# RunSpec fields that shape a detector's own parts (or only logging), not the GAN it is built on.
DETECTOR_ONLY = ("model", "encoder_steps", "encoder_strategy", "kappa", "search_steps", "options", "base",
                 "members") + tuple(k for k in VOLATILE if k != "steps")


def _gan_based(model: str) -> bool:
    """True for detectors that score a separately trained GAN (AnoGAN, f-AnoGAN): their
    run directory holds ``gan/``; the others train end to end under ``model/``."""
    return model in DETECTORS and issubclass(DETECTORS[model], GANDetector)


def reuse_gan(src: str | pathlib.Path, out: str | pathlib.Path, spec: RunSpec) -> bool:
    """Start the GAN-based detector run ``out`` from run ``src``'s finished GAN.

    AnoGAN and f-AnoGAN both score a separately trained WGAN; when ``src`` trained that
    GAN with the same data, nets, objective, seed and steps, training it again would give
    the same weights, so its ``gan/`` directory is copied instead (the fair way to time or
    compare the scorers on one GAN).  Returns True when copied; False (nothing done) when
    ``out`` already has a GAN or ``src`` is no match.
    """
    import shutil

    src, out = pathlib.Path(src), pathlib.Path(out)
    if (out / "gan").exists() or not (src / "config.json").exists() or not _gan_based(spec.model):
        return False
    theirs, ours = dataclasses.asdict(load_spec(src)), dataclasses.asdict(spec)
    if not _gan_based(theirs["model"]):
        return False
    if any(theirs[k] != ours[k] for k in ours if k not in DETECTOR_ONLY):
        return False
    checkpoints = src / "gan" / "checkpoints"
    if not checkpoints.is_dir() or Checkpointer(checkpoints).latest_step() != spec.steps:
        return False
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".gan_copy"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src / "gan", tmp)
    tmp.rename(out / "gan")  # atomic: a killed copy leaves only .gan_copy, redone next time
    return True


def evaluate_run(out: str | pathlib.Path, limit: int | None = None, sigma: float = 0.0, detector=None) -> dict:
    """Score the test split of a finished detector run; threshold from normal val data.

    ``limit`` scores a seeded random subset of the test set (for slow AnoGAN searches).
    ``detector``: the fitted detector ``train_run`` just returned for this directory; it
    saves restoring it (and re-scoring the validation data for its threshold) a second time.
    Writes ``evaluation.json``, ``roc.png``, ``histogram.png`` and ``reconstructions.png``.
    """
    out = pathlib.Path(out)
    spec = dataclasses.replace(load_spec(out), progress=False)
    if spec.model in GAN_LOSSES:
        raise ValueError(f"{out} holds a plain GAN ({spec.model}); evaluate needs a detector run "
                         f"(--model one of {sorted(DETECTORS)})")
    member = spec.base if spec.model == "ensemble" else spec.model
    ckpt_dir = out / ("gan" if _gan_based(member) else "model") / "checkpoints"
    done = Checkpointer(ckpt_dir).latest_step()
    if done is None or done < spec.steps:
        raise RuntimeError(f"{out} is not fully trained (checkpoint step {done} of {spec.steps} in {ckpt_dir}); "
                           "run gadjax train with the same options first")
    if detector is None:
        detector = train_run(spec, out)  # restores every checkpoint; computes threshold_ on x_val
    split = spec.split()
    idx = np.arange(len(split.x_test))
    if limit is not None and limit < len(idx):
        idx = np.sort(np.random.default_rng(spec.seed).choice(idx, limit, replace=False))
    x_test, y_test = split.x_test[idx], split.y_test[idx]
    masks = None if split.masks_test is None else split.masks_test[idx]
    result, outputs = evaluate_detector(detector, x_test, y_test, masks=masks, sigma=sigma)
    result.update(model=spec.model, dataset=spec.dataset, protocol=split.protocol, normal=split.normal,
                  n_test=int(len(idx)), n_anomalous=int(y_test.sum()), seed=spec.seed)
    scores = outputs["score"]
    save_roc(out / "roc.png", y_test, scores)
    save_histogram(out / "histogram.png", scores[y_test == 0], scores[y_test == 1], detector.threshold_)
    order = np.r_[np.flatnonzero(y_test == 0)[:4], np.flatnonzero(y_test == 1)[:4]]
    shown, rec = outputs["images"][order], outputs["reconstruction"][order]
    save_triplets(out / "reconstructions.png", shown, rec, np.asarray(anomaly_map(shown, rec)),
                  n=len(order), value_range=detector.value_range, masks=None if masks is None else masks[order])
    (out / "evaluation.json").write_text(json.dumps(result, indent=2))
    np.save(out / "test_scores.npy", scores)
    return result


def evaluate_detector(detector, x, y, masks=None, sigma: float = 0.0) -> tuple[dict, dict]:
    """Score test images ``x`` (N, H, W, C) with labels ``y`` (N,) (1 = anomalous) at the
    ``threshold_`` the detector fixed from normal data at ``fit``; one scorer pass.

    Returns ``(metrics, outputs)``: ``gadjax.metrics.evaluate``'s dict (plus pixel AUROC
    when ``masks`` (N, H, W) are given, and ``auroc_<term>`` for each per-image score term
    the detector reports beside ``score``, e.g. f-AnoGAN's ``image`` and ``feature``
    residuals) and the arrays behind it: ``score`` (N,),
    ``reconstruction``, ``images`` (``x`` in the model's float range) and ``maps``
    (N, H, W) ``|x - reconstruction|`` smoothed with ``sigma``, or None without masks.
    """
    details = detector.score_details(x)
    images = _scale(detector.value_range, x) if np.asarray(x).dtype == np.uint8 else np.asarray(x, np.float32)
    maps = None if masks is None else np.asarray(anomaly_map(images, details["reconstruction"], sigma=sigma))
    metrics = evaluate(y, details["score"], detector.threshold_, masks=masks, maps=maps)
    n = len(details["score"])
    metrics.update({f"auroc_{k}": roc_auc(y, v) for k, v in details.items()
                    if k != "score" and np.shape(v) == (n,) and np.isfinite(v).all()})
    return metrics, dict(details, images=images, maps=maps)
