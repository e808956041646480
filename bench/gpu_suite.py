"""Every GPU benchmark table from one command, each written as markdown to a directory.

    python bench/gpu_suite.py results/gpu              # one GPU: every table, < 8 min on an H200
    python bench/gpu_suite.py /tmp/gs --smoke          # the same code paths on CPU, tiny shapes, < 90 s
    python bench/gpu_suite.py results/gpu --only train_step anogan_search

Tables (``<out_dir>/<name>.md``; one function each in ``bench/gpu_tables.py`` / ``gpu_torch.py``):

  train_step         WGAN-GP step: thesis 28x28 at widths 16 and 64, DCGAN 64x64x3 at width 64;
                     rolled vs unrolled n_critic loop; float32 and bfloat16; MFU from XLA's
                     cost analysis against the device's peak (``bench/mfu.py``)
  anogan_search      AnoGAN latent search, batched vs per-image loop, K = 500, batch 64 / 256 / 1024
  fanogan_vs_anogan  f-AnoGAN's one forward pass vs the batched AnoGAN search, same nets and images
  detectors          scoring throughput of every registered detector (``gadjax.models.DETECTORS``)
  torch_peer         the PyTorch peer (``bench/torch_peer.py``) on the same device, eager and
                     ``torch.compile``; needs torch with CUDA (``--smoke``: torch on CPU)
  data_parallel      one device vs ``parallel=True`` over all local devices (when there are several)
  stack              M thesis WGAN-GPs trained as one program (``StackTrainer``) vs M lone steps in turn,
                     M = 1 / 10 / 30 at widths 16 and 64 (``bench/stack.py``)

Every file starts with the command, the date, the machine, the library versions and the load
average when the table was written, and ends with the seconds the table took.  Untrained nets
and random data: the timings do not depend on the values.

``--smoke`` runs every table's code with tiny shapes on the CPU (tests/test_gpu_suite.py runs
it): an exception then stops the run, whereas the full mode writes a row or a file saying what
failed and goes on (exit status 1 at the end).  Smoke mode builds the nets with Flax's stock convs,
the form GPUs use (``gadjax/nets/conv.py``), fakes 2 host devices (``--devices``) so that the
data-parallel table runs too, and compiles at XLA's backend optimisation level 0 (about half the
compile time; compiles are most of a smoke run).  The full mode turns gadjax's persistent
compilation cache off (unless ``GADJAX_COMPILATION_CACHE`` is set), so "compile s" and "first
call" are real compiles.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TABLES = ("train_step", "anogan_search", "fanogan_vs_anogan", "detectors", "torch_peer", "data_parallel", "stack")
FULL_BUDGET_S = 480  # the 8 minutes on one GPU


@dataclasses.dataclass(frozen=True)
class Settings:
    """Shapes and repeat counts of one mode (``FULL`` or ``SMOKE``); same fields, same code."""

    train_nets: tuple          # (family, (H, W, C), width) per row group of the train-step table
    batch: int                 # images per critic update
    n_critic: int
    steps: int                 # consecutive steps per timed repeat
    repeats: int
    warmup: int
    peak_n: int                # matmul size of the measured peak (where no datasheet peak is known)
    search_net: tuple          # (family, (H, W, C), width, z_dim) of the AnoGAN / f-AnoGAN tables
    search_steps: int          # AnoGAN K
    search_batches: tuple
    per_image: int             # images timed in the per-image loop (extrapolated to each batch)
    search_repeats: int
    detector_width: int
    detector_batch: int        # scoring batch (score_batch_size)
    detector_images: int       # images scored per score_samples call
    detector_search_steps: int  # AnoGAN's and MAD-GAN's latent search
    madgan_window: tuple       # (T, F) windows for MAD-GAN, its defaults' window length
    detector_repeats: int
    torch_widths: tuple        # thesis nets (torch_peer.py's architecture), z_dim 128
    torch_search_steps: int
    torch_repeats: int
    torch_compile: bool        # torch.compile-d search too (takes ~a minute per width to compile)
    dp_weak: bool              # data parallel: also the global batch x devices (weak scaling) row
    stack_widths: tuple        # thesis WGAN-GP widths of the stacked-vs-sequential table (batch, n_critic above)
    stack_members: tuple       # stack sizes M
    stack_repeats: int


# Sized for the 8 minutes on one H200: compiles dominate (12 train steps, ~11 scorers,
# the AnoGAN programs, torch.compile); the timed work is a few seconds per table.
FULL = Settings(
    train_nets=(("thesis", (28, 28, 1), 16), ("thesis", (28, 28, 1), 64), ("dcgan", (64, 64, 3), 64)),
    batch=64, n_critic=5, steps=5, repeats=5, warmup=1, peak_n=8192,
    search_net=("thesis", (28, 28, 1), 64, 128), search_steps=500, search_batches=(64, 256, 1024),
    per_image=8, search_repeats=3,
    detector_width=64, detector_batch=256, detector_images=512, detector_search_steps=500,
    madgan_window=(30, 8), detector_repeats=3,
    torch_widths=(16, 64), torch_search_steps=100, torch_repeats=5, torch_compile=True, dp_weak=True,
    stack_widths=(16, 64), stack_members=(1, 10, 30), stack_repeats=5)

# Tiny shapes, same paths: the thesis and DCGAN nets (16x16x3: the smallest size they build) at one
# width each (a second thesis width is the same code and 4 more compiles, ~15 s), n_critic 2 (the
# least that leaves a loop to roll), K = 3.
SMOKE = Settings(
    train_nets=(("thesis", (28, 28, 1), 2), ("dcgan", (16, 16, 3), 2)),
    batch=8, n_critic=2, steps=1, repeats=2, warmup=0, peak_n=128,
    search_net=("thesis", (28, 28, 1), 4, 8), search_steps=3, search_batches=(4, 8),
    per_image=2, search_repeats=2,
    detector_width=4, detector_batch=8, detector_images=16, detector_search_steps=3,
    madgan_window=(6, 3), detector_repeats=2,
    torch_widths=(4,), torch_search_steps=3, torch_repeats=2, torch_compile=False, dp_weak=False,
    stack_widths=(2,), stack_members=(1, 2), stack_repeats=2)


@dataclasses.dataclass
class Run:
    """What the tables share: settings, strictness, the command, and results reused across tables."""

    settings: Settings
    smoke: bool
    command: str
    memo: dict = dataclasses.field(default_factory=dict)

    def attempt(self, fn):
        """(fn(), None), or in the full mode (None, 'Error: message') when fn raises: a row that
        says why (bfloat16 unsupported, out of memory) instead of a lost run; smoke re-raises."""
        if self.smoke:
            return fn(), None
        try:
            return fn(), None
        except Exception as e:  # noqa: BLE001 - reported in the table, the run goes on
            traceback.print_exc()
            return None, f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"


def header(run: Run) -> str:
    """Command, date, machine, versions, devices and the load average now (harness.machine_info)."""
    import jax
    from harness import machine_info

    dev = jax.devices()[0]
    extra = getattr(dev.client, "platform_version", "") if hasattr(dev, "client") else ""
    mode = "smoke (CPU code-path check, tiny shapes: not a measurement)" if run.smoke else "full"
    cache = jax.config.jax_compilation_cache_dir if jax.config.jax_enable_compilation_cache else None
    return "\n".join([f"command: `{run.command}`",
                      f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC; mode: {mode}",
                      machine_info(), f"device 0: {dev.device_kind}" + (f" ({extra})" if extra else "")
                      + f"; persistent compilation cache: {cache or 'off'}"])


def write_atomic(path: str, text: str) -> None:
    """Write via a temporary file in the same directory and ``os.replace``: no half-written table."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-", suffix=".md")
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make the tables private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", help="directory for the <table>.md files (created)")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU: every code path in < 90 s")
    ap.add_argument("--only", nargs="+", choices=TABLES, default=list(TABLES), help="tables to produce")
    ap.add_argument("--devices", type=int, default=None,
                    help="CPU only: fake host devices for the data-parallel table (default: 2 with --smoke); "
                         "set before JAX starts, ignored if it already has")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = "python bench/gpu_suite.py " + " ".join(sys.argv[1:] if argv is None else map(str, argv))
    if "jax" not in sys.modules:  # XLA reads these once, when JAX starts its backends
        flags = os.environ.get("XLA_FLAGS", "").split()
        devices = args.devices or (2 if args.smoke else None)
        if devices and not any("xla_force_host_platform_device_count" in f for f in flags):
            flags.append(f"--xla_force_host_platform_device_count={devices}")
        if args.smoke and not any("xla_backend_optimization_level" in f for f in flags):
            # A code-path check: LLVM's optimisations of the CPU code would double its ~60 compiles.
            flags.append("--xla_backend_optimization_level=0")
        os.environ["XLA_FLAGS"] = " ".join(flags)
    if args.smoke:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    else:  # real compile times in the "compile s" / "first call" columns, not loads from gadjax's disk cache
        os.environ.setdefault("GADJAX_COMPILATION_CACHE", "0")

    import contextlib

    import gpu_tables
    import gpu_torch
    import jax

    from gadjax.nets.conv import conv_form

    run = Run(SMOKE if args.smoke else FULL, args.smoke, command)
    os.makedirs(args.out_dir, exist_ok=True)
    print(header(run) + "\n", flush=True)
    if not args.smoke and jax.default_backend() == "cpu":
        print("note: no accelerator: the full shapes on a CPU take far longer than the GPU's 8 minutes "
              "(--smoke checks the code paths)", file=sys.stderr, flush=True)
    failed, t_start = [], time.perf_counter()
    with conv_form("stock") if args.smoke else contextlib.nullcontext():
        for name in (t for t in TABLES if t in args.only):
            t0 = time.perf_counter()
            table = getattr(gpu_torch if name == "torch_peer" else gpu_tables, name)
            body, error = run.attempt(functools.partial(table, run))
            if error:
                failed.append(name)
                body = f"**FAILED**: {error} (traceback on stderr)"
            elapsed = time.perf_counter() - t0
            text = f"{header(run)}\n\n{body}\n\n_{name}: {elapsed:.1f} s_\n"
            write_atomic(os.path.join(args.out_dir, f"{name}.md"), text)
            print(f"{body}\n\n{name}: {elapsed:.1f} s (total {time.perf_counter() - t_start:.0f} s)\n", flush=True)
    total = time.perf_counter() - t_start
    over = "" if args.smoke or total <= FULL_BUDGET_S else f" -- over the {FULL_BUDGET_S} s budget"
    print(f"all tables: {total:.0f} s{over}; written to {args.out_dir}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
