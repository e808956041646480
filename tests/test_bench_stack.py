"""bench/stack.py's helpers; its measurement and table run in tests/test_gpu_suite.py (the GPU
suite's ``stack`` table, --smoke: width 2, M = 1 and 2)."""
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the script imports harness, mfu and train_step as siblings
_spec = importlib.util.spec_from_file_location("bench_stack", ROOT / "bench" / "stack.py")
bench = sys.modules["bench_stack"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_auto_repeats_bounds():
    assert bench.auto_repeats(1.0, 30, 30.0) == 3  # heavy: the floor
    assert bench.auto_repeats(0.001, 1, 30.0) == 10  # light: the cap
    assert bench.auto_repeats(0.25, 10, 30.0) == 6
