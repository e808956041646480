"""Run directories: train a detector on a shipped data set, evaluate or score it later.

A run directory (``gadjax train --out DIR``) holds ``config.json`` (the model, its full
config, the data and output settings), the detector's own output (``fit.json``, one
``checkpoints/`` + ``metrics.jsonl`` folder per training phase, ``samples/``) and, once
training ends, the saved detector in ``detector/`` that ``gadjax.load``, ``evaluate``
and ``score`` read.  Everything is validated before anything is written; re-running
``train_run`` with the same settings resumes from the last checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import sys

import jax
import numpy as np

from gadjax import data, timeseries
from gadjax.metrics import evaluate, roc_auc
from gadjax.models import DETECTORS, GANDetector, load
from gadjax.models.config import Config, json_ready, option
from gadjax.optim import learning_rates
from gadjax.scores import anomaly_map
from gadjax.train.rundir import RunLock, check_out_dir, check_record, differences, write_json
from gadjax.train.runlog import progress_callback
from gadjax.viz import save_histogram, save_roc, save_triplets

TABULAR = "tabular"


@dataclasses.dataclass(frozen=True)
class DataSpec(Config):
    """Which data a run trains and tests on, and how it is split (seeded by the
    detector's ``seed``).

    ``protocol`` None is the data set's own: 'one-normal' for class-labelled images,
    'industrial' for MVTec / Magnetic Tile, 'tabular' for KDDCup99 and the ODDS sets
    (EGBAD/ALAD: half the rows for testing, anomalies dropped from training, features
    scaled with training statistics; MAD-GAN reads the rows in order as a series).
    """

    dataset: str = option("mnist", choices=tuple(sorted(data.DATASETS)))
    data_dir: str | None = None
    normal_class: int | None = option(None, ge=0, doc="class the protocol is built around (default 0)")
    protocol: str | None = option(None, choices=tuple(data.PROTOCOLS) + (TABULAR,))
    contamination: float = option(0.0, ge=0, lt=1)
    val_fraction: float = option(0.1, gt=0, lt=1)

    @property
    def kind(self) -> str:
        return "images" if self.dataset in data.IMAGE_DATASETS else TABULAR

    def check(self) -> None:
        from gadjax.models.config import ConfigError
        if self.kind == TABULAR:
            for name, bad in (("normal_class", self.normal_class is not None),
                              ("protocol", self.protocol not in (None, TABULAR)),
                              ("contamination", self.contamination != 0)):
                if bad:
                    raise ConfigError(name, f"{name} does not apply to the tabular set {self.dataset} (its protocol "
                                            "is fixed: anomalies are labelled, half the rows are for testing)")
        elif self.protocol == TABULAR:
            raise ConfigError("protocol", f"protocol 'tabular' is for the tabular sets, not {self.dataset}")


@dataclasses.dataclass(frozen=True)
class Split:
    """Arrays of one run: samples (images, rows or windows) as the detector takes them."""

    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    masks_test: np.ndarray | None
    protocol: str
    normal: str


def load_split(spec: DataSpec, seed: int, windows: tuple[int, int] | None = None) -> Split:
    """The run's split; ``windows=(window, stride)`` cuts tabular rows into windows of a
    series (MAD-GAN), scaled to [-1, 1] with training statistics."""
    ds = data.load(spec.dataset, spec.data_dir)
    if spec.kind == "images":
        if windows is not None:
            raise ValueError(f"this detector takes windows of a series; {spec.dataset} is an image set "
                             f"(use kddcup99 or an odds_* set)")
        industrial = spec.dataset in ("mvtec_transistor", "magnetic_tile")
        if industrial and spec.normal_class is not None:
            raise ValueError(f"{spec.dataset} has a fixed good/defective split (protocol 'industrial'); "
                             "it takes no --normal-class")
        cls = None if industrial else (spec.normal_class if spec.normal_class is not None else 0)
        n_classes = len(ds.class_names) if ds.class_names else int(np.max(ds.y_train)) + 1
        if cls is not None and cls >= n_classes:
            raise ValueError(f"normal_class {cls} (--normal-class) is not a class of {spec.dataset} "
                             f"(classes 0..{n_classes - 1})")
        protocol = spec.protocol or ("industrial" if industrial else "one-normal")
        s = data.image_split(ds, cls, protocol, spec.val_fraction, spec.contamination, seed)
        return Split(s.x_train, s.x_val, s.x_test, s.y_test, s.masks_test, s.protocol, s.normal)
    scaling = "minmax" if windows else "zscore"
    s = data.tabular_split(ds.x, np.asarray(ds.y), test_fraction=0.5, val_fraction=spec.val_fraction,
                           scaling=scaling, seed=seed)
    normal = f"{spec.dataset}: rows with label 0"
    if windows is None:
        return Split(s.x_train, s.x_val, s.x_test, s.y_test, None, TABULAR, normal)
    window, stride = windows
    cut = lambda a: timeseries.sliding_windows(2.0 * a - 1.0, window, stride)  # noqa: E731  [0, 1] -> [-1, 1]
    for name, a in (("training", s.x_train), ("validation", s.x_val)):
        if len(a) < window:
            raise ValueError(f"{spec.dataset} has {len(a)} {name} rows, fewer than the window {window}")
    return Split(cut(s.x_train), cut(s.x_val), cut(s.x_test), timeseries.window_labels(s.y_test, window, stride),
                 None, TABULAR, normal + f", windows of {window} rows")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run: the detector (its name and full config), the data,
    and the output settings; ``gadjax train``'s options map onto it."""

    model: str
    config: Config
    data: DataSpec = DataSpec()
    log_every: int = 50
    sample_every: int = 250
    checkpoint_every: int = 250
    progress: bool = True
    data_parallel: bool = False

    def detector(self, out: pathlib.Path | None = None):
        return DETECTORS[self.model](self.config, out_dir=out, parallel=self.data_parallel, progress=self.progress,
                                     log_every=self.log_every, checkpoint_every=self.checkpoint_every,
                                     sample_every=self.sample_every)

    def windows(self) -> tuple[int, int] | None:
        cfg = self.config
        return (cfg.window, cfg.stride) if hasattr(cfg, "window") else None

    def split(self) -> Split:
        return load_split(self.data, self.config.seed, self.windows())

    def to_dict(self) -> dict:
        from gadjax import __version__
        run = {k: getattr(self, k) for k in ("log_every", "sample_every", "checkpoint_every", "progress",
                                              "data_parallel")}
        return json_ready({"gadjax_version": __version__, "model": self.model, "config": self.config.to_dict(),
                           "data": self.data.to_dict(), "run": run})

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        unknown = sorted(set(d) - {"gadjax_version", "model", "config", "data", "run"})
        if unknown:
            raise ValueError(f"config.json has unknown key(s) {unknown}")
        model = d.get("model")
        if model not in DETECTORS:
            raise ValueError(f"config.json names an unknown model {model!r}; known: {sorted(DETECTORS)}")
        config = DETECTORS[model].config_class.from_dict(d.get("config", {}))
        return cls(model, config, DataSpec.from_dict(d.get("data", {})), **d.get("run", {}))


def load_spec(out) -> RunSpec:
    path = pathlib.Path(out) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {out} a gadjax run directory (made by gadjax train)?")
    try:
        return RunSpec.from_dict(json.loads(path.read_text()))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def prepare_run(spec: RunSpec, out):
    """Everything ``train_run`` checks before writing: the data, the detector's nets for
    it and the input range.  Returns ``(detector, split, x_train as the model takes it)``."""
    out = check_out_dir(out)
    split = spec.split()
    detector = spec.detector(out)
    detector.build(split.x_train.shape[1:])
    x_train = detector._prepare(split.x_train, "x_train")
    detector._prepare(split.x_val, "x_val")
    return detector, split, x_train


def dry_run(spec: RunSpec, out) -> dict:
    """The resolved run, as ``gadjax train --dry-run`` prints it; writes nothing."""
    detector, split, _ = prepare_run(spec, out)
    rates = {}
    for phase in detector.phases:
        state = detector.trainer(phase).init(jax.random.PRNGKey(spec.config.seed))
        detector.states_[phase] = state  # later phases (an encoder) are built on earlier ones
        rates.update({f"{phase}/{k}": v for k, v in learning_rates(state.opt).items()})
    spec_dict = spec.to_dict()
    return {**spec_dict, "learning_rates": rates, "nets": json_ready(dataclasses.asdict(detector.spec))
            if hasattr(detector, "spec") else json_ready(dataclasses.asdict(detector.gan_config.nets)),
            "split": {"protocol": split.protocol, "normal": split.normal, "train": len(split.x_train),
                      "val": len(split.x_val), "test": len(split.x_test), "sample_shape": list(split.x_train.shape[1:])}}


def train_run(spec: RunSpec, out, log=None):
    """Validate, write ``config.json``, then train (or resume) and save the detector."""
    detector, split, x_train = prepare_run(spec, out)
    out = pathlib.Path(out)
    print(f"gadjax: {spec.model} on {spec.data.dataset} ({split.protocol}: normal = {split.normal}; "
          f"{len(split.x_train)} training samples), {jax.device_count()} device(s) [{jax.default_backend()}]",
          file=log or sys.stderr)
    if jax.process_index() != 0:
        return detector.fit(split.x_train, split.x_val)
    with RunLock(out):
        if (out / "config.json").exists():  # name what differs in the user's terms first
            old = load_spec(out)
            diff = differences({"model": old.model, "data": old.data.to_dict()},
                               {"model": spec.model, "data": spec.data.to_dict()})
            if diff:
                detail = "; ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff)
                raise ValueError(f"{out} holds another run ({detail}); use another --out")
        check_record(out, detector.fit_record(x_train))  # another model or other data here: refused
        write_json(out / "config.json", spec.to_dict())
        return detector.fit(split.x_train, split.x_val)


def reuse_gan(src, out, spec: RunSpec) -> bool:
    """Start GAN-based run ``out`` (AnoGAN, f-AnoGAN) from run ``src``'s finished GAN.

    When ``src`` trained its GAN with the same data and GAN settings, training it again
    would give the same weights, so its ``gan/`` directory is copied instead (the fair
    way to compare scorers on one GAN).  Returns True when copied; False (nothing done)
    when ``out`` already has a GAN or ``src`` is no match.
    """
    src, out = pathlib.Path(src), pathlib.Path(out)
    cls = DETECTORS.get(spec.model)
    if (out / "gan").exists() or not (src / "config.json").exists() or not issubclass(cls, GANDetector):
        return False
    theirs = load_spec(src)
    if not issubclass(DETECTORS[theirs.model], GANDetector) or theirs.data != spec.data:
        return False
    a, b = theirs.config.to_dict(), spec.config.to_dict()
    if any(a.get(k) != b.get(k) for k in GANDetector.GAN_FIELDS):
        return False
    return copy_finished_gan(src / "gan", out / "gan", spec.config.steps)


def copy_finished_gan(src_gan, target, steps: int) -> bool:
    """Copy GAN phase directory ``src_gan`` to ``target`` when its last checkpoint is at
    ``steps`` (a finished GAN); returns whether it did."""
    from gadjax.train import Checkpointer
    src_gan, target = pathlib.Path(src_gan), pathlib.Path(target)
    checkpoints = src_gan / "checkpoints"
    if not checkpoints.is_dir() or Checkpointer(checkpoints).latest_step() != steps:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / ".gan_copy"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src_gan, tmp)
    tmp.rename(target)  # atomic: a killed copy leaves only .gan_copy, redone next time
    return True


def test_subset(spec: RunSpec, split: Split, limit: int | None = None):
    """``(x_test, y_test, masks_test, idx)``: the run's test set, or the seeded random subset
    of ``limit`` samples ``evaluate_run`` scores (the same for every run of a seed)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    idx = np.arange(len(split.x_test))
    if limit is not None and limit < len(idx):
        idx = np.sort(np.random.default_rng(spec.config.seed).choice(idx, limit, replace=False))
    masks = None if split.masks_test is None else split.masks_test[idx]
    return split.x_test[idx], split.y_test[idx], masks, idx


def evaluate_run(out, limit: int | None = None, sigma: float = 0.0, detector=None, progress: bool = True,
                 details: dict | None = None) -> dict:
    """Score the test split of a finished run with its saved detector (no training).

    ``limit`` scores a seeded random subset of the test set (for slow AnoGAN searches).
    ``details``: the detector's ``score_details`` of that test set when already computed
    (a stack scores all its models in one pass).  Writes ``evaluation.json``,
    ``test_scores.npy``, ``roc.png``, ``histogram.png`` and, for images, ``reconstructions.png``.
    """
    out = pathlib.Path(out)
    spec = load_spec(out)
    split = spec.split()
    x_test, y_test, masks, idx = test_subset(spec, split, limit)
    detector = detector or load(out)
    result, outputs = evaluate_detector(detector, x_test, y_test, masks=masks, sigma=sigma, details=details,
                                        progress=progress_callback(len(idx), "test", enabled=progress and spec.progress))
    result.update(model=spec.model, dataset=spec.data.dataset, protocol=split.protocol, normal=split.normal,
                  n_test=int(len(idx)), n_anomalous=int(y_test.sum()), seed=spec.config.seed,
                  steps=spec.config.steps)
    scores = outputs["score"]
    save_roc(out / "roc.png", y_test, scores, threshold=detector.threshold_)
    save_histogram(out / "histogram.png", scores[y_test == 0], scores[y_test == 1], detector.threshold_)
    if x_test.ndim == 4 and "reconstruction" in outputs:
        order = np.r_[np.flatnonzero(y_test == 0)[:4], np.flatnonzero(y_test == 1)[:4]]
        shown, rec = outputs["images"][order], outputs["reconstruction"][order]
        # Each row names its true class and score, so a reader can match a map to the verdict.
        labels = [f"{'anomalous' if y_test[i] else 'normal'}\nscore {float(scores[i]):.4g}" for i in order]
        save_triplets(out / "reconstructions.png", shown, rec, np.asarray(anomaly_map(shown, rec)),
                      n=len(order), value_range=detector.value_range, masks=None if masks is None else masks[order],
                      row_labels=labels)
    write_json(out / "evaluation.json", result)
    np.save(out / "test_scores.npy", scores)
    return result


def evaluate_detector(detector, x, y, masks=None, sigma: float = 0.0, progress=None,
                      details: dict | None = None) -> tuple[dict, dict]:
    """Score test samples ``x`` with labels ``y`` (N,) (1 = anomalous) at the
    ``threshold_`` the detector fixed from normal data at ``fit``; one scorer pass.

    Returns ``(metrics, outputs)``: ``gadjax.metrics.evaluate``'s dict (plus pixel AUROC
    when ``masks`` (N, H, W) are given, and ``auroc_<term>`` for each per-sample score
    term the detector reports beside ``score``) and the arrays behind it: ``score`` (N,),
    ``reconstruction``, ``images`` (``x`` as the model takes it) and ``maps``
    (N, H, W) ``|x - reconstruction|`` smoothed with ``sigma``, or None without masks.
    ``details``: ``score_details`` of ``x`` already computed (not scored again).
    """
    images = detector._prepare(x, "x")
    if details is None:
        details = detector.score_details(images, input_range=detector.value_range, progress=progress)
    maps = None if masks is None else np.asarray(anomaly_map(images, details["reconstruction"], sigma=sigma))
    metrics = evaluate(y, details["score"], detector.threshold_, masks=masks, maps=maps)
    n = len(details["score"])
    metrics.update({f"auroc_{k}": roc_auc(y, v) for k, v in details.items()
                    if k != "score" and np.shape(v) == (n,) and np.isfinite(v).all()})
    return metrics, dict(details, images=images, maps=maps)
