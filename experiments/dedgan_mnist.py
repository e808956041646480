"""DED-GAN on shipped MNIST: one run per (protocol, digit, seed), a small CPU budget.

    /work/venv/bin/python experiments/dedgan_mnist.py --protocol one-anomalous --digits 0 1 2 --seeds 0

For each (digit, seed):
  * split: ``data.one_class_split(mnist, digit, protocol, val_fraction=0.1, seed=seed)``;
    ``one-anomalous`` (GANomaly's MNIST protocol): the digit is the anomaly, the nine
    others are normal; ``one-normal``: the digit is normal, the nine others anomalous;
  * a DED-GAN is trained on the normal training images only;
  * its threshold (95th percentile) comes from the normal VALIDATION split only;
  * it scores a seeded random subset of the 10,000 official test images (the subset
    depends on ``--test-seed`` only, so it is the same for every digit and seed).

The score is the paper's latent distance ``mean (z1 - z2)^2``; the AUROC of the plain
L1 reconstruction error ``mean |x - x1|`` of the same model is logged beside it as a
diagnostic.  Output: one JSON line per (protocol, digit, seed) in
``<out>/dedgan_mnist.jsonl`` (other keys already there are kept, the same keys replaced).
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
from gadjax.models.dedgan import DEDGAN
from common import RESULTS_DIR, metrics_summary, run_grid, run_info, test_subset

RESULTS = "dedgan_mnist.jsonl"
KEYS = ("protocol", "digit", "seed")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--protocol", default="one-anomalous", choices=["one-anomalous", "one-normal"])
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1, 2], help="one experiment per digit")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, init, batches)")
    ap.add_argument("--steps", type=int, default=800, help="training steps (one G and one D update each)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf (GANomaly: 64)")
    ap.add_argument("--z-dim", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--w-adv", type=float, default=1.0)
    ap.add_argument("--w-rec", type=float, default=50.0)
    ap.add_argument("--w-lat", type=float, default=1.0)
    ap.add_argument("--adversarial", default="feature", choices=["feature", "bce"])
    ap.add_argument("--test-limit", type=int, default=2000,
                    help="score a seeded random subset of this many test images (0 = all 10,000)")
    ap.add_argument("--test-seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    return ap.parse_args(argv)


def run_one(mnist, digit: int, seed: int, args, test_idx: np.ndarray, log=sys.stderr) -> dict:
    split = data.one_class_split(mnist, digit, args.protocol, val_fraction=0.1, seed=seed)
    x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
    # DCGAN nets, BatchNorm everywhere (the config's default); both players' Adam at --lr.
    det = DEDGAN(z_dim=args.z_dim, width=args.width, w_adv=args.w_adv, w_rec=args.w_rec, w_lat=args.w_lat,
                 adversarial=args.adversarial, learning_rate=args.lr, steps=args.steps, batch_size=args.batch_size,
                 seed=seed, progress=False)

    t0 = time.perf_counter()
    det.fit(split.x_train, split.x_val)  # trains, then thresholds on the validation normals
    jax.block_until_ready(det.state)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    details = det.score_details(x_test)
    t_score = time.perf_counter() - t0
    res = evaluate(y_test, details["score"], det.threshold_)
    rec_err = np.mean(np.abs(data.to_float(x_test, "tanh") - details["reconstruction"]), axis=(1, 2, 3))
    row = dict(experiment="dedgan_mnist", model="dedgan", dataset="mnist", protocol=args.protocol,
               normal=split.normal, digit=digit, seed=seed, n_train=int(len(split.x_train)),
               n_val=int(len(split.x_val)), n_test=int(len(x_test)), n_test_anomalous=int(y_test.sum()),
               threshold_rule="95th percentile of scores of the normal validation split",
               **{k: float(v) for k, v in res.items()},
               auroc_reconstruction_l1=float(roc_auc(y_test, rec_err)),
               fit_s=round(t_fit, 2), test_score_s=round(t_score, 2),
               test_ms_per_image=round(1000 * t_score / len(x_test), 3),
               hparams=dict(det.config.to_dict(), score="mean (z1-z2)^2", val_fraction=0.1,
                            test_limit=args.test_limit, test_seed=args.test_seed),
               **run_info())
    print(f"  {args.protocol} digit {digit} seed {seed}: {metrics_summary(res)} "
          f"(recon-L1 AUROC {row['auroc_reconstruction_l1']:.4f}); fit {t_fit:.0f}s, "
          f"test {row['test_ms_per_image']:.2f} ms/image", file=log, flush=True)
    return row


def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    mnist = data.mnist()
    test_idx = test_subset(len(mnist.x_test), args.test_limit, args.test_seed)
    print(f"DED-GAN, MNIST {args.protocol}, digits {args.digits}, seeds {args.seeds}, {len(test_idx)} test images, "
          f"{jax.default_backend()}", file=sys.stderr, flush=True)
    run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.digits),
             lambda seed, digit: run_one(mnist, digit, seed, args, test_idx))


if __name__ == "__main__":
    main()
