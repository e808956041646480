"""Shared helpers for the benchmark scripts: machine/version description and timing.

    from common import machine_info, time_fn   # scripts run as ``python bench/<name>.py``
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from importlib import metadata
from typing import Callable


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
