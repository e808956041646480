"""EGBAD (BiGAN) on shipped MNIST, one-anomalous protocol (the EGBAD paper's), both L_D variants.

    /work/venv/bin/python experiments/egbad_mnist.py --digits 0 1 2 3 4 5 6 7 8 9 --seeds 0

For each (anomalous digit, seed):
  * split: ``data.one_class_split(mnist, digit, "one-anomalous", val_fraction=0.1, seed=seed)``:
    the other nine digits' training images, minus 10 % held out as normal validation images,
    are the training data; a test image is anomalous iff it shows ``digit``;
  * ONE model is trained and scored with ``alpha * ||x - G(E(x))||_1 + (1 - alpha) * L_D`` for
    both of the paper's L_D (``feature-matching``, ``cross-entropy``), plus the reconstruction
    term alone (``alpha = 1``) as a diagnostic;
  * thresholds: 95th percentile of the scores of a seeded subset of the normal VALIDATION
    images (``--val-limit``); test images: a seeded random subset of the 10,000 official ones
    (``--test-limit``, ``--test-seed``), the same for every digit, seed and model (and the same
    subset as the GANomaly / DED-GAN experiments at their defaults).

``experiments/cbigan_mnist.py`` runs the same protocol for CBiGAN through ``main(model="cbigan")``.
Output: one JSON line per (digit, seed, score) in ``<out>/<model>_mnist<tag>.jsonl`` (rows of other
keys already there are kept, same keys replaced).
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import sys
import time

import numpy as np

from gadjax import data
from gadjax.metrics import evaluate, threshold_from_normal
from gadjax.models.bigan import SCORE_METHODS, EGBAD
from gadjax.models.cbigan import CBiGAN, CBiGANConfig
from common import (RESULTS_DIR, REPO_CACHE, add_cache_arg, enable_compile_cache, metrics_summary, now, run_grid,
                    run_info, test_subset)

KEYS = ("digit", "seed", "score")
PROTOCOL = "one-anomalous"
MODELS = {"egbad": EGBAD, "cbigan": CBiGAN}


def parse_args(argv=None, model: str = "egbad"):
    ap = argparse.ArgumentParser(description=f"{model} on MNIST, one-anomalous protocol")
    ap.add_argument("--digits", type=int, nargs="+", default=list(range(10)), help="anomalous digits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, init, batches, noise)")
    ap.add_argument("--steps", type=int, default=800, help="training steps (one D and one G+E update each)")
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf (paper: 64); D's dense layers scale with it")
    ap.add_argument("--z-dim", type=int, default=200, help="latent size (paper: 200)")
    ap.add_argument("--batch-size", type=int, default=64, help="paper: 100")
    ap.add_argument("--lr", type=float, default=2e-4, help="Adam lr of both players (paper: 1e-5, far longer runs)")
    ap.add_argument("--alpha", type=float, default=0.9, help="weight of the reconstruction term (paper: 0.9)")
    if model == "cbigan":
        ap.add_argument("--image-consistency", type=float, default=CBiGANConfig.image_consistency)
        ap.add_argument("--latent-consistency", type=float, default=CBiGANConfig.latent_consistency)
        ap.add_argument("--discriminator", default="projection", choices=["projection", "concat"])
    ap.add_argument("--val-limit", type=int, default=1000, help="seeded subset of the normal validation images")
    ap.add_argument("--test-limit", type=int, default=2000, help="seeded random test subset size (0 = all 10,000)")
    ap.add_argument("--test-seed", type=int, default=0)
    ap.add_argument("--ema-decay", type=float, default=0.999, help="weight EMA used for scoring (<= 0: none)")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--tag", default="", help="suffix of the results file: <model>_mnist<tag>.jsonl")
    add_cache_arg(ap, default=REPO_CACHE)
    return ap.parse_args(argv)


def run_one(mnist, model: str, digit: int, seed: int, args, test_idx: np.ndarray) -> list[dict]:
    split = data.one_class_split(mnist, digit, PROTOCOL, val_fraction=0.1, seed=seed)
    x_val = split.x_val[test_subset(len(split.x_val), args.val_limit, seed)]
    x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
    # EGBAD's MNIST networks (DCGAN, BatchNorm in encoder and discriminator, N(0, I) prior),
    # both players' Adam at --lr.
    config = dict(net="dcgan", z_dim=args.z_dim, width=args.width, critic_norm="batch", learning_rate=args.lr,
                  ema_decay=args.ema_decay if args.ema_decay > 0 else None, steps=args.steps,
                  batch_size=args.batch_size, seed=seed, alpha=args.alpha)
    if model == "cbigan":
        config.update(image_consistency=args.image_consistency, latent_consistency=args.latent_consistency,
                      discriminator=args.discriminator)
    print(f"[{now()}] {model} anomalous digit {digit} seed {seed}: {len(split.x_train)} train / {len(x_val)} val "
          f"normals, {len(x_test)} test ({int(y_test.sum())} anomalous)", file=sys.stderr, flush=True)
    det = MODELS[model](**config, progress=False)
    t0 = time.perf_counter()
    det.fit(split.x_train, x_val)
    t_fit = time.perf_counter() - t0
    common = dict(experiment=f"{model}_mnist", model=model, dataset="mnist", protocol=PROTOCOL,
                  protocol_description="one class anomalous, the other nine normal", digit=digit, seed=seed,
                  n_train=int(len(split.x_train)), n_val=int(len(x_val)), n_test=int(len(x_test)),
                  n_test_anomalous=int(y_test.sum()),
                  threshold_rule="95th percentile of scores of the normal validation subset",
                  hparams=dict(det.config.to_dict(), val_limit=args.val_limit, test_limit=args.test_limit,
                               test_seed=args.test_seed),
                  fit_s=round(t_fit, 2))
    rows = []
    for method, alpha in [(m, args.alpha) for m in SCORE_METHODS] + [("feature-matching", 1.0)]:
        name = method if alpha == args.alpha else "reconstruction"
        det.config = det.config.replace(method=method, alpha=alpha)  # score-only fields: no retraining
        t0 = time.perf_counter()
        scores = det.score_samples(x_test)
        t_score = time.perf_counter() - t0
        res = evaluate(y_test, scores, threshold_from_normal(det.score_samples(x_val), det.config.threshold_percentile))
        rows.append(dict(common, score=name, **{k: float(v) for k, v in res.items()}, test_score_s=round(t_score, 2),
                         test_ms_per_image=round(1000 * t_score / len(x_test), 3), **run_info()))
        print(f"  {name:>16}: {metrics_summary(res)}", file=sys.stderr, flush=True)
    print(f"  fit (train + val threshold) {t_fit:.0f}s", file=sys.stderr, flush=True)
    return rows


def main(argv=None, model: str = "egbad"):
    args = parse_args(argv, model)
    enable_compile_cache(args.cache_dir)
    mnist = data.mnist()
    test_idx = test_subset(len(mnist.x_test), args.test_limit, args.test_seed)
    path = pathlib.Path(args.out) / f"{model}_mnist{args.tag}.jsonl"
    run_grid(path, KEYS, itertools.product(args.seeds, args.digits),
             lambda seed, digit: run_one(mnist, model, digit, seed, args, test_idx))


if __name__ == "__main__":
    main()
