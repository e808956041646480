"""The persistent compilation cache is on by default (a user directory, overridable, off
with one setting) and really stores the programs a run compiles."""
import os
import subprocess
import sys


def _run(code, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("GADJAX_")} | env
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=full)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_default_overridable_and_off(tmp_path):
    show = "import jax, gadjax; print(jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)"
    assert _run(show, XDG_CACHE_HOME=str(tmp_path)) == f"{tmp_path / 'gadjax' / 'jax'} True"
    assert _run(show, GADJAX_CACHE_DIR=str(tmp_path / "mine")) == f"{tmp_path / 'mine'} True"
    assert _run(show, GADJAX_COMPILATION_CACHE="0").endswith("False")


def test_a_dry_run_leaves_its_compiled_programs_in_the_cache(shared_data, tmp_path):
    cache = tmp_path / "cache"
    args = ["-m", "gadjax", "train", "--model", "ganomaly", "--data-dir", str(shared_data), "--width", "4",
            "--out", str(tmp_path / "run"), "--dry-run"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GADJAX_")} | {"GADJAX_CACHE_DIR": str(cache)}
    for extra, cached in (([], True), (["--no-compile-cache"], False)):
        if cache.exists():
            for f in cache.rglob("*"):
                f.unlink() if f.is_file() else None
        proc = subprocess.run([sys.executable, *args, *extra], capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        assert any(f.is_file() for f in cache.rglob("*")) == cached, extra
