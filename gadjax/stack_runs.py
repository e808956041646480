"""Stacked run directories: M models of one detector (normal classes x seeds) trained as
one program (``gadjax train --normal-class 0 1 2 --seeds 0 1``), evaluated per model.

A stack directory holds ``config.json`` (the ``StackSpec``), ``stack/<phase>/`` (the
stacked checkpoints and ``metrics.jsonl``, one value per model) and one ordinary run
directory per model, ``class<c>_seed<s>/`` (``seed<s>/`` for data without classes):
its ``config.json`` is the lone run's spec and, once training ends, ``detector/`` holds
the model as a lone fit would have saved it.  So ``gadjax evaluate`` / ``score`` /
``gadjax.load`` work on any one model, and ``gadjax evaluate --run STACK`` scores every
model in one vmapped pass and writes one row per model (``evaluation.jsonl``, each row
the dict a single run's ``evaluation.json`` holds).

Model i is exactly the run ``gadjax train --normal-class c_i --seed s_i`` would be: the
same split (seeded by s_i), batches, noise, threshold and calibration.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

import jax

from gadjax.models import DETECTORS
from gadjax.models.config import Config, json_ready
from gadjax.models.stack import DetectorStack, check_stackable, stacked_fixed
from gadjax.runs import DataSpec, RunSpec, copy_finished_gan, evaluate_run, test_subset
from gadjax.train.rundir import RunLock, check_out_dir, differences, write_json
from gadjax.train.stack import SHARDS

STACK_DIR = "stack"


@dataclasses.dataclass(frozen=True)
class StackSpec:
    """A grid of lone runs that differ only in their normal class and seed.

    ``config.seed`` and ``data.normal_class`` are unused: model (c, s) takes ``seed=s``
    and ``normal_class=c``.  ``normal_classes`` is ``(None,)`` for data without classes
    (industrial and tabular sets), where only the seed varies.
    """

    model: str
    config: Config
    data: DataSpec
    normal_classes: tuple
    seeds: tuple
    log_every: int = 50
    checkpoint_every: int = 250
    progress: bool = True
    shard: str | None = None

    def __post_init__(self):
        if not self.seeds or not self.normal_classes:
            raise ValueError("a stack needs at least one seed and one normal class")
        for flag, values in (("--seeds", self.seeds), ("--normal-class", self.normal_classes)):
            if len(set(values)) != len(values):
                raise ValueError(f"{flag}: {list(values)} names a value twice")
        if self.shard not in (None,) + SHARDS:
            raise ValueError(f"--shard: expected one of {SHARDS}, got {self.shard!r}")
        try:  # before any data is loaded
            check_stackable(DETECTORS[self.model])
        except NotImplementedError as err:
            raise ValueError(f"--model {self.model}: {err}; train its models one at a time (one --seed and one "
                             f"--normal-class)") from None

    def members(self) -> list[tuple[str, RunSpec]]:
        """``(directory name, lone RunSpec)`` of every model, classes outer, seeds inner."""
        out = []
        for c in self.normal_classes:
            for s in self.seeds:
                name = f"seed{s}" if c is None else f"class{c}_seed{s}"
                out.append((name, RunSpec(self.model, self.config.replace(seed=s), self.data.replace(normal_class=c),
                                          log_every=self.log_every, sample_every=10**9,
                                          checkpoint_every=self.checkpoint_every, progress=self.progress)))
        return out

    def to_dict(self) -> dict:
        from gadjax import __version__
        return json_ready({"gadjax_version": __version__, "stack": {
            "model": self.model, "config": self.config.to_dict(), "data": self.data.to_dict(),
            "normal_classes": list(self.normal_classes), "seeds": list(self.seeds),
            "run": {"log_every": self.log_every, "checkpoint_every": self.checkpoint_every,
                    "progress": self.progress, "shard": self.shard}}})

    @classmethod
    def from_dict(cls, d: dict) -> "StackSpec":
        s = d["stack"]
        model = s["model"]
        if model not in DETECTORS:
            raise ValueError(f"config.json names an unknown model {model!r}")
        return cls(model, DETECTORS[model].config_class.from_dict(s["config"]), DataSpec.from_dict(s["data"]),
                   tuple(s["normal_classes"]), tuple(s["seeds"]), **s.get("run", {}))


def is_stack_run(out) -> bool:
    path = pathlib.Path(out) / "config.json"
    return path.is_file() and "stack" in json.loads(path.read_text())


def load_stack_spec(out) -> StackSpec:
    path = pathlib.Path(out) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {out} a gadjax run directory (made by gadjax train)?")
    return StackSpec.from_dict(json.loads(path.read_text()))


def _stack(spec: StackSpec, out: pathlib.Path | None) -> DetectorStack:
    # StackSpec has already refused detectors that cannot be stacked.
    return DetectorStack(spec.model, [m.config.seed for _, m in spec.members()], spec.config, out_dir=out,
                         progress=spec.progress, log_every=spec.log_every, checkpoint_every=spec.checkpoint_every,
                         shard=spec.shard)


def prepare_stack(spec: StackSpec, out):
    """Everything ``train_stack_run`` checks before writing: every model's split, the nets
    and input range, the sharding.  Returns ``(stack, members, splits)``."""
    out = check_out_dir(out)
    members = spec.members()
    splits = [m.split() for _, m in members]
    stack = _stack(spec, out / STACK_DIR)
    shapes = {s.x_train.shape[1:] for s in splits}
    if len(shapes) > 1:
        raise ValueError(f"the models of a stack must share one sample shape, got {sorted(shapes)}")
    stack.template.build(splits[0].x_train.shape[1:])
    for (name, _), split in zip(members, splits):
        stack.template._prepare(split.x_train, f"x_train of {name}")
        stack.template._prepare(split.x_val, f"x_val of {name}")
    if spec.shard is not None:
        from gadjax.parallel import DataParallel
        n, batch = DataParallel.create().size, spec.config.batch_size
        if spec.shard == "model" and len(members) % n:
            raise ValueError(f"--shard model splits the {len(members)} models over {n} devices: use a multiple of "
                             f"{n} models, or --shard batch")
        if spec.shard == "batch" and batch % n:
            raise ValueError(f"--shard batch splits each batch of {batch} over {n} devices: use a --batch-size "
                             f"that is a multiple of {n}")
    return stack, members, splits


def stack_dry_run(spec: StackSpec, out) -> dict:
    _, members, splits = prepare_stack(spec, out)
    return {**spec.to_dict(), "models": [{"run": str(pathlib.Path(out) / name), "normal_class": m.data.normal_class,
                                          "seed": m.config.seed, "train": len(s.x_train), "val": len(s.x_val),
                                          "test": len(s.x_test), "normal": s.normal}
                                         for (name, m), s in zip(members, splits)]}


def train_stack_run(spec: StackSpec, out, log=None) -> DetectorStack:
    """Validate, write the stack's and every model's ``config.json``, train the stack (or
    resume it) and save every model as its run directory's ``detector/``."""
    stack, members, splits = prepare_stack(spec, out)
    out = pathlib.Path(out)
    print(f"gadjax: a stack of {len(members)} {spec.model} models on {spec.data.dataset} (classes "
          f"{list(spec.normal_classes)} x seeds {list(spec.seeds)}), {jax.device_count()} device(s) "
          f"[{jax.default_backend()}]" + (f", sharded by {spec.shard}" if spec.shard else ""), file=log or sys.stderr)
    with RunLock(out):
        _check_same(out, spec)
        write_json(out / "config.json", spec.to_dict())
        for name, member in members:
            (out / name).mkdir(exist_ok=True)
            write_json(out / name / "config.json", member.to_dict())
        stack.fit([s.x_train for s in splits], [s.x_val for s in splits])
        if jax.process_index() == 0:
            for i, (name, _) in enumerate(members):
                stack.detector(i).save(out / name / "detector", overwrite=True)
    return stack


def _check_same(out: pathlib.Path, spec: StackSpec) -> None:
    if not (out / "config.json").exists():
        return
    if not is_stack_run(out):
        raise ValueError(f"{out} holds a single run, not a stack; use another --out")
    old = load_stack_spec(out).to_dict()["stack"]
    new = spec.to_dict()["stack"]
    old.pop("run"), new.pop("run")  # logging, checkpoint cadence and sharding may change on resume
    diff = differences(old, new)
    if diff:
        detail = "; ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff)
        raise ValueError(f"{out} holds another stack ({detail}); use another --out")


def evaluate_stack_run(out, limit: int | None = None, sigma: float = 0.0) -> list[dict]:
    """Evaluate every model of a trained stack: the test sets are scored in one vmapped
    pass, then each model's run directory gets what ``gadjax evaluate`` writes for a
    single run, and ``out/evaluation.jsonl`` one row per model (``run`` names its directory)."""
    from gadjax.models import load
    out = pathlib.Path(out)
    spec = load_stack_spec(out)
    members = spec.members()
    missing = [name for name, _ in members if not (out / name / "detector").is_dir()]
    if missing:
        raise FileNotFoundError(f"{out}: models {missing} have no saved detector: finish training first "
                                f"(gadjax train with the same --out resumes)")
    detectors = [load(out / name) for name, _ in members]
    stack = DetectorStack.from_detectors(detectors)
    tests = [test_subset(m, m.split(), limit) for _, m in members]
    x_tests = [d._prepare(x, "x") for d, (x, _, _, _) in zip(detectors, tests)]
    details = stack.score_details(x_tests, input_range=stack.template.value_range)
    rows = []
    for (name, _), det, d in zip(members, detectors, details):
        row = evaluate_run(out / name, limit=limit, sigma=sigma, detector=det, details=d, progress=False)
        rows.append({"run": name, **row})
    write_json_lines(out / "evaluation.jsonl", rows)
    return rows


def stack_groups(spec: StackSpec, sample_shape: tuple, limit_bytes: int | None = None) -> list[StackSpec]:
    """``spec`` as the fewest stacks that fit the device's memory (``limit_bytes``, default
    the first local device's limit; devices that report none, like CPUs: one stack):
    whole classes together first, then seeds split.  One model's need is compiled per
    phase (a stack of one: an upper bound of the per-model cost)."""
    from gadjax.train.stack import StackTrainer, seed_keys, take_model
    if limit_bytes is None:
        limit_bytes = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
    if limit_bytes is None or len(spec.members()) == 1:
        return [spec]
    one = dataclasses.replace(spec, normal_classes=spec.normal_classes[:1], seeds=spec.seeds[:1], shard=None)
    t = _stack(one, None).template
    t.build(tuple(sample_shape))
    states, need = {}, 0
    for phase in t.phases:
        base = t.trainer(phase)
        trainer = StackTrainer(base, 1, stacked_fixed(base, states))
        need = max(need, trainer.memory_bytes(spec.config.batch_size))
        states[phase] = trainer.init(seed_keys(one.seeds))
        t.states_[phase] = take_model(states[phase], 0)
    devices = len(jax.devices()) if spec.shard == "model" else 1
    fit = max(int(limit_bytes // max(need, 1)), 1) * devices  # models per stack
    if fit >= len(spec.members()):
        return [spec]
    n_seeds = len(spec.seeds)
    if fit >= n_seeds:
        k = fit // n_seeds
        return [dataclasses.replace(spec, normal_classes=spec.normal_classes[i:i + k])
                for i in range(0, len(spec.normal_classes), k)]
    return [dataclasses.replace(spec, normal_classes=(c,), seeds=spec.seeds[i:i + fit])
            for c in spec.normal_classes for i in range(0, n_seeds, fit)]


def reuse_stack_gan(src, out, spec: StackSpec) -> bool:
    """``gadjax.runs.reuse_gan`` for stacks: start stack ``out`` (AnoGAN, f-AnoGAN) from
    stack ``src``'s finished GANs when it trained them with the same data, models and GAN
    settings (training again would give the same weights).  Returns True when copied."""
    from gadjax.models.base import GANDetector
    src, out = pathlib.Path(src), pathlib.Path(out)
    target = out / STACK_DIR / "gan"
    if target.exists() or not is_stack_run(src) or not issubclass(DETECTORS[spec.model], GANDetector):
        return False
    theirs = load_stack_spec(src)
    if (not issubclass(DETECTORS[theirs.model], GANDetector) or theirs.data != spec.data
            or (theirs.normal_classes, theirs.seeds) != (spec.normal_classes, spec.seeds)):
        return False
    a, b = theirs.config.to_dict(), spec.config.to_dict()
    if any(a.get(k) != b.get(k) for k in GANDetector.GAN_FIELDS):
        return False
    return copy_finished_gan(src / STACK_DIR / "gan", target, spec.config.steps)


def write_json_lines(path: pathlib.Path, rows: list[dict]) -> None:
    """All rows or none: written beside, then renamed."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(json_ready(r)) + "\n" for r in rows))
    tmp.replace(path)


__all__ = ["StackSpec", "evaluate_stack_run", "is_stack_run", "load_stack_spec", "prepare_stack", "reuse_stack_gan",
           "stack_dry_run", "stack_groups", "train_stack_run"]
