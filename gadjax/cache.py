"""JAX's persistent compilation cache, on by default.

A second ``gadjax train`` (or a second Python process fitting the same shapes) loads
its compiled programs from disk instead of compiling them again.  The directory is,
in order: an already configured ``jax_compilation_cache_dir`` (kept as it is), the
``GADJAX_CACHE_DIR`` environment variable, ``$XDG_CACHE_HOME/gadjax/jax`` or
``~/.cache/gadjax/jax``.  ``GADJAX_COMPILATION_CACHE=0`` (or ``gadjax train
--no-compile-cache``) turns it off.
"""
from __future__ import annotations

import os
import pathlib

import jax

OFF = ("0", "off", "false", "no")


def default_directory() -> pathlib.Path:
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "gadjax" / "jax"


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> str | None:
    """Turn on the persistent cache (see the module docstring); returns its directory,
    or None when it is off."""
    if os.environ.get("GADJAX_COMPILATION_CACHE", "1").strip().lower() in OFF:
        return disable_compilation_cache()
    current = jax.config.jax_compilation_cache_dir
    if current and directory is None:
        return current  # the user's (or a test suite's) own cache
    path = str(directory or os.environ.get("GADJAX_CACHE_DIR") or default_directory())
    jax.config.update("jax_compilation_cache_dir", path)
    # Cache every program that took a noticeable time to compile (JAX's default is 1 s).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    return path


def disable_compilation_cache() -> None:
    jax.config.update("jax_enable_compilation_cache", False)
    return None
