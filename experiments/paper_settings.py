"""Every "beside the papers" table at the papers' own lengths: one command per table, for
a machine with a GPU (the CPU records in results/ are short runs).

    python experiments/paper_settings.py --list                 # the tables and their commands
    python experiments/paper_settings.py --estimate             # probe this backend: time per table
    python experiments/paper_settings.py thesis_mnist kdd99     # run tables (all when none named)

Each table is an existing experiment script run with the papers' settings (below) into
``--out`` (default ``results/paper/``, so the short CPU records stay as they are); every
script is resumable, so an interrupted table continues where it stopped.  Before a table
runs, its training programs are probed on the current backend (compile + a few steps and
one scoring batch on random data, ``gadjax.probe.probe_run``) and the estimated
wall time is printed; ``--estimate`` stops there.

Lengths: the papers give epochs; a step here is one update of every player, so steps =
epochs x training images / (batch x batches per step) (WGAN-GP: 5 critic batches per
generator step).  The thesis method trains at least 3,000 generator steps (issue 13; the
thesis' 32 epochs of about 5,400 images at batch 50 would be 692).  MAD-GAN's length is
not in the paper: 20,000 steps.  Not scripted yet: the thesis' MVTec protocol (100
training / 100 test images per category): no experiment script implements it.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import math
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MNIST_CLASS, MNIST_NINE = 5400, 48600  # training images: one digit / nine digits, 10 % held out
DIGITS = [str(d) for d in range(10)]


def steps(epochs: float, n_train: int, batch: int, batches_per_step: int = 1) -> int:
    return math.ceil(epochs * n_train / (batch * batches_per_step))


@dataclasses.dataclass(frozen=True)
class Job:
    """One kind of training run of a table, for the estimate: ``count`` runs of ``model``
    with ``config`` on samples of ``shape``, each scoring ``n_score`` samples."""

    model: str
    config: dict
    shape: tuple
    count: int
    n_score: int
    dataset: str = "mnist"


@dataclasses.dataclass(frozen=True)
class Table:
    commands: tuple  # ((script, argv), ...) run in order
    jobs: tuple
    reading: str


THESIS = dict(width=64, batch_size=50, learning_rate=1e-4, steps=3000)
EGBAD = dict(width=64, batch_size=100, learning_rate=1e-5, steps=steps(100, MNIST_NINE, 100))
GANOMALY = dict(width=64, batch_size=64, steps=steps(15, MNIST_NINE, 64))
KDD = dict(batch_size=50, learning_rate=1e-5, steps=steps(100, 30000, 50))


def tables(out: str, runs: str) -> dict[str, Table]:
    t, e, g, k = THESIS, EGBAD, GANOMALY, KDD
    return {
        "thesis_mnist": Table((("one_class", (
            "--models", "joint_encoder", "fanogan", "anogan", "--datasets", "mnist", "--protocols", "one-normal",
            "--classes", *DIGITS, "--seeds", "0", "1", "--steps", str(t["steps"]), "--width", "64",
            "--batch-size", "50", "--search-steps", "500", "--set", "joint_encoder.learning_rate=1e-4",
            "--set", "fanogan.learning_rate=1e-4", "--set", "anogan.learning_rate=1e-4",
            "--runs", f"{runs}/one_class", "--out", out, "--no-estimate")),),
            (Job("joint_encoder", t, (28, 28, 1), 20, 10700), Job("fanogan", t, (28, 28, 1), 20, 10700),
             Job("anogan", {**t, "search_steps": 500}, (28, 28, 1), 20, 10700)),
            "thesis Table 4-1 (P/R/F1 per digit) and AUROC per term; stacks of 20 models"),
        "contamination": Table((("contamination", (
            "--digits", *DIGITS, "--seeds", "0", "1", "--gammas", "0", "0.02", "0.05", "--steps", str(t["steps"]),
            "--encoder-steps", str(t["steps"]), "--width", "64", "--lr", "1e-4", "--test-limit", "0", "--out", out)),),
            (Job("joint_encoder", t, (28, 28, 1), 60, 10700), Job("fanogan", t, (28, 28, 1), 60, 10700)),
            "f-AnoGAN vs the joint encoder, gamma 0 / 2 / 5 %"),
        "egbad_cbigan": Table(tuple((script, (
            "--digits", *DIGITS, "--seeds", "0", "1", "2", "--steps", str(e["steps"]), "--width", "64",
            "--batch-size", "100", "--lr", "1e-5", "--test-limit", "0", "--val-limit", "0", "--out", out))
            for script in ("egbad_mnist", "cbigan_mnist")),
            (Job("egbad", e, (28, 28, 1), 30, 15400), Job("cbigan", e, (28, 28, 1), 30, 15400)),
            "EGBAD and CBiGAN, one-anomalous, 100 epochs at lr 1e-5"),
        "ganomaly": Table((("ganomaly_mnist", (
            "--models", "ganomaly", "skip_ganomaly", "--digits", *DIGITS, "--seeds", "0", "1", "2",
            "--steps", str(g["steps"]), "--width", "64", "--test-limit", "0", "--val-limit", "0", "--out", out)),),
            (Job("ganomaly", g, (28, 28, 1), 30, 15400), Job("skip_ganomaly", g, (28, 28, 1), 30, 15400)),
            "GANomaly's protocol (one digit anomalous, 3 seeds, 15 epochs) and Skip-GANomaly"),
        "anogan_search": Table((("anogan_search", (
            "--digits", *DIGITS, "--seeds", "0", "1", "--steps", str(t["steps"]), "--encoder-steps", str(t["steps"]),
            "--width", "64", "--lr", "1e-4", "--encoder-lr", "1e-4", "--test-limit", "0", "--val-limit", "0",
            "--out", out)),),
            (Job("anogan", {**t, "search_steps": 500}, (28, 28, 1), 20, 10700),
             Job("anogan", {**t, "search_steps": 500, "restarts": 4}, (28, 28, 1), 20, 10700)),
            "AnoGAN at 500 search steps, restarts and z_init = E(x) on one GAN, every test image"),
        "kdd99": Table((("tabular", (
            "--datasets", "kddcup99", "--models", "egbad", "alad", "--seeds", "0", "1", "2",
            "--steps", str(k["steps"]), "--batch-size", "50", "--bigan-lr", "1e-5", "--out", out)),),
            (Job("egbad", k, (118,), 3, 12000, "kddcup99"), Job("alad", k, (118,), 3, 12000, "kddcup99")),
            "EGBAD / ALAD under the DAGMM protocol, 100 epochs at lr 1e-5"),
        "madgan_kdd": Table((("madgan_kdd", (
            "--seeds", "0", "1", "2", "--steps", "20000", "--stride", "10", "--search-steps", "500",
            "--test-limit", "0", "--runs", f"{runs}/madgan_kdd", "--out", out)),),
            (Job("madgan", {"steps": 20000, "stride": 10}, (30, 118), 3, 12400, "kddcup99"),),
            "MAD-GAN on KDDCup99 windows, best-F1 threshold (the paper's) and the normal-data one"),
    }


# Thesis Table 4-1 (../shared/reference/thesis_and_berg.md): MNIST one-normal, per normal digit, %.
THESIS_4_1 = {"precision": [99.94, 99.95, 99.79, 99.84, 99.93, 99.89, 99.86, 99.93, 99.93, 99.83],
              "recall": [99.18, 95.11, 97.02, 98.34, 99.09, 97.51, 98.16, 95.74, 98.73, 97.66],
              "f1": [99.56, 97.47, 98.39, 99.09, 99.51, 98.68, 99.00, 97.79, 99.33, 98.73]}


def write_thesis_table(out: pathlib.Path) -> str | None:
    """``thesis_table_4_1.md``: the joint encoder's precision / recall / F1 per normal digit
    (mean over seeds, %) beside thesis Table 4-1, and its AUROC, from the thesis_mnist rows."""
    import numpy as np
    from common import group_by, load_rows, save_markdown
    rows = [r for r in load_rows(out / "one_class.jsonl") if r["model"] == "joint_encoder"
            and r["dataset"] == "mnist" and r["protocol"] == "one-normal"]
    if not rows:
        return None
    by_digit = group_by(rows, "normal_class")
    digits = sorted(d for (d,) in by_digit)
    seeds = sorted({r["seed"] for r in rows})
    cfg = rows[0]["config"]["config"]
    lines = ["# Thesis Table 4-1 beside the joint encoder (`experiments/paper_settings.py thesis_mnist`)", "",
             f"MNIST one-normal; ours: mean over seeds {seeds}, {cfg['steps']} generator steps, width {cfg['width']}, "
             f"batch {cfg['batch_size']}, threshold at the {cfg['threshold_percentile']:g}th percentile of normal "
             "validation scores (the thesis does not say how it chose its threshold). Percent.", "",
             "| | " + " | ".join(str(d) for d in digits) + " | mean |", "|---" * (len(digits) + 2) + "|"]
    for metric in ("precision", "recall", "f1"):
        thesis = [THESIS_4_1[metric][d] for d in digits]
        ours = [100 * np.mean([r[metric] for r in by_digit[(d,)]]) for d in digits]
        lines.append(f"| thesis {metric} | " + " | ".join(f"{v:.2f}" for v in thesis) + f" | {np.mean(thesis):.2f} |")
        lines.append(f"| ours {metric} | " + " | ".join(f"{v:.2f}" for v in ours) + f" | {np.mean(ours):.2f} |")
    auroc = [np.mean([r["auroc"] for r in by_digit[(d,)]]) for d in digits]
    lines.append("| ours AUROC | " + " | ".join(f"{v:.3f}" for v in auroc) + f" | {np.mean(auroc):.3f} |")
    return save_markdown(out / "thesis_table_4_1.md", lines)


def estimate(table: Table) -> float:
    """Seconds on this backend: each job's program probed once, times its run count (the
    scripts run one run after another; thesis_mnist's stacks are estimated as lone runs,
    an upper bound: ``one_class.py`` prints its stacked estimate itself)."""
    from gadjax.models import DETECTORS
    from gadjax.probe import estimate_seconds, probe_run
    from gadjax.runs import DataSpec, RunSpec
    total = 0.0
    for job in table.jobs:
        config = DETECTORS[job.model].config_class().replace(**job.config)
        spec = RunSpec(job.model, config, DataSpec(dataset=job.dataset), progress=False)
        seconds = estimate_seconds(probe_run(spec, job.shape), job.n_score) * job.count
        print(f"  {job.model} x {job.count}: {seconds / 3600:.2f} h", flush=True)
        total += seconds
    return total


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tables", nargs="*", help="tables to run (default: all)")
    ap.add_argument("--out", default=str(HERE / "results" / "paper"))
    ap.add_argument("--runs", default="runs/paper", help="run directories of the scripts that keep them")
    ap.add_argument("--list", action="store_true", help="print every table's command and stop")
    ap.add_argument("--estimate", action="store_true", help="print the estimated time per table and stop")
    ap.add_argument("--no-estimate", action="store_true")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    every = tables(args.out, args.runs)
    unknown = sorted(set(args.tables) - set(every))
    if unknown:
        raise SystemExit(f"paper_settings.py: unknown table(s) {unknown}; known: {sorted(every)}")
    chosen = {name: every[name] for name in (args.tables or every)}
    for name, table in chosen.items():
        print(f"{name}: {table.reading}", flush=True)
        for script, argv in table.commands:
            print(f"  python experiments/{script}.py {' '.join(argv)}", flush=True)
    if args.list:
        return
    if not args.no_estimate:
        import jax
        grand = 0.0
        for name, table in chosen.items():
            print(f"estimate for {name} on {jax.default_backend()} ({jax.device_count()} device(s)):", flush=True)
            seconds = estimate(table)
            print(f"  {name}: {seconds / 3600:.2f} h", flush=True)
            grand += seconds
        print(f"estimated total: {grand / 3600:.2f} h", flush=True)
        if args.estimate:
            return
    for name, table in chosen.items():
        print(f"== {name}", flush=True)
        for script, argv in table.commands:
            importlib.import_module(script).main(list(argv))
        if name == "thesis_mnist":
            print(write_thesis_table(pathlib.Path(args.out)))


if __name__ == "__main__":
    main()
