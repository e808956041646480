"""Command line: ``gadjax train | score | evaluate`` (also ``python -m gadjax``).

    gadjax train --model fanogan --dataset mnist --normal-class 0 --out runs/mnist0
    gadjax train --model egbad --dataset kddcup99 --lr 1e-4 --out runs/kdd --dry-run
    gadjax train --model ganomaly --normal-class 0 1 2 --seeds 0 1 --out runs/stack   # 6 models, one program
    gadjax evaluate --run runs/mnist0
    gadjax score --run runs/mnist0 --images my_images.npy --output scores.npy

Every detector setting is a field of its config (``gadjax train --model X --dry-run``
prints them all); the common ones have flags, any other is ``--option KEY=VALUE``.  A
setting the detector does not have is an error, never ignored.  Re-running ``gadjax
train`` with the same ``--out`` resumes from the last checkpoint.  Several
``--normal-class`` values or ``--seeds`` train one model per (class, seed) as one stacked
program (``gadjax.stack_runs``); each model gets its own run directory inside ``--out``.  A user mistake
ends with one line naming the flag or value and exit status 2 (``--debug`` shows the
traceback).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from gadjax import data
from gadjax.models import DETECTORS
from gadjax.models.config import ConfigError
from gadjax.nets import NETS

# flag -> config field: each is an error for a detector whose config lacks the field.
CONFIG_FLAGS = {"steps": "steps", "batch_size": "batch_size", "seed": "seed", "width": "width",
                "z_dim": "z_dim", "net": "net", "critic_norm": "critic_norm", "gan_loss": "gan_loss",
                "n_critic": "n_critic", "encoder_steps": "encoder_steps", "encoder_strategy": "encoder_strategy",
                "kappa": "kappa", "search_steps": "search_steps", "members": "members", "base": "base"}
DATA_FLAGS = ("dataset", "data_dir", "normal_class", "protocol", "contamination", "val_fraction")
USER_ERRORS = (ValueError, TypeError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError,
               RuntimeError, PermissionError)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument on ONE line (no usage dump), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _train_parser(sub) -> None:
    t = sub.add_parser("train", help="train a detector on the normal data of a shipped data set")
    t.add_argument("--model", required=True, choices=sorted(DETECTORS), help="the detector")
    t.add_argument("--dataset", default=None, choices=sorted(data.DATASETS), help="default mnist")
    t.add_argument("--data-dir", default=None, help=f"folder of the npz files (default ${data.ENV_VAR} or ../shared/data)")
    t.add_argument("--normal-class", type=int, nargs="+", default=None,
                   help="class the protocol is built around (default 0); several: one stacked model per class")
    t.add_argument("--protocol", default=None, choices=sorted(data.PROTOCOLS) + ["tabular"],
                   help="default: the data set's own")
    t.add_argument("--contamination", type=float, default=None, help="fraction of anomalies in training")
    t.add_argument("--val-fraction", type=float, default=None, help="normals held out to fix the threshold (0.1)")
    t.add_argument("--net", default=None, choices=sorted(NETS), help="net family (default: chosen from the data)")
    t.add_argument("--z-dim", type=int, default=None, help="latent size")
    t.add_argument("--width", type=int, default=None, help="ngf = ndf, or hidden units")
    t.add_argument("--critic-norm", default=None, choices=["batch", "layer", "none"])
    t.add_argument("--gan-loss", default=None, help="GAN objective of a GAN-based detector")
    t.add_argument("--steps", type=int, default=None, help="training updates (of the generator, for GANs)")
    t.add_argument("--encoder-steps", type=int, default=None, help="f-AnoGAN encoder updates (default: --steps)")
    t.add_argument("--encoder-strategy", default=None, help="f-AnoGAN encoder training: izi, ziz or izif")
    t.add_argument("--kappa", type=float, default=None, help="f-AnoGAN feature weight")
    t.add_argument("--search-steps", type=int, default=None, help="latent-search steps (AnoGAN, MAD-GAN)")
    t.add_argument("--base", default=None, help="member detector of --model ensemble")
    t.add_argument("--members", type=int, default=None, help="ensemble size")
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None, help="learning rate of EVERY optimiser of the detector")
    t.add_argument("--n-critic", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="one model per seed, trained as one stacked program (with every --normal-class)")
    t.add_argument("--shard", default=None, choices=["model", "batch"],
                   help="a stack over all devices: split its models, or each model's batch")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field, e.g. --option lam=0.1 (repeatable; applied after the flags)")
    t.add_argument("--out", required=True, help="run directory (resumed if it has checkpoints)")
    t.add_argument("--log-every", type=_positive, default=50)
    t.add_argument("--sample-every", type=_positive, default=None, help="sample grids (250; not for stacks)")
    t.add_argument("--checkpoint-every", type=_positive, default=250)
    t.add_argument("--data-parallel", action="store_true", help="shard every batch over all devices")
    t.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize()")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--dry-run", action="store_true", help="print the resolved run as JSON and write nothing")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="gadjax", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _train_parser(sub)
    e = sub.add_parser("evaluate", help="AUROC/AUPRC/F1 of a trained detector on its test split, with plots")
    e.add_argument("--run", required=True, help="run directory made by gadjax train")
    e.add_argument("--limit", type=_positive, default=None, help="score a seeded random subset of this many test samples")
    e.add_argument("--sigma", type=float, default=0.0, help="Gaussian smoothing of anomaly maps (pixels)")
    s = sub.add_parser("score", help="anomaly scores of samples (.npy: uint8 images, or floats in the model's range)")
    s.add_argument("--run", required=True, help="run directory made by gadjax train, or a saved detector")
    s.add_argument("--images", required=True, help=".npy file of samples (N, ...) (images N, H, W, C)")
    s.add_argument("--output", required=True, help=".npy file for the (N,) scores")
    s.add_argument("--maps", default=None, help="optional .npy file for (N, H, W) anomaly maps")
    for p in (e, s):
        p.add_argument("--no-progress", action="store_true")
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", help="show the traceback of an error")
        p.add_argument("--no-compile-cache", action="store_true",
                       help="do not reuse compiled programs from the persistent cache (~/.cache/gadjax/jax, "
                            "or $GADJAX_CACHE_DIR)")
    return parser


def parse_options(pairs: list[str]) -> dict:
    """``["lam=0.1", "method=feature-matching"]`` -> ``{"lam": 0.1, "method": "feature-matching"}``
    (Python literals, else the raw string)."""
    import ast
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--option expects KEY=VALUE with a Python identifier as KEY, got {pair!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return options


def build_spec(args):
    """The ``RunSpec`` of ``gadjax train``'s arguments; every value validated."""
    from gadjax.runs import DataSpec, RunSpec
    cls = DETECTORS[args.model]
    options = parse_options(args.option)
    config = cls.config_class()
    if args.model == "ensemble" and (args.base or options.get("base")):
        config = config.replace(base=options.pop("base", None) or args.base)
    fields = set(config.field_names()) | (set(config.base_config.field_names()) if args.model == "ensemble" else set())
    for flag, field in CONFIG_FLAGS.items():
        value = getattr(args, flag)
        if value is None or (flag == "base" and args.model == "ensemble"):
            continue
        if field not in fields:
            raise ConfigError(field, f"{_flag(flag)}: {args.model} has no setting {field!r} "
                                     f"(its settings: {', '.join(sorted(fields))})")
        config = _set(config, flag, {field: value})
    if args.lr is not None:
        config = _set(config, "lr", lr=args.lr)
    if options:
        config = _set(config, "option", **options)
    classes = args.normal_class or [None]
    data_values = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k) is not None and k != "normal_class"}
    try:
        data_spec = DataSpec(**data_values, normal_class=classes[0])
        for c in classes[1:]:
            data_spec.replace(normal_class=c)
    except ConfigError as err:
        raise ConfigError(err.field, f"{_flag(err.field)}: {err}") from None
    if len(classes) == 1 and args.seeds is None:
        if args.shard:
            raise ValueError("--shard: splits a stack of models; give several --seeds or --normal-class values "
                             "(for one model use --data-parallel)")
        return RunSpec(args.model, config, data_spec, log_every=args.log_every,
                       sample_every=args.sample_every or 250, checkpoint_every=args.checkpoint_every,
                       progress=not args.no_progress, data_parallel=args.data_parallel)
    from gadjax.stack_runs import StackSpec
    for flag, bad in (("--seed", args.seed is not None and args.seeds is not None),
                      ("--data-parallel", args.data_parallel), ("--distributed", args.distributed),
                      ("--sample-every", args.sample_every is not None)):
        if bad:
            hint = {"--seed": "use --seeds alone", "--data-parallel": "use --shard model or --shard batch",
                    "--distributed": "multi-host stacks are not supported yet",
                    "--sample-every": "stacks write no sample grids"}[flag]
            raise ValueError(f"{flag}: does not apply to a stack of models ({hint})")
    seeds = tuple(args.seeds) if args.seeds is not None else (config.seed,)
    return StackSpec(args.model, config, data_spec.replace(normal_class=None), tuple(classes), seeds,
                     log_every=args.log_every, checkpoint_every=args.checkpoint_every,
                     progress=not args.no_progress, shard=args.shard)


def _set(config, flag: str, changes: dict | None = None, lr: float | None = None, **options):
    """Apply one flag's change, naming the flag in any error."""
    try:
        if lr is not None:
            return config.with_learning_rate(lr)
        return config.replace(**(changes or options))
    except ConfigError as err:
        where = f"--option {err.field}" if flag == "option" else _flag(flag)
        raise ConfigError(err.field, f"{where}: {err}") from None


def cmd_train(args) -> int:
    from gadjax.runs import dry_run, train_run
    from gadjax.stack_runs import StackSpec, stack_dry_run, train_stack_run
    spec = build_spec(args)
    if isinstance(spec, StackSpec):
        if args.dry_run:
            print(json.dumps(stack_dry_run(spec, args.out), indent=2))
            return 0
        stack = train_stack_run(spec, args.out)
        print(json.dumps({"run": args.out, "model": spec.model, "models": [
            {"run": f"{args.out}/{name}", "threshold": float(t)}
            for (name, _), t in zip(spec.members(), stack.threshold_)]}))
        return 0
    if args.dry_run:
        print(json.dumps(dry_run(spec, args.out), indent=2))
        return 0
    if args.distributed:
        from gadjax.parallel import initialize_distributed
        initialize_distributed()
    detector = train_run(spec, args.out)
    print(json.dumps({"run": args.out, "model": spec.model, "threshold": detector.threshold_,
                      "detector": f"{args.out}/detector"}))
    return 0


def cmd_evaluate(args) -> int:
    from gadjax.runs import evaluate_run
    from gadjax.stack_runs import evaluate_stack_run, is_stack_run
    if is_stack_run(args.run):
        rows = evaluate_stack_run(args.run, limit=args.limit, sigma=args.sigma)
        print(json.dumps(rows, indent=2))
        return 0
    print(json.dumps(evaluate_run(args.run, limit=args.limit, sigma=args.sigma, progress=not args.no_progress),
                     indent=2))
    return 0


def cmd_score(args) -> int:
    import pathlib

    from gadjax.models import load
    from gadjax.train.runlog import progress_callback
    path = pathlib.Path(args.images)
    if not path.is_file():
        raise FileNotFoundError(f"--images: {path} not found")
    try:
        samples = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:  # not .npy, empty, truncated or pickled
        raise ValueError(f"--images: {path} is not a .npy array file ({err or type(err).__name__})") from None
    from gadjax.stack_runs import is_stack_run, load_stack_spec
    if is_stack_run(args.run):
        names = [name for name, _ in load_stack_spec(args.run).members()]
        raise ValueError(f"--run: {args.run} is a stack of {len(names)} models; name one of its model directories "
                         f"({args.run}/{names[0]}, ...)")
    detector = load(args.run)
    bar = progress_callback(len(samples), "score", enabled=not args.no_progress)
    details = detector.score_details(samples, progress=bar)
    outputs = [(args.output, details["score"])]
    if args.maps:
        if len(detector.image_shape_) != 3:
            raise ValueError("--maps: anomaly maps need an image detector")
        outputs.append((args.maps, detector.anomaly_map(samples, reconstruction=details["reconstruction"])))
    for name, array in outputs:  # written only once everything is computed
        np.save(name, array)
    print(json.dumps({"scored": int(len(samples)), "output": args.output, "threshold": detector.threshold_}))
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "score": cmd_score}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.no_compile_cache:
        from gadjax.cache import disable_compilation_cache
        disable_compilation_cache()
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as err:
        if args.debug:
            raise
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"gadjax {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
