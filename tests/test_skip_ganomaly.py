"""Skip-GANomaly: the U-Net generator and its depth rule, the score (paper L1 and the reference
code's squared residual), D's optional latent term, training (params and BatchNorm statistics
move, one trace), batch-independent scores, the detector API, bad settings, --lr reaching
both optimisers, save / load, and a seeded quality check on real MNIST."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gadjax import data
from gadjax.metrics import roc_auc, threshold_from_normal
from gadjax.models import ConfigError, ganomaly
from gadjax.models.skip_ganomaly import (NAME, SkipGANomaly, SkipGANomalyConfig, SkipGANomalyTrainer,
                                         l1_mean_residual, l2_mean_residual, skip_ganomaly_score,
                                         skip_ganomaly_scores)
from gadjax.nets import NetSpec
from gadjax.nets.ganomaly import pure_net
from gadjax.nets.unet import UNetGenerator, unet_depth, unet_widths
from helpers import squares as _squares
from helpers import trace_once

# n_stages=2: the shallowest U-Net compiles fastest; the default depth (4 levels at 16x16)
# trains in test_models.py's every-detector test.
SMALL = dict(width=4, steps=3, batch_size=8, score_batch_size=8, n_stages=2)


def _changed(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.fixture(scope="module")
def fitted():
    x = _squares(24)
    # --lr 3e-4 (the paper's rate is 2e-4): test_lr_reaches_both_optimisers reads it back.
    det = SkipGANomaly(SkipGANomalyConfig(**SMALL).with_learning_rate(3e-4), progress=False)
    det.build(x.shape[1:])
    trace_once(det.trainer("model"))  # training and the extra step below must not retrace
    return det.fit(x[:16], x_val=x[16:]), x


def test_default_depth_is_the_reference_rule():
    """The reference's define_G: int(log2(isize)) levels, a 1x1 bottleneck (the paper's five
    down-sampling blocks at 32x32); other sizes: as many exact halvings as both sides allow."""
    for side in (16, 32, 64, 128):
        assert unet_depth(side, side) == int(math.log2(side))
    assert unet_depth(32, 32) == 5 and unet_depth(64, 64) == 6
    assert unet_depth(28, 28) == 2 and unet_depth(64, 48) == 4 and unet_depth(20, 36) == 2


@pytest.mark.parametrize("shape, n_stages, bottleneck", [
    ((28, 28, 1), None, 7), ((32, 32, 3), None, 1), ((32, 32, 3), 3, 4), ((64, 64, 3), None, 1),
    ((64, 48, 3), None, 4)])
def test_unet_any_plannable_size(shape, n_stages, bottleneck):
    net, init = pure_net(lambda rngs: UNetGenerator(shape, 4, n_stages=n_stages, rngs=rngs), "g", "default")
    params, stats = jax.eval_shape(init, jax.random.PRNGKey(0))
    n = len(params["downs"])
    assert shape[0] // 2 ** n == bottleneck
    # Skip connections: every decoder level but the bottleneck's reads [skip, upsampled].
    widths = unet_widths(4, n)
    assert [params["ups"][i]["kernel"].shape[2] for i in range(n)] == [2 * w for w in widths[:-1]] + [widths[-1]]
    out = jax.eval_shape(lambda p, s: net.apply(p, s, jnp.zeros((2,) + shape), train=True)[0], params, stats)
    assert out.shape == (2,) + shape


def test_unet_skips_carry_detail_past_the_bottleneck(fitted):
    """With the deepest level cut off (its output zeroed), the trained U-Net still maps
    different inputs to different outputs; an encoder-decoder without skips could not."""
    det, x = fitted
    net, stats = det.trainer_.generator, det.state.stats["generator"]
    params = jax.tree.map(jnp.copy, det.state.params["generator"])
    deepest = params["ups"][len(params["ups"]) - 1]
    deepest["kernel"] = jnp.zeros_like(deepest["kernel"])
    y = net(params, stats, jnp.asarray(data.to_float(x[:2], "tanh")))
    assert float(jnp.max(jnp.abs(y[0] - y[1]))) > 1e-3 and float(jnp.max(jnp.abs(y))) <= 1.0


def test_unet_rejects_bad_depth():
    with pytest.raises(ValueError, match="divisible by"):
        UNetGenerator((28, 28, 1), 4, n_stages=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="multiples of 4"):
        UNetGenerator((30, 30, 1), 4, rngs=nnx.Rngs(0))


def test_score_by_hand():
    x, x_hat = jnp.zeros((2, 2, 2, 1)), jnp.stack([jnp.full((2, 2, 1), 0.5), jnp.zeros((2, 2, 1))])
    f, f_hat = jnp.zeros((2, 3)), jnp.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    np.testing.assert_allclose(l1_mean_residual(x, x_hat), [0.5, 0.0])
    np.testing.assert_allclose(skip_ganomaly_score(x, x_hat, f, f_hat, 0.9), [0.45, 0.1 * 3.0], rtol=1e-6)
    np.testing.assert_allclose(skip_ganomaly_score(x, x_hat, f, f_hat, 0.0), [0.0, 3.0])
    # The reference code's residual: mean squared error, 0.5^2 = 0.25 for the first image.
    x_hat = x_hat.at[1, 0, 0, 0].set(-2.0)  # one pixel off by 2 of 4: L1 0.5, L2 1.0
    np.testing.assert_allclose(l2_mean_residual(x, x_hat), [0.25, 1.0])
    np.testing.assert_allclose(l1_mean_residual(x, x_hat), [0.5, 0.5])
    np.testing.assert_allclose(skip_ganomaly_score(x, x_hat, f, f_hat, 0.9, "l2"),
                               [0.9 * 0.25, 0.9 * 1.0 + 0.1 * 3.0], rtol=1e-6)


def test_d_latent_adds_w_lat_times_the_feature_term_to_d_loss():
    """The reference's backward_d: err_d = BCE real + BCE fake + w_lat * mean (f(x) - f(x_hat))^2,
    the features being D's (train mode) on the batch and on its reconstructions."""
    spec, x = NetSpec("dcgan", (16, 16, 1), width=4), jnp.asarray(data.to_float(_squares(8), "tanh"))
    paper = SkipGANomalyTrainer(spec, SkipGANomalyConfig(width=4, w_lat=2.5, n_stages=2))
    code = SkipGANomalyTrainer(spec, SkipGANomalyConfig(width=4, w_lat=2.5, n_stages=2, d_latent=True))
    s, key = paper.init(jax.random.PRNGKey(0)), jax.random.PRNGKey(1)

    @jax.jit  # one compile for all of it (eager flax is slow)
    def run(params, stats):
        x_hat, _ = paper.reconstruct(params["generator"], stats["generator"], x, train=True)
        (_, f), d_stats = paper.discriminator.apply(params["discriminator"], stats["discriminator"], x, train=True)
        (_, f_hat), _ = paper.discriminator.apply(params["discriminator"], d_stats, x_hat, train=True)
        return (paper._discriminator_loss(params, stats, x, key), code._discriminator_loss(params, stats, x, key),
                f, f_hat)

    (loss_paper, (stats_paper, m_paper)), (loss_code, (stats_code, m_code)), f, f_hat = run(s.params, s.stats)
    by_hand = np.mean(np.square(np.asarray(f, np.float64) - np.asarray(f_hat, np.float64)))
    assert by_hand > 1e-6 and "d_lat_loss" not in m_paper
    np.testing.assert_allclose(float(m_code["d_lat_loss"]), by_hand, rtol=1e-4)
    np.testing.assert_allclose(float(loss_code) - float(loss_paper), 2.5 * by_hand, rtol=1e-4)
    np.testing.assert_allclose(float(m_code["d_real"]), float(m_paper["d_real"]))  # the BCE part is unchanged
    assert not _changed(stats_paper, stats_code)


def test_training_moves_params_and_batchnorm_stats_in_one_trace(fitted):
    det, x = fitted
    t = det.trainer_
    assert NAME == "skip_ganomaly" and SkipGANomaly.name == NAME
    assert isinstance(t, ganomaly.GANomalyTrainer)  # shares GANomaly's step and D re-initialisation
    init = t.init(jax.random.PRNGKey(det.config.seed))
    for net in ("generator", "discriminator"):
        assert _changed(init.params[net], det.state.params[net]), net
        assert _changed(init.stats[net], det.state.stats[net]), net  # train-mode BatchNorm ran
    # trace_once (the fixture): this step reuses the training step's single trace.
    state, metrics = t.step(jax.tree.map(jnp.copy, det.state), t.put_batches(data.to_float(x[:8], "tanh")[None]))
    for k in ("generator_loss", "discriminator_loss", "adv_loss", "con_loss", "lat_loss"):
        assert math.isfinite(float(metrics[k])), k
    assert float(metrics["discriminator_reinit"]) == 0.0


def test_score_of_an_image_does_not_depend_on_its_batch(fitted):
    det, x = fitted
    one = x[:1]
    others = np.concatenate([np.full((3, 16, 16, 1), 255, np.uint8),
                             np.random.default_rng(1).integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)])
    alone = det.score_details(one)
    in_batch = det.score_details(np.concatenate([one, others]))
    for k in ("score", "residual", "latent"):
        np.testing.assert_allclose(alone[k][0], in_batch[k][0], rtol=1e-6)
    # Train-mode BatchNorm (the reference's scoring) would make the score batch-dependent.
    g, p, s = det.trainer_.generator, det.state.params["generator"], det.state.stats["generator"]
    batch = jnp.asarray(data.to_float(np.concatenate([one, others]), "tanh"))
    y_alone, _ = g.apply(p, s, batch[:1].repeat(8, 0), train=True)
    y_batch, _ = g.apply(p, s, batch, train=True)
    assert float(jnp.max(jnp.abs(y_alone[0] - y_batch[0]))) > 1e-6


def test_detector_fits_scores_and_maps(fitted):
    det, x = fitted
    d = det.score_details(x)
    assert d["score"].shape == d["residual"].shape == d["latent"].shape == (24,)
    np.testing.assert_allclose(d["score"], 0.9 * d["residual"] + 0.1 * d["latent"], rtol=1e-5)
    # The pure scorer on the bound nets, with another (score-only) lam: no retraining.
    pure = skip_ganomaly_scores(det.scoring_nets(), jnp.asarray(data.to_float(x[:8], "tanh")),
                                det.config.replace(lam=0.5))
    np.testing.assert_allclose(pure["score"], 0.5 * d["residual"][:8] + 0.5 * d["latent"][:8], rtol=1e-5)
    # residual='l2' (the reference code's score), also score-only: mean squared error of the reconstruction.
    x8 = data.to_float(x[:8], "tanh")
    l2 = skip_ganomaly_scores(det.scoring_nets(), jnp.asarray(x8), det.config.replace(residual="l2"))
    by_hand = np.mean(np.square(x8 - d["reconstruction"][:8]), axis=(1, 2, 3))
    np.testing.assert_allclose(l2["residual"], by_hand, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(l2["score"], 0.9 * by_hand + 0.1 * d["latent"][:8], rtol=1e-5, atol=1e-7)
    fields = SkipGANomalyConfig.training_fields()
    assert "residual" not in fields and "lam" not in fields and "d_latent" in fields
    assert det.threshold_ == pytest.approx(threshold_from_normal(det.score_samples(x[16:]), 95.0), rel=1e-5)
    maps = det.anomaly_map(x[:5])
    assert maps.shape == (5, 16, 16) and (maps >= 0).all()
    assert det.reconstruct(x[:3]).shape == (3, 16, 16, 1)
    assert det.predict(x).shape == (24,)


@pytest.mark.parametrize("kwargs, match", [
    (dict(w_lat=-1.0), "w_lat"), (dict(lam=1.5), "lam"), (dict(n_stages=1), "n_stages"),
    (dict(learning_rate=-1.0), "learning_rate"), (dict(init="xavier"), "init")])
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SkipGANomalyConfig(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(lam="high"), "lam"),                  # wrong type
    (dict(w_con=float("nan")), "w_con"),        # NaN
    (dict(beta2=1.0), "beta2"),                 # out of range
    (dict(generator_norm="group"), "generator_norm"),
    (dict(residual="l3"), "residual"),
    (dict(d_latent="yes"), "d_latent"),
    (dict(net="thesis"), "net"),                # the U-Net and D are DCGAN nets
    (dict(z_dim=8), "z_dim"),                   # unknown: the U-Net has no latent vector
])
def test_bad_settings_raise_at_construction(kwargs, field):
    with pytest.raises(ConfigError, match=field) as err:
        SkipGANomaly(**kwargs)
    assert err.value.field == field


def test_depth_that_does_not_divide_the_image_raises_at_build():
    with pytest.raises(ValueError, match="divisible by"):
        SkipGANomalyTrainer(NetSpec("dcgan", (28, 28, 1), width=4), SkipGANomalyConfig(n_stages=3))


def test_quality_on_real_mnist_digit_1_vs_0(shared_data):
    """Seeded, small: normal = digit 1; zeros must score clearly higher."""
    mnist = data.load("mnist", shared_data)
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    pick = np.r_[np.flatnonzero(mnist.y_test == 1)[:60], np.flatnonzero(mnist.y_test == 0)[:60]]
    det = SkipGANomaly(width=8, steps=150, batch_size=32, seed=0, progress=False).fit(split.x_train[:1500],
                                                                                      split.x_val[:64])
    auc = roc_auc((mnist.y_test[pick] != 1).astype(int), det.score_samples(mnist.x_test[pick]))
    assert auc > 0.9, auc
