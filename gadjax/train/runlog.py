"""Run-directory side effects of training: JSONL metrics and a console progress bar.

Only process 0 writes, so multi-host runs produce one log.
"""
from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
import warnings

import jax


class MetricsLog:
    """Append-only ``metrics.jsonl``; each line is ``{"step": int, ...floats}``."""

    def __init__(self, path: str | pathlib.Path | None):
        self.path = pathlib.Path(path) if path else None
        self.enabled = self.path is not None and jax.process_index() == 0

    def truncate_after(self, step: int) -> None:
        """Drop lines logged after ``step``: a resumed run recomputes them exactly."""
        if not (self.enabled and self.path.exists()):
            return
        keep = []
        lines = self.path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                # A crash or a full disk can tear the last line: drop it, say so.
                where = "last line" if i == len(lines) - 1 else f"line {i + 1}"
                warnings.warn(f"{self.path}: dropping the unreadable {where} ({line[:60]!r})", stacklevel=2)
                continue
            if record.get("step", 0) <= step:
                keep.append(line)
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in keep))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


class Progress:
    """A dependency-free progress bar: redrawn in place on a terminal, one line per
    update otherwise (CI logs)."""

    def __init__(self, total: int, start: int = 0, enabled: bool = True, width: int = 24, stream=None,
                 label: str = "", unit: str = "it"):
        self.total, self.start, self.width, self.label, self.unit = total, start, width, label, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled and jax.process_index() == 0
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.perf_counter()

    def update(self, step: int, info: dict | None = None) -> None:
        if not self.enabled:
            return
        done = max(step - self.start, 0)
        elapsed = time.perf_counter() - self.t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else math.inf
        filled = int(self.width * step / max(self.total, 1))
        fields = " ".join(f"{k}={v:.4g}" for k, v in (info or {}).items())
        line = (f"{self.label + ' ' if self.label else ''}[{'#' * filled}{'.' * (self.width - filled)}] "
                f"{step}/{self.total} {rate:.2f} {self.unit}/s eta {_fmt(eta)} {fields}").rstrip()
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def progress_callback(total: int, label: str, unit: str = "samples", enabled: bool = True):
    """A ``progress(done)`` callback drawing a bar with ``unit``/s for a loop over
    ``total`` items (e.g. scoring batches); None when disabled."""
    if not enabled or jax.process_index() != 0:
        return None
    bar = Progress(total, 0, label=label, unit=unit)
    last = [0.0]

    def update(done: int) -> None:
        now = time.perf_counter()
        if done == total or bar.tty or now - last[0] >= 2.0:  # a log gets a line every 2 s at most
            bar.update(done)
            last[0] = now
        if done == total:
            bar.close()
    return update
