"""Berg et al. joint encoder and a 3-member GAN ensemble of it on MNIST (one-normal),
with and without contaminated training data (fraction gamma of anomalies).

    python experiments/joint_encoder_mnist.py --digits 0 1 --seeds 0 --gammas 0 0.05 --steps 600

Threshold: 95th percentile of scores of held-out NORMAL validation images.  Test: a
seeded 1,000-image subset of the MNIST test set (the same for every run).
"""
from __future__ import annotations

import argparse
import pathlib
import time

from common import RESULTS_DIR, run_info, test_subset, write_results

from gadjax import data
from gadjax.metrics import evaluate
from gadjax.models import GANEnsemble, JointEncoder, JointEncoderConfig

RESULTS = "joint_encoder_mnist.jsonl"
KEYS = ("model", "digit", "seed", "gamma")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.05])
    ap.add_argument("--models", nargs="+", default=["joint_encoder", "ensemble"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lam", type=float, default=0.05)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--test-limit", type=int, default=1000)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    mnist = data.load("mnist")
    test_idx = test_subset(len(mnist.x_test), args.test_limit, 0)
    for seed in args.seeds:
        for digit in args.digits:
            for gamma in args.gammas:
                split = data.one_class_split(mnist, digit, "one-normal", contamination=gamma, seed=seed)
                x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
                for model in args.models:
                    # WGAN-GP on the thesis nets (z_dim 128), every optimiser at --lr.
                    config = JointEncoderConfig(
                        gan_loss="wgan-gp", net="thesis", z_dim=128, width=args.width, learning_rate=args.lr,
                        steps=args.steps, batch_size=64, seed=seed, lam=args.lam)
                    det = (GANEnsemble(base="joint_encoder", members=args.members, base_config=config, progress=False)
                           if model == "ensemble" else JointEncoder(config, progress=False))
                    t0 = time.perf_counter()
                    det.fit(split.x_train, split.x_val)
                    fit_s = time.perf_counter() - t0
                    result = evaluate(y_test, det.score_samples(x_test), det.threshold_)
                    row = dict(model=model, digit=digit, seed=seed, gamma=gamma, protocol=split.protocol,
                               contamination=split.contamination, n_train=len(split.x_train),
                               n_test=len(x_test), steps=args.steps, width=args.width, lr=args.lr, lam=args.lam,
                               members=args.members if model == "ensemble" else 1, fit_s=round(fit_s, 1),
                               config=det.config.to_dict(),
                               **run_info(), **{k: round(float(v), 4) for k, v in result.items()})
                    print(row, flush=True)
                    write_results(pathlib.Path(args.out) / RESULTS, [row], KEYS)


if __name__ == "__main__":
    main()
