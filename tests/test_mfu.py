"""bench/mfu.py: XLA FLOP counting, the rolled-loop undercount, and MFU of a tiny train step (CPU)."""
import importlib.util
import math
import pathlib

import jax.numpy as jnp
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "mfu.py"
_spec = importlib.util.spec_from_file_location("bench_mfu", _PATH)
mfu_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mfu_mod)


def test_matmul_flops_are_2mnk():
    m, k, n = 48, 32, 24
    assert mfu_mod.compiled_flops(jnp.matmul, jnp.ones((m, k)), jnp.ones((k, n))) == 2 * m * n * k


def test_xla_flops_accepts_dict_list_and_none():
    class Fake:
        def __init__(self, cost):
            self.cost = cost

        def cost_analysis(self):
            return self.cost

    assert mfu_mod.xla_flops(Fake({"flops": 10.0})) == 10.0
    assert mfu_mod.xla_flops(Fake([{"flops": 10.0}, {"flops": 5.0}, {}])) == 15.0  # older JAX: one per computation
    assert mfu_mod.xla_flops(Fake(None)) is None
    assert mfu_mod.xla_flops(Fake({})) is None


def test_rolled_scan_body_is_counted_once():
    rolled, unrolled, exact = mfu_mod.loop_check(n=5, size=32)
    assert unrolled == pytest.approx(exact, rel=0.05)
    assert rolled == pytest.approx(exact / 5, rel=0.05)


def test_datasheet_peaks():
    assert mfu_mod.datasheet_peak("NVIDIA H100 80GB HBM3", "tf32") == 494.5e12
    assert mfu_mod.datasheet_peak("NVIDIA H100 PCIe", "fp32") == 51e12
    assert mfu_mod.datasheet_peak("NVIDIA H200", "fp32") == 67e12
    assert mfu_mod.datasheet_peak("cpu", "tf32") is None


def test_mfu_of_tiny_train_step_is_finite_and_positive():
    from gadjax.nets import NetSpec
    from gadjax.train.gan import GANConfig, GANTrainer

    cfg = GANConfig(nets=NetSpec("mlp", (8,), z_dim=4, width=8), loss="wgan-gp", n_critic=2)
    rolled, unrolled = GANTrainer(cfg, unroll=1), GANTrainer(cfg, unroll=True)
    r = mfu_mod.mfu(rolled, 4, peak_flops=1e9, unrolled=unrolled, steps=1, repeats=2, warmup=0)
    assert math.isfinite(r["mfu"]) and r["mfu"] > 0
    assert r["model_flops"] > r["flops"] > 0  # the rolled program's own count misses one critic update
    assert r["achieved"] == pytest.approx(r["model_flops"] / r["med"])
