"""Model FLOPs utilisation (MFU) of gadjax train steps, from XLA's cost analysis.

    python bench/mfu.py                                   # default configs, any backend
    python bench/mfu.py --configs wgan-thesis --width 64 --batch 64
    python bench/mfu.py --peak-flops 4.945e14             # divide by a given peak (FLOP/s)

For each config the jitted, state-donating train step (``trainer.step``) is lowered and
compiled ahead of time; ``compiled.cost_analysis()['flops']`` is the FLOPs per step.  The
step is then run once, warmed up, and timed ``--repeats`` times over ``--steps``
consecutive steps (``jax.block_until_ready``); MFU = (FLOPs / median step time) / peak.

FLOPs: XLA counts the HLO of the compiled program, so the count includes the gradient
penalty's double backward, optimiser updates and element-wise work, not only the
"model" matmuls/convs.  XLA counts a while-loop body ONCE (checked by ``loop_check``: a
rolled ``lax.scan`` of 5 matmuls counts ~1), so the n_critic loop's FLOPs are always
taken from a fully unrolled compile (``unroll=True``) of the same step, whatever loop
form is timed (``--unroll``; default ``default_unroll()``: unrolled on CPU, rolled on GPU).
A ``lax.cond`` (GANomaly's D re-init) counts its costliest branch.

Peak: ``--peak-flops`` if given; else on a known NVIDIA GPU the dense (no sparsity)
datasheet peak for the precision the f32 matmuls/convs run in: JAX's default matmul
precision lets XLA use TF32 tensor cores for f32 dots/convs on Ampere+, so the TF32
peak; with ``jax_default_matmul_precision`` 'highest'/'float32' or NVIDIA_TF32_OVERRIDE=0,
the FP32 (non-tensor) peak.  Otherwise (CPU, unknown GPU) the *measured* throughput of
a large f32 jnp.matmul (best of ``--peak-repeats``), which is printed on every backend.
"Host cores busy" = process CPU seconds / wall seconds while timing: on a shared CPU
machine, below the core count means other jobs took cores and the MFU is pessimistic.
Single device only (a data-parallel step's cost analysis is per device).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# NVIDIA datasheet peaks, dense (datasheets quote TF32/BF16 "with sparsity": halved here), TFLOP/s.
# Matched in order against jax.devices()[0].device_kind (e.g. "NVIDIA H100 80GB HBM3").
GPU_PEAKS_TFLOPS = [
    (("H100", "NVL"), {"fp32": 60.0, "tf32": 417.5, "bf16": 835.0}),
    (("H100", "PCIe"), {"fp32": 51.0, "tf32": 378.0, "bf16": 756.0}),
    (("H100",), {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}),  # SXM5
    (("H200", "NVL"), {"fp32": 60.0, "tf32": 417.5, "bf16": 835.0}),
    (("H200",), {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}),  # SXM
    (("A100",), {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0}),
]


def xla_flops(compiled) -> float | None:
    """``cost_analysis()['flops']`` of a compiled (or lowered) program: a dict in current
    JAX, a list of dicts (one per computation) in older ones; None when unavailable."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if isinstance(cost, dict):
        cost = [cost]
    flops = [c["flops"] for c in (cost or []) if isinstance(c, dict) and c.get("flops") is not None]
    return float(sum(flops)) if flops else None


def compiled_flops(fn, *args) -> float | None:
    """XLA's FLOP count of ``fn(*args)`` (``fn`` jitted or not), compiled for the default backend."""
    import jax

    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    return xla_flops(jitted.lower(*args).compile())


def loop_check(n: int = 5, size: int = 64) -> tuple[float, float, float]:
    """(rolled, unrolled, exact) FLOPs of a ``lax.scan`` of ``n`` (size x size) matmuls."""
    import jax
    import jax.numpy as jnp

    def f(w, xs, unroll):
        return jax.lax.scan(lambda c, x: (c @ w + x, None), jnp.ones((size, size)), xs, unroll=unroll)[0]

    w, xs = jnp.ones((size, size)), jnp.ones((n, size, size))
    counts = [compiled_flops(jax.jit(f, static_argnums=2), w, xs, u) for u in (1, True)]
    return counts[0], counts[1], float(2 * size ** 3 * n)


def busy_cores(fn):
    """(fn(), process CPU seconds / wall seconds while it ran): how many host cores the
    process kept busy; below the core count on a loaded machine (or waiting on a GPU)."""
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, (time.process_time() - c0) / (time.perf_counter() - t0)


def matmul_peak(n: int, repeats: int = 8, dtype: str = "float32") -> tuple[float, float, float]:
    """(best, median FLOP/s, busy cores) of an (n x n) @ (n x n) ``dtype`` ``jnp.matmul``, default precision."""
    import jax
    import jax.numpy as jnp

    from harness import time_fn

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    mm = jax.jit(jnp.matmul).lower(a, b).compile()
    flops = xla_flops(mm) or 2.0 * n ** 3
    times, busy = busy_cores(lambda: time_fn(lambda: mm(a, b), warmup=2, repeats=repeats))
    return flops / min(times), flops / statistics.median(times), busy


def f32_precision() -> str:
    """'tf32' or 'fp32': what f32 dots/convs run in on an Ampere+ NVIDIA GPU (see docstring)."""
    import jax

    p = str(jax.config.jax_default_matmul_precision or "default").lower()
    if p in ("highest", "float32", "f32_f32_f32") or os.environ.get("NVIDIA_TF32_OVERRIDE") == "0":
        return "fp32"
    return "tf32"


def datasheet_peak(device_kind: str, precision: str) -> float | None:
    """Dense datasheet peak in FLOP/s for ``device_kind``, None if not in the table."""
    for keys, peaks in GPU_PEAKS_TFLOPS:
        if all(k.lower() in device_kind.lower() for k in keys):
            return peaks[precision] * 1e12
    return None


# ------------------------------------------------------------------ train-step configs
def build_trainer(config: str, width: int, n_critic: int = 5, unroll=None, image_shape=(28, 28, 1),
                  parallel=False):
    """A ``PlayerTrainer`` for ``config``: 'wgan-thesis' / 'wgan-dcgan' (WGAN-GP, as
    bench/train_step.py), 'ganomaly' or 'egbad' (the detectors' trainers, built from their
    paper configs at ``width``: the nets the detectors would build for ``image_shape``);
    ``parallel=True`` shards the batch over all local devices."""
    from gadjax.models import EGBAD, BiGANTrainer, GANomaly, GANomalyTrainer
    from gadjax.nets import NetSpec
    from gadjax.train.gan import GANConfig, GANTrainer

    if config in ("wgan-thesis", "wgan-dcgan"):
        spec = NetSpec(config.split("-")[1], image_shape, z_dim=100, width=width)
        return GANTrainer(GANConfig(nets=spec, loss="wgan-gp", n_critic=n_critic), unroll=unroll, parallel=parallel)
    if config in ("ganomaly", "egbad"):
        detector, trainer = (GANomaly, GANomalyTrainer) if config == "ganomaly" else (EGBAD, BiGANTrainer)
        det = detector(width=width)
        return trainer(det.net_spec(image_shape), det.config, unroll=unroll, parallel=parallel)
    raise ValueError(f"unknown config {config!r}; known: {CONFIGS}")


CONFIGS = ("wgan-thesis", "wgan-dcgan", "ganomaly", "egbad")


def cast_floats(tree, dtype):
    """``tree`` with every floating-point leaf cast to ``dtype`` (keys, counters untouched); one
    jitted program rather than a compiled convert per leaf shape."""
    import jax
    import jax.numpy as jnp

    return jax.jit(lambda t: jax.tree.map(
        lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, t))(tree)


def _inputs(trainer, batch: int, dtype=None):
    """(initial state, device batches); ``dtype`` (e.g. 'bfloat16') casts the parameters,
    statistics, optimiser state and data: the whole step then computes in that type."""
    import jax
    import numpy as np

    lo, hi = trainer.value_range or (-1.0, 1.0)
    shape = (trainer.batches_per_step, batch, *trainer.image_shape)
    real = np.random.default_rng(0).uniform(lo, hi, shape).astype(np.float32)
    state, batches = jax.block_until_ready(trainer.init(jax.random.PRNGKey(0))), trainer.put_batches(real)
    return (state, batches) if dtype is None else cast_floats((state, batches), dtype)


def step_flops(trainer, batch: int, dtype=None) -> float | None:
    """XLA FLOPs of one ``trainer.step`` (compiles it; use an unrolled trainer for loops)."""
    state, batches = _inputs(trainer, batch, dtype)
    return xla_flops(trainer.step.lower(state, batches).compile())


def time_step(trainer, batch: int, steps: int = 3, repeats: int = 5, warmup: int = 1, dtype=None):
    """Compile ``trainer.step`` and time it -> dict(flops, compile_s, med, min, max, busy) (seconds/step);
    ``dtype`` as ``_inputs``."""
    import jax

    from harness import summarize, time_fn

    state, batches = _inputs(trainer, batch, dtype)
    t0 = time.perf_counter()
    compiled = trainer.step.lower(state, batches).compile()
    compile_s = time.perf_counter() - t0
    holder = {"state": state}

    def run():
        out = None
        for _ in range(steps):
            holder["state"], out = compiled(holder["state"], batches)  # state is donated
        return out

    if not bool(jax.block_until_ready(run())["finite"]):
        print("warning: non-finite values after the first steps", file=sys.stderr)
    times, busy = busy_cores(lambda: time_fn(run, warmup=warmup, repeats=repeats))
    med, lo, hi = summarize([t / steps for t in times])
    return dict(flops=xla_flops(compiled), compile_s=compile_s, med=med, min=lo, max=hi, busy=busy)


def mfu(trainer, batch: int, peak_flops: float, unrolled=None, **timing) -> dict:
    """Time ``trainer``'s step; FLOPs from ``unrolled`` (a fully unrolled twin, for steps
    with a repeated player) or the step itself.  Adds 'model_flops', 'achieved', 'mfu'."""
    r = time_step(trainer, batch, **timing)
    r["model_flops"] = step_flops(unrolled, batch) if unrolled is not None else r["flops"]
    r["achieved"] = r["model_flops"] / r["med"] if r["model_flops"] else math.nan
    r["mfu"] = r["achieved"] / peak_flops
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf")
    ap.add_argument("--batch", type=int, default=64, help="images per (critic) update")
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--unroll", default="default", help="timed loop form: default | true | 1 (rolled)")
    ap.add_argument("--steps", type=int, default=3, help="consecutive steps per timed repeat")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s to divide by (overrides)")
    ap.add_argument("--peak-n", type=int, default=None, help="matmul size for the measured peak "
                    "(default 2048 on CPU, 8192 elsewhere)")
    ap.add_argument("--peak-repeats", type=int, default=8)
    args = ap.parse_args(argv)

    import jax

    from harness import machine_info

    u = args.unroll.lower()
    unroll = None if u == "default" else True if u in ("true", "full") else int(u)
    backend, kind = jax.default_backend(), jax.devices()[0].device_kind
    print(machine_info())
    rolled, unrolled, exact = loop_check()
    print(f"loop check (lax.scan of 5 64x64 matmuls, exact {exact:.0f} FLOPs): XLA counts rolled {rolled:.0f} "
          f"({rolled / exact:.2f}x), unrolled {unrolled:.0f} ({unrolled / exact:.2f}x)")

    n = args.peak_n or (2048 if backend == "cpu" else 8192)
    best, med, busy = matmul_peak(n, args.peak_repeats)
    print(f"measured matmul peak: f32 {n}x{n} @ {n}x{n}, default precision: best {best / 1e9:.1f} GFLOP/s, "
          f"median {med / 1e9:.1f} GFLOP/s over {args.peak_repeats} runs ({busy:.2f} host cores busy)")
    precision = f32_precision()
    if args.peak_flops:
        peak, source = args.peak_flops, "--peak-flops"
    elif backend == "gpu" and datasheet_peak(kind, precision):
        peak, source = datasheet_peak(kind, precision), f"NVIDIA datasheet {precision.upper()} dense ({kind})"
    else:
        peak, source = best, f"measured matmul peak (best of {args.peak_repeats}, {n}^3 f32)"
    print(f"peak used: {peak / 1e9:.1f} GFLOP/s = {source}; steps run in float32"
          + (f" (f32 dots/convs run as {precision.upper()} on this GPU)" if backend == "gpu" else ""))
    print(f"batch {args.batch}, width {args.width}, n_critic {args.n_critic} (WGAN-GP); {args.repeats} repeats x "
          f"{args.steps} steps after {args.warmup} warm-up; per-step median (min-max)\n", flush=True)

    rows = []
    for cfg in args.configs:
        trainer = build_trainer(cfg, args.width, args.n_critic, unroll)
        loop = trainer.batches_per_step > 1
        twin = build_trainer(cfg, args.width, args.n_critic, True) if loop and trainer.unroll is not True else None
        r = mfu(trainer, args.batch, peak, unrolled=twin, steps=args.steps, repeats=args.repeats,
                warmup=args.warmup)
        if loop:  # what the rolled scan's own cost analysis says, to show the undercount
            rolled_timed = trainer.unroll is not True and trainer.unroll == 1  # (True == 1 in Python)
            r["rolled"] = (r["flops"] if rolled_timed else
                           step_flops(build_trainer(cfg, args.width, args.n_critic, 1), args.batch))
        r.update(config=cfg, loop=("-" if not loop else "unrolled" if trainer.unroll is True
                                   else "rolled scan" if trainer.unroll == 1 else f"scan unroll={trainer.unroll}"))
        rows.append(r)
        print(f"  done: {cfg} -> {1e3 * r['med']:.1f} ms/step, MFU {100 * r['mfu']:.2f} %", file=sys.stderr,
              flush=True)

    print("| config | n_critic loop timed | XLA GFLOP / step | rolled-scan count GFLOP | compile s "
          "| ms / step median (min-max) | host cores busy | achieved GFLOP/s | peak GFLOP/s | MFU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    g = lambda x: "-" if x is None else f"{x / 1e9:.2f}"  # noqa: E731
    for r in rows:
        print(f"| {r['config']} | {r['loop']} | {g(r['model_flops'])} | {g(r.get('rolled'))} | {r['compile_s']:.1f} "
              f"| {1e3 * r['med']:.1f} ({1e3 * r['min']:.1f}-{1e3 * r['max']:.1f}) | {r['busy']:.2f} "
              f"| {r['achieved'] / 1e9:.1f} | {peak / 1e9:.1f} | {100 * r['mfu']:.2f} % |")


if __name__ == "__main__":
    main()
