"""AnoGAN vs f-AnoGAN on shipped MNIST, one-normal protocol, several digits and seeds.

    /work/venv/bin/python experiments/mnist_anogan_fanogan.py --digits 0 1 --seeds 0 1

For each (digit, seed):
  * split: ``data.one_class_split(mnist, digit, "one-normal", val_fraction=0.1, seed=seed)``:
    the digit's training images (minus 10 % held out as normal validation data) are the
    only training data; every test image of another digit is anomalous;
  * ONE WGAN-GP is trained on the normal training images;
  * f-AnoGAN: an izif encoder is trained on top of it; AnoGAN: latent search on the same
    generator/critic (both detectors get ``fit(..., gan=<the detector holding that GAN>)``);
  * both detectors take their threshold (95th percentile) from the normal VALIDATION
    split only and score the SAME test images: a seeded random subset of the 10,000
    official test images when ``--test-limit`` is given (the subset depends on
    ``--test-seed`` only, so it is identical for every digit, seed and model).

Output: one JSON line per (digit, seed, model) in ``<out>/mnist_anogan_fanogan.jsonl``
(lines of other (digit, seed, model) keys already there are kept, same keys replaced),
plus, for seed 0, ROC and histogram PNGs per digit and model and a grid of GAN samples.
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import sys
import time

import jax
import numpy as np

from gadjax import data
from gadjax.metrics import evaluate
from gadjax.models import AnoGAN, FAnoGAN
from gadjax.train import train_loop
from gadjax.viz import save_grid, save_histogram, save_roc
from common import (RESULTS_DIR, group_by, load_rows, mean_std, metrics_summary, now, run_grid, run_info,
                    test_subset)

RESULTS = "mnist_anogan_fanogan.jsonl"
KEYS = ("digit", "seed", "model")
PROTOCOL = "one-normal"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1], help="normal digits, one experiment each")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, init, batches, search)")
    ap.add_argument("--steps", type=int, default=1000, help="WGAN-GP generator steps (n_critic=5 critic steps each)")
    ap.add_argument("--encoder-steps", type=int, default=1000, help="izif encoder steps")
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf")
    ap.add_argument("--net", default="thesis", choices=["thesis", "dcgan"])
    ap.add_argument("--z-dim", type=int, default=None, help="latent size (default: 128 thesis, 100 dcgan)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4, help="WGAN-GP Adam learning rate (paper: 1e-4)")
    ap.add_argument("--encoder-lr", type=float, default=5e-4, help="encoder Adam learning rate (paper: 1e-4)")
    ap.add_argument("--kappa", type=float, default=1.0, help="izif / f-AnoGAN score feature weight")
    ap.add_argument("--search-steps", type=int, default=200, help="AnoGAN latent-search Adam steps per image")
    ap.add_argument("--search-lr", type=float, default=None, help="AnoGAN search lr (default: library default)")
    ap.add_argument("--lam", type=float, default=0.1, help="AnoGAN feature-matching weight")
    ap.add_argument("--test-limit", type=int, default=1000,
                    help="score a seeded random subset of this many test images (0 = all 10,000)")
    ap.add_argument("--test-seed", type=int, default=0, help="seed of the test subset")
    ap.add_argument("--score-batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--table", action="store_true", help="only print the Markdown results table of <out> and exit")
    return ap.parse_args(argv)


def run_one(mnist: data.ImageData, digit: int, seed: int, args, test_idx: np.ndarray, out: pathlib.Path,
            log=sys.stderr) -> list[dict]:
    split = data.one_class_split(mnist, digit, PROTOCOL, val_fraction=0.1, seed=seed)
    x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
    z_dim = args.z_dim or (128 if args.net == "thesis" else 100)
    # The GAN settings both detectors share (GAN_FIELDS must match for fit(..., gan=)).
    gan_fields = dict(gan_loss="wgan-gp", learning_rate=args.lr, net=args.net, z_dim=z_dim, width=args.width,
                      critic_norm="layer", steps=args.steps, batch_size=args.batch_size, seed=seed)
    options = dict(progress=False, score_batch_size=args.score_batch_size)
    detectors = {
        "fanogan": FAnoGAN(**gan_fields, **options, encoder_strategy="izif", encoder_steps=args.encoder_steps,
                           encoder_learning_rate=args.encoder_lr, kappa=args.kappa),
        "anogan": AnoGAN(**gan_fields, **options, search_steps=args.search_steps, lam=args.lam,
                         **({} if args.search_lr is None else {"search_lr": args.search_lr})),
    }

    print(f"[{now()}] digit {digit} seed {seed}: {len(split.x_train)} train / {len(split.x_val)} val normals, "
          f"{len(x_test)} test ({int(y_test.sum())} anomalous)", file=log, flush=True)
    # ONE GAN, trained apart from both detectors so that its time is reported on its own:
    # an AnoGAN detector holds it (GAN phase only) and both detectors are fitted on it.
    gan = AnoGAN(**gan_fields, progress=False)
    gan.build(split.x_train.shape[1:])
    value_range = gan.value_range
    scale = "sigmoid" if value_range[0] == 0 else "tanh"
    t0 = time.perf_counter()
    trainer = gan.gan_trainer
    gan.states_["gan"], gan_metrics = train_loop(trainer, data.to_float(split.x_train, scale), gan.run_config("gan"))
    gan_state = jax.block_until_ready(gan.gan_state)
    t_gan = time.perf_counter() - t0
    print(f"  WGAN-GP {args.steps} steps: {t_gan:.0f}s  last metrics {gan_metrics}", file=log, flush=True)

    if seed == 0 and not args.no_plots:
        z = trainer.latent(jax.random.PRNGKey(seed + 1), 36)
        save_grid(out / f"digit{digit}_seed{seed}_samples.png", np.asarray(trainer.generate(gan_state, z)),
                  nrow=6, value_range=value_range)

    common = dict(experiment="mnist_anogan_fanogan", dataset="mnist", protocol=PROTOCOL,
                  protocol_description="one class normal, all other classes anomalous", normal=split.normal,
                  digit=digit, seed=seed, n_train=int(len(split.x_train)), n_val=int(len(split.x_val)),
                  n_test=int(len(x_test)), n_test_anomalous=int(y_test.sum()),
                  test_subset=(f"seeded random subset (numpy default_rng({args.test_seed})) of the 10,000 test images"
                               if len(test_idx) < len(split.x_test) else "all 10,000 test images"),
                  threshold_rule="95th percentile of scores of the normal validation split",
                  gan_train_s=round(t_gan, 2))
    # Protocol settings beside each detector's full effective config (its ``hparams``).
    protocol = dict(val_fraction=0.1, test_limit=args.test_limit, test_seed=args.test_seed)
    rows = []
    for name, det in detectors.items():
        t0 = time.perf_counter()
        det.fit(split.x_train, split.x_val, gan=gan)  # encoder (f-AnoGAN) + val threshold
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = np.asarray(det.score_samples(x_test))
        t_score = time.perf_counter() - t0
        res = evaluate(y_test, scores, det.threshold_)
        row = dict(common, model=name, **{k: float(v) for k, v in res.items()},
                   fit_s=round(t_fit, 2), test_score_s=round(t_score, 2),
                   test_ms_per_image=round(1000 * t_score / len(x_test), 3), **run_info())
        row["hparams"] = dict(det.config.to_dict(), **protocol)
        rows.append(row)
        print(f"  {name}: {metrics_summary(res)} "
              f"(fit+val {t_fit:.0f}s, test {t_score:.0f}s = {row['test_ms_per_image']:.1f} ms/image)",
              file=log, flush=True)
        if seed == 0 and not args.no_plots:
            save_roc(out / f"digit{digit}_{name}_roc.png", y_test, scores, size=300)
            save_histogram(out / f"digit{digit}_{name}_histogram.png", scores[y_test == 0], scores[y_test == 1],
                           det.threshold_, bins=40, size=(420, 290))
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The README table: one line per (digit, seed, model), then per-(digit, model) means over seeds."""
    lines = ["| normal digit | seed | model | AUROC | AUPRC | F1 @ normal-val threshold | test images (anomalous) "
             "| test ms/image |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['digit']} | {r['seed']} | {r['model']} | {r['auroc']:.4f} | {r['auprc']:.4f} | "
                     f"{r['f1']:.4f} | {r['n_test']} ({r['n_test_anomalous']}) | {r['test_ms_per_image']:.1f} |")
    for (digit, model), rs in group_by(rows, "digit", "model").items():
        if len(rs) > 1:
            lines.append(f"| {digit} | mean of {len(rs)} | {model} | {mean_std([r['auroc'] for r in rs], 4)} | "
                         f"{np.mean([r['auprc'] for r in rs]):.4f} | {np.mean([r['f1'] for r in rs]):.4f} | | |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    if args.table:
        print(markdown_table(load_rows(out / RESULTS)))
        return
    out.mkdir(parents=True, exist_ok=True)
    mnist = data.mnist()
    test_idx = test_subset(len(mnist.x_test), args.test_limit, args.test_seed)
    print(f"gadjax experiment: AnoGAN vs f-AnoGAN, MNIST {PROTOCOL}, digits {args.digits}, seeds {args.seeds}, "
          f"{len(test_idx)} test images, {jax.default_backend()}", file=sys.stderr, flush=True)
    # Seeds outer: every digit gets seed 0 first.
    run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.digits),
             lambda seed, digit: run_one(mnist, digit, seed, args, test_idx, out))


if __name__ == "__main__":
    main()
