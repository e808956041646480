"""Scoring throughput of every registered image detector on the same data.

Each detector is trained for a few steps on real MNIST digit 1 (the timings measure
the compiled scoring program, not model quality), then ``score_samples`` is timed on
the same fixed test images: first call (compile + run) separately, then the median of
``--repeats`` calls.  Prints machine info and a markdown table.

    python bench/detectors.py --images 256 --width 16 --repeats 3
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from harness import machine_info  # noqa: E402

import numpy as np  # noqa: E402

from gadjax import data  # noqa: E402
from gadjax.models import DETECTORS  # noqa: E402

IMAGE_DETECTORS = [n for n in DETECTORS if n not in ("madgan",)]
# One architecture for every detector: DCGAN nets, z_dim 100, LayerNorm critics (WGAN-GP
# for the GAN-based ones, their default); each config takes the fields it has.
SHARED = dict(net="dcgan", z_dim=100, critic_norm="layer")


def build(name: str, args):
    """Detector ``name`` at the bench's settings (an ensemble: 3 joint encoders)."""
    base = DETECTORS["joint_encoder" if name == "ensemble" else name]
    fields = dict(width=args.width, steps=args.train_steps, batch_size=64, score_batch_size=args.batch,
                  **{k: v for k, v in SHARED.items() if k in base.config_class.field_names()})
    if name == "anogan":
        fields["search_steps"] = args.search_steps
    if name == "ensemble":
        return DETECTORS[name](base="joint_encoder", members=3, base_config=base.config_class(**fields),
                               progress=False)
    return base(**fields, progress=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--search-steps", type=int, default=100, help="AnoGAN latent-search steps")
    p.add_argument("--batch", type=int, default=64, help="scoring batch size")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="*", default=IMAGE_DETECTORS)
    args = p.parse_args()

    mnist = data.load("mnist")
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    x_train, x_test = split.x_train[:2048], mnist.x_test[:args.images]
    print(machine_info())
    print(f"dcgan 28x28x1 width {args.width}, {args.images} MNIST test images, scoring batch {args.batch}, "
          f"AnoGAN search {args.search_steps} steps\n")
    rows = []
    for name in args.models:
        det = build(name, args)
        det.fit(x_train, split.x_val[:args.batch])
        t0 = time.perf_counter()
        det.score_samples(x_test)
        first = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            np.asarray(det.score_samples(x_test))
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        rows.append((name, first, med, args.images / med, med / args.images * 1e3))
        print(f"  {name}: first {first:.2f} s, median {med:.3f} s", flush=True)
    print("\n| detector | first call s | median s | images / s | ms / image |")
    print("|---|---|---|---|---|")
    for name, first, med, ips, ms in rows:
        print(f"| {name} | {first:.2f} | {med:.3f} | {ips:,.0f} | {ms:.3f} |")


if __name__ == "__main__":
    main()
