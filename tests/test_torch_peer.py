"""bench/torch_peer.py: the PyTorch peer nets compute gadjax's thesis nets (skipped without torch)."""
import importlib.util
import pathlib

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from gadjax.nets import NetSpec, build_nets, count_params  # noqa: E402

_PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "torch_peer.py"
_spec = importlib.util.spec_from_file_location("bench_torch_peer", _PATH)
peer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer)


def test_same_pads_match_xla():
    assert [peer.same_pads(n) for n in (28, 14, 7)] == [(1, 2), (1, 2), (2, 2)]


def test_copied_weights_give_the_same_function():
    spec = NetSpec("thesis", (28, 28, 1), z_dim=8, width=4)
    nets = build_nets(spec, parts=("generator", "critic"))
    (g, g_init), (d, d_init) = nets["generator"], nets["critic"]
    gp, gs = g_init(jax.random.PRNGKey(0))
    dp, ds = d_init(jax.random.PRNGKey(1))
    G, D = peer.Generator(8, 4), peer.Critic(4)
    assert count_params(gp) == sum(p.numel() for p in G.parameters())
    assert count_params(dp) == sum(p.numel() for p in D.parameters())
    peer.to_torch(gp, dp, G, D)

    z = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    x_j = np.asarray(g(gp, gs, z))                                   # (3, 28, 28, 1)
    with torch.no_grad():
        x_t = G(torch.from_numpy(z)).numpy()                         # (3, 1, 28, 28)
    np.testing.assert_allclose(x_t.transpose(0, 2, 3, 1), x_j, atol=1e-5)

    logits_j, f_j = d(dp, ds, x_j)
    with torch.no_grad():
        logits_t, f_t = D(torch.from_numpy(x_t))
    np.testing.assert_allclose(logits_t.numpy(), np.asarray(logits_j), rtol=1e-4, atol=1e-5)
    f_t = f_t.numpy().reshape(3, 16, 4, 4).transpose(0, 2, 3, 1).reshape(3, -1)  # C,H,W -> H,W,C order
    np.testing.assert_allclose(f_t, np.asarray(f_j), rtol=1e-4, atol=1e-5)
