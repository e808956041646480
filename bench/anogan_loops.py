"""Time the AnoGAN latent-search loop forms on the current backend.

    python bench/anogan_loops.py --steps 100 --batch 16 --width 32 64 --repeats 3

Forms: rolled ``lax.scan``, partially unrolled scans, the host loop of jitted donated
steps, and the per-image Python loop (one image per call, the form given by
--per-image-loop) as the baseline researchers usually write.  Each is run once to compile
(timed separately), then ``--repeats`` times; the table reports the median.  Random
(untrained) nets: the timing does not depend on the weights.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import flax
import jax
import jaxlib
import numpy as np

from gadjax.models.anogan_search import default_loop, search_latent, search_latent_per_image
from gadjax.nets import NetSpec, bind, build_nets, features_of


def _time(fn, repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, nargs="+", default=[32])
    ap.add_argument("--z-dim", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--unrolls", nargs="+", default=["4", "8"],
                    help="unroll factors; 'full' = --steps (no while-loop left; compile time grows with steps)")
    ap.add_argument("--per-image", type=int, default=4,
                    help="images timed for the per-image loop (extrapolated to --batch); 0 to skip")
    ap.add_argument("--per-image-loop", default="auto", help="loop form used inside the per-image baseline")
    args = ap.parse_args()

    dev = jax.devices()[0]
    print(f"platform: {platform.platform()} | python {platform.python_version()} | "
          f"CPUs: {os.cpu_count()} (usable {len(os.sched_getaffinity(0))})")
    print(f"jax {jax.__version__} | jaxlib {jaxlib.__version__} | flax {flax.__version__} | "
          f"backend {jax.default_backend()} | device {dev.device_kind} x{jax.device_count()}")
    print(f"dcgan 28x28x1, z_dim {args.z_dim}, batch {args.batch}, steps {args.steps}, "
          f"repeats {args.repeats} (median); auto -> {default_loop()!r}\n")
    print("| width | form | first call s (compile+run) | median s | ms / step | images / s |")
    print("|---|---|---|---|---|---|")

    for width in args.width:
        spec = NetSpec("dcgan", (28, 28, 1), z_dim=args.z_dim, width=width)
        nets = build_nets(spec, parts=("generator", "critic"))
        (gen, g_init), (crit, d_init) = nets["generator"], nets["critic"]
        g_params, g_stats = g_init(jax.random.PRNGKey(0))
        d_params, d_stats = d_init(jax.random.PRNGKey(1))
        x = jax.random.uniform(jax.random.PRNGKey(2), (args.batch, 28, 28, 1), minval=-1, maxval=1)
        key = jax.random.PRNGKey(3)
        # The search takes bound callables: generator z -> x, features x -> f.
        common = (bind(gen, g_params, g_stats), features_of(bind(crit, d_params, d_stats)))

        forms = [("scan", dict(loop="scan"))]
        for u in args.unrolls:
            u = args.steps if u == "full" else int(u)
            forms.append((f"unrolled x{u}" + (" (full)" if u >= args.steps else ""), dict(loop="unrolled", unroll=u)))
        forms += [("host", dict(loop="host"))]
        scores = {}
        for name, kw in forms:
            res = {}

            def run(kw=kw, res=res):
                out = search_latent(*common, x, key, steps=args.steps, **kw)
                res["score"] = out.score
                return out
            first, med = _time(run, args.repeats)
            scores[name] = np.asarray(res["score"])
            print(f"| {width} | {name} | {first:.2f} | {med:.3f} | {1e3 * med / args.steps:.2f} | "
                  f"{args.batch / med:.1f} |", flush=True)
        if args.per_image:
            n = min(args.per_image, args.batch)
            first, med = _time(lambda: search_latent_per_image(*common, x[:n], key, steps=args.steps,
                                                               loop=args.per_image_loop), args.repeats)
            med_b = med * args.batch / n  # extrapolated to the full batch
            print(f"| {width} | per-image loop ({args.per_image_loop}, {n} imgs, x{args.batch / n:g}) | "
                  f"{first:.2f} | {med_b:.3f} | {1e3 * med_b / args.steps:.2f} | {args.batch / med_b:.1f} |",
                  flush=True)
        ref = scores["scan"]
        worst = max(float(np.max(np.abs(s - ref) / np.abs(ref))) for s in scores.values())
        print(f"| {width} | max rel. score difference between forms | | {worst:.1e} | | |")


if __name__ == "__main__":
    main()
