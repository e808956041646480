"""gadjax.scores: hand-computed values, shapes, NaN safety, jit/vmap/grad."""
import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax import scores

B, H, W, C, F, Z = 3, 5, 4, 2, 6, 7


def _inputs(seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    return dict(
        x=jax.random.normal(k[0], (B, H, W, C)),
        x_rec=jax.random.normal(k[1], (B, H, W, C)),
        f=jax.random.normal(k[2], (B, F)),
        f_rec=jax.random.normal(k[3], (B, F)),
        z=jax.random.normal(k[4], (B, Z)),
    )


def _call(fn, inp):
    names = [p for p in inspect.signature(fn).parameters if p in inp]
    return fn(**{n: inp[n] for n in names})


def test_hand_computed_values():
    x = jnp.array([[[[1.0], [2.0]], [[3.0], [4.0]]]])  # (1, 2, 2, 1)
    x_rec = jnp.array([[[[0.0], [2.0]], [[5.0], [3.0]]]])  # diffs 1, 0, -2, 1
    np.testing.assert_allclose(scores.l1_residual(x, x_rec), [4.0])
    np.testing.assert_allclose(scores.mse_residual(x, x_rec), [6.0 / 4])
    f, f_rec = jnp.array([[1.0, -1.0, 0.0]]), jnp.array([[0.0, 1.0, 0.0]])  # diffs 1, -2, 0
    np.testing.assert_allclose(scores.feature_residual(f, f_rec), [5.0 / 3])
    np.testing.assert_allclose(scores.feature_l1(f, f_rec), [3.0])
    np.testing.assert_allclose(scores.fanogan_score(x, x_rec, f, f_rec, kappa=2.0),
                               [1.5 + 2 * 5 / 3], rtol=1e-6)
    np.testing.assert_allclose(scores.anogan_loss(x, x_rec, f, f_rec, lam=0.25),
                               [0.75 * 4 + 0.25 * 3], rtol=1e-6)
    np.testing.assert_allclose(scores.origin_distance(jnp.array([[3.0, 4.0], [0.0, 0.0]])),
                               [5.0, 0.0])
    # minmax(x) = [0, 1/3, 2/3, 1]; minmax(x_rec) = [0, 2/5, 1, 3/5]
    nr = (0 + 1 / 15 + 1 / 3 + 2 / 5) / 4
    np.testing.assert_allclose(scores.normalised_residual(x, x_rec), [nr], rtol=1e-6)
    z = jnp.array([[3.0, 4.0]])
    np.testing.assert_allclose(scores.berg_score(x, x_rec, z, lam=0.1),
                               [0.1 * nr + 0.9 * 5.0], rtol=1e-6)


def test_minmax_normalise_range_and_constant_image():
    x = _inputs()["x"]
    y = scores.minmax_normalise(x)
    assert y.shape == x.shape
    np.testing.assert_allclose(y.min(axis=(1, 2, 3)), 0.0, atol=1e-7)
    np.testing.assert_allclose(y.max(axis=(1, 2, 3)), 1.0, atol=1e-6)
    # Per image, not per batch: scaling one image does not change another.
    y2 = scores.minmax_normalise(x.at[0].multiply(10.0))
    np.testing.assert_allclose(y2[1:], y[1:])
    const = jnp.full((2, H, W, C), 0.7)
    out = scores.minmax_normalise(const)
    assert not jnp.isnan(out).any() and jnp.all(out == 0.0)


def test_no_nan_gradients_for_constant_images_and_zero_latent():
    const = jnp.full((2, H, W, C), -0.3)
    g = jax.grad(lambda a: scores.minmax_normalise(a).sum())(const)
    assert jnp.all(jnp.isfinite(g))
    g = jax.grad(lambda a: scores.normalised_residual(a, const).sum())(const)
    assert jnp.all(jnp.isfinite(g))
    g = jax.grad(lambda z: scores.origin_distance(z).sum())(jnp.zeros((2, Z)))
    assert jnp.all(jnp.isfinite(g))
    g = jax.grad(lambda a: scores.berg_score(a, const, jnp.zeros((2, Z))).sum())(const)
    assert jnp.all(jnp.isfinite(g))


@pytest.mark.parametrize("name", sorted(scores.SCORES))
def test_every_score_runs_jit_vmap(name):
    fn = scores.SCORES[name]
    inp = _inputs()
    out = _call(fn, inp)
    assert out.shape == (B,) and jnp.all(jnp.isfinite(out)) and jnp.all(out >= 0)
    np.testing.assert_allclose(jax.jit(lambda d: _call(fn, d))(inp), out, rtol=1e-5, atol=1e-6)
    # vmap over batches of one sample gives the same per-sample scores ...
    per = jax.vmap(lambda d: _call(fn, jax.tree.map(lambda a: a[None], d))[0])(inp)
    np.testing.assert_allclose(per, out, rtol=1e-5, atol=1e-6)
    # ... and over a stack of batches, (K, B, ...) -> (K, B).
    stacked = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), inp)
    out2 = jax.vmap(lambda d: _call(fn, d))(stacked)
    assert out2.shape == (2, B)
    np.testing.assert_allclose(out2[0], out, rtol=1e-5, atol=1e-6)


def test_scores_reduce_every_sample_axis_for_any_data_type():
    for shape in [(3, 5), (3, 7, 2), (3, 4, 4, 1)]:  # tabular rows, time-series windows, images
        x = jnp.arange(np.prod(shape), dtype=jnp.float32).reshape(shape)
        rec = jnp.zeros(shape)
        np.testing.assert_allclose(scores.l1_residual(x, rec), np.abs(np.asarray(x)).reshape(3, -1).sum(1))
        np.testing.assert_allclose(scores.mse_residual(x, rec), (np.asarray(x) ** 2).reshape(3, -1).mean(1))
        assert scores.normalised_residual(x, rec).shape == (3,)


def test_scores_are_zero_for_perfect_reconstruction():
    inp = _inputs()
    inp = dict(inp, x_rec=inp["x"], f_rec=inp["f"], z=jnp.zeros((B, Z)))
    for name, fn in scores.SCORES.items():
        np.testing.assert_allclose(_call(fn, inp), 0.0, atol=1e-6, err_msg=name)


def test_anomaly_map_shape_and_unsmoothed_values():
    inp = _inputs()
    m = scores.anomaly_map(inp["x"], inp["x_rec"])
    assert m.shape == (B, H, W)
    np.testing.assert_allclose(m, jnp.abs(inp["x"] - inp["x_rec"]).mean(-1), rtol=1e-6)
    with pytest.raises(ValueError, match="sigma"):
        scores.anomaly_map(inp["x"], inp["x_rec"], sigma=-1.0)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_anomaly_map_smoothing_preserves_constant_and_blurs_delta(sigma):
    x = jnp.full((2, 9, 11, 3), 0.4)
    m = scores.anomaly_map(x, jnp.zeros_like(x), sigma=sigma)
    assert m.shape == (2, 9, 11)
    # Symmetric padding: a constant map stays constant, borders included.
    np.testing.assert_allclose(m, 0.4, rtol=1e-6)
    delta = jnp.zeros((1, 15, 15, 1)).at[0, 7, 7, 0].set(1.0)
    s = scores.anomaly_map(delta, jnp.zeros_like(delta), sigma=sigma)
    assert float(s.max()) < 1.0 and float(s[0, 7, 7]) == float(s.max())
    np.testing.assert_allclose(float(s.sum()), 1.0, rtol=1e-5)  # mass kept away from borders
    np.testing.assert_allclose(s[0], s[0].T, atol=1e-7)  # isotropic kernel
    # Larger sigma spreads more.
    s2 = scores.anomaly_map(delta, jnp.zeros_like(delta), sigma=2 * sigma)
    assert float(s2.max()) < float(s.max())


def test_anomaly_map_under_jit_and_vmap():
    inp = _inputs()
    ref = scores.anomaly_map(inp["x"], inp["x_rec"], sigma=1.0)
    f = jax.jit(scores.anomaly_map, static_argnames=("sigma",))
    np.testing.assert_allclose(f(inp["x"], inp["x_rec"], sigma=1.0), ref, rtol=1e-5, atol=1e-6)
    per = jax.vmap(lambda a, b: scores.anomaly_map(a, b, sigma=1.0))(inp["x"], inp["x_rec"])
    np.testing.assert_allclose(per, ref, rtol=1e-5, atol=1e-6)


def test_gaussian_kernel():
    k = scores.gaussian_kernel1d(1.5)
    assert k.shape == (2 * 5 + 1,)  # radius ceil(4.5) = 5
    np.testing.assert_allclose(float(k.sum()), 1.0, rtol=1e-6)
    np.testing.assert_allclose(k, k[::-1])
    assert int(jnp.argmax(k)) == 5
