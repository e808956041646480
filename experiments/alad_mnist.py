"""ALAD on shipped MNIST, one-normal protocol (the paper's image protocol), all score variants.

    /work/venv/bin/python experiments/alad_mnist.py --digits 0 1 --seeds 0

For each (digit, seed):
  * split: ``data.one_class_split(mnist, digit, "one-normal", val_fraction=0.1, seed=seed)``:
    the digit's training images minus 10 % held-out normal validation images are the only
    training data; every test image of another digit is anomalous;
  * one ALAD is trained (``--steps`` steps of both players) and scored with every variant in
    ``gadjax.models.alad.SCORES`` (EMA weights, as the authors), plus ``features`` with the
    last iterate's weights (``features@last``);
  * thresholds: 95th percentile of the scores of the normal VALIDATION images only; the test
    images are a seeded random subset of the 10,000 official ones (``--test-limit``), the
    same for every digit and seed.

Output: one JSON line per (digit, seed, score) in ``<out>/alad_mnist.jsonl`` (rows of other
keys already there are kept, same keys replaced).
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
from gadjax.metrics import evaluate, threshold_from_normal
from gadjax.models import map_batches, score_batch
from gadjax.models.alad import SCORES, ALAD, alad_scores
from gadjax.nets import bind
from common import (RESULTS_DIR, REPO_CACHE, add_cache_arg, enable_compile_cache, metrics_summary, now, run_grid,
                    run_info, test_subset)

RESULTS = "alad_mnist.jsonl"
KEYS = ("digit", "seed", "score")
PROTOCOL = "one-normal"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1], help="normal digits, one experiment each")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, init, batches, noise)")
    ap.add_argument("--steps", type=int, default=1000, help="training steps (one update of each player per step)")
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf; the discriminators scale with it")
    ap.add_argument("--z-dim", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate of both players (paper: 2e-4)")
    ap.add_argument("--ema-decay", type=float, default=0.999, help="EMA of weights used for scoring (authors: 0.999)")
    ap.add_argument("--test-limit", type=int, default=1000, help="seeded random test subset size (0 = all 10,000)")
    ap.add_argument("--test-seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    add_cache_arg(ap, default=REPO_CACHE)
    return ap.parse_args(argv)


def _last_iterate_scores(det: ALAD, x: np.ndarray) -> np.ndarray:
    """``features`` with the last iterate's weights instead of the EMA."""
    t, s = det.trainer_, det.state
    # The trained nets bound to their own weights (scoring_nets() would give the EMA's).
    nets = {n: bind(t.nets[n], s.params[n], s.stats[n]) for n in det.score_nets}
    config = det.config.replace(score="features")

    def fn(batch, offset):
        return score_batch(alad_scores, nets, jax.numpy.asarray(batch), config)

    return map_batches(fn, data.to_float(x, "tanh"), config.score_batch_size)["score"]


def run_one(mnist, digit: int, seed: int, args, test_idx: np.ndarray) -> list[dict]:
    split = data.one_class_split(mnist, digit, PROTOCOL, val_fraction=0.1, seed=seed)
    x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
    print(f"[{now()}] digit {digit} seed {seed}: {len(split.x_train)} train / {len(split.x_val)} val normals, "
          f"{len(x_test)} test ({int(y_test.sum())} anomalous)", file=sys.stderr, flush=True)
    # DCGAN nets with BatchNorm in D_xz's x-branch and the encoder; both players' Adam at --lr.
    det = ALAD(net="dcgan", z_dim=args.z_dim, width=args.width, critic_norm="batch", learning_rate=args.lr,
               ema_decay=args.ema_decay, steps=args.steps, batch_size=args.batch_size, seed=seed, progress=False)
    t0 = time.perf_counter()
    det.fit(split.x_train, split.x_val)  # threshold from the normal validation split
    t_fit = time.perf_counter() - t0
    common = dict(experiment="alad_mnist", model="alad", dataset="mnist", protocol=PROTOCOL,
                  protocol_description="one class normal, all other classes anomalous", digit=digit, seed=seed,
                  n_train=int(len(split.x_train)), n_val=int(len(split.x_val)), n_test=int(len(x_test)),
                  n_test_anomalous=int(y_test.sum()),
                  threshold_rule="95th percentile of scores of the normal validation split",
                  hparams=dict(det.config.to_dict(), test_limit=args.test_limit, test_seed=args.test_seed),
                  fit_s=round(t_fit, 2))
    rows = []
    for variant in SCORES + ("features@last",):
        t0 = time.perf_counter()
        if variant == "features@last":
            val, scores = _last_iterate_scores(det, split.x_val), _last_iterate_scores(det, x_test)
        else:
            det.config = det.config.replace(score=variant)  # score-only: no retraining
            val, scores = det.score_samples(split.x_val), det.score_samples(x_test)
        t_score = time.perf_counter() - t0
        res = evaluate(y_test, scores, threshold_from_normal(val, 95.0))
        rows.append(dict(common, score=variant, **{k: float(v) for k, v in res.items()},
                         score_s=round(t_score, 2), **run_info()))
        print(f"  {variant:>14}: {metrics_summary(res)}", file=sys.stderr, flush=True)
    print(f"  fit (train + val threshold) {t_fit:.0f}s", file=sys.stderr, flush=True)
    return rows


def main(argv=None):
    args = parse_args(argv)
    enable_compile_cache(args.cache_dir)
    out = pathlib.Path(args.out)
    mnist = data.mnist()
    test_idx = test_subset(len(mnist.x_test), args.test_limit, args.test_seed)
    run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.digits),
             lambda seed, digit: run_one(mnist, digit, seed, args, test_idx))


if __name__ == "__main__":
    main()
