"""AnoGAN search variants on ONE GAN: 200 vs 500 steps, restarts, the z_init = E(x) start.

    python experiments/anogan_search.py --digits 0 1 --seeds 0 --test-limit 500 --val-limit 200
    python experiments/anogan_search.py --table       # rewrites results/anogan_search.md

Why: the AnoGAN row of ``mnist_anogan_fanogan.py`` used a 200-step, single-start search;
the paper (Schlegl et al. 2017) searches 500 steps.  This script asks what the search
length, restarts and an encoder start change, with everything else held fixed.

For each (digit, seed), one-normal protocol (the split of ``mnist_anogan_fanogan.py``):
  * ONE WGAN-GP and an izif encoder on it (f-AnoGAN), same settings as that script; the
    fitted f-AnoGAN detector (which holds the GAN) is saved under ``--gan-dir`` and
    reloaded on a rerun with the same training settings, so extra variants need no
    retraining (every variant is score-only: ``AnoGANConfig`` marks the search fields so);
  * every variant scores the SAME seeded test subset (``--test-limit``) and the SAME seeded
    subset of the normal validation split (``--val-limit``), whose 95th percentile is the
    threshold (normal data only);
  * variants (``--variants``): ``anogan_k200`` (the old grid), ``anogan_k500`` (paper),
    ``anogan_k500_r{R}`` (R prior starts, lowest final loss wins), ``anogan_k500_ex``
    (one start at z = E(x), the izif encoder's code) and ``fanogan`` (its own score).

The AnoGAN variants call ``search_latent`` on the GAN's scoring nets with the key and
per-image offsets ``AnoGAN._score_batch`` uses, i.e. exactly ``AnoGAN(search_steps=K,
restarts=R).fit(..., gan=...)`` scores, plus the one option the detector lacks (z_init).

Output: one JSON line per (digit, seed, variant) in ``<out>/anogan_search.jsonl`` (same
keys replaced, others kept) and the table ``<out>/anogan_search.md``.
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
from gadjax.models import FAnoGAN, load, search_latent
from gadjax.models.anogan_search import DEFAULT_LEARNING_RATE
from common import (RESULTS_DIR, add_cache_arg, enable_compile_cache, group_by, load_rows, mean_std,
                    metrics_summary, now, run_grid, run_info, save_markdown, test_subset)

RESULTS = "anogan_search.jsonl"
TABLE = "anogan_search.md"
KEYS = ("digit", "seed", "variant")
PROTOCOL = "one-normal"
GAN_DIR = pathlib.Path(__file__).resolve().parents[1] / "runs" / "anogan_search"  # /runs/ is git-ignored


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=[0, 1], help="normal digits")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (split, init, batches, search starts)")
    ap.add_argument("--variants", nargs="+", default=None,
                    help="subset of anogan_k200 anogan_k500 anogan_k500_r{R} anogan_k500_ex fanogan (default: all)")
    # GAN + encoder: the defaults of mnist_anogan_fanogan.py.
    ap.add_argument("--steps", type=int, default=1000, help="WGAN-GP generator steps (n_critic 5)")
    ap.add_argument("--encoder-steps", type=int, default=1000, help="izif encoder steps")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--net", default="thesis", choices=["thesis", "dcgan"])
    ap.add_argument("--z-dim", type=int, default=None, help="default: 128 thesis, 100 dcgan")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--encoder-lr", type=float, default=5e-4)
    ap.add_argument("--kappa", type=float, default=1.0)
    # The search (score-only).
    ap.add_argument("--short-steps", type=int, default=200, help="search steps of the old grid")
    ap.add_argument("--search-steps", type=int, default=500, help="paper's search steps")
    ap.add_argument("--restarts", type=int, default=4, help="R of the restarts variant")
    ap.add_argument("--search-lr", type=float, default=DEFAULT_LEARNING_RATE)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--test-limit", type=int, default=500, help="seeded test subset (0 = all 10,000)")
    ap.add_argument("--val-limit", type=int, default=200, help="seeded normal-validation subset (0 = all)")
    ap.add_argument("--test-seed", type=int, default=0, help="seed of both subsets")
    ap.add_argument("--score-batch-size", type=int, default=64)
    ap.add_argument("--gan-dir", default=str(GAN_DIR), help="saved GAN + encoder per (digit, seed, settings)")
    ap.add_argument("--out", default=str(RESULTS_DIR))
    add_cache_arg(ap, None)
    ap.add_argument("--table", action="store_true", help="only rewrite and print <out>/anogan_search.md")
    return ap.parse_args(argv)


def variants(args) -> dict[str, dict]:
    """name -> search settings (steps, restarts, start); 'fanogan' has none."""
    k, s = args.search_steps, args.short_steps
    all_ = {f"anogan_k{s}": dict(steps=s, restarts=1, start="prior"),
            f"anogan_k{k}": dict(steps=k, restarts=1, start="prior"),
            f"anogan_k{k}_r{args.restarts}": dict(steps=k, restarts=args.restarts, start="prior"),
            f"anogan_k{k}_ex": dict(steps=k, restarts=1, start="E(x)"),
            "fanogan": dict(start="none")}
    chosen = args.variants or list(all_)
    unknown = set(chosen) - set(all_)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(all_)}")
    return {v: all_[v] for v in chosen}


def fit_gan(split, digit: int, seed: int, args, log=sys.stderr) -> tuple[FAnoGAN, float]:
    """The fitted f-AnoGAN detector (GAN + izif encoder) of (digit, seed), loaded when saved."""
    z_dim = args.z_dim or (128 if args.net == "thesis" else 100)
    fields = dict(gan_loss="wgan-gp", learning_rate=args.lr, net=args.net, z_dim=z_dim, width=args.width,
                  critic_norm="layer", steps=args.steps, batch_size=args.batch_size, seed=seed,
                  encoder_strategy="izif", encoder_steps=args.encoder_steps, encoder_learning_rate=args.encoder_lr,
                  kappa=args.kappa, progress=False, score_batch_size=args.score_batch_size)
    # The directory name holds every training setting: another setting never loads this GAN.
    path = pathlib.Path(args.gan_dir) / (f"d{digit}_s{seed}_{args.net}_w{args.width}_z{z_dim}_g{args.steps}"
                                         f"_e{args.encoder_steps}_lr{args.lr:g}_elr{args.encoder_lr:g}_k{args.kappa:g}")
    if (path / "detector").exists():
        print(f"  reusing GAN + encoder {path}", file=log, flush=True)
        return load(path / "detector"), 0.0
    t0 = time.perf_counter()
    # GAN phase then encoder phase (as mnist_anogan_fanogan.py, which trains the GAN apart
    # only to time it); 8 validation images: fit() wants some, the real threshold is set later.
    fan = FAnoGAN(**fields).fit(split.x_train, split.x_val[:8])
    t_fit = time.perf_counter() - t0
    fan.save(path / "detector", overwrite=True)
    print(f"  WGAN-GP {args.steps} + izif {args.encoder_steps} steps: {t_fit:.0f}s -> {path}", file=log, flush=True)
    return fan, t_fit


def search_scores(fan: FAnoGAN, x: np.ndarray, spec: dict, args, seed: int) -> np.ndarray:
    """AnoGAN final-loss scores of x (already in the model's range), in fixed-size batches."""
    nets = fan.scoring_nets()
    key = jax.random.PRNGKey(seed + 7)  # AnoGAN._score_batch's key: same starts as the detector
    bs, out = args.score_batch_size, []
    for off in range(0, len(x), bs):
        xb = x[off:off + bs]
        n = len(xb)
        # Pad the last batch to the full size: one compiled shape per variant (no extra
        # compile inside the timed loop); padded rows are dropped.
        xb = np.concatenate([xb, np.repeat(xb[-1:], bs - n, axis=0)]) if n < bs else xb
        z0 = np.asarray(nets["encoder"](xb))[:, None] if spec["start"] == "E(x)" else None
        r = search_latent(nets["generator"], nets["features"], xb, key, steps=spec["steps"], lam=args.lam,
                          learning_rate=args.search_lr, restarts=spec["restarts"], prior=fan.config.prior,
                          z_init=z0, index_offset=off)
        out.append(np.asarray(r.score)[:n])
    return np.concatenate(out)


_GANS: dict = {}  # (digit, seed) -> (split, fan, t_fit): one GAN shared by the variants of a cell


def run_one(mnist, digit: int, seed: int, name: str, spec: dict, args, test_idx, log=sys.stderr) -> dict:
    if (digit, seed) not in _GANS:
        _GANS.clear()
        split = data.one_class_split(mnist, digit, PROTOCOL, val_fraction=0.1, seed=seed)
        print(f"[{now()}] digit {digit} seed {seed}", file=log, flush=True)
        _GANS[(digit, seed)] = (split, *fit_gan(split, digit, seed, args, log))
    split, fan, t_fit = _GANS[(digit, seed)]
    val_idx = test_subset(len(split.x_val), args.val_limit, args.test_seed)
    x_val, x_test, y_test = split.x_val[val_idx], split.x_test[test_idx], split.y_test[test_idx]
    if name == "fanogan":
        score = lambda x: np.asarray(fan.score_samples(x))  # noqa: E731
    else:
        # uint8 -> the generator's range, as score_samples does; compile outside the timing.
        score = lambda x: search_scores(fan, fan._prepare(x, "x", None), spec, args, seed)  # noqa: E731
        search_scores(fan, fan._prepare(x_val[:1], "x", None), dict(spec, steps=1), args, seed)
    t0 = time.perf_counter()
    s_val, s_test = score(x_val), score(x_test)
    t_score = time.perf_counter() - t0
    threshold = threshold_from_normal(s_val, 95.0)
    res = evaluate(y_test, s_test, threshold)
    n = len(x_val) + len(x_test)
    row = dict(experiment="anogan_search", dataset="mnist", protocol=PROTOCOL, digit=digit, seed=seed, variant=name,
               search=spec, **{k: float(v) for k, v in res.items()}, n_val=len(x_val), n_test=len(x_test),
               n_test_anomalous=int(y_test.sum()), score_s=round(t_score, 2),
               score_s_per_1000=round(1000 * t_score / n, 2), gan_fit_s=round(t_fit, 2),
               threshold_rule=f"95th percentile of the scores of {len(x_val)} normal validation images "
                              f"(seeded subset, default_rng({args.test_seed}))",
               test_subset=f"{len(x_test)} test images, seeded subset default_rng({args.test_seed})",
               hparams=dict(fan.config.to_dict(), lam=args.lam, search_lr=args.search_lr,
                            test_limit=args.test_limit, val_limit=args.val_limit, test_seed=args.test_seed),
               **run_info())
    print(f"  {name}: {metrics_summary(res)} ({t_score:.0f}s for {n} images = {row['score_s_per_1000']:.0f} s/1000)",
          file=log, flush=True)
    return row


def _secs(rows: list[dict]) -> str:
    s = float(np.mean([r["score_s_per_1000"] for r in rows]))
    return f"{s:.1f}" if s < 10 else f"{s:.0f}"  # f-AnoGAN: well under a second


def write_table(out: pathlib.Path) -> str:
    rows = load_rows(out / RESULTS)
    # AnoGAN variants by cost (steps, restarts, start), f-AnoGAN last.
    spec = {r["variant"]: r["search"] for r in rows}
    order = lambda v: (v == "fanogan", spec[v].get("steps", 0), spec[v].get("restarts", 0), spec[v]["start"] != "prior")  # noqa: E731
    lines = ["# AnoGAN: search length, restarts and the encoder start (`anogan_search.py`)", ""]
    if rows:
        r0 = rows[0]["hparams"]
        lines += [f"MNIST one-normal, digits {sorted({r['digit'] for r in rows})}, seeds "
                  f"{sorted({r['seed'] for r in rows})}; one WGAN-GP + izif encoder per (digit, seed) "
                  f"({r0['net']} nets, width {r0['width']}, {r0['steps']} GAN steps, {r0['encoder_steps']} "
                  f"encoder steps); every variant scores the same {rows[0]['n_test']} seeded test images and takes "
                  f"its threshold (95th percentile) from the same {rows[0]['n_val']} seeded normal validation images. "
                  f"Search: Adam lr {r0['search_lr']:g}, lambda {r0['lam']:g}. "
                  f"s/1000: seconds of scoring per 1000 images (validation + test), {rows[0]['backend']}, "
                  f"{rows[0]['machine']} (shared).", ""]
    lines += ["## Mean over digits and seeds", "",
              "| variant | K | R | start | runs | AUROC | AUPRC | F1 @ val threshold | s/1000 images |",
              "|---|---|---|---|---|---|---|---|---|"]
    by_variant = group_by(rows, "variant")
    for (v,), rs in sorted(by_variant.items(), key=lambda kv: order(kv[0][0])):
        sp = rs[0]["search"]
        lines.append(f"| {v} | {sp.get('steps', '')} | {sp.get('restarts', '')} | {sp['start']} | {len(rs)} | "
                     f"{mean_std([r['auroc'] for r in rs])} | {mean_std([r['auprc'] for r in rs])} | "
                     f"{mean_std([r['f1'] for r in rs])} | {_secs(rs)} |")
    lines += ["", "## Per digit (mean over seeds)", "",
              "| digit | variant | seeds | AUROC | AUPRC | F1 @ val threshold | s/1000 images |",
              "|---|---|---|---|---|---|---|"]
    for (d, v), rs in sorted(group_by(rows, "digit", "variant").items(), key=lambda kv: (kv[0][0], order(kv[0][1]))):
        lines.append(f"| {d} | {v} | {len(rs)} | {mean_std([r['auroc'] for r in rs])} | "
                     f"{mean_std([r['auprc'] for r in rs])} | {mean_std([r['f1'] for r in rs])} | "
                     f"{_secs(rs)} |")
    return save_markdown(out / TABLE, lines + [""])


def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    if args.table:
        print(write_table(out))
        return
    enable_compile_cache(args.cache_dir)
    specs = variants(args)
    mnist = data.mnist()
    test_idx = test_subset(len(mnist.x_test), args.test_limit, args.test_seed)
    print(f"gadjax experiment: AnoGAN search variants, digits {args.digits}, seeds {args.seeds}, "
          f"variants {list(specs)}, {jax.default_backend()}", file=sys.stderr, flush=True)
    run_grid(out / RESULTS, KEYS, itertools.product(args.seeds, args.digits, specs),
             lambda seed, digit, v: run_one(mnist, digit, seed, v, specs[v], args, test_idx))
    print(write_table(out))


if __name__ == "__main__":
    main()
