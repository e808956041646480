"""Shared helpers for the benchmark scripts: machine/version description and timing.

    from harness import machine_info, time_fn   # scripts run as ``python bench/<name>.py``

``timed``, ``iqr`` and ``interleaved_medians`` time a framework against a peer (``torch_peer.py``,
``anomalib_peer.py``): every implementation of a case in turn, repeat after repeat.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from importlib import metadata
from typing import Callable, NamedTuple


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> str:
    """One paragraph: platform, CPUs, python, library versions, backend and devices, load."""
    import jax

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = "load avg %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load avg n/a"
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    lines = [
        f"platform: {platform.platform()} ({platform.machine()}) | python {platform.python_version()} | "
        f"CPUs: {os.cpu_count()} (usable {usable}) | {load}",
        f"jax {_version('jax')} | jaxlib {_version('jaxlib')} | flax {_version('flax')} | "
        f"optax {_version('optax')} | backend {jax.default_backend()} | "
        f"devices: {', '.join(kinds)} x{len(devices)} (local {jax.local_device_count()})",
    ]
    if os.environ.get("XLA_FLAGS"):
        lines.append(f"XLA_FLAGS={os.environ['XLA_FLAGS']}")
    return "\n".join(lines)


def time_fn(fn: Callable[[], object], warmup: int = 1, repeats: int = 5) -> list[float]:
    """Wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls.

    Each call's result is passed to ``jax.block_until_ready`` so asynchronous dispatch
    is included in the time.  Summarise with ``summarize`` (median, min, max).
    """
    import jax

    for _ in range(warmup):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def summarize(times: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of a list of timings."""
    return statistics.median(times), min(times), max(times)


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(wall-clock seconds of one call of ``fn``, its result); ``fn`` must block until done."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def iqr(times: list[float]) -> tuple[float, float, float]:
    """(median, first quartile, third quartile) of a list of timings (all three the value if only one)."""
    if len(times) < 2:
        return times[0], times[0], times[0]
    q1, q2, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return q2, q1, q3


class Interleaved(NamedTuple):
    """One implementation's timings in one case of ``interleaved_medians`` (seconds)."""
    first: float    # its first call
    median: float
    q1: float
    q3: float
    ratio: float    # median / the baseline's median
    paired: float   # median over repeats of (this time / the baseline's time in the same repeat)
    n: int          # number of timed repeats
    times: list[float]


def interleaved_medians(cases: dict[str, list[tuple[str, Callable[[], object]]]],
                        first: dict[tuple[str, str], float], repeats: dict[str, int] | int,
                        baseline: str = "gadjax", ms_digits: int = 1,
                        log=sys.stderr) -> dict[str, dict[str, Interleaved]]:
    """Time several implementations of each case interleaved, so background load hits all alike.

    ``cases``: case -> [(implementation name, fn)], ``fn`` a no-argument call that blocks until
    its work is done; ``first``: (case, name) -> seconds of first calls already made and timed
    (e.g. gadjax's compile + run).  First every (case, name) not in ``first`` gets its first
    call timed, then every fn one untimed call; then, case by case, ``repeats`` (or
    ``repeats[case]``) rounds each time every fn of the case once, in order, and log one line
    per round (``"  {case} repeat {r}: {name} {ms} ms, ..."``, ``ms_digits`` decimals).
    ``first`` is not modified.  Returns case -> name -> ``Interleaved`` (in the order of
    ``cases``), ratios against the implementation named ``baseline``.
    """
    first = dict(first)
    for case, fns in cases.items():  # first calls not yet made, then one untimed call each
        for name, fn in fns:
            if (case, name) not in first:
                first[(case, name)] = timed(fn)[0]
            fn()
    results = {}
    for case, fns in cases.items():
        times = {name: [] for name, _ in fns}
        for r in range(repeats if isinstance(repeats, int) else repeats[case]):
            for name, fn in fns:
                times[name].append(timed(fn)[0])
            print(f"  {case} repeat {r + 1}: " + ", ".join(
                f"{n} {1e3 * t[-1]:.{ms_digits}f} ms" for n, t in times.items()), file=log, flush=True)
        base = times[baseline]
        results[case] = {}
        for name, ts in times.items():
            med, q1, q3 = iqr(ts)
            results[case][name] = Interleaved(first[(case, name)], med, q1, q3,
                                              statistics.median(ts) / statistics.median(base),
                                              statistics.median(t / b for t, b in zip(ts, base)), len(ts), ts)
    return results
