"""Command line: ``gadjax train | score | evaluate`` (also ``python -m gadjax``).

    gadjax train --model fanogan --dataset mnist --normal-class 0 --out runs/mnist0
    gadjax evaluate --run runs/mnist0
    gadjax score --run runs/mnist0 --images my_images.npy --output scores.npy

Re-running ``gadjax train`` with the same ``--out`` resumes from the last checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from gadjax import data
from gadjax.losses import GAN_LOSSES
from gadjax.models import DETECTORS
from gadjax.nets import NETS
from gadjax.train.encoder import STRATEGIES



def _train_parser(sub) -> None:
    from gadjax.runs import RunSpec
    d = RunSpec()
    t = sub.add_parser("train", help="train a GAN or a detector on the normal data of a dataset")
    t.add_argument("--model", default=d.model, choices=sorted(GAN_LOSSES) + sorted(DETECTORS),
                   help="a GAN objective (trains the GAN only) or a detector")
    t.add_argument("--gan-loss", default=d.gan_loss, choices=sorted(GAN_LOSSES), help="GAN objective of a detector")
    t.add_argument("--dataset", default=d.dataset, choices=data.IMAGE_DATASETS)
    t.add_argument("--data-dir", default=None, help=f"folder of the npz files (default ${data.ENV_VAR} or ../shared/data)")
    t.add_argument("--normal-class", type=int, default=d.normal_class, help="class the protocol is built around")
    t.add_argument("--protocol", default=d.protocol, choices=sorted(data.PROTOCOLS))
    t.add_argument("--contamination", type=float, default=d.contamination, help="fraction of anomalies in training")
    t.add_argument("--val-fraction", type=float, default=d.val_fraction, help="normals held out to fix the threshold")
    t.add_argument("--net", default=None, choices=sorted(NETS),
                   help="network family (default: thesis for GAN-based models on 28x28 gray images, else dcgan)")
    t.add_argument("--z-dim", type=int, default=None, help="latent size (default 128 thesis, 100 dcgan)")
    t.add_argument("--width", type=int, default=d.width, help="ngf = ndf")
    t.add_argument("--critic-norm", default=None, choices=["batch", "layer", "none"])
    t.add_argument("--steps", type=int, default=d.steps, help="generator updates")
    t.add_argument("--encoder-steps", type=int, default=None, help="f-AnoGAN encoder updates (default: --steps)")
    t.add_argument("--encoder-strategy", default=d.encoder_strategy, choices=STRATEGIES)
    t.add_argument("--kappa", type=float, default=d.kappa, help="izif / score feature weight")
    t.add_argument("--search-steps", type=int, default=d.search_steps, help="AnoGAN latent-search steps")
    t.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="model-specific keyword argument, e.g. --option lam=0.1 (repeatable)")
    t.add_argument("--base", default=d.base, help="member model of --model ensemble")
    t.add_argument("--members", type=int, default=d.members, help="ensemble size")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the objective's paper value)")
    t.add_argument("--n-critic", type=int, default=None)
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--out", required=True, help="run directory (resumed if it has checkpoints)")
    t.add_argument("--log-every", type=int, default=d.log_every)
    t.add_argument("--sample-every", type=int, default=d.sample_every)
    t.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    t.add_argument("--data-parallel", action="store_true", help="shard every batch over all devices")
    t.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize()")
    t.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gadjax", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    e = sub.add_parser("evaluate", help="AUROC/AUPRC/F1 of a trained detector on its test split, with plots")
    e.add_argument("--run", required=True, help="run directory made by gadjax train")
    e.add_argument("--limit", type=int, default=None, help="score a seeded random subset of this many test images")
    e.add_argument("--sigma", type=float, default=0.0, help="Gaussian smoothing of anomaly maps (pixels)")
    s = sub.add_parser("score", help="anomaly scores of images (.npy, uint8 or scaled float NHWC)")
    s.add_argument("--run", required=True)
    s.add_argument("--images", required=True, help=".npy file of images (N, H, W, C)")
    s.add_argument("--output", required=True, help=".npy file for the (N,) scores")
    s.add_argument("--maps", default=None, help="optional .npy file for (N, H, W) anomaly maps")
    return parser


def _parse_options(pairs: list[str]) -> dict:
    """``["lam=0.1", "score='fm'"]`` -> ``{"lam": 0.1, "score": "fm"}`` (Python literals,
    else the raw string)."""
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


def cmd_train(args) -> int:
    from gadjax.parallel import initialize_distributed
    from gadjax.runs import RunSpec, train_run

    if args.distributed:
        initialize_distributed()
    fields = {f.name for f in dataclasses.fields(RunSpec)}
    settings = {k: v for k, v in vars(args).items() if k in fields and k != "option"}
    spec = RunSpec(**settings, options=_parse_options(args.option), progress=not args.no_progress)
    result = train_run(spec, args.out)
    summary = {"run": args.out, "model": spec.model, "samples": f"{args.out}/samples"}
    if spec.model in DETECTORS:
        summary["threshold"] = result.threshold_
    print(json.dumps(summary))
    return 0


def cmd_evaluate(args) -> int:
    from gadjax.runs import evaluate_run
    print(json.dumps(evaluate_run(args.run, limit=args.limit, sigma=args.sigma), indent=2))
    return 0


def cmd_score(args) -> int:
    import dataclasses as dc
    import pathlib

    from gadjax.runs import load_spec, train_run
    path = pathlib.Path(args.images)
    if not path.exists():
        raise SystemExit(f"error: images file {path} not found")
    images = np.load(path, allow_pickle=False)
    detector = train_run(dc.replace(load_spec(args.run), progress=False), args.run)
    details = detector.score_details(images)
    np.save(args.output, details["score"])
    if args.maps:
        np.save(args.maps, detector.anomaly_map(images, reconstruction=details["reconstruction"]))
    print(json.dumps({"scored": int(len(images)), "output": args.output, "threshold": detector.threshold_}))
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "score": cmd_score}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"gadjax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
