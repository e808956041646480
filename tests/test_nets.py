"""Networks: shapes for every supported size, clear errors otherwise, pure-function use."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax.nets import NETS, NetSpec, build_nets, count_params, spatial_plan


@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3), (64, 64, 1), (48, 32, 1)])
def test_dcgan_shapes(shape):
    spec = NetSpec("dcgan", shape, z_dim=8, width=4)
    nets = build_nets(spec)
    (G, g_init), (D, d_init), (E, e_init) = nets["generator"], nets["critic"], nets["encoder"]
    gp, gs = g_init(jax.random.PRNGKey(0))
    dp, ds = d_init(jax.random.PRNGKey(1))
    ep, es = e_init(jax.random.PRNGKey(2))
    x = G(gp, gs, jnp.ones((3, 8)))
    assert x.shape == (3,) + shape
    assert float(x.min()) >= -1 and float(x.max()) <= 1  # tanh
    logits, features = D(dp, ds, x)
    assert logits.shape == (3,) and features.ndim == 2 and features.shape[0] == 3
    assert E(ep, es, x).shape == (3, 8)


SAMPLE = {3: (28, 28, 1), 2: (4, 3), 1: (7,)}  # lstm: z_dim 8 = 4 steps x 2


def test_every_registry_family_builds_and_runs():
    for family in NETS:
        shape = SAMPLE[NETS[family].sample_ndim]
        spec = NetSpec(family, shape, z_dim=8, width=4)
        nets = build_nets(spec)
        params = {k: init(jax.random.PRNGKey(0)) for k, (_, init) in nets.items()}
        x = nets["generator"][0](*params["generator"], jnp.ones((2, 8)))
        assert x.shape == (2,) + shape
        if spec.output_range is not None:
            lo, hi = spec.output_range
            assert lo <= float(x.min()) <= float(x.max()) <= hi
        logits, _ = nets["critic"][0](*params["critic"], x)
        assert logits.shape == (2,)
        assert nets["encoder"][0](*params["encoder"], x).shape == (2, 8)


def test_thesis_architecture_matches_the_paper():
    spec = NetSpec("thesis", (28, 28, 1), z_dim=128, width=64)
    nets = build_nets(spec)
    gp, gs = nets["generator"][1](jax.random.PRNGKey(0))
    dp, ds = nets["critic"][1](jax.random.PRNGKey(0))
    assert gp["project"]["kernel"].shape == (128, 4 * 4 * 4 * 64)  # FC to 4x4x4ngf
    assert gs == {} or len(jax.tree.leaves(gs)) == 0  # no BatchNorm
    kernels = [dp["trunk"]["convs"][i]["kernel"].shape for i in range(3)]
    assert kernels == [(5, 5, 1, 64), (5, 5, 64, 128), (5, 5, 128, 256)]  # 3 convs k5
    assert dp["head"]["kernel"].shape == (4 * 4 * 256, 1)  # 28 -> 14 -> 7 -> 4, then FC
    x = nets["generator"][0](gp, gs, jnp.zeros((1, 128)))
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0  # sigmoid output


@pytest.mark.parametrize("shape", [(30, 30, 1), (6, 6, 1), (28, 27, 3)])
def test_unsupported_sizes_raise_clear_errors(shape):
    with pytest.raises(ValueError, match="multiples of 4"):
        build_nets(NetSpec("dcgan", shape, z_dim=4, width=4))


def test_sample_shape_must_match_the_family():
    with pytest.raises(ValueError, match=r"takes samples of shape \(D,\)"):
        NetSpec("mlp", (28, 28, 1))
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        NetSpec("dcgan", (121,))


def test_thesis_rejects_other_sizes():
    with pytest.raises(ValueError, match="28x28"):
        build_nets(NetSpec("thesis", (32, 32, 1)))


def test_spatial_plan():
    assert spatial_plan(28, 28) == (2, 7, 7)
    assert spatial_plan(32, 32) == (3, 4, 4)
    assert spatial_plan(64, 64) == (4, 4, 4)


def test_wrong_input_shape_is_named():
    nets = build_nets(NetSpec("dcgan", (28, 28, 1), z_dim=4, width=4))
    D, init = nets["critic"]
    with pytest.raises(ValueError, match=r"\(batch, 28, 28, 1\).*\(2, 32, 32, 1\)"):
        D(*init(jax.random.PRNGKey(0)), jnp.zeros((2, 32, 32, 1)))
    G, g_init = nets["generator"]
    with pytest.raises(ValueError, match="z of shape"):
        G(*g_init(jax.random.PRNGKey(0)), jnp.zeros((2, 5)))


def test_batchnorm_train_updates_stats_and_eval_is_per_sample():
    spec = NetSpec("dcgan", (16, 16, 1), z_dim=4, width=4, generator_norm="batch")
    G, init = build_nets(spec, parts=("generator",))["generator"]
    params, stats = init(jax.random.PRNGKey(0))
    z = jax.random.normal(jax.random.PRNGKey(1), (8, 4))
    _, new_stats = jax.jit(lambda p, s, z: G.apply(p, s, z, train=True))(params, stats, z)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(new_stats))]
    assert any(moved), "train mode must update BatchNorm running averages"
    # Inference mode: an image's output does not depend on the rest of the batch.
    full = G(params, new_stats, z)
    alone = G(params, new_stats, z[:1])
    np.testing.assert_allclose(full[:1], alone, rtol=1e-5, atol=1e-6)
    # ...whereas in train mode it does (batch statistics).
    train_full, _ = G.apply(params, stats, z, train=True)
    train_alone, _ = G.apply(params, stats, z[:2], train=True)
    assert not np.allclose(train_full[:1], train_alone[:1], atol=1e-4)


def test_count_params_and_pure_functions_compose_with_grad_and_vmap():
    nets = build_nets(NetSpec("dcgan", (16, 16, 1), z_dim=4, width=4, critic_norm="layer"))
    D, init = nets["critic"]
    params, stats = init(jax.random.PRNGKey(0))
    assert count_params(params) > 0
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 16, 16, 1))
    per_sample = jax.vmap(lambda xi: D(params, stats, xi[None])[0][0])(x)
    np.testing.assert_allclose(per_sample, D(params, stats, x)[0], rtol=1e-5, atol=1e-6)
    grads = jax.grad(lambda p: D(p, stats, x)[0].sum())(params)
    assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("family, shape, norm", [("thesis", (28, 28, 1), "none"), ("dcgan", (16, 16, 1), "batch")])
def test_latent_norm_makes_the_generator_ignore_the_scale_of_z(family, shape, norm):
    z = jax.random.normal(jax.random.PRNGKey(1), (4, 8))
    outputs = {}
    for on in (True, False):
        spec = NetSpec(family, shape, z_dim=8, width=4, generator_norm=norm, latent_norm=on)
        G, init = build_nets(spec, parts=("generator",))["generator"]
        params, stats = init(jax.random.PRNGKey(0))  # no parameters of its own: the same init either way
        outputs[on] = [np.asarray(G(params, stats, c * z)) for c in (1.0, 0.1, 7.0)]
    base, *scaled = outputs[True]
    for x in scaled:  # pixel norm: G(c z) == G(z) for c > 0
        np.testing.assert_allclose(x, base, rtol=1e-5, atol=1e-6)
    base, *scaled = outputs[False]
    for x in scaled:
        assert np.abs(x - base).max() > 1e-3


def test_latent_norm_is_pixel_norm_and_off_by_default():
    from gadjax.nets import pixel_norm
    z = jax.random.normal(jax.random.PRNGKey(0), (3, 6)) * 4.0
    out = np.asarray(pixel_norm(z))
    np.testing.assert_allclose(out, np.asarray(z) / np.sqrt((np.asarray(z) ** 2).mean(-1, keepdims=True) + 1e-8),
                               rtol=1e-6)
    np.testing.assert_allclose((out ** 2).mean(-1), 1.0, rtol=1e-5)
    assert NetSpec().latent_norm is False  # every other detector's nets are unchanged
    with pytest.raises(ValueError, match="latent_norm"):
        NetSpec("mlp", (7,), latent_norm=True)
