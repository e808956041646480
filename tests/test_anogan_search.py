"""AnoGAN latent search: shapes, optimisation, loop forms, batching, restarts, compile cache, errors."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax.models import anogan_search as A
from gadjax.nets import NetSpec, build_nets
from gadjax.scores import anogan_loss

SPEC = NetSpec("dcgan", (28, 28, 1), z_dim=16, width=8)
STEPS = 20
LR = 0.2  # 20 steps in tests instead of 500: a larger Adam step than the default 0.01
RTOL = 2e-3  # different XLA programs round differently; 20 Adam steps amplify it a little


@pytest.fixture(scope="module")
def nets():
    built = build_nets(SPEC, parts=("generator", "critic"))
    (gen, g_init), (crit, d_init) = built["generator"], built["critic"]
    g_params, g_stats = g_init(jax.random.PRNGKey(0))
    d_params, d_stats = d_init(jax.random.PRNGKey(1))
    return gen, g_params, g_stats, crit, d_params, d_stats


@pytest.fixture(scope="module")
def images(nets):
    """4 images: 2 generated G(z*) (normal under the model), 2 uniform noise (anomalies)."""
    gen, g_params, g_stats = nets[:3]
    z_star = jax.random.normal(jax.random.PRNGKey(5), (2, SPEC.z_dim))
    noise = jax.random.uniform(jax.random.PRNGKey(6), (2, 28, 28, 1), minval=-1.0, maxval=1.0)
    return jnp.concatenate([gen(g_params, g_stats, z_star), noise])


@pytest.fixture(scope="module")
def scan_result(nets, images):
    return A.search_latent(*nets, images, jax.random.PRNGKey(2), steps=STEPS, learning_rate=LR,
                           loop="scan", return_history=True)


def test_shapes_and_score_is_final_loss(nets, images, scan_result):
    r = scan_result
    assert r.score.shape == (4,) and r.z.shape == (4, SPEC.z_dim)
    assert r.reconstruction.shape == (4, 28, 28, 1) and r.loss_history.shape == (4, STEPS)
    gen, g_params, g_stats, crit, d_params, d_stats = nets
    rec = gen(g_params, g_stats, r.z)
    np.testing.assert_allclose(rec, r.reconstruction, atol=1e-5)
    f, f_rec = crit(d_params, d_stats, images)[1], crit(d_params, d_stats, rec)[1]
    np.testing.assert_allclose(anogan_loss(images, rec, f, f_rec, 0.1), r.score, rtol=1e-4)


def test_loss_decreases(scan_result):
    h = np.asarray(scan_result.loss_history)
    assert np.all(h[:, -1] < h[:, 0])
    assert np.all(np.asarray(scan_result.score) < h[:, 0])


def test_generated_image_scores_far_below_noise(scan_result):
    s = np.asarray(scan_result.score)
    assert s[:2].max() < 0.1 * s[2:].min(), s


@pytest.mark.parametrize("loop,unroll", [("unrolled", 3), ("host", 1), ("auto", 8)])
def test_loop_forms_agree(nets, images, scan_result, loop, unroll):
    r = A.search_latent(*nets, images, jax.random.PRNGKey(2), steps=STEPS, learning_rate=LR,
                        loop=loop, unroll=unroll, return_history=True)
    np.testing.assert_allclose(r.score, scan_result.score, rtol=RTOL)
    np.testing.assert_allclose(r.z, scan_result.z, atol=1e-2)
    np.testing.assert_allclose(r.loss_history, scan_result.loss_history, rtol=RTOL)


def test_batch_equals_per_image_loop(nets, images, scan_result):
    r = A.search_latent_per_image(*nets, images, jax.random.PRNGKey(2), steps=STEPS, learning_rate=LR,
                                  loop="scan")
    np.testing.assert_allclose(r.score, scan_result.score, rtol=RTOL)
    np.testing.assert_allclose(r.reconstruction, scan_result.reconstruction, atol=1e-2)
    assert r.loss_history is None


@pytest.mark.parametrize("loop", ["scan", "host"])
def test_restarts_keep_best(nets, images, loop):
    x = images[1:3]
    z0 = jax.random.normal(jax.random.PRNGKey(7), (2, 3, SPEC.z_dim))
    kw = dict(steps=STEPS, learning_rate=LR, loop=loop)
    best = A.search_latent(*nets, x, jax.random.PRNGKey(0), z_init=z0, **kw)
    single = [A.search_latent(*nets, x, jax.random.PRNGKey(0), z_init=z0[:, r], **kw) for r in range(3)]
    scores = np.stack([np.asarray(s.score) for s in single], 1)  # (B, R)
    np.testing.assert_allclose(best.score, scores.min(1), rtol=RTOL)
    pick = scores.argmin(1)
    # the returned code is the chosen restart's (nearest of the three; exact equality is too
    # strict: a noise image's flat loss lets rounding move z by a few 1e-2 at lr 0.2)
    dist = np.stack([np.linalg.norm(np.asarray(best.z - s.z), axis=1) for s in single], 1)  # (B, R)
    np.testing.assert_array_equal(dist.argmin(1), pick)
    # Restarts drawn from the prior: one result per image.
    r3 = A.search_latent(*nets, x, jax.random.PRNGKey(0), restarts=3, **kw)
    assert r3.score.shape == (2,) and r3.z.shape == (2, SPEC.z_dim)


def test_uniform_prior_with_clip_stays_in_box(nets, images):
    r = A.search_latent(*nets, images[2:], jax.random.PRNGKey(3), steps=STEPS, learning_rate=0.5,
                        prior="uniform", clip_z=1.0, loop="scan")
    assert float(jnp.max(jnp.abs(r.z))) <= 1.0


@pytest.mark.parametrize("loop,names", [("scan", ("search",)), ("host", ("host_init", "host_step", "host_final"))])
def test_second_call_does_not_recompile(nets, images, loop, names):
    # batch 3 is used nowhere else, so the first call traces each program exactly once.
    kw = dict(steps=5, learning_rate=LR, loop=loop, lam=0.2)
    A.reset_trace_count()
    A.search_latent(*nets, images[:3], jax.random.PRNGKey(0), **kw)
    after_first = {n: A.trace_count(n) for n in names}
    assert all(v == 1 for v in after_first.values()), after_first
    # new images, key and lam (traced, not static): no new trace
    A.search_latent(*nets, images[1:] * 0.5, jax.random.PRNGKey(1), **{**kw, "lam": 0.3})
    assert {n: A.trace_count(n) for n in names} == after_first


def test_default_loop():
    assert A.default_loop("cpu") == "host" and A.default_loop("gpu") == "scan"


@pytest.mark.parametrize("change,match", [
    (dict(x=np.zeros((4, 28, 28))), r"shape \(B, 28, 28, 1\)"),
    (dict(x=np.zeros((2, 32, 32, 1), np.float32)), r"shape \(B, 28, 28, 1\)"),
    (dict(steps=0), "steps must be"),
    (dict(restarts=0), "restarts must be"),
    (dict(loop="gpu"), "unknown loop"),
    (dict(prior="cauchy"), "unknown latent prior"),
    (dict(lam=1.5), "lam must be"),
    (dict(z_init=np.zeros((2, 2, 16), np.float32)), "z_init must have shape"),
])
def test_errors(nets, change, match):
    kw = dict(x=np.zeros((4, 28, 28, 1), np.float32), steps=3, restarts=1)
    kw.update(change)
    x = kw.pop("x")
    with pytest.raises(ValueError, match=match):
        A.search_latent(*nets, x, jax.random.PRNGKey(0), **kw)


def test_non_finite_images_rejected_with_count(nets):
    x = np.zeros((2, 28, 28, 1), np.float32)
    x[0, 0, 0, 0], x[1, 3, 3, 0], x[1, 4, 4, 0] = np.nan, np.inf, -np.inf
    with pytest.raises(ValueError, match="3 non-finite"):
        A.search_latent(*nets, x, jax.random.PRNGKey(0), steps=3)
