"""bench/gpu_suite.py --smoke: every GPU table's code runs on the CPU and writes its markdown file.

The suite runs once, in a subprocess: its smoke mode sets XLA flags (optimisation level 0) that
only a fresh JAX reads.  The subprocess gets 2 fake CPU devices, so the data-parallel table
runs, and shares this suite's compilation cache: about 60-110 s cold on a
loaded 2-core machine, 20-40 s warm.
"""
import importlib.util
import os
import pathlib
import subprocess
import sys

import jax
import pytest

from gadjax.models import DETECTORS

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bench_gpu_suite", ROOT / "bench" / "gpu_suite.py")
suite = sys.modules["bench_gpu_suite"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(suite)
S = suite.SMOKE
DEVICES = 2  # fake CPU devices of the suite's subprocess


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("gpu_suite")
    env = dict(os.environ)
    # The smoke mode sets its own (lowest) LLVM optimisation level; keep conftest's device count.
    # Two fake devices are enough for the data-parallel table and compile and run faster than 8.
    env["XLA_FLAGS"] = " ".join([f for f in env.get("XLA_FLAGS", "").split()
                                 if not f.startswith(("--xla_backend_optimization_level", "--xla_llvm_disable",
                                                      "--xla_force_host_platform_device_count"))]
                                + [f"--xla_force_host_platform_device_count={DEVICES}"])
    if jax.config.jax_compilation_cache_dir:
        env["GADJAX_CACHE_DIR"] = str(jax.config.jax_compilation_cache_dir)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_suite.py"), str(out), "--smoke"], cwd=ROOT,
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "all tables:" in proc.stdout
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]  # atomic writes left no temp file
    return {name: (out / f"{name}.md").read_text() for name in suite.TABLES}


def rows(text: str, *first: object) -> list[list[str]]:
    """Table rows (cells stripped) whose first cells are ``first``."""
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[:len(first)] == [str(f) for f in first]:
            out.append(cells)
    return out


def number(cell: str) -> float:
    return float(cell.split()[0].rstrip("%x").replace(",", ""))


def one_row(text: str, *first: object) -> list[str]:
    found = rows(text, *first)
    assert len(found) == 1, (first, text)
    return found[0]


@pytest.mark.slow
def test_every_file_has_header_command_and_time(tables):
    for name, text in tables.items():
        assert text.startswith("command: `python bench/gpu_suite.py "), name
        assert "--smoke" in text.splitlines()[0] and "mode: smoke" in text
        assert "jax " in text and "flax " in text and "load avg" in text and "backend cpu" in text
        assert "FAILED" not in text, name
        assert text.rstrip().endswith(" s_") and f"_{name}: " in text


@pytest.mark.slow
def test_train_step_rows_every_net_loop_and_dtype(tables):
    text = tables["train_step"]
    for family, shape, width in S.train_nets:
        for dtype in ("float32", "bfloat16"):
            for loop in ("unrolled (full)", "rolled scan"):
                row = one_row(text, family, "x".join(map(str, shape)), width, dtype, loop)
                assert number(row[7]) > 0  # images / s
                assert number(row[8]) > 0 and number(row[9]) > 0  # model and own FLOPs from XLA
                assert number(row[12]) > 0 and row[12].endswith("%")  # MFU
            # XLA counts a rolled loop's body once: both rows take the unrolled program's count.
            un, ro = (one_row(text, family, "x".join(map(str, shape)), width, dtype, loop)
                      for loop in ("unrolled (full)", "rolled scan"))
            assert un[8] == ro[8] and number(ro[9]) < number(ro[8])
    assert "rolled scan / unrolled time" in text and "bfloat16 speed-up over float32" in text


@pytest.mark.slow
def test_anogan_and_fanogan_rows_per_batch(tables):
    for b in S.search_batches:
        for method in ("batched (vmap)", "per-image loop"):
            assert number(one_row(tables["anogan_search"], b, method)[5]) > 0
        row = one_row(tables["fanogan_vs_anogan"], b)
        assert number(row[3]) > 0 and number(row[5]) > 0  # f-AnoGAN and AnoGAN images / s
    assert f"K = {S.search_steps}" in tables["anogan_search"]
    assert "max relative difference" in tables["anogan_search"]


@pytest.mark.slow
def test_detectors_every_registered_one(tables):
    for name in DETECTORS:
        row = one_row(tables["detectors"], name)
        assert number(row[4]) > 0 and number(row[6]) > 0, row  # scorer and score_samples images / s


@pytest.mark.slow
def test_torch_peer_when_importable(tables):
    text = tables["torch_peer"]
    if importlib.util.find_spec("torch") is None:
        assert "torch is not importable" in text
        return
    for width in S.torch_widths:
        for case in ("WGAN-GP step", f"AnoGAN search K={S.torch_search_steps}"):
            for impl in ("gadjax", "torch eager"):
                assert number(one_row(text, width, case, impl)[5]) > 0


@pytest.mark.slow
def test_data_parallel_over_all_local_devices(tables):
    n = DEVICES  # the subprocess's fake devices (XLA_FLAGS)
    text = tables["data_parallel"]
    single, parallel = rows(text, 1), rows(text, n)
    assert len(single) == 1 and len(parallel) == 1
    assert number(single[0][5]) > 0 and number(parallel[0][5]) > 0 and parallel[0][6] != ""


@pytest.mark.slow
def test_stack_rows_every_width_and_size(tables):
    for width in S.stack_widths:
        for m in S.stack_members:
            row = one_row(tables["stack"], "wgan-thesis", width, m)
            assert row[3] == "vmap"
            assert number(row[11]) > 0 and number(row[12]) > 0  # sequential and stacked images / s
            assert row[13].endswith("x") and number(row[13]) > 0  # stacked / sequential


def test_attempt_reports_in_full_mode_and_raises_in_smoke():
    full, smoke = (suite.Run(S, flag, "cmd") for flag in (False, True))
    assert full.attempt(lambda: 1) == (1, None)
    value, error = full.attempt(lambda: 1 / 0)
    assert value is None and error.startswith("ZeroDivisionError")
    with pytest.raises(ZeroDivisionError):
        smoke.attempt(lambda: 1 / 0)
