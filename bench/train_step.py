"""Time the WGAN-GP train step (n_critic critic updates with gradient penalty + 1 generator update).

    python bench/train_step.py --net thesis --width 16 64 --batch 64 --n-critic 5 --unroll true 1
    python bench/train_step.py --width 16 --data-parallel --devices 2   # CPU: 2 fake devices

images/s = n_critic * batch / step time (every critic update consumes one real batch).
Each configuration is lowered and compiled ahead of time (``trainer.step.lower(...).compile()``,
timed separately and also the source of XLA's cost analysis, i.e. model FLOPs per step),
run once (first run), ``--warmup`` more times, then ``--repeats`` times ``--steps``
consecutive steps, each repeat ended by ``jax.block_until_ready``; the table gives the
median (min-max) per-step time over repeats.  Random data and untrained nets: the time does
not depend on the values.

``--unroll`` compares loop forms of the n_critic loop: ``true`` (fully unrolled), an integer
(``1`` = rolled ``lax.scan``) or ``default`` (``default_unroll()``: true on CPU, 1 elsewhere).
``--data-parallel`` times each configuration both on one device and with ``parallel=True``
(batch sharded over all local devices).  ``--devices N`` on CPU sets
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts; such fake devices
share the same cores, so on CPU this measures the partitioning overhead, not a speed-up.

XLA's cost analysis counts a while-loop body once, so the rolled program (unroll < n_critic)
under-reports its FLOPs; GFLOP/s uses the fully unrolled program's count where this run has
measured one for the same net/width/batch/devices (marked *), the program's own otherwise.
A data-parallel program's cost analysis is per device; the table multiplies it by the device
count, so "XLA GFLOP / step" is always the whole global-batch step.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=["thesis", "dcgan"], default="thesis")
    ap.add_argument("--width", type=int, nargs="+", default=[64], help="ngf = ndf; several to compare")
    ap.add_argument("--batch", type=int, default=64, help="images per critic update (global batch)")
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--image-size", type=int, default=28, help="H = W (the thesis nets need 28)")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--z-dim", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5, help="consecutive steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats (median, min, max reported)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps after the first run")
    ap.add_argument("--unroll", nargs="+", default=["default"],
                    help="n_critic loop forms to compare: 'true' (full), integers (1 = rolled scan), 'default'")
    ap.add_argument("--data-parallel", action="store_true",
                    help="compare one device against parallel=True over all local devices")
    ap.add_argument("--devices", type=int, default=None,
                    help="CPU only: fake host devices (sets XLA_FLAGS before importing jax)")
    args = ap.parse_args(argv)
    if args.net == "thesis" and args.image_size != 28:
        ap.error("the thesis nets are built for 28x28 images; use --net dcgan for --image-size")
    return args


def parse_unroll(text: str):
    t = text.lower()
    if t == "default":
        return None
    if t in ("true", "full"):
        return True
    return int(t)


def unroll_name(u, n_critic: int, resolved) -> str:
    if u is None:
        return f"default ({unroll_name(resolved, n_critic, resolved)})"
    if u is True or (not isinstance(u, bool) and u >= n_critic):
        return "unrolled (full)"
    return "rolled scan" if u == 1 else f"scan unroll={u}"


def is_full_unroll(u, n_critic: int) -> bool:
    return u is True or (not isinstance(u, bool) and u >= n_critic)


def xla_flops(compiled) -> float | None:
    """FLOPs from ``compiled.cost_analysis()``: a dict, a list of dicts (one per
    computation/partition, older JAX), or None when the backend gives none."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if cost is None:
        return None
    if isinstance(cost, dict):
        cost = [cost]
    flops = [c.get("flops") for c in cost if isinstance(c, dict) and c.get("flops") is not None]
    return float(sum(flops)) if flops else None


def bench_one(args, width: int, unroll, parallel: bool):
    import jax
    import numpy as np

    from harness import summarize, time_fn
    from gadjax.nets import NetSpec
    from gadjax.train.gan import GANConfig, GANTrainer

    shape = (args.image_size, args.image_size, args.channels)
    spec = NetSpec(args.net, shape, z_dim=args.z_dim, width=width)
    trainer = GANTrainer(GANConfig(nets=spec, loss="wgan-gp", n_critic=args.n_critic),
                         parallel=parallel, unroll=unroll)
    lo, hi = trainer.value_range
    real = np.random.default_rng(0).uniform(lo, hi, (args.n_critic, args.batch, *shape)).astype(np.float32)
    batches = trainer.put_batches(real)
    state = jax.block_until_ready(trainer.init(jax.random.PRNGKey(0)))

    t0 = time.perf_counter()
    lowered = trainer.step.lower(state, batches)
    t_lower = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled = lowered.compile()
    t_compile = time.perf_counter() - t0
    flops = xla_flops(compiled)
    n_dev = trainer.parallel.size if trainer.parallel else 1
    if flops is not None:
        flops *= n_dev  # an SPMD program's cost analysis is per device: report the whole step

    holder = {"state": state}

    def one_step():
        holder["state"], metrics = compiled(holder["state"], batches)  # state is donated
        return metrics

    t0 = time.perf_counter()
    metrics = jax.block_until_ready(one_step())
    t_first = time.perf_counter() - t0
    if not bool(metrics["finite"]):
        print(f"warning: non-finite values after the first step (width {width})", file=sys.stderr)

    def run_steps():
        out = None
        for _ in range(args.steps):
            out = one_step()
        return holder["state"], out

    for _ in range(args.warmup):
        jax.block_until_ready(one_step())
    times = time_fn(run_steps, warmup=0, repeats=args.repeats)
    per_step = [t / args.steps for t in times]
    med, lo_t, hi_t = summarize(per_step)
    return dict(width=width, unroll=unroll, resolved=trainer.unroll,
                devices=n_dev,
                lower=t_lower, compile=t_compile, first=t_first, flops=flops,
                med=med, min=lo_t, max=hi_t)


def main(argv=None):
    args = parse_args(argv)
    if args.devices:
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flag).strip()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

    import jax

    from harness import machine_info

    if args.devices and jax.default_backend() != "cpu":
        print("note: --devices only affects the CPU backend", file=sys.stderr)
    unrolls = [parse_unroll(u) for u in args.unroll]
    modes = [False, True] if args.data_parallel else [False]
    if args.data_parallel and jax.local_device_count() == 1:
        print("note: only one local device: the parallel=True rows run on one device (use --devices N on CPU)",
              file=sys.stderr)

    print(machine_info())
    print(f"\nWGAN-GP train step: net {args.net} {args.image_size}x{args.image_size}x{args.channels}, "
          f"z_dim {args.z_dim}, batch {args.batch}, n_critic {args.n_critic}; {args.repeats} repeats x "
          f"{args.steps} steps after {args.warmup} warm-up step(s); per-step median (min-max)\n", flush=True)

    rows = []
    for width in args.width:
        for parallel in modes:
            for unroll in unrolls:
                rows.append(bench_one(args, width, unroll, parallel))
                r = rows[-1]
                print(f"  done: width {width} devices {r['devices']} unroll {unroll_name(unroll, args.n_critic, r['resolved'])}"
                      f" -> {1e3 * r['med']:.1f} ms/step", file=sys.stderr, flush=True)

    # Model FLOPs: the fully unrolled program's count (while-loop bodies are counted once).
    full_flops = {(r["width"], r["devices"]): r["flops"] for r in rows
                  if is_full_unroll(r["resolved"], args.n_critic) and r["flops"]}
    imgs = args.n_critic * args.batch
    print("| net | width | devices | n_critic loop | lower s | compile s | first run s | XLA GFLOP / step "
          "| ms / step median (min-max) | images / s | GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        own = r["flops"]
        model = full_flops.get((r["width"], r["devices"]), own)
        mark = "*" if (model is not None and own != model) else ""
        gflop = "n/a" if own is None else f"{own / 1e9:.2f}"
        gflops = "n/a" if model is None else f"{model / 1e9 / r['med']:.1f}{mark}"
        print(f"| {args.net} | {r['width']} | {r['devices']} | {unroll_name(r['unroll'], args.n_critic, r['resolved'])} "
              f"| {r['lower']:.2f} | {r['compile']:.2f} | {r['first']:.3f} | {gflop} "
              f"| {1e3 * r['med']:.1f} ({1e3 * r['min']:.1f}-{1e3 * r['max']:.1f}) | {imgs / r['med']:.0f} "
              f"| {gflops} |")

    # Ratios against the first row of each (width, devices) group and the single-device row.
    base = {}
    for r in rows:
        base.setdefault((r["width"], r["devices"]), r)
    lines, par_lines = [], []
    for r in rows:
        b = base[(r["width"], r["devices"])]
        if r is not b:
            lines.append(f"width {r['width']}, {r['devices']} device(s): "
                         f"{unroll_name(r['unroll'], args.n_critic, r['resolved'])} takes {r['med'] / b['med']:.2f}x "
                         f"the time of {unroll_name(b['unroll'], args.n_critic, b['resolved'])}")
        if r["devices"] > 1:
            single = next((s for s in rows if s["width"] == r["width"] and s["devices"] == 1
                           and s["unroll"] == r["unroll"]), None)
            if single:
                par_lines.append(f"width {r['width']}, {unroll_name(r['unroll'], args.n_critic, r['resolved'])}: "
                             f"parallel over {r['devices']} devices takes {r['med'] / single['med']:.2f}x the "
                             f"single-device time")
    if lines or par_lines:
        print("\n" + "\n".join(lines + par_lines))


if __name__ == "__main__":
    main()
