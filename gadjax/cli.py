"""Command line: ``gadjax train | score | evaluate`` (also ``python -m gadjax``).

    gadjax train --model wgan-gp --dataset mnist --normal-class 0 --out runs/mnist0

A run directory holds ``config.json``, ``checkpoints/``, ``metrics.jsonl`` and
``samples/``.  Running the same command again resumes from the last checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import numpy as np

from gadjax import data
from gadjax.losses import GAN_LOSSES
from gadjax.nets import NETS, NetSpec


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist", choices=data.IMAGE_DATASETS)
    p.add_argument("--data-dir", default=None, help=f"folder of the npz files (default: ${data.ENV_VAR} or ../shared/data)")
    p.add_argument("--normal-class", type=int, default=None, help="the class the protocol is built around")
    p.add_argument("--protocol", default="one-normal", choices=sorted(data.PROTOCOLS) + ["industrial"])
    p.add_argument("--contamination", type=float, default=0.0, help="fraction of anomalies in the training set")
    p.add_argument("--val-fraction", type=float, default=0.1, help="normal images held out to fix thresholds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gadjax", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a GAN on the normal class of a dataset")
    t.add_argument("--model", default="wgan-gp", choices=sorted(GAN_LOSSES), help="GAN objective")
    _add_data_args(t)
    t.add_argument("--net", default="thesis", choices=sorted(NETS), help="network family")
    t.add_argument("--z-dim", type=int, default=None, help="latent size (default: 128 thesis, 100 dcgan)")
    t.add_argument("--width", type=int, default=64, help="ngf = ndf")
    t.add_argument("--critic-norm", default=None, choices=["batch", "layer", "none"])
    t.add_argument("--steps", type=int, default=2000, help="generator updates")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=None, help="learning rate (default: the objective's paper value)")
    t.add_argument("--n-critic", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, help="run directory (resumed if it has checkpoints)")
    t.add_argument("--log-every", type=int, default=50)
    t.add_argument("--sample-every", type=int, default=250)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--data-parallel", action="store_true", help="shard every batch over all devices")
    t.add_argument("--distributed", action="store_true", help="multi-host: call jax.distributed.initialize()")
    t.add_argument("--no-progress", action="store_true")
    return parser


def _load_split(args):
    dataset = data.load(args.dataset, args.data_dir)
    protocol = "industrial" if args.dataset in ("mvtec_transistor", "magnetic_tile") else args.protocol
    split = data.image_split(dataset, args.normal_class, protocol, args.val_fraction, args.contamination, args.seed)
    return dataset, split


def _net_spec(args, shape) -> NetSpec:
    critic_norm = args.critic_norm or ("batch" if args.model in ("dcgan", "lsgan") else "layer")
    z_dim = args.z_dim or (128 if args.net == "thesis" else 100)
    return NetSpec(args.net, tuple(shape), z_dim, args.width, critic_norm=critic_norm)


def _check_config(out: pathlib.Path, config: dict) -> None:
    """Refuse to resume a run directory with a different configuration."""
    path = out / "config.json"
    if path.exists():
        saved = json.loads(path.read_text())
        changed = {k: (saved.get(k), v) for k, v in config.items()
                   if k not in ("steps", "log_every", "sample_every", "checkpoint_every", "no_progress")
                   and saved.get(k) != v}
        if changed:
            raise SystemExit(f"error: {out} holds a run with a different configuration "
                             f"(saved vs now: {changed}); use another --out")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2, sort_keys=True))


def cmd_train(args) -> int:
    import jax

    from gadjax.parallel import initialize_distributed
    from gadjax.train import GANConfig, GANTrainer, RunConfig, train_loop
    from gadjax.viz import save_grid

    if args.distributed:
        initialize_distributed()
    out = pathlib.Path(args.out)
    _check_config(out, {k: v for k, v in vars(args).items() if k not in ("command", "out")})
    _, split = _load_split(args)
    spec = _net_spec(args, split.x_train.shape[1:])
    config = GANConfig(spec, args.model, learning_rate=args.lr, n_critic=args.n_critic)
    trainer = GANTrainer(config, parallel=args.data_parallel)
    x_train = data.to_float(split.x_train, "sigmoid" if spec.output_range[0] == 0 else "tanh")
    print(f"gadjax train: {args.model} on {args.dataset} ({split.protocol}: normal = {split.normal}), "
          f"{len(x_train)} training images, {jax.device_count()} device(s) [{jax.default_backend()}]"
          f"{', data-parallel' if args.data_parallel else ''}", file=sys.stderr)

    z_fixed = trainer.latent(jax.random.PRNGKey(args.seed + 1), 64)

    def on_sample(step, state):
        images = trainer.generate(state, z_fixed)
        if jax.process_index() == 0:
            save_grid(out / "samples" / f"step_{step:06d}.png", np.asarray(images), value_range=spec.output_range)

    run = RunConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed, out_dir=str(out),
                    log_every=args.log_every, sample_every=args.sample_every,
                    checkpoint_every=args.checkpoint_every, progress=not args.no_progress)
    state, metrics = train_loop(trainer, x_train, run, on_sample=on_sample)
    print(json.dumps({"step": int(state.step), **metrics, "run": str(out),
                      "samples": str(out / "samples" / f"step_{args.steps:06d}.png")}))
    return 0


COMMANDS = {"train": cmd_train}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
