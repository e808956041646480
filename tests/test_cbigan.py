"""CBiGAN: the consistency terms are exactly what is added to BiGAN's G+E loss, they make
E and G invert each other faster than a plain BiGAN, the projection discriminator is the
default, bad settings raise, the learning rate reaches both players, save / load, the
detector API and a seeded MNIST quality check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax import data
from gadjax.metrics import roc_auc
from gadjax.models.bigan import EGBAD, BiGANTrainer, EGBADConfig, egbad_scores
from gadjax.models.cbigan import NAME, CBiGAN, CBiGANConfig, CBiGANTrainer, consistency_losses
from gadjax.nets import NetSpec
from helpers import squares, trace_once

SPEC = NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4)
# The same nets as detector settings (SPEC's LayerNorm critic), a fast rate.
TINY = dict(z_dim=8, width=4, critic_norm="layer", learning_rate=1e-3)


def test_consistency_losses_are_batch_mean_l1_norms():
    x = jnp.zeros((2, 2, 2, 1))
    x_cycle = jnp.array([1.0, -1.0, 0.5, 0.0] * 2).reshape(2, 2, 2, 1) * jnp.array([1.0, 2.0])[:, None, None, None]
    z, z_cycle = jnp.array([[1.0, 2.0], [0.0, 0.0]]), jnp.array([[0.0, 0.0], [0.0, -3.0]])
    image, latent = consistency_losses(x, x_cycle, z, z_cycle)
    np.testing.assert_allclose(image, (2.5 + 5.0) / 2)   # per-image sums 2.5 and 5, averaged
    np.testing.assert_allclose(latent, (3.0 + 3.0) / 2)


def test_generator_encoder_loss_is_bigan_plus_weighted_cycles():
    """Same nets, same init, same key: CBiGAN's G+E loss is BiGAN's plus exactly the
    weighted consistency terms (and BiGAN's when both weights are 0)."""
    bigan = BiGANTrainer(SPEC, EGBADConfig())
    cbigan = CBiGANTrainer(SPEC, CBiGANConfig(discriminator="concat", image_consistency=2.0, latent_consistency=0.5))
    state = bigan.init(jax.random.PRNGKey(0))
    c_state = cbigan.init(jax.random.PRNGKey(0))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(c_state.params)):
        np.testing.assert_array_equal(a, b)
    x = jnp.asarray(data.to_float(squares(8), "tanh"))
    key = jax.random.PRNGKey(1)
    base, (base_stats, m_base) = jax.jit(bigan._generator_encoder_loss)(state.params, state.stats, x, key)
    loss, (new_stats, m) = jax.jit(cbigan._generator_encoder_loss)(state.params, state.stats, x, key)
    np.testing.assert_allclose(m["adversarial_loss"], base, rtol=1e-6)
    assert float(m["image_consistency"]) > 0 and float(m["latent_consistency"]) > 0
    np.testing.assert_allclose(loss, base + 2.0 * m["image_consistency"] + 0.5 * m["latent_consistency"], rtol=1e-5)
    assert set(new_stats) == {"generator", "encoder"}  # D's statistics move only in D's update
    # The image cycle IS BiGAN's reconstruction pass: G's BatchNorm averages move on G(z)
    # and G(E(x)) once each, exactly as BiGAN's (test_bigan checks those by hand).
    for a, b in zip(jax.tree.leaves(new_stats["generator"]), jax.tree.leaves(base_stats["generator"])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def pair():
    """A BiGAN and a CBiGAN (default: projection D, both cycles) trained for the same 60
    steps from the same seed on the same squares."""
    x = squares(64)
    run = dict(TINY, steps=60, batch_size=8, seed=0, score_batch_size=8, progress=False)
    bigan = EGBAD(**run).fit(x)
    cbigan = CBiGAN(**run)
    cbigan.build(x.shape[1:])
    trace_once(cbigan.trainer("model"))  # 60 steps, one trace
    return bigan, cbigan.fit(x), x


def test_consistency_makes_encoder_and_generator_invert_each_other(pair):
    bigan, cbigan, x = pair
    assert isinstance(cbigan.trainer_, CBiGANTrainer) and int(cbigan.state.step) == 60
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(cbigan.state.params["discriminator"])]
    assert any("embed" in p for p in paths), "the default CBiGAN discriminator is the projection one"
    xf = data.to_float(x, "tanh")
    err_bigan = np.mean(np.abs(bigan.reconstruct(x) - xf))
    err_cbigan = np.mean(np.abs(cbigan.reconstruct(x) - xf))
    assert err_cbigan < 0.9 * err_bigan, (err_cbigan, err_bigan)
    # and the latent cycle: E(G(z)) is closer to z.
    z = jax.random.normal(jax.random.PRNGKey(3), (32, SPEC.z_dim))
    cycle = {}
    for name, det in (("bigan", bigan), ("cbigan", cbigan)):
        t, s = det.trainer_, det.state
        cycle[name] = float(jnp.mean(jnp.abs(z - t.encode(s, t.generate(s, z)))))
    assert cycle["cbigan"] < cycle["bigan"], cycle


def test_detector_fits_scores_and_maps(pair):
    assert NAME == "cbigan"
    _, det, x = pair
    start = det.trainer_.init(jax.random.PRNGKey(0))
    for name in ("generator", "encoder", "discriminator"):
        assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(start.params[name]),
                                                         jax.tree.leaves(det.state.params[name]))), name
    scores = det.score_samples(x)
    assert scores.shape == (64,) and np.isfinite(scores).all()
    assert det.anomaly_map(x[:5]).shape == (5, 16, 16) and det.predict(x).shape == (64,)
    config = det.config
    try:
        det.config = config.replace(method="cross-entropy")  # score-only: no retraining
        ce = det.score_samples(x)
        assert np.isfinite(ce).all() and not np.allclose(ce, scores)
    finally:
        det.config = config
    # CBiGAN scores with EGBAD's pure scorer, on the weights ``weights`` picks (the EMA).
    assert CBiGAN.score_fn is egbad_scores
    np.testing.assert_allclose(egbad_scores(det.scoring_nets(), jnp.asarray(data.to_float(x[:8], "tanh")),
                                            det.config)["score"], scores[:8], rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [(dict(image_consistency=-1.0), "image_consistency"),
                                           (dict(latent_consistency=float("nan")), "latent_consistency"),
                                           (dict(image_consistency="1"), "image_consistency"),
                                           (dict(discriminator="mlp"), "discriminator"),
                                           (dict(dropout=1.0), "dropout"), (dict(consistency=1.0), "consistency")])
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CBiGANConfig().replace(**kwargs)
    with pytest.raises(ValueError, match=match):
        CBiGAN(**kwargs)


def test_needs_consistency_config_and_valid_alpha():
    with pytest.raises(TypeError, match="CBiGANConfig"):
        CBiGAN(EGBADConfig())
    with pytest.raises(TypeError, match="CBiGANConfig"):
        CBiGANTrainer(SPEC, EGBADConfig())
    with pytest.raises(ValueError, match="alpha"):
        CBiGAN(alpha=1.01)
    assert CBiGANConfig().discriminator == "projection" and CBiGAN().config == CBiGANConfig()
    assert CBiGAN.name == NAME and EGBAD.name == "egbad"


def test_quality_on_real_mnist_digit_1_vs_0(shared_data):
    """Seeded and small: normal = digit 1; zeros must score clearly higher."""
    mnist = data.load("mnist", shared_data)
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    pick = np.r_[np.flatnonzero(mnist.y_test == 1)[:100], np.flatnonzero(mnist.y_test == 0)[:100]]
    y = (mnist.y_test[pick] != 1).astype(int)
    det = CBiGAN(z_dim=16, width=8, critic_norm="batch", steps=100, batch_size=32, seed=0, learning_rate=1e-3,
                 progress=False).fit(split.x_train[:1000], split.x_val[:64])
    auc = roc_auc(y, det.score_samples(mnist.x_test[pick]))
    assert auc > 0.95, auc


@pytest.fixture
def float64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_data_parallel_step_matches_single_device_in_float64(float64):
    """Both players, dropout keys and both cycles, sharded over the 8 fake devices, give the
    single-device result (CBiGAN's step contains everything BiGAN's does)."""
    assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
    config = CBiGANConfig(learning_rate=1e-3)
    single, parallel = CBiGANTrainer(SPEC, config), CBiGANTrainer(SPEC, config, parallel=True)
    state = jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                         single.init(jax.random.PRNGKey(0)))
    s_state, p_state = jax.tree.map(jnp.copy, state), jax.device_put(state, parallel.parallel.replicated)
    for seed in range(2):
        batch = np.random.default_rng(seed).uniform(-1, 1, (1, 16, 16, 16, 1))
        s_state, s_metrics = single.step(s_state, jnp.asarray(batch))
        p_state, p_metrics = parallel.step(p_state, parallel.put_batches(batch))
    for a, b in zip(jax.tree.leaves(s_state.params), jax.tree.leaves(p_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(float(s_metrics["generator_encoder_loss"]), float(p_metrics["generator_encoder_loss"]),
                               rtol=1e-9)
