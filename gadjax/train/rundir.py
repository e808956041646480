"""Output directories that are safe to share and to resume: a writer lock, a record of
what was trained there, and atomic small-file writes.

* ``RunLock``: one writer per directory.  The lock file holds the writer's pid and host;
  a second writer is refused with a message naming them; a lock whose process is gone
  (killed run) is taken over with a warning.
* ``check_record``: the first fit writes ``fit.json`` (model, training settings, a
  fingerprint of the training data); a later fit into the same directory must match it,
  so checkpoints are never resumed for another model or other data.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import socket
import warnings

import numpy as np

LOCK_NAME = ".lock"
RECORD_NAME = "fit.json"


def write_json(path: pathlib.Path, value) -> None:
    """Write JSON atomically (a temporary file renamed into place)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def check_out_dir(path) -> pathlib.Path:
    """``path`` as a Path; an existing file there is an error (it must be a directory)."""
    path = pathlib.Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"output directory {path} is a file; choose a directory (new or a run to resume)")
    return path


def fingerprint(x: np.ndarray) -> dict:
    """Shape, dtype and a hash of an array: enough to tell training sets apart."""
    x = np.ascontiguousarray(x)
    return {"shape": list(x.shape), "dtype": str(x.dtype),
            "blake2b": hashlib.blake2b(x.view(np.uint8).reshape(-1), digest_size=16).hexdigest()}


def check_record(directory: pathlib.Path, record: dict) -> None:
    """Compare ``record`` with the directory's ``fit.json`` (write it if absent)."""
    path = pathlib.Path(directory) / RECORD_NAME
    if not path.exists():
        write_json(path, record)
        return
    try:
        saved = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is unreadable ({err}); delete the directory to start again") from None
    changed = differences(saved, record)
    if changed:
        detail = "; ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in changed)
        raise ValueError(f"{directory} holds a model fitted with other settings or data ({detail}); "
                         "use another output directory, or delete this one to start again")


def differences(saved: dict, now: dict, prefix: str = "") -> list[tuple[str, tuple]]:
    """``[(dotted key, (saved, now))]`` for every leaf that differs."""
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append((prefix + k, (a, b)))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``with RunLock(directory):`` -- exclusive writer access to ``directory``."""

    def __init__(self, directory):
        self.path = pathlib.Path(directory) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.path.read_text().split() if self.path.exists() else []
                pid = int(holder[0]) if holder and holder[0].isdigit() else None
                host = holder[1] if len(holder) > 1 else socket.gethostname()
                if pid == os.getpid() and host == socket.gethostname():
                    return  # held by this process already (a run that fits a detector): nested use
                if pid is not None and (host != socket.gethostname() or _alive(pid)):
                    raise RuntimeError(f"{self.path.parent} is in use by process {pid} on {host} "
                                       f"(lock file {self.path}); wait for it or use another directory") from None
                warnings.warn(f"taking over the stale lock {self.path} of process {pid}, which is gone",
                              stacklevel=3)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me + "\n")
            self.held = True
            return
        raise RuntimeError(f"could not take the lock {self.path}")

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
