"""AnoGAN (latent search) vs f-AnoGAN (encoder) scoring speed on one trained WGAN-GP.

    python bench/anogan_vs_fanogan.py --net dcgan --width 32 --gan-steps 30 --encoder-steps 30 \
        --batch 64 --images 64 --per-image 4 --repeats 3

Trains ONE WGAN-GP (GANTrainer + train_loop) on shipped MNIST digit 0 (one-normal
protocol), then an izif encoder (EncoderTrainer + train_loop); few steps are enough, as
this times scoring, not detection quality.  On the same nets and the same test images
(the first --images of the official MNIST test set) it times:

  (a) AnoGAN, batched vmapped search (``search_latent``), loop='auto' and each explicit
      loop form that is sensible on the backend (--loops to override), K = --anogan-steps;
  (b) AnoGAN, per-image Python loop (``search_latent_per_image``, loop='auto') on the
      first --per-image images, extrapolated per image;
  (c) f-AnoGAN (``fanogan_scores`` under the detectors' one jitted scorer,
      ``gadjax.models.score_batch``), batched, one forward pass.

Each configuration is called once to compile (reported separately as "first call"), then
timed --repeats times; the table reports medians (f-AnoGAN, which takes milliseconds, is
repeated max(--repeats, 20) times).  Also reported: WGAN-GP training throughput
(n_critic * batch * steps / time, after the first, compiling step).
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import machine_info, time_fn  # noqa: E402

from gadjax import data  # noqa: E402
from gadjax.models.anogan_search import default_loop, search_latent, search_latent_per_image  # noqa: E402
from gadjax.models import score_batch  # noqa: E402
from gadjax.models.fanogan import FAnoGANConfig, fanogan_scores  # noqa: E402
from gadjax.nets import NetSpec, bind, features_of  # noqa: E402
from gadjax.train import GANConfig, RunConfig, train_loop  # noqa: E402
from gadjax.train.encoder import EncoderConfig, EncoderTrainer  # noqa: E402
from gadjax.train.gan import GANTrainer  # noqa: E402


def _load() -> str:
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def _first_and_median(fn, repeats: int) -> tuple[float, float]:
    """(seconds of the first call: compile + run, median seconds of ``repeats`` later calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    return first, statistics.median(time_fn(fn, warmup=0, repeats=repeats))


def _default_loops(backend: str) -> list[str]:
    # CPU: the host loop (= auto) and the rolled scan; a partial unroll costs the same as
    # the scan there and a full unroll takes minutes to compile at K = 500 (see
    # bench/anogan_loops.py / default_loop).  Accelerators: every form is sensible.
    return ["scan", "host"] if backend == "cpu" else ["scan", "unrolled", "host"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", default="dcgan", choices=["dcgan", "thesis"])
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--z-dim", type=int, default=100)
    ap.add_argument("--gan-steps", type=int, default=30, help="WGAN-GP generator steps (n_critic=5 critic steps each)")
    ap.add_argument("--encoder-steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64, help="training batch size")
    ap.add_argument("--anogan-steps", type=int, nargs="+", default=[100, 500], help="AnoGAN search steps K")
    ap.add_argument("--loops", nargs="+", default=None,
                    help="explicit AnoGAN loop forms to time besides 'auto' (default: sensible ones for the backend)")
    ap.add_argument("--unroll", type=int, default=8, help="unroll factor for loop='unrolled'")
    ap.add_argument("--images", type=int, default=64, help="test images scored (first N of the MNIST test set)")
    ap.add_argument("--per-image", type=int, default=4, help="images timed in the per-image loop (0 = skip)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--digit", type=int, default=0, help="normal MNIST class")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    backend = jax.default_backend()
    loops = args.loops if args.loops is not None else _default_loops(backend)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.perf_counter()
    print("command: python " + " ".join(sys.argv))
    print(f"date: {started:%Y-%m-%d %H:%M} UTC")
    print(machine_info())

    # ------------------------------------------------------------------ data
    spec = NetSpec(args.net, (28, 28, 1), z_dim=args.z_dim, width=args.width)
    out_range = "tanh" if spec.output_range == (-1.0, 1.0) else "sigmoid"
    ds = data.load("mnist", data_dir=args.data_dir)
    split = data.one_class_split(ds, cls=args.digit, protocol="one-normal")
    x_train = data.to_float(split.x_train, out_range)
    x_test = jax.device_put(data.to_float(split.x_test[:args.images], out_range))
    n_anom = int(split.y_test[:args.images].sum())
    print(f"\nMNIST one-normal digit {args.digit}: {len(x_train)} training images; test slice "
          f"x_test[:{args.images}] ({n_anom} anomalous); net {args.net} width {args.width} z_dim {args.z_dim}, "
          f"pixels in {spec.output_range}")

    # ------------------------------------------------------------ WGAN-GP
    trainer = GANTrainer(GANConfig(nets=spec, loss="wgan-gp"))
    marks = {}

    def on_sample(step, state):
        if step == 1:  # the first step compiles: time the rest
            jax.block_until_ready(state)
            marks["t1"] = time.perf_counter()

    run = RunConfig(steps=args.gan_steps, batch_size=args.batch, seed=0, log_every=max(args.gan_steps, 1),
                    sample_every=1, progress=False)
    t0 = time.perf_counter()
    gan_state, gan_metrics = train_loop(trainer, x_train, run, on_sample=on_sample)
    jax.block_until_ready(gan_state)
    t_end = time.perf_counter()
    first_step = marks["t1"] - t0
    n_critic = trainer.n_critic
    if args.gan_steps > 1:
        gan_ips = n_critic * args.batch * (args.gan_steps - 1) / (t_end - marks["t1"])
        gan_sps = (args.gan_steps - 1) / (t_end - marks["t1"])
    else:
        gan_ips = gan_sps = float("nan")
    print(f"WGAN-GP: {args.gan_steps} steps (n_critic {n_critic}, batch {args.batch}); first step "
          f"(compile) {first_step:.1f} s; then {gan_sps:.2f} steps/s = {gan_ips:.0f} real images/s; "
          f"final metrics {({k: round(v, 3) for k, v in gan_metrics.items()})}")

    enc_trainer = EncoderTrainer(trainer, gan_state, EncoderConfig(strategy="izif"))
    t0 = time.perf_counter()
    enc_state, enc_metrics = train_loop(enc_trainer, x_train, RunConfig(
        steps=args.encoder_steps, batch_size=args.batch, seed=1, log_every=max(args.encoder_steps, 1),
        sample_every=10**9, progress=False))
    jax.block_until_ready(enc_state)
    print(f"izif encoder: {args.encoder_steps} steps in {time.perf_counter() - t0:.1f} s (incl. compile); "
          f"final metrics {({k: round(v, 4) for k, v in enc_metrics.items()})}")
    print(f"load after training: {_load()}")

    # ------------------------------------------------------------ scoring
    # The scorers take bound callables: generator z -> x, critic features x -> f, encoder x -> z.
    s = gan_state
    g = bind(trainer.generator, s.params["generator"], s.stats["generator"])
    f = features_of(bind(trainer.critic, s.params["critic"], s.stats["critic"]))
    e = bind(enc_trainer.encoder, enc_state.params["encoder"], enc_state.stats["encoder"])
    nets = (g, f)
    key = jax.random.PRNGKey(0)
    n = args.images
    rows = []   # (method, loop, K, images timed, first s, median s, s/img)
    auto = default_loop()

    def add(method, loop, k, n_img, first, med):
        rows.append((method, loop, k, n_img, first, med, med / n_img))
        print(f"  {method} loop={loop} K={k} images={n_img}: first {first:.2f} s, median {med:.3f} s, "
              f"{med / n_img * 1e3:.2f} ms/image (load {_load()})", flush=True)

    batched_scores = {}
    print(f"\nscoring {n} test images; AnoGAN loop 'auto' -> {auto!r}; explicit loops {loops}")
    for k in args.anogan_steps:
        for loop in ["auto"] + [lp for lp in loops if lp != "auto"]:
            kw = dict(steps=k, loop=loop)
            if loop == "unrolled":
                kw["unroll"] = args.unroll
            out = {}

            def fn(kw=kw, out=out):
                res = search_latent(*nets, x_test, key, **kw)
                out["score"] = res.score
                return res
            first, med = _first_and_median(fn, args.repeats)
            label = f"auto ({auto})" if loop == "auto" else (f"unrolled x{args.unroll}" if loop == "unrolled" else loop)
            if loop == auto:
                label += " (same program as auto: already compiled)"
            add("AnoGAN batched", label, k, n, first, med)
            batched_scores[(k, loop)] = np.asarray(out["score"])
        if args.per_image:
            m = min(args.per_image, n)
            out = {}

            def fn_pi(k=k, out=out):
                res = search_latent_per_image(*nets, x_test[:m], key, steps=k, loop="auto")
                out["score"] = res.score
                return res
            first, med = _first_and_median(fn_pi, args.repeats)
            add("AnoGAN per-image loop", f"auto ({auto})", k, m, first, med)
            ref = batched_scores[(k, "auto")][:m]
            rel = float(np.max(np.abs(np.asarray(out["score"]) - ref) / np.abs(ref)))
            print(f"    per-image vs batched scores, max rel. difference: {rel:.1e}")
        ref = batched_scores[(k, "auto")]
        worst = max(float(np.max(np.abs(v - ref) / np.abs(ref))) for (kk, _), v in batched_scores.items() if kk == k)
        print(f"    batched loop forms, max rel. score difference: {worst:.1e}")

    config, f_nets = FAnoGANConfig(kappa=1.0), {"generator": g, "encoder": e, "features": f}
    fa = lambda: score_batch(fanogan_scores, f_nets, x_test, config)  # noqa: E731
    first, med = _first_and_median(fa, max(args.repeats, 20))
    add("f-AnoGAN", "one forward pass", "-", n, first, med)

    # ------------------------------------------------------------ table
    per_img = {r[2]: r[6] for r in rows if r[0] == "AnoGAN per-image loop"}
    batched_auto = {r[2]: r[6] for r in rows if r[0] == "AnoGAN batched" and r[1].startswith("auto")}
    fan = rows[-1][6]

    def speedup(r):
        method, _, k = r[:3]
        if method == "AnoGAN batched" and k in per_img:
            return f"{per_img[k] / r[6]:.1f}x vs per-image loop"
        if method == "f-AnoGAN":
            return "; ".join(f"{v / fan:,.0f}x vs batched AnoGAN K={kk}" for kk, v in batched_auto.items())
        return ""

    print(f"\nload at end: {_load()}; total wall time {time.perf_counter() - t_start:.0f} s")
    print(f"\n{args.net} width {args.width}, z_dim {args.z_dim}, 28x28x1; {n} MNIST test images; "
          f"repeats {args.repeats} (f-AnoGAN {max(args.repeats, 20)}), medians; per-image loop timed on "
          f"{min(args.per_image, n)} images\n")
    print("| method | loop | K steps | images timed | first call s (compile+run) | median s | s / image | "
          "images / s | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        method, loop, k, m, first, med, spi = r
        print(f"| {method} | {loop} | {k} | {m} | {first:.2f} | {med:.4f} | {spi:.2e} | {1 / spi:,.1f} | "
              f"{speedup(r)} |")
    print(f"| WGAN-GP training | - | {args.gan_steps} steps | batch {args.batch} x n_critic {n_critic} | "
          f"{first_step:.2f} | - | - | {gan_ips:,.0f} (train) | |")


if __name__ == "__main__":
    main()
