"""One-class grid: every image detector x dataset x protocol x class x seed.

    # the full table of issue #6 (MNIST and Fashion-MNIST, both protocols, all classes, 3 seeds):
    python experiments/one_class.py --steps 2000 --width 64
    # a reduced CPU budget (what experiments/results/one_class.md records):
    python experiments/one_class.py --models fanogan ganomaly alad --datasets mnist --seeds 0 \
        --steps 300 --width 16 --test-limit 1000
    python experiments/one_class.py --table        # rewrite results/one_class.md only

All classes x seeds of one (model, dataset, protocol) train as ONE stacked program
(``gadjax.stack_runs``: ``gadjax train --normal-class ... --seeds ...``), in groups of
the largest stack that fits the device's memory; each model still gets its own run
directory (``<runs>/<dataset>/<protocol>/<model>/stack_c<classes>_s<seeds>/class<c>_seed<s>``)
and its own row, computed exactly as a lone run (same split, batches, noise, threshold).
``--sequential`` trains the runs one after another instead (``gadjax.runs.train_run``).
Checkpointed either way: an interrupted grid resumes, a finished stack is not trained
again.  Before anything runs, each model's stack is probed (compile + a few steps and
one scoring batch on random data) and the estimated wall time of the whole grid on the
current backend is printed (``--estimate`` stops there).  AnoGAN and f-AnoGAN share one
GAN per cell (``reuse_stack_gan`` / ``reuse_gan``): the same spec and seed would train
the same weights twice, and one GAN makes the two scorers directly comparable.

Protocols (``gadjax.data.PROTOCOLS``):
  * **one-normal**: class c is normal, the nine others anomalous (Schlegl et al., Berg
    et al., ADGAN/OCGAN);
  * **one-anomalous**: class c is the anomaly, the nine others normal (GANomaly, EGBAD).
Training uses the normal training images of the official training split minus a seeded
10 % held out as normal validation images; the threshold is the 95th percentile of their
scores (never test data).  Test: the official test split (``--test-limit`` draws a seeded
subset, the same for every run of a seed).  AUROC is the headline; AUPRC and F1 at the
normal-data threshold are recorded too.

Settings: every detector runs its paper's config except for ``--steps``, ``--width``,
``--batch-size``, the seed and the overrides in ``SETTINGS`` (or ``--set MODEL.FIELD=VALUE``):
EGBAD's and CBiGAN's paper rate (Adam 1e-5) is meant for 100 epochs at batch 100 and barely
moves the nets in a few hundred steps, so the grid trains them at 2e-4.  Each row records the
effective config of its run (``config``: model, full detector config, data).
"""
from __future__ import annotations

import argparse
import ast
import itertools
import pathlib
import time

import numpy as np
from common import group_by, load_rows, now, run_grid, save_markdown

from gadjax.models import DETECTORS
from gadjax.runs import DataSpec, RunSpec, evaluate_run, reuse_gan, train_run
from gadjax.probe import estimate_seconds, probe_stack
from gadjax.stack_runs import StackSpec, evaluate_stack_run, reuse_stack_gan, stack_groups, train_stack_run
from gadjax.viz import save_bars, save_value_table

HERE = pathlib.Path(__file__).resolve().parent
IMAGE_MODELS = ("anogan", "fanogan", "egbad", "alad", "ganomaly", "skip_ganomaly", "cbigan", "dedgan",
                "joint_encoder", "ensemble")
RESULTS, TABLE = "one_class.jsonl", "one_class.md"
SAME_GAN = ("anogan", "fanogan")
KEYS = ("dataset", "protocol", "model", "normal_class", "seed")
# Per-model departures from the paper configs (see the module docstring).
SETTINGS = {"egbad": {"learning_rate": 2e-4}, "cbigan": {"learning_rate": 2e-4}}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(IMAGE_MODELS), choices=IMAGE_MODELS)
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    ap.add_argument("--protocols", nargs="+", default=["one-normal", "one-anomalous"])
    ap.add_argument("--classes", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--ensemble-base", default="alad", help="base detector of the 'ensemble' model")
    ap.add_argument("--members", type=int, default=3, help="ensemble size")
    ap.add_argument("--search-steps", type=int, default=200, help="AnoGAN latent-search steps")
    ap.add_argument("--set", action="append", default=[], metavar="MODEL.FIELD=VALUE",
                    help="override a config field of one model (repeatable), e.g. egbad.learning_rate=1e-4")
    ap.add_argument("--test-limit", type=int, default=None, help="score a seeded subset of the test set")
    ap.add_argument("--runs", default="runs/one_class", help="parent of the per-run directories")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--sequential", action="store_true", help="one run after another instead of stacks")
    ap.add_argument("--estimate", action="store_true", help="print the estimated wall time and stop")
    ap.add_argument("--no-estimate", action="store_true", help="skip the probe that estimates the wall time")
    return ap.parse_args(argv)


def settings(args) -> dict[str, dict]:
    """``SETTINGS`` updated by ``--set MODEL.FIELD=VALUE`` (Python literals, else strings)."""
    out = {m: dict(v) for m, v in SETTINGS.items()}
    for item in args.set:
        key, sep, value = item.partition("=")
        model, dot, field = key.partition(".")
        if not (sep and dot):
            raise SystemExit(f"--set expects MODEL.FIELD=VALUE, got {item!r}")
        try:
            out.setdefault(model, {})[field] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out.setdefault(model, {})[field] = value
    return out


def spec_for(model, dataset, protocol, cls, seed, args) -> RunSpec:
    config = DETECTORS[model].config_class()
    if model == "ensemble":
        config = config.replace(base=args.ensemble_base, members=args.members)
    common = dict(steps=args.steps, width=args.width, batch_size=args.batch_size, seed=seed)
    if model == "anogan":
        common["search_steps"] = args.search_steps
    base = args.ensemble_base if model == "ensemble" else model
    config = config.replace(**common, **settings(args).get(base, {}))
    return RunSpec(model, config, DataSpec(dataset=dataset, normal_class=cls, protocol=protocol),
                   progress=False, sample_every=10**9, log_every=max(args.steps // 10, 1))


def run_one(model, dataset, protocol, cls, seed, args) -> dict:
    spec = spec_for(model, dataset, protocol, cls, seed, args)
    name = f"ensemble_{args.ensemble_base}" if model == "ensemble" else model
    out = pathlib.Path(args.runs) / dataset / protocol / name / f"class{cls}_seed{seed}"
    t0 = time.perf_counter()
    if model in SAME_GAN:  # AnoGAN and f-AnoGAN score one GAN: train it once per cell
        for other in set(SAME_GAN) - {model}:
            reuse_gan(out.parent.parent / other / out.name, out, spec)
    detector = train_run(spec, out)  # resumes / skips the training of a finished run
    train_s = time.perf_counter() - t0
    result = evaluate_run(out, limit=args.test_limit, detector=detector)
    return _row(model, dataset, protocol, spec, result, args, out, train_and_eval_s=round(time.perf_counter() - t0, 1),
                train_s=round(train_s, 1))


def stack_for(model, dataset, protocol, args) -> StackSpec:
    spec = spec_for(model, dataset, protocol, args.classes[0], args.seeds[0], args)
    return StackSpec(model, spec.config, spec.data.replace(normal_class=None), tuple(args.classes), tuple(args.seeds),
                     log_every=spec.log_every, checkpoint_every=max(args.steps // 4, 1), progress=False)


def stack_dir(spec: StackSpec, args) -> pathlib.Path:
    name = f"ensemble_{args.ensemble_base}" if spec.model == "ensemble" else spec.model
    grid = f"stack_c{'-'.join(map(str, spec.normal_classes))}_s{'-'.join(map(str, spec.seeds))}"
    return pathlib.Path(args.runs) / spec.data.dataset / spec.data.protocol / name / grid


def run_stack(dataset, protocol, model, args) -> list[dict]:
    """Every class x seed of one cell, in as few stacks as the device's memory allows."""
    rows = []
    for group in stack_groups(stack_for(model, dataset, protocol, args), (28, 28, 1)):
        out = stack_dir(group, args)
        t0 = time.perf_counter()
        if model in SAME_GAN:  # AnoGAN and f-AnoGAN score one GAN: train it once per cell
            for other in set(SAME_GAN) - {model}:
                reuse_stack_gan(out.parent.parent / other / out.name, out, group)
        train_stack_run(group, out)  # resumes / skips the training of a finished stack
        train_s = time.perf_counter() - t0
        results = evaluate_stack_run(out, limit=args.test_limit)
        wall = time.perf_counter() - t0
        for (name, member), result in zip(group.members(), results):
            rows.append(_row(model, dataset, protocol, member, result, args, out / name,
                             stack=str(out), stack_models=len(results), stack_train_s=round(train_s, 1),
                             stack_train_and_eval_s=round(wall, 1)))
    return rows


def _row(model, dataset, protocol, spec: RunSpec, result: dict, args, run_dir, **timing) -> dict:
    name = f"ensemble_{args.ensemble_base}" if model == "ensemble" else model
    cls, seed = spec.data.normal_class, spec.config.seed
    keep = ("auroc", "auprc", "precision", "recall", "f1", "threshold", "n_test", "n_anomalous")
    return {"dataset": dataset, "protocol": protocol, "model": name, "normal_class": cls, "seed": seed,
            "anomalous": "all other classes" if protocol == "one-normal" else f"class {cls}",
            **{k: result[k] for k in keep}, **{k: v for k, v in result.items() if k.startswith("auroc_")},
            "config": spec.to_dict(), "run_dir": str(run_dir), **timing, "test_limit": args.test_limit,
            "finished": now()}


def estimate(args) -> float:
    """Seconds the grid should take here: each model's stack probed once (the cells of the
    datasets and protocols have the same shapes), scaled to its steps and test sets."""
    n_score = (args.test_limit or 10000) + 700  # test images + about a class's validation images
    cells = len(args.datasets) * len(args.protocols)
    total = 0.0
    for model in args.models:
        groups = stack_groups(stack_for(model, args.datasets[0], args.protocols[0], args), (28, 28, 1))
        skip = ("gan",) if model == "anogan" and "fanogan" in args.models else ()
        for group in groups:
            probe = probe_stack(group, (28, 28, 1))
            seconds = estimate_seconds(probe, n_score, skip) * cells
            steps = ", ".join(f"{k} {v['median_s'] * 1e3:.0f} ms/step" for k, v in probe["phases"].items())
            print(f"estimate: {model}, a stack of {probe['models']} models: {seconds / 60:.1f} min for {cells} "
                  f"cell(s) ({steps}; scoring {probe['score_batch']['median_s'] * 1e3:.0f} ms/batch)", flush=True)
            total += seconds
    return total


def write_table(out: pathlib.Path) -> str:
    rows = load_rows(out / RESULTS)
    lines = ["# One-class grid (`experiments/one_class.py`)", "",
             "Per-class AUROC (mean over the seeds run) and the mean over the classes run. "
             "one-normal: the class is normal, the others anomalous; one-anomalous: the class is the anomaly. "
             "Threshold for F1: 95th percentile of normal validation scores. \"ensemble_X\": a 3-member GAN "
             "ensemble (Han et al. 2021) of detector X, trained for the same number of steps (one random member "
             "pair per step). Test images: the official test set, or a seeded subset of it (same for every run). "
             "lr: the learning rate of every optimiser (\"paper\": each optimiser's paper value).", ""]
    for (dataset, protocol), rs in group_by(rows, "dataset", "protocol").items():
        classes = sorted({r["normal_class"] for r in rs})
        lines += [f"## {dataset}, {protocol}", "",
                  "| model | steps | width | lr | seeds | test images | " + " | ".join(str(c) for c in classes)
                  + " | mean AUROC | mean F1 |", "|---" * (len(classes) + 8) + "|"]
        grid, terms = {}, []  # model -> per-class AUROC (the figure); score-term rows
        for (model,), m in group_by(rs, "model").items():
            by_class = group_by(m, "normal_class")
            per = [np.mean([r["auroc"] for r in by_class[(c,)]]) if (c,) in by_class else np.nan for c in classes]
            grid[model] = per
            cfg, seeds = m[0]["config"], sorted({r["seed"] for r in m})
            cfg = cfg.get("config", cfg)  # rows before the one-config API kept a flat run spec
            base = cfg.get("base_config") or cfg  # an ensemble's training settings are its members'
            lr = base.get("learning_rate", base.get("lr")) or "paper"
            lines.append(f"| {model} | {cfg.get('steps', base['steps'])} | {base['width']} | {lr} | "
                         f"{','.join(map(str, seeds))} | "
                         f"{m[0]['n_test']} | " + " | ".join("" if np.isnan(v) else f"{v:.3f}" for v in per)
                         + f" | {np.nanmean(per):.3f} | {np.mean([r['f1'] for r in m]):.3f} |")
            for term in sorted({k for r in m for k in r if k.startswith("auroc_")}):
                have = [r for r in m if term in r]
                terms.append(f"| {model} | {term[len('auroc_'):]} | {np.mean([r[term] for r in have]):.3f} | "
                             f"{np.mean([r['auroc'] for r in have]):.3f} | {len(have)} |")
        figure = f"one_class_{dataset}_{protocol}.png"
        save_value_table(out / figure, list(grid.values()), list(grid), classes,
                         title=f"AUROC, {dataset}, {protocol} (columns: class)")
        # The bars show at a glance which model wins which class and which fall below chance;
        # the table beside them keeps the exact numbers.
        bars = f"one_class_{dataset}_{protocol}_bars.png"
        save_bars(out / bars, list(grid.values()), list(grid), classes,
                  title=f"AUROC per class, {dataset}, {protocol} (dashed: chance)")
        lines += ["", f"![AUROC per class, bars]({bars})", "", f"![AUROC per class]({figure})", ""]
        if terms:
            lines += ["Each score term alone (mean AUROC over the runs that record it):", "",
                      "| model | term | term AUROC | combined score AUROC | runs |", "|---|---|---|---|---|",
                      *terms, ""]
    return save_markdown(out / TABLE, lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = pathlib.Path(args.out)
    if args.table:
        print(write_table(out))
        return
    if not args.no_estimate and not args.sequential:
        import jax
        seconds = estimate(args)
        print(f"estimated wall time of the grid on {jax.default_backend()} ({jax.device_count()} device(s)): "
              f"{seconds / 3600:.2f} h", flush=True)
        if args.estimate:
            return
    if args.sequential:
        def cell(dataset, protocol, seed, cls, model):
            row = run_one(model, dataset, protocol, cls, seed, args)
            print(f"{dataset} {protocol} class {cls} seed {seed} {model}: AUROC {row['auroc']:.3f} "
                  f"F1 {row['f1']:.3f} ({row['train_and_eval_s']:.0f} s)", flush=True)
            return row

        run_grid(out / RESULTS, KEYS, itertools.product(args.datasets, args.protocols, args.seeds, args.classes,
                                                        args.models), cell)
    else:
        def stacked(dataset, protocol, model):
            rows = run_stack(dataset, protocol, model, args)
            print(f"{dataset} {protocol} {model}: {len(rows)} models, mean AUROC "
                  f"{np.mean([r['auroc'] for r in rows]):.3f} ({rows[-1]['stack_train_and_eval_s']:.0f} s)", flush=True)
            return rows

        run_grid(out / RESULTS, KEYS, itertools.product(args.datasets, args.protocols, args.models), stacked)
    print(write_table(out))


if __name__ == "__main__":
    main()
