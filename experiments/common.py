"""Helpers shared by the experiment scripts (run as ``python experiments/<name>.py``).

What a results row records about where it was made (``run_info``), how a grid writes its
rows as it goes (``run_grid``, ``write_results``) and reads them back (``load_rows``), how
the tables group rows and format the spread over seeds (``group_by``, ``mean_std``,
``save_markdown``), the progress-log line (``metrics_summary``) and the compilation-cache
flag (``add_cache_arg``, ``enable_compile_cache``) live here, so that every script records
and reports the same way.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Callable, Iterable

HERE = pathlib.Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"  # default --out of every script
REPO_CACHE = HERE.parent / ".jax_cache"  # the repository's compilation cache (the tests use it too)


def now() -> str:
    """UTC time stamp for logs and result rows."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def load_rows(path: pathlib.Path) -> list[dict]:
    """The rows of a JSONL results file ([] when it does not exist yet)."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
        rows = sorted([r for r in load_rows(path) if key(r) not in fresh] + new, key=key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        os.replace(tmp, path)


def metrics_summary(res: dict) -> str:
    """``"AUROC 0.9123 AUPRC 0.9876 F1 0.8812"``: the progress-log form of ``evaluate``'s result."""
    return f"AUROC {res['auroc']:.4f} AUPRC {res['auprc']:.4f} F1 {res['f1']:.4f}"


def run_grid(path: pathlib.Path, key_fields: tuple[str, ...], cells: Iterable[tuple],
             run_cell: Callable[..., dict | list[dict]]) -> None:
    """``run_cell(*cell)`` for every cell of an experiment grid, its row (or rows) written to
    ``path`` as soon as it returns, so an interrupted grid keeps what it finished and a rerun
    replaces only the cells it redoes; then the wall time."""
    t0 = time.perf_counter()
    for cell in cells:
        rows = run_cell(*cell)
        write_results(path, rows if isinstance(rows, list) else [rows], key_fields)
    print(f"done in {time.perf_counter() - t0:.0f}s -> {path}", file=sys.stderr)


def group_by(rows: list[dict], *fields: str) -> dict[tuple, list[dict]]:
    """Rows grouped by their values of ``fields``, groups in sorted order (each group's rows
    in their original order): the per-seed means of the tables."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[f] for f in fields), []).append(r)
    return dict(sorted(groups.items()))


def save_markdown(path: pathlib.Path, lines: list[str]) -> str:
    """Write a Markdown table page (``lines`` joined by newlines) and return its text, which
    the scripts also print."""
    text = "\n".join(lines)
    pathlib.Path(path).write_text(text)
    return text


def mean_std(values: Iterable[float], digits: int = 3) -> str:
    """``"0.912 ± 0.010"``: mean ± sample standard deviation (ddof=1) over seeds; just the
    mean for a single value, whose spread is unknown rather than zero."""
    import numpy as np

    v = np.asarray(list(values), dtype=float)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def gadjax_commit(dirty_paths: tuple[str, ...] = ()) -> str | None:
    """The gadjax commit a run used: ``$GADJAX_COMMIT`` when set (a run from a ``git archive``
    snapshot has no checkout to ask), else ``git rev-parse HEAD`` of the checkout holding the
    imported package (read-only), else None.  With ``dirty_paths`` (relative to the checkout
    root), ``"+uncommitted changes"`` is appended when any of them differs from HEAD."""
    if os.environ.get("GADJAX_COMMIT"):
        return os.environ["GADJAX_COMMIT"]
    import gadjax

    root = pathlib.Path(gadjax.__file__).resolve().parents[1]
    git = lambda *a: subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True,  # noqa: E731
                                    check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD") or None
        if commit and dirty_paths and git("status", "--porcelain", "--untracked-files=no", "--", *dirty_paths):
            commit += "+uncommitted changes"
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit


def run_info() -> dict:
    """Where and when a results row was made: ``jax_version``, ``backend``, ``machine``,
    ``gadjax_commit`` and ``finished`` (now); call it when the row is complete."""
    import jax

    return dict(jax_version=jax.__version__, backend=jax.default_backend(),
                machine=f"{platform.machine()} {os.cpu_count()} cpus", gadjax_commit=gadjax_commit(),
                finished=now())


def add_cache_arg(ap: argparse.ArgumentParser, default: str | os.PathLike | None = None) -> None:
    """``--cache-dir DIR`` (old spelling ``--cache`` kept as an alias): the persistent XLA
    compilation cache, ``''`` disables it.  Pass ``args.cache_dir`` to ``enable_compile_cache``."""
    ap.add_argument("--cache-dir", "--cache", dest="cache_dir", metavar="DIR",
                    default=None if default is None else str(default),
                    help="persistent XLA compilation cache, reused across runs ('' disables; default %(default)s)")


def enable_compile_cache(path: str | os.PathLike | None) -> None:
    """Point JAX's persistent compilation cache at ``path`` (no-op for None or '')."""
    if not path:
        return
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    # The small CPU nets here compile in well under jax's default 1 s floor: cache them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def test_subset(n: int, limit: int | None, seed: int = 0):
    """Sorted indices of a seeded random subset of ``limit`` of ``n`` images (all of them
    when ``limit`` is 0/None or >= n): every run of a table scores the same images.  Used
    for test sets and for the normal validation subsets that fix thresholds."""
    import numpy as np

    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))
