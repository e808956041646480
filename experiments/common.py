"""Helpers shared by the experiment scripts (run as ``python experiments/<name>.py``)."""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import pathlib


def now() -> str:
    """UTC time stamp for logs and result rows."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_results(path: pathlib.Path, new: list[dict], key_fields: tuple[str, ...]) -> None:
    """Rewrite a JSONL results file atomically: rows with the same ``key_fields`` values as
    a new row are replaced, all others kept, sorted by key."""
    key = lambda r: tuple(r[k] for k in key_fields)  # noqa: E731
    fresh = {key(r) for r in new}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Several grid processes may share one results file: the lock keeps one writer's
    # read-modify-write from dropping another's rows.
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        rows = sorted([r for r in old if key(r) not in fresh] + new, key=key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        os.replace(tmp, path)


def test_subset(n: int, limit: int | None, seed: int = 0):
    """Sorted indices of a seeded random subset of ``limit`` of ``n`` images (all of them
    when ``limit`` is 0/None or >= n): every run of a table scores the same images.  Used
    for test sets and for the normal validation subsets that fix thresholds."""
    import numpy as np

    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
