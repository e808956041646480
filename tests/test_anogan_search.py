"""AnoGAN latent search: shapes, optimisation, loop forms, batching, restarts, compile cache,
plain-JAX networks, errors; the AnoGAN and f-AnoGAN detectors: config checks, learning
rates reaching every optimiser, GAN reuse, save/load."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gadjax
from gadjax.models import anogan_search as A
from gadjax.models.anogan import AnoGAN, AnoGANConfig
from gadjax.models.fanogan import FAnoGAN, FAnoGANConfig, fanogan_scores
from gadjax.nets import NetSpec, bind, build_nets, features_of
from gadjax.optim import learning_rates
from gadjax.scores import anogan_loss
from helpers import squares

SPEC = NetSpec("dcgan", (28, 28, 1), z_dim=16, width=8)
STEPS = 20
LR = 0.2  # 20 steps in tests instead of 500: a larger Adam step than the default 0.01
RTOL = 2e-3  # different XLA programs round differently; 20 Adam steps amplify it a little


@pytest.fixture(scope="module")
def raw():
    built = build_nets(SPEC, parts=("generator", "critic"))
    (gen, g_init), (crit, d_init) = built["generator"], built["critic"]
    return (gen, *g_init(jax.random.PRNGKey(0))), (crit, *d_init(jax.random.PRNGKey(1)))


@pytest.fixture(scope="module")
def nets(raw):
    """(generator, features): the callables ``search_latent`` takes."""
    return bind(*raw[0]), features_of(bind(*raw[1]))


@pytest.fixture(scope="module")
def images(nets):
    """4 images: 2 generated G(z*) (normal under the model), 2 uniform noise (anomalies)."""
    z_star = jax.random.normal(jax.random.PRNGKey(5), (2, SPEC.z_dim))
    noise = jax.random.uniform(jax.random.PRNGKey(6), (2, 28, 28, 1), minval=-1.0, maxval=1.0)
    return jnp.concatenate([nets[0](z_star), noise])


@pytest.fixture(scope="module")
def scan_result(nets, images):
    return A.search_latent(*nets, images, jax.random.PRNGKey(2), steps=STEPS, learning_rate=LR,
                           loop="scan", return_history=True)


def test_shapes_and_score_is_final_loss(raw, images, scan_result):
    r = scan_result
    assert r.score.shape == (4,) and r.z.shape == (4, SPEC.z_dim)
    assert r.reconstruction.shape == (4, 28, 28, 1) and r.loss_history.shape == (4, STEPS)
    (gen, g_params, g_stats), (crit, d_params, d_stats) = raw
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
    # index_offset: images 2, 3 searched alone get the starts they had in the whole batch.
    tail = A.search_latent(*nets, images[2:], jax.random.PRNGKey(2), steps=STEPS, learning_rate=LR, loop="scan",
                           index_offset=2)
    np.testing.assert_allclose(tail.score, scan_result.score[2:], rtol=RTOL)


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


_PROGRAMS = {"scan": [("_search_jit", "_search_batch", dict(static_argnames=A._STATIC))],
             "host": [("_host_init_jit", "_host_init", dict(static_argnames=("z_dim", "restarts", "prior"))),
                      ("_host_step_jit", "_host_step", dict(static_argnames=("clip_z",), donate_argnums=0)),
                      ("_host_final_jit", "_host_final", {})]}


@pytest.mark.parametrize("loop", ["scan", "host"])
def test_second_call_does_not_recompile(monkeypatch, raw, nets, images, loop):
    # Each compiled program re-jitted so that a second trace fails the test.
    for jitted, fn, options in _PROGRAMS[loop]:
        monkeypatch.setattr(A, jitted, jax.jit(chex.assert_max_traces(getattr(A, fn), n=1), **options))
    kw = dict(steps=5, learning_rate=LR, loop=loop, lam=0.2)
    A.search_latent(*nets, images[:3], jax.random.PRNGKey(0), **kw)
    # New images, key, lam, index offset and NEW WEIGHTS of the same networks: all traced.
    (gen, g_params, g_stats), (crit, d_params, d_stats) = raw
    other = lambda tree: jax.tree.map(lambda a: a * 0.9, tree)  # noqa: E731
    G, D = bind(gen, other(g_params), g_stats), bind(crit, other(d_params), d_stats)
    r = A.search_latent(G, features_of(D), images[1:] * 0.5, jax.random.PRNGKey(1), index_offset=7,
                        **{**kw, "lam": 0.3})
    assert np.isfinite(np.asarray(r.score)).all()


def test_plain_jax_callables():
    """Any JAX function works as generator / features; its parameters may be closed over
    (static) or bound in a Partial (traced): the same search either way."""
    w = jax.random.normal(jax.random.PRNGKey(0), (3, 12)) * 0.5

    def generator(z, w=w):
        return jnp.tanh(z @ w)                  # (B, 3) -> rows (B, 12)

    def features(x):
        return jnp.stack([x.mean(-1), x.std(-1)], -1)

    x = generator(jax.random.normal(jax.random.PRNGKey(1), (4, 3)))
    kw = dict(steps=60, learning_rate=0.1, loop="scan", return_history=True)
    with pytest.raises(ValueError, match="z_dim="):
        A.search_latent(generator, features, x, jax.random.PRNGKey(2), **kw)
    plain = A.search_latent(generator, features, x, jax.random.PRNGKey(2), z_dim=3, **kw)
    bound = A.search_latent(jax.tree_util.Partial(lambda w_, z: generator(z, w_), w), features, x,
                            jax.random.PRNGKey(2), z_dim=3, **kw)
    np.testing.assert_allclose(plain.score, bound.score, rtol=1e-5)
    h = np.asarray(plain.loss_history)
    assert plain.z.shape == (4, 3) and np.all(h[:, -1] < 0.5 * h[:, 0])
    with pytest.raises(ValueError, match=r"generator\(z\) failed"):
        A.search_latent(generator, features, x, jax.random.PRNGKey(2), z_dim=4, steps=2)


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
    (dict(z_dim=12), "z_dim=12 but the generator takes codes of size 16"),
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


# ------------------------------------------------------------ AnoGAN and f-AnoGAN detectors

TINY = dict(z_dim=8, width=4, n_critic=2, steps=3, batch_size=8, score_batch_size=8)


def rates(opt) -> dict:
    """Each player's learning rate as float32 (what the optimiser state holds)."""
    return {k: np.float32(v) for k, v in learning_rates(opt).items()}


F32 = np.float32(3e-4)


@pytest.mark.parametrize("cls,change", [
    (AnoGAN, dict(search_steps="5")), (AnoGAN, dict(lam=1.5)), (AnoGAN, dict(search_lr=float("nan"))),
    (AnoGAN, dict(loop="gpu")), (AnoGAN, dict(restarts=0)), (AnoGAN, dict(kappa=1.0)),
    (FAnoGAN, dict(kappa=-1.0)), (FAnoGAN, dict(encoder_strategy="zizi")), (FAnoGAN, dict(encoder_steps=0)),
    (FAnoGAN, dict(encoder_learning_rate=float("inf"))), (FAnoGAN, dict(steps="many")), (FAnoGAN, dict(lam=0.1)),
])
def test_bad_settings_fail_at_construction(cls, change):
    with pytest.raises(ValueError, match=next(iter(change))):
        cls(**change)


def test_encoder_rate_follows_the_gan():
    assert FAnoGANConfig().encoder_config().learning_rate == 1e-4          # WGAN-GP's paper rate
    assert FAnoGANConfig(gan_loss="wgan").encoder_config().learning_rate == 5e-5
    assert FAnoGANConfig(learning_rate=2e-3).encoder_config().learning_rate == 2e-3
    cfg = FAnoGANConfig(learning_rate=2e-3, encoder_learning_rate=1e-3, kappa=0.5, encoder_strategy="izi")
    assert cfg.encoder_config() == gadjax.EncoderConfig("izi", kappa=0.5, learning_rate=1e-3)
    assert cfg.with_learning_rate(3e-4).encoder_config().learning_rate == 3e-4


@pytest.fixture(scope="module")
def fanogan():
    """An f-AnoGAN whose every optimiser was set to 3e-4 the way ``--lr`` does it."""
    x = squares(24)
    cfg = FAnoGANConfig(encoder_learning_rate=1e-3, encoder_steps=2, **TINY)
    det = FAnoGAN(cfg.with_learning_rate(3e-4), progress=False).fit(x[:16], x[16:])
    return det, x


def test_fanogan_learning_rates_save_load_and_pure_scorer(fanogan, tmp_path):
    det, x = fanogan
    assert rates(det.states_["gan"].opt) == {"critic": F32, "generator": F32}
    assert rates(det.encoder_state.opt) == {"encoder": F32}
    out = fanogan_scores(det.scoring_nets(), jnp.asarray(gadjax.data.to_float(x, "tanh")), det.config)
    scores = det.score_samples(x)
    np.testing.assert_allclose(out["score"], scores, rtol=1e-5)
    np.testing.assert_allclose(out["image"] + det.config.kappa * out["feature"], out["score"], rtol=1e-5)
    back = gadjax.load(det.save(tmp_path / "fanogan"))
    assert back.config == det.config and back.threshold_ == det.threshold_
    np.testing.assert_array_equal(back.score_samples(x), scores)


def test_fanogan_scores_plain_jax_networks():
    w = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    nets = {"encoder": lambda x: x @ w, "generator": lambda z: z @ w.T, "features": lambda x: jnp.tanh(x)}
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 6))
    out = fanogan_scores(nets, x, FAnoGANConfig(kappa=2.0))
    rec = x @ w @ w.T
    image, feature = ((x - rec) ** 2).mean(-1), ((jnp.tanh(x) - jnp.tanh(rec)) ** 2).mean(-1)
    np.testing.assert_allclose(out["score"], image + 2.0 * feature, rtol=1e-5)
    np.testing.assert_allclose(out["feature"], feature, rtol=1e-5)
    jitted = jax.jit(lambda x: fanogan_scores(nets, x)["score"])   # composes with the user's jit
    np.testing.assert_allclose(jitted(x), image + feature, rtol=1e-5)


def test_anogan_reuses_the_gan_saves_and_scores_independently_of_batches(fanogan, tmp_path):
    fan, x = fanogan
    ano = AnoGAN(AnoGANConfig(search_steps=4, search_lr=0.05, **TINY).with_learning_rate(3e-4), progress=False)
    ano.fit(x[:16], x[16:], gan=fan)
    assert ano.gan_state is fan.gan_state and rates(ano.gan_state.opt) == {"critic": F32, "generator": F32}
    scores = ano.score_samples(x)
    assert scores.shape == (24,) and np.isfinite(scores).all()
    assert ano.reconstruct(x[:3]).shape == (3, 16, 16, 1)
    # Per-image keys fold in the image's index: other batch sizes give the same scores.
    other = AnoGAN(ano.config.replace(score_batch_size=5), progress=False).fit(x[:16], x[16:], gan=fan)
    np.testing.assert_allclose(other.score_samples(x), scores, rtol=1e-4)
    back = gadjax.load(ano.save(tmp_path / "anogan"))
    np.testing.assert_array_equal(back.score_samples(x), scores)
    with pytest.raises(ValueError, match="other GAN settings"):
        AnoGAN(search_steps=2, progress=False, **{**TINY, "width": 8}).fit(x[:16], gan=fan)
