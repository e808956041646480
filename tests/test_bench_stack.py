"""bench/stack.py on tiny shapes: both ways of training M models run and the table is printed."""
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # the script imports harness, mfu and train_step as siblings
_spec = importlib.util.spec_from_file_location("bench_stack", ROOT / "bench" / "stack.py")
bench = sys.modules["bench_stack"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_table_for_each_width_and_stack_size(capsys):
    # --chunks: only K < M is timed (chunks of 1 at M=2 is the one lax.map row; M=1 has none);
    # tests/test_stack.py proves the chunked step equal to the vmapped one.
    rows = bench.main(["--model", "ganomaly", "--widths", "4", "--members", "2", "1", "--batch", "4",
                       "--repeats", "1", "--chunks", "1", "2"])
    out = capsys.readouterr().out
    assert out.startswith("command: python bench/stack.py --model ganomaly") and "load avg" in out
    # sorted, once each; chunks of 1 only where 1 < M
    assert [(r["width"], r["members"], r["form"]) for r in rows] == [
        (4, 1, "vmap"), (4, 2, "vmap"), (4, 2, "lax.map, chunks of 1")]
    lines = [l for l in out.splitlines() if l.startswith("| ganomaly | 4 |")]
    assert len(lines) == 3
    for r, line in zip(rows, lines):
        assert r["seq_ips"] > 0 and r["stack_ips"] > 0 and r["repeats"] == 1
        assert abs(r["speedup"] - r["seq"][0] / r["stack"][0]) < 1e-9
        assert line.rstrip(" |").endswith(f"{r['speedup']:.2f}x | {r['paired']:.2f}x")


def test_auto_repeats_bounds():
    assert bench.auto_repeats(1.0, 30, 30.0) == 3  # heavy: the floor
    assert bench.auto_repeats(0.001, 1, 30.0) == 10  # light: the cap
    assert bench.auto_repeats(0.25, 10, 30.0) == 6
