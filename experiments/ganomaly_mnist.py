"""GANomaly (and optionally Skip-GANomaly) on shipped MNIST, GANomaly's one-anomalous protocol.

    /work/venv/bin/python experiments/ganomaly_mnist.py --digits 0 1 2 3 4 5 6 7 8 9 --seeds 0

For each (anomalous digit, seed, model):
  * split: ``data.one_class_split(mnist, digit, "one-anomalous", val_fraction=0.1, seed=seed)``:
    the other nine digits' training images (minus 10 % held out as normal validation data)
    are the training data; test images of ``digit`` are the anomalies;
  * the detector trains on the normal training images only, then takes its threshold
    (95th percentile) from the scores of ``--val-limit`` seeded normal VALIDATION images;
  * it scores the same seeded random subset of the 10,000 official test images for every
    digit, seed and model (``--test-limit``, ``--test-seed``; the DED-GAN experiment uses the
    same subset); also the AUROC of the L1 reconstruction error, as a diagnostic.

Output: one JSON line per (digit, seed, model) in ``<out>/ganomaly_mnist.jsonl`` (rows of
other keys already there are kept, the same keys replaced).
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
from gadjax.metrics import evaluate, roc_auc
from gadjax.models import GANomaly, SkipGANomaly
from common import RESULTS_DIR, add_cache_arg, enable_compile_cache, metrics_summary, run_grid, run_info, test_subset

RESULTS = "ganomaly_mnist.jsonl"
KEYS = ("digit", "seed", "model")
PROTOCOL = "one-anomalous"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=list(range(10)), help="anomalous digits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, init, batch order)")
    ap.add_argument("--models", nargs="+", default=["ganomaly"], choices=["ganomaly", "skip_ganomaly"])
    ap.add_argument("--steps", type=int, default=800, help="training steps (G + D update each; 760 = 1 epoch)")
    ap.add_argument("--batch-size", type=int, default=64, help="paper: 64")
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf (paper: 64)")
    ap.add_argument("--z-dim", type=int, default=100, help="GANomaly latent size (paper: 100)")
    ap.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate, both players (paper: 2e-4)")
    ap.add_argument("--feature-match", default="mean", choices=["mean", "paired"], help="GANomaly's L_adv")
    ap.add_argument("--lam", type=float, default=0.9, help="Skip-GANomaly score weight")
    ap.add_argument("--val-limit", type=int, default=1000, help="normal validation images for the threshold")
    ap.add_argument("--test-limit", type=int, default=2000, help="seeded test subset (0 = all 10,000)")
    ap.add_argument("--test-seed", type=int, default=0)
    add_cache_arg(ap)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    return ap.parse_args(argv)


def make_detector(model: str, args, seed: int):
    """The paper config with this run's settings: DCGAN nets (the U-Net for Skip-GANomaly),
    BatchNorm everywhere, Adam at ``--lr`` for both players."""
    common = dict(steps=args.steps, batch_size=args.batch_size, seed=seed, width=args.width,
                  learning_rate=args.lr, progress=False)
    if model == "ganomaly":
        return GANomaly(**common, z_dim=args.z_dim, feature_match=args.feature_match)
    return SkipGANomaly(**common, lam=args.lam)


def run_one(mnist, digit: int, seed: int, model: str, args, test_idx: np.ndarray, log=sys.stderr) -> dict:
    split = data.one_class_split(mnist, digit, PROTOCOL, val_fraction=0.1, seed=seed)
    x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
    val_idx = np.random.default_rng(seed).permutation(len(split.x_val))[:args.val_limit or None]
    x_val = split.x_val[np.sort(val_idx)]
    det = make_detector(model, args, seed)
    t0 = time.perf_counter()
    det.fit(split.x_train, x_val)  # trains, then thresholds on validation normals only
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    details = det.score_details(x_test)
    t_score = time.perf_counter() - t0
    scores = details["score"]
    x_float = data.to_float(x_test, "tanh")
    l1 = np.mean(np.abs(x_float - details["reconstruction"]), axis=(1, 2, 3))
    res = evaluate(y_test, scores, det.threshold_)
    row = dict(experiment="ganomaly_mnist", model=model, dataset="mnist", protocol=PROTOCOL,
               protocol_description="one digit anomalous, the other nine normal (GANomaly's MNIST protocol)",
               normal=split.normal, digit=digit, seed=seed, n_train=int(len(split.x_train)),
               n_val=int(len(x_val)), n_test=int(len(x_test)), n_test_anomalous=int(y_test.sum()),
               threshold_rule="95th percentile of scores of the normal validation subset",
               **{k: float(v) for k, v in res.items()},
               auroc_reconstruction_l1=float(roc_auc(y_test, l1)),
               hparams=dict(det.config.to_dict(), val_fraction=0.1, val_limit=args.val_limit,
                            test_limit=args.test_limit, test_seed=args.test_seed),
               fit_s=round(t_fit, 2), test_score_s=round(t_score, 2),
               test_ms_per_image=round(1000 * t_score / len(x_test), 3), **run_info())
    print(f"  {model} digit {digit} seed {seed}: {metrics_summary(res)} "
          f"(L1-residual AUROC {row['auroc_reconstruction_l1']:.4f}; fit {t_fit:.0f}s, test {t_score:.1f}s)",
          file=log, flush=True)
    return row


def main(argv=None):
    args = parse_args(argv)
    enable_compile_cache(args.cache_dir)
    out = pathlib.Path(args.out)
    mnist = data.mnist()
    test_idx = test_subset(len(mnist.x_test), args.test_limit, args.test_seed)
    print(f"GANomaly experiment: MNIST {PROTOCOL}, models {args.models}, digits {args.digits}, seeds {args.seeds}, "
          f"{len(test_idx)} test images, {jax.default_backend()}", file=sys.stderr, flush=True)
    run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.digits, args.models),
             lambda seed, digit, model: run_one(mnist, digit, seed, model, args, test_idx))


if __name__ == "__main__":
    main()
