"""f-AnoGAN, GANomaly and Skip-GANomaly on MVTec AD transistor and Magnetic Tile (64x64):
image AUROC / AUPRC / F1 and pixel AUROC of the anomaly maps, "industrial" protocol.

    /work/venv/bin/python experiments/industrial.py --seeds 0
    /work/venv/bin/python experiments/industrial.py --models mean_image --seeds 0   # untrained reference
    /work/venv/bin/python experiments/industrial.py --table      # prints the results table

For each (dataset, seed, model):
  * split: ``data.industrial_split(ds, val_fraction=0.1, seed=seed)``: the defect-free
    training images, minus 10 % held out as normal validation images, are the only training
    data. MVTec transistor keeps its official test split (60 good, 40 defective); Magnetic
    Tile has no official split, so ``data.magnetic_tile(train_fraction=0.7, seed=0)`` is used
    (the same test set for every seed: 286 good + all 392 defective images);
  * the detector trains on the normal training images only; its threshold is the 95th
    percentile of the scores of the normal VALIDATION images (``Detector.fit(x, x_val)``),
    never of test images;
  * every test image is scored: image AUROC / AUPRC (threshold-free), precision / recall /
    F1 at the validation threshold, and pixel AUROC of the anomaly map
    ``mean_C |x - reconstruction|`` against the ground-truth masks over ALL pixels of ALL
    test images, good ones included (the MVTec AD convention), both raw and
    Gaussian-smoothed (``--sigma``).
Output: one JSON line per (dataset, seed, model) in ``<out>/industrial.jsonl`` (other keys
kept, same keys replaced) and, for seed 0, ``industrial_<dataset>_<model>_{roc,histogram,maps}.png``.
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
from gadjax.metrics import pixel_auroc, roc_auc, threshold_from_normal
from gadjax.models import FAnoGAN, GANomaly, SkipGANomaly
from gadjax.runs import evaluate_detector
from gadjax.scores import anomaly_map
from gadjax.viz import save_histogram, save_roc, save_triplets
from common import (RESULTS_DIR, add_cache_arg, enable_compile_cache, group_by, load_rows, mean_std, metrics_summary,
                    run_grid, run_info, test_subset)

RESULTS = "industrial.jsonl"
KEYS = ("dataset", "seed", "model")
DATASETS = ("mvtec_transistor", "magnetic_tile")
MODELS = ("fanogan", "ganomaly", "skip_ganomaly")
BASELINES = ("mean_image",)  # untrained reference, run with --models mean_image
PROTOCOL = "industrial"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS + BASELINES)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="val split, init, batch order")
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf of every net (papers: 64)")
    ap.add_argument("--z-dim", type=int, default=100, help="latent size (f-AnoGAN, GANomaly)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--gan-steps", type=int, default=120, help="f-AnoGAN WGAN-GP generator steps (5 critic steps each)")
    ap.add_argument("--gan-lr", type=float, default=2e-4, help="WGAN-GP Adam lr (paper: 1e-4)")
    ap.add_argument("--encoder-steps", type=int, default=250, help="f-AnoGAN izif encoder steps")
    ap.add_argument("--encoder-lr", type=float, default=5e-4, help="encoder Adam lr (paper: 1e-4)")
    ap.add_argument("--kappa", type=float, default=1.0, help="izif / f-AnoGAN score feature weight")
    ap.add_argument("--ganomaly-steps", type=int, default=400, help="GANomaly G + D steps")
    ap.add_argument("--skip-steps", type=int, default=300, help="Skip-GANomaly G + D steps")
    ap.add_argument("--lr", type=float, default=2e-4, help="(Skip-)GANomaly Adam lr (paper: 2e-4)")
    ap.add_argument("--sigma", type=float, default=1.0, help="Gaussian sigma (pixels) of the smoothed maps")
    ap.add_argument("--tile-train-fraction", type=float, default=0.7, help="Magnetic Tile: good images for training")
    ap.add_argument("--test-limit", type=int, default=0, help="seeded test subset (0 = every test image)")
    add_cache_arg(ap)
    ap.add_argument("--out", default=str(RESULTS_DIR))
    ap.add_argument("--no-plots", action="store_true")
    ap.add_argument("--table", action="store_true", help="only print the Markdown table of <out> and exit")
    return ap.parse_args(argv)


def load(name: str, args) -> data.ImageData:
    if name == "magnetic_tile":  # no official split: a fixed one, the same for every seed
        return data.magnetic_tile(train_fraction=args.tile_train_fraction, seed=0)
    return data.load(name)


class MeanImage:
    """Untrained reference: the reconstruction of every image is the mean training image, the
    score mean |x - mean|, the map |x - mean| (shows what aligned 64x64 images give for free).
    Has the parts of the detector interface that ``evaluate_detector`` uses."""

    value_range = (-1.0, 1.0)

    def fit(self, x, x_val):
        self.mean_ = self._prepare(x).mean(axis=0)
        self.threshold_ = threshold_from_normal(self.score_details(x_val)["score"], 95.0)
        return self

    def _prepare(self, x, name: str = "x") -> np.ndarray:
        """uint8 images scaled to [-1, 1]; floats taken as already in that range."""
        x = np.asarray(x)
        return data.to_float(x, "tanh") if x.dtype == np.uint8 else x.astype(np.float32)

    def score_details(self, x, *, input_range=None, progress=None) -> dict:
        x = self._prepare(x)
        rec = np.broadcast_to(self.mean_, x.shape)
        return {"score": np.abs(x - rec).mean(axis=(1, 2, 3)), "reconstruction": rec}


def make_detector(model: str, seed: int, args):
    """The unfitted detector and the hyper-parameters that define it (its full config)."""
    if model == "mean_image":
        return MeanImage(), dict(steps=0)
    common = dict(net="dcgan", width=args.width, batch_size=args.batch_size, seed=seed, progress=False)
    if model == "fanogan":
        det = FAnoGAN(**common, z_dim=args.z_dim, gan_loss="wgan-gp", critic_norm="layer", steps=args.gan_steps,
                      learning_rate=args.gan_lr, encoder_strategy="izif", encoder_steps=args.encoder_steps,
                      encoder_learning_rate=args.encoder_lr, kappa=args.kappa)
        return det, det.config.to_dict()
    if model == "ganomaly":
        det = GANomaly(**common, z_dim=args.z_dim, steps=args.ganomaly_steps, learning_rate=args.lr)
        return det, det.config.to_dict()
    det = SkipGANomaly(**common, steps=args.skip_steps, learning_rate=args.lr, n_stages=4)  # as recorded
    return det, dict(det.config.to_dict(), unet="4 levels (64 -> 4x4)")


def run_one(ds: data.ImageData, seed: int, model: str, args, out: pathlib.Path, log=sys.stderr) -> dict:
    split = data.industrial_split(ds, val_fraction=0.1, seed=seed)
    idx = test_subset(len(split.x_test), args.test_limit, seed=0)
    x_test, y_test, masks = split.x_test[idx], split.y_test[idx], split.masks_test[idx]
    defect = ds.defect_type[idx]
    det, hp = make_detector(model, seed, args)
    t0 = time.perf_counter()
    det.fit(split.x_train, split.x_val)  # trains on normals; threshold_ from the normal val images
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    res, outputs = evaluate_detector(det, x_test, y_test, masks=masks)  # raw maps: sigma 0
    t_score = time.perf_counter() - t0
    scores, rec, x_float, maps = (outputs[k] for k in ("score", "reconstruction", "images", "maps"))
    smooth = np.asarray(anomaly_map(x_float, rec, sigma=args.sigma))
    by_defect = {ds.defect_names[d]: roc_auc(np.r_[np.zeros((defect == 0).sum()), np.ones((defect == d).sum())],
                                             np.r_[scores[defect == 0], scores[defect == d]])
                 for d in np.unique(defect) if d != 0}
    row = dict(experiment="industrial", dataset=ds.name, model=model, seed=seed, protocol=PROTOCOL,
               protocol_description="industrial: train on defect-free training images only; test = the test "
                                    "split with its defect types and pixel masks",
               n_train=int(len(split.x_train)), n_val=int(len(split.x_val)), n_test=int(len(idx)),
               n_test_anomalous=int(y_test.sum()), image_shape=list(split.x_train.shape[1:]),
               split=("official MVTec AD split" if ds.name == "mvtec_transistor" else
                      f"magnetic_tile(train_fraction={args.tile_train_fraction}, seed=0): fixed for every seed"),
               threshold_rule="95th percentile of the scores of the normal validation images",
               pixel_auroc_rule="all pixels of all test images (good ones included), raw |x - x_hat| channel mean",
               **{k: float(v) for k, v in res.items()},
               pixel_auroc_smoothed=pixel_auroc(masks, smooth), sigma=args.sigma,
               auroc_map_mean=roc_auc(y_test, maps.mean(axis=(1, 2))), auroc_by_defect=by_defect,
               hparams=hp, fit_s=round(t_fit, 1), test_score_s=round(t_score, 2), **run_info())
    print(f"  {ds.name} {model} seed {seed}: image {metrics_summary(res)} pixel AUROC {res['pixel_auroc']:.4f} "
          f"(smoothed {row['pixel_auroc_smoothed']:.4f}) fit {t_fit:.0f}s", file=log, flush=True)
    if seed == 0 and not args.no_plots:
        stem = out / f"industrial_{ds.name}_{model}"
        save_roc(f"{stem}_roc.png", y_test, scores, size=300, threshold=det.threshold_)
        save_histogram(f"{stem}_histogram.png", scores[y_test == 0], scores[y_test == 1], det.threshold_,
                       bins=30, size=(420, 290))
        # two good test images, then the first image of each defect type
        shown = np.r_[np.flatnonzero(defect == 0)[:2],
                      [np.flatnonzero(defect == d)[0] for d in np.unique(defect) if d != 0]]
        # Rows: test image | reconstruction | anomaly map (one colour scale) | ground-truth mask.
        save_triplets(f"{stem}_maps.png", x_float[shown], rec[shown], maps[shown], n=len(shown),
                      value_range=det.value_range, masks=masks[shown],
                      row_labels=[f"{ds.defect_names[defect[i]]}\nscore {float(scores[i]):.4g}" for i in shown])
    return row


def markdown_table(rows: list[dict]) -> str:
    lines = ["| dataset | model | seed | image AUROC | AUPRC | F1 @ val threshold (P / R) | pixel AUROC "
             "| pixel AUROC, smoothed | train steps | fit s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hp = r["hparams"]
        # f-AnoGAN rows made before the one-config API name the GAN's steps gan_steps.
        gan_steps = hp["gan_steps"] if "gan_steps" in hp else hp["steps"]
        steps = f"{gan_steps} GAN + {hp['encoder_steps']} enc" if r["model"] == "fanogan" else str(hp["steps"])
        lines.append(f"| {r['dataset']} | {r['model']} | {r['seed']} | {r['auroc']:.3f} | {r['auprc']:.3f} | "
                     f"{r['f1']:.3f} ({r['precision']:.2f} / {r['recall']:.2f}) | {r['pixel_auroc']:.3f} | "
                     f"{r['pixel_auroc_smoothed']:.3f} | {steps} | {r['fit_s']:.0f} |")
    for (name, model), rs in group_by(rows, "dataset", "model").items():
        if len(rs) > 1:  # mean ± sample std over seeds
            cell = lambda k: mean_std([r[k] for r in rs])  # noqa: E731
            lines.append(f"| {name} | **mean of {len(rs)}** | {model} | {cell('auroc')} | {cell('auprc')} | "
                         f"{cell('f1')} | {cell('pixel_auroc')} | {cell('pixel_auroc_smoothed')} | | |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    if args.table:
        print(markdown_table(load_rows(out / RESULTS)))
        return
    enable_compile_cache(args.cache_dir)
    print(f"industrial experiment: {args.datasets} x {args.models}, seeds {args.seeds}, {jax.default_backend()}",
          file=sys.stderr, flush=True)
    datasets = {name: load(name, args) for name in args.datasets}  # small 64x64 sets: load each once
    run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.datasets, args.models),
             lambda seed, name, model: run_one(datasets[name], seed, model, args, out))


if __name__ == "__main__":
    main()
