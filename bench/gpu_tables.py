"""The tables of ``bench/gpu_suite.py``: one function per table, ``name(run) -> markdown``.

``run`` is ``gpu_suite.Run``: the mode's ``Settings`` (``run.settings``), ``run.attempt(fn)``
(a failing configuration becomes a row in the full mode, an exception in ``--smoke``) and
``run.memo`` (the AnoGAN timings and nets, shared by two tables).  Timing, FLOP counting and
peaks come from ``harness.py`` and ``mfu.py``; the detectors are built as ``detectors.py``
builds them.  The PyTorch peer's table is in ``gpu_torch.py``.
"""
from __future__ import annotations

import functools

import numpy as np

DTYPES = ("float32", "bfloat16")


def md(head: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def page(title: str, text: str, table: str, *notes: str) -> str:
    """A table's markdown: a heading, what it measures, the table, notes (bullets)."""
    return "\n\n".join([f"### {title}", text, table] + (["\n".join(f"* {n}" for n in notes)] if notes else []))


def gflop(flops: float | None) -> str:
    return "n/a" if flops is None else f"{flops / 1e9:.3g}"


def median_range(r: dict) -> str:
    """'median (min-max)' ms of a ``mfu.time_step`` result."""
    return f"{1e3 * r['med']:.2f} ({1e3 * r['min']:.2f}-{1e3 * r['max']:.2f})"


def time_train(run, trainer, batch: int, dtype: str = "float32"):
    """``mfu.time_step`` of ``trainer`` at the mode's repeats -> (result, None) or (None, why)."""
    import mfu

    s = run.settings
    return run.attempt(functools.partial(mfu.time_step, trainer, batch, s.steps, s.repeats, s.warmup,
                                         dtype=None if dtype == "float32" else dtype))


def first_and_median(fn, repeats: int) -> tuple[float, float, object]:
    """(first call s: compile + run, median s of ``repeats`` more calls, the last result)."""
    import jax
    from harness import summarize, time_fn, timed

    first, out = timed(lambda: jax.block_until_ready(fn()))
    return first, summarize(time_fn(fn, warmup=0, repeats=repeats))[0], out


def bf16_unsupported() -> str | None:
    """Why this device cannot run bfloat16 at speed, or None (CPU and TPU emulate or run it)."""
    import jax

    dev = jax.devices()[0]
    cc = getattr(dev, "compute_capability", None)
    if dev.platform == "gpu" and cc and float(cc) < 8.0:
        return f"no bfloat16 tensor cores (compute capability {cc})"
    return None


def peak_flops(run, dtype: str) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from): the NVIDIA datasheet's dense peak for the precision the
    step's dots run in, else (CPU, unknown device) a measured large matmul in ``dtype`` (mfu.py)."""
    import jax
    import mfu

    if ("peak", dtype) not in run.memo:
        kind = jax.devices()[0].device_kind
        precision = "bf16" if dtype == "bfloat16" else mfu.f32_precision()
        sheet = mfu.datasheet_peak(kind, precision) if jax.default_backend() == "gpu" else None
        if sheet:
            run.memo[("peak", dtype)] = sheet, f"NVIDIA datasheet {precision.upper()} dense, {kind}"
        else:
            n = min(run.settings.peak_n, 2048) if jax.default_backend() == "cpu" else run.settings.peak_n
            run.memo[("peak", dtype)] = mfu.matmul_peak(n, 5, dtype)[0], f"measured {dtype} {n}^3 matmul, best of 5"
    return run.memo[("peak", dtype)]


def train_step(run) -> str:
    import mfu
    from train_step import unroll_name

    s = run.settings
    head = ["net", "sample", "width", "dtype", "n_critic loop", "compile s", "ms / step median (min-max)",
            "images / s", "model GFLOP / step", "this program's XLA count GFLOP", "TFLOP/s", "peak TFLOP/s", "MFU"]
    rows, ratios = [], []
    for family, shape, width in s.train_nets:
        times = {}  # (dtype, loop name) -> median s (not keyed by unroll: True == 1 in Python)
        for dtype in DTYPES:
            peak, _ = peak_flops(run, dtype)
            model = None
            for unroll in (True, 1):  # unrolled first: a rolled loop's body is counted once by XLA
                loop = unroll_name(unroll, s.n_critic, unroll)
                row = [family, "x".join(map(str, shape)), width, dtype, loop]
                why = bf16_unsupported() if dtype == "bfloat16" else None
                trainer = mfu.build_trainer(f"wgan-{family}", width, s.n_critic, unroll, shape)
                r, err = (None, f"not supported: {why}") if why else time_train(run, trainer, s.batch, dtype)
                if r is None:
                    rows.append(row + [err] + [""] * 7)
                    continue
                model = r["flops"] if unroll is True else model
                achieved = model / r["med"] if model else float("nan")
                times[(dtype, loop)] = r["med"]
                rows.append(row + [f"{r['compile_s']:.1f}", median_range(r), f"{s.n_critic * s.batch / r['med']:,.0f}",
                                   gflop(model), gflop(r["flops"]), f"{achieved / 1e12:.3g}", f"{peak / 1e12:.3g}",
                                   f"{100 * achieved / peak:.2f} %"])
        name = f"{family} {'x'.join(map(str, shape))} width {width}"
        rolled, unrolled = (unroll_name(u, s.n_critic, u) for u in (1, True))
        for dtype in DTYPES:
            if (dtype, rolled) in times and (dtype, unrolled) in times:
                ratios.append(f"{name}, {dtype}: rolled scan / unrolled time = "
                              f"{times[(dtype, rolled)] / times[(dtype, unrolled)]:.2f}")
        for loop in (unrolled, rolled):
            if ("bfloat16", loop) in times and ("float32", loop) in times:
                ratios.append(f"{name}, {loop}: bfloat16 speed-up over float32 = "
                              f"{times[('float32', loop)] / times[('bfloat16', loop)]:.2f}x")
    peaks = "; ".join(f"{d}: {peak_flops(run, d)[1]}" for d in DTYPES)
    return page(
        f"WGAN-GP train step (`GANTrainer.step`: {s.n_critic} critic updates with gradient penalty + 1 generator "
        f"update), batch {s.batch}, z_dim 100",
        f"images/s = n_critic x batch / step time; {s.repeats} repeats x {s.steps} steps after {s.warmup} warm-up "
        f"(`bench/mfu.py: time_step`). Model FLOPs = XLA's cost analysis of the unrolled program (a rolled "
        f"`lax.scan` body is counted once: see the program's own count); MFU = model FLOPs / median time / peak. "
        f"bfloat16 = parameters, optimiser state and data cast to bfloat16 (pure bfloat16: gadjax has no "
        f"mixed-precision option). Peaks: {peaks}.",
        md(head, rows), *ratios)


def data_parallel(run) -> str:
    import jax
    import mfu

    s = run.settings
    n = jax.local_device_count()
    if n < 2:
        return page("Data-parallel train step", f"skipped: {n} local device (needs more than one).", "")
    family, shape, width = s.train_nets[0]
    b = -(-s.batch // n) * n  # the global batch must split evenly over the devices
    configs = [(False, b), (True, b)] + ([(True, b * n)] if s.dp_weak else [])
    rows, base = [], None
    for parallel, batch in configs:
        trainer = mfu.build_trainer(f"wgan-{family}", width, s.n_critic, None, shape, parallel=parallel)
        r, err = time_train(run, trainer, batch)
        devices = trainer.parallel.size if trainer.parallel else 1
        row = [devices, batch, batch // devices]
        if r is None:
            rows.append(row + [err, "", "", ""])
            continue
        ips = s.n_critic * batch / r["med"]
        base = base or ips
        rows.append(row + [f"{r['compile_s']:.1f}", median_range(r), f"{ips:,.0f}", f"{ips / base:.2f}x"])
    weak = " and devices x that batch (weak scaling)" if s.dp_weak else ""
    return page(
        f"Data-parallel train step: {family} {'x'.join(map(str, shape))} width {width}, WGAN-GP n_critic "
        f"{s.n_critic}, float32, default n_critic loop",
        f"`parallel=True` shards the batch over all {n} local devices ({jax.devices()[0].device_kind}); the same "
        f"global batch (strong scaling){weak}. Fake CPU devices share the same cores: there this measures the "
        f"partitioning overhead only.",
        md(["devices", "global batch", "per-device batch", "compile s", "ms / step median (min-max)", "images / s",
            "vs 1 device"], rows))


def stack(run) -> str:
    import stack as bench_stack  # bench/stack.py

    s = run.settings
    rows = []
    for width in s.stack_widths:
        lone, err = run.attempt(functools.partial(bench_stack.Lone, "wgan-thesis", width, s.batch, s.n_critic, None,
                                                  max(s.stack_members)))
        for m in s.stack_members:
            r, why = (None, err) if lone is None else run.attempt(
                functools.partial(bench_stack.measure, lone, m, s.stack_repeats))
            rows += r or [{"width": width, "members": m, "error": why}]
        del lone  # its M states and batches
    return page(
        f"Stacked vs sequential training: thesis WGAN-GP 28x28x1, batch {s.batch} per model, n_critic {s.n_critic}, "
        f"float32, default n_critic loop",
        f"M models trained for one step each: sequential = the lone `GANTrainer.step` (compiled once) called M times "
        f"in turn, each model on its own state and batches; stacked = one `StackTrainer(lone, M).step` (vmap over a "
        f"model axis). images/s = M x n_critic x batch / time; stacked / sequential = sequential time / stacked "
        f"time; {s.stack_repeats} interleaved repeats (`bench/stack.py: measure`), compile apart. Memory: the stacked "
        f"program's own need (XLA memory analysis), checked against the device's limit before its first run.",
        bench_stack.table("wgan-thesis", rows))


def search_setup(run) -> dict:
    """Untrained generator, critic features and encoder of ``settings.search_net``, bound for
    scoring, and random images in the generator's range, one slice per batch size."""
    if "search" not in run.memo:
        import jax

        from gadjax.nets import NetSpec, bind, build_nets, features_of

        family, shape, width, z_dim = run.settings.search_net
        spec = NetSpec(family, shape, z_dim=z_dim, width=width)
        keys = jax.random.split(jax.random.PRNGKey(0), 3)
        nets = {part: bind(net, *init(k)) for (part, (net, init)), k in zip(build_nets(spec).items(), keys)}
        lo, hi = spec.output_range
        batches = run.settings.search_batches
        x = jax.device_put(np.random.default_rng(0).uniform(lo, hi, (max(batches), *shape)).astype(np.float32))
        run.memo["search"] = {"generator": nets["generator"], "encoder": nets["encoder"],
                              "features": features_of(nets["critic"]), "xs": {b: x[:b] for b in batches},
                              "key": jax.random.PRNGKey(1),
                              "name": f"{family} {'x'.join(map(str, shape))} width {width} z_dim {z_dim}"}
    return run.memo["search"]


def anogan_batched(run, batch: int):
    """(first s, median s, scores) of the vmapped AnoGAN search (loop 'auto') of ``batch`` images."""
    from gadjax.models.anogan_search import search_latent

    if ("anogan", batch) not in run.memo:
        n, s = search_setup(run), run.settings

        def search():
            return search_latent(n["generator"], n["features"], n["xs"][batch], n["key"], steps=s.search_steps).score
        run.memo[("anogan", batch)] = first_and_median(search, s.search_repeats)
    return run.memo[("anogan", batch)]


def anogan_search(run) -> str:
    from gadjax.models.anogan_search import default_loop, search_latent_per_image

    s, n = run.settings, search_setup(run)
    k, m = s.search_steps, min(s.per_image, min(s.search_batches))
    first_pi, med_pi, scores_pi = first_and_median(lambda: search_latent_per_image(
        n["generator"], n["features"], n["xs"][min(s.search_batches)][:m], n["key"], steps=k).score, s.search_repeats)
    per_image = med_pi / m
    rows = []
    for b in s.search_batches:
        first, med, _ = anogan_batched(run, b)
        rows.append([b, "batched (vmap)", b, f"{first:.2f}", f"{med:.3f}", f"{b / med:,.1f}", f"{1e3 * med / b:.3f}",
                     f"{per_image * b / med:.1f}x"])
        rows.append([b, "per-image loop", m, f"{first_pi:.2f}", f"{per_image * b:.3f} (extrapolated)",
                     f"{1 / per_image:,.1f}", f"{1e3 * per_image:.3f}", "1x"])
    batched = np.asarray(anogan_batched(run, min(s.search_batches))[2])[:m]
    rel = float(np.max(np.abs(np.asarray(scores_pi) - batched) / np.abs(batched)))
    return page(
        f"AnoGAN latent search, K = {k} Adam steps, {n['name']}, loop 'auto' -> {default_loop()!r}",
        f"Batched: `search_latent` on the whole batch (one program, vmapped per image); per-image loop: "
        f"`search_latent_per_image` (one call per image), timed on {m} images and extrapolated to the batch. "
        f"First call = compile + run; median of {s.search_repeats} more calls.",
        md(["batch", "method", "images timed", "first call s", "median s (whole batch)", "images / s", "ms / image",
            "speed-up vs per-image"], rows),
        f"Per-image vs batched scores of the same {m} images: max relative difference {rel:.1e}.")


def fanogan_vs_anogan(run) -> str:
    from gadjax.models import score_batch
    from gadjax.models.fanogan import FAnoGANConfig, fanogan_scores

    s, n = run.settings, search_setup(run)
    nets = {"generator": n["generator"], "encoder": n["encoder"], "features": n["features"]}
    rows = []
    for b in s.search_batches:
        f_first, f_med, _ = first_and_median(
            functools.partial(score_batch, fanogan_scores, nets, n["xs"][b], FAnoGANConfig()), 20)
        _, a_med, _ = anogan_batched(run, b)
        rows.append([b, f"{f_first:.2f}", f"{1e3 * f_med:.3f}", f"{b / f_med:,.0f}", f"{a_med:.3f}",
                     f"{b / a_med:,.1f}", f"{a_med / f_med:,.0f}x"])
    return page(
        f"f-AnoGAN vs AnoGAN scoring, {n['name']}, same nets and images",
        f"f-AnoGAN: encoder + generator + critic features, one jitted forward pass (`score_batch(fanogan_scores)`), "
        f"median of 20 calls; AnoGAN: the batched search of K = {s.search_steps} steps (the anogan_search table's "
        f"timings).",
        md(["batch", "f-AnoGAN first call s", "f-AnoGAN median ms", "f-AnoGAN images / s",
            f"AnoGAN K={s.search_steps} median s", "AnoGAN images / s", "f-AnoGAN speed-up"], rows))


def init_unfitted(det, sample_shape, seed: int = 0) -> None:
    """Give ``det`` the initial state of each training phase without training (the timings do not
    depend on the weights; a fit would compile every train step, minutes of a GPU budget)."""
    import jax

    det.build(sample_shape)
    for i, phase in enumerate(det.phases):  # in order: f-AnoGAN's encoder trainer takes the GAN's state
        det.states_[phase] = jax.block_until_ready(det.trainer(phase).init(jax.random.PRNGKey(seed + i)))


def detectors(run) -> str:
    import types

    import detectors as bench_detectors  # bench/detectors.py: the CPU table's detector settings

    from gadjax.models import DETECTORS, MADGAN

    s = run.settings
    rng = np.random.default_rng(0)
    t, f = s.madgan_window
    images = rng.integers(0, 256, (s.detector_images, 28, 28, 1), dtype=np.uint8)
    windows = rng.uniform(-1, 1, (s.detector_images, t, f)).astype(np.float32)
    settings = types.SimpleNamespace(width=s.detector_width, train_steps=1, batch=s.detector_batch,
                                     search_steps=s.detector_search_steps)
    rows, b = [], s.detector_batch
    for i, name in enumerate(DETECTORS):
        def score(name=name, seed=i):
            if name == "madgan":  # time-series windows (T, F)
                det, x = MADGAN(width=s.detector_width, window=t, score_batch_size=b,
                                search_steps=s.detector_search_steps, progress=False), windows
            else:
                det, x = bench_detectors.build(name, settings), images
            init_unfitted(det, x.shape[1:], seed)
            spec = det.net_spec(x.shape[1:])
            # The detector's own per-batch scorer (every detector defines it: AnoGAN's and MAD-GAN's
            # searches too) on one batch already on the device: no host transfer in the time.
            xb = det._put(det._prepare(x[:b]))
            first, med, _ = first_and_median(functools.partial(det._score_batch, xb, 0), s.detector_repeats)
            _, med_all, _ = first_and_median(functools.partial(det.score_samples, x), s.detector_repeats)
            return [name, f"{getattr(spec, 'family', 'lstm')} width {s.detector_width}", f"{first:.2f}",
                    f"{1e3 * med:.2f}", f"{b / med:,.0f}", f"{med_all:.3f}", f"{len(x) / med_all:,.0f}"]
        row, err = run.attempt(score)
        rows.append(row or [name, "", err, "", "", "", ""])
    return page(
        f"Scoring throughput of every registered detector ({len(DETECTORS)}: `gadjax.models.DETECTORS`)",
        f"Untrained detectors (each phase's initial train state) with `bench/detectors.py`'s settings: DCGAN nets "
        f"z_dim 100 for 28x28x1 images, width {s.detector_width}, scoring batch {b}; AnoGAN and MAD-GAN search "
        f"{s.detector_search_steps} steps; the ensemble is 3 joint encoders; MAD-GAN scores {t}x{f} windows "
        f"(LSTM width {s.detector_width}). Scorer: the jitted scoring program on one batch already on the device "
        f"(first call = compile + run); `score_samples`: {s.detector_images} samples from the host, input checks "
        f"and transfers included; medians of {s.detector_repeats} calls.",
        md(["detector", "nets", "first call s", "scorer ms / batch", "scorer images / s",
            f"score_samples s ({s.detector_images})", "score_samples images / s"], rows))
