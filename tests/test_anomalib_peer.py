"""bench/anomalib_peer.py: anomalib's GANomaly loads without its heavy package imports, both
sides build and take one finite training step, and the parameter counts differ by exactly
the biases the script's docstring claims (skipped without torch and anomalib)."""
import importlib.util
import math
import pathlib
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("anomalib")

_PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "anomalib_peer.py"
_spec = importlib.util.spec_from_file_location("bench_anomalib_peer", _PATH)
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)

S, C, W, Z, B = 32, 3, 4, 8, 4  # anomalib's encoder needs sides >= 32


@pytest.fixture(scope="module")
def ano():
    return peer.load_anomalib()


def test_loads_anomalib_files_without_leaving_stubs(ano):
    assert ano.torch_model.GanomalyModel.__module__ == "_anomalib_ganomaly_torch_model"
    assert pathlib.Path(ano.torch_model.__file__).is_relative_to(ano.root)
    assert ano.version and "anomalib.data" not in sys.modules  # stand-ins removed again
    x = torch.zeros(1, 3, 30, 32)
    assert tuple(ano.torch_model.pad_nextpow2(x).shape) == (1, 3, 32, 32)  # anomalib's own function


@pytest.mark.parametrize("size", [32, 64])
def test_parameter_counts_differ_by_the_biases(ano, size):
    trainer, state, _, _ = peer.build_gadjax(size, C, W, Z, B)
    counts = peer.param_counts(trainer, state, peer.build_anomalib(ano, size, C, W, Z, trainer.config))
    extra = peer.bias_difference(size, C, W, Z)
    assert [j - t for j, t in counts.values()] == list(extra)
    if size == 32:  # the docstring's formulas: generator 2 (7w + z) + (64w + 3w + C), D 7w + 1
        assert extra == (2 * (7 * W + Z) + 67 * W + C, 7 * W + 1)


def test_one_step_and_scores_on_both_sides(ano):
    trainer, state, batches, x = peer.build_gadjax(S, C, W, Z, B)
    cfg = trainer.config
    assert (cfg.w_adv, cfg.w_con, cfg.w_enc, cfg.learning_rate, cfg.beta1, cfg.beta2) == (1, 50, 1, 2e-4, 0.5, 0.999)
    state, m_j = trainer.step(state, batches)
    assert bool(m_j["finite"])

    p = peer.build_anomalib(ano, S, C, W, Z, cfg)
    assert p.g_loss.wcon == 50 and p.opt_g.defaults["betas"] == (0.5, 0.999) and p.opt_d.defaults["lr"] == 2e-4
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    before = [q.detach().clone() for q in p.model.parameters()]
    m_t = peer.anomalib_step(p, x_t)
    for k in ("generator_loss", "discriminator_loss"):
        assert math.isfinite(float(m_j[k])) and math.isfinite(m_t[k]), k
    moved = [not torch.equal(a, q) for a, q in zip(before, p.model.parameters())]
    assert all(moved)  # both players updated every parameter

    nets = {"generator": peer.bind(trainer.generator, state.params["generator"], state.stats["generator"])}
    s_j = peer.score_batch(peer.ganomaly_scores, nets, x, cfg)["score"]
    s_t = peer.anomalib_scores(p.model.eval(), x_t)
    assert s_j.shape == s_t.shape == (B,)
    assert np.isfinite(np.asarray(s_j)).all() and torch.isfinite(s_t).all()
    jax.block_until_ready(s_j)
