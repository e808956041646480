"""Contaminated training data: f-AnoGAN vs the Berg et al. joint encoder on MNIST.

    python experiments/contamination.py --digits 0 1 2 --seeds 0 --gammas 0 0.02 0.05 --steps 1500
    python experiments/contamination.py --table      # rewrite results/contamination.md only

Protocol **one-normal** (one digit normal, the nine others anomalous), as Berg et al. 2020
use for CIFAR-10.  ``data.one_class_split(mnist, digit, "one-normal", contamination=gamma)``
mixes anomalous training images (other digits) into the training set so that they make a
fraction gamma of it; the normal validation images (threshold: their 95th-percentile
score) stay clean, and the test set is a seeded 1,000-image subset of the MNIST test set,
the same for every run.

Both detectors train a WGAN-GP of the same architecture for the same number of steps on
the same (contaminated) images.  f-AnoGAN then fits its izif encoder on those real
images; the joint encoder is trained alongside the GAN on generated images only, which is
Berg et al.'s argument for its robustness to contamination.  For the joint encoder the
table also gives the AUROC of each term of its score on its own (normalised residual,
origin distance ||E(x)||), since the combined score (lam = 0.05) is dominated by the
origin distance.
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import time

import numpy as np
from common import RESULTS_DIR, group_by, load_rows, run_grid, run_info, save_markdown, test_subset

from gadjax import data
from gadjax.metrics import evaluate, roc_auc
from gadjax.models import FAnoGAN, JointEncoder
from gadjax.scores import normalised_residual, origin_distance

RESULTS, TABLE = "contamination.jsonl", "contamination.md"
KEYS = ("model", "digit", "seed", "gamma", "steps")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.02, 0.05])
    ap.add_argument("--models", nargs="+", default=["fanogan", "joint_encoder"], choices=["fanogan", "joint_encoder"])
    ap.add_argument("--steps", type=int, default=1500, help="WGAN-GP generator steps (n_critic 5)")
    ap.add_argument("--encoder-steps", type=int, default=1000, help="f-AnoGAN izif encoder steps")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--lam", type=float, default=0.05, help="joint encoder: weight of the normalised residual")
    ap.add_argument("--test-limit", type=int, default=1000)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--table", action="store_true")
    return ap.parse_args(argv)


def term_aurocs(det: JointEncoder, x_test: np.ndarray, y_test: np.ndarray) -> dict:
    """AUROC of each term of the Berg score on its own, from one scoring pass."""
    details = det.score_details(x_test)
    x = data.to_float(x_test, "sigmoid")  # the residual min-max normalises both images: any range will do
    residual = np.asarray(normalised_residual(x, details["reconstruction"]))
    norm = np.asarray(origin_distance(details["z"]))
    normal = y_test == 0
    return {"auroc_residual_only": roc_auc(y_test, residual), "auroc_origin_only": roc_auc(y_test, norm),
            "latent_norm_normal_mean": float(norm[normal].mean()), "latent_norm_anomalous_mean": float(norm[~normal].mean())}


def run_one(model, digit, seed, gamma, mnist, test_idx, args) -> dict:
    split = data.one_class_split(mnist, digit, "one-normal", contamination=gamma, seed=seed)
    x_test, y_test = split.x_test[test_idx], split.y_test[test_idx]
    # The same WGAN-GP for both (thesis nets, z_dim 128); every optimiser, the encoder's
    # included (encoder_learning_rate None follows learning_rate), at --lr.
    gan = dict(gan_loss="wgan-gp", net="thesis", z_dim=128, width=args.width, learning_rate=args.lr,
               steps=args.steps, batch_size=64, seed=seed, progress=False)
    if model == "fanogan":
        det = FAnoGAN(**gan, encoder_strategy="izif", encoder_steps=args.encoder_steps)
    else:
        det = JointEncoder(**gan, lam=args.lam)
    t0 = time.perf_counter()
    det.fit(split.x_train, split.x_val)
    fit_s = time.perf_counter() - t0
    result = evaluate(y_test, det.score_samples(x_test), det.threshold_)
    extra = term_aurocs(det, x_test, y_test) if model == "joint_encoder" else {}
    return dict(model=model, digit=digit, seed=seed, gamma=gamma, protocol=split.protocol,
                contamination=split.contamination, n_train=len(split.x_train), n_test=len(x_test),
                n_test_anomalous=int(y_test.sum()), steps=args.steps,
                encoder_steps=args.encoder_steps if model == "fanogan" else args.steps,
                width=args.width, lr=args.lr, lam=args.lam if model == "joint_encoder" else None,
                fit_s=round(fit_s, 1), config=det.config.to_dict(), **run_info(),
                **{k: round(float(v), 4) for k, v in {**result, **extra}.items()})


def write_table(out: pathlib.Path) -> str:
    rows = load_rows(out / RESULTS)
    lines = ["# Contaminated training data: f-AnoGAN vs joint encoder (MNIST, one-normal)", "",
             "Script and protocol: `experiments/contamination.py` (docstring). Threshold: 95th percentile of "
             "clean normal validation scores; test: seeded 1,000-image MNIST test subset. gamma = fraction of "
             "anomalous images in the training set.", "",
             "| normal digit | seed | gamma | model | AUROC | AUPRC | F1 @ normal-val threshold | "
             "AUROC residual only | AUROC origin only | mean norm E(x) normal / anomalous | steps | fit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda r, k: "" if r.get(k) is None else f"{r[k]:.3f}"  # noqa: E731
    for r in sorted(rows, key=lambda r: (r["digit"], r["seed"], r["gamma"], r["model"])):
        norms = (f"{r['latent_norm_normal_mean']:.2f} / {r['latent_norm_anomalous_mean']:.2f}"
                 if "latent_norm_normal_mean" in r else "")
        lines.append(f"| {r['digit']} | {r['seed']} | {r['gamma']:.2f} | {r['model']} | {f(r, 'auroc')} | "
                     f"{f(r, 'auprc')} | {f(r, 'f1')} | {f(r, 'auroc_residual_only')} | {f(r, 'auroc_origin_only')} | "
                     f"{norms} | {r['steps']} | {r['fit_s']:.0f} |")
    lines += ["", "Means over digits and seeds, per gamma and training length:", "",
              "| gamma | model | steps | mean AUROC | mean AUROC residual only | runs |", "|---|---|---|---|---|---|"]
    for (gamma, model, steps), m in group_by(rows, "gamma", "model", "steps").items():
        res = [r["auroc_residual_only"] for r in m if "auroc_residual_only" in r]
        residual = f" {np.mean(res):.3f} " if res else " "
        lines.append(f"| {gamma:.2f} | {model} | {steps} | {np.mean([r['auroc'] for r in m]):.3f} |{residual}| {len(m)} |")
    lines += ["", "Reading: see the follow-up section of `joint_encoder.md` and `experiments/README.md`.", ""]
    return save_markdown(out / TABLE, lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    if not args.table:
        mnist = data.load("mnist")
        test_idx = test_subset(len(mnist.x_test), args.test_limit, 0)
        def cell(seed, digit, gamma, model):
            row = run_one(model, digit, seed, gamma, mnist, test_idx, args)
            print(row, flush=True)
            return row

        run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.digits, args.gammas, args.models), cell)
    print(write_table(out))


if __name__ == "__main__":
    main()
