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
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
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

    def __init__(self, total: int, start: int = 0, enabled: bool = True, width: int = 24, stream=None):
        self.total, self.start, self.width = total, start, width
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
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {step}/{self.total} "
                f"{rate:.2f} it/s eta {_fmt(eta)} {fields}")
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
