"""DED-GAN: training steps, the weighted generator loss, the latent-distance score
recomputed by hand, batch-independent scoring, the detector API, bad settings, --lr reaching
both optimisers, save / load, MNIST quality."""
import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gadjax import data
from gadjax.metrics import roc_auc, threshold_from_normal
from gadjax.models import ConfigError
from gadjax.models.dedgan import NAME, DEDGAN, DEDGANConfig, DEDGANTrainer, dedgan_scores, latent_distance
from gadjax.nets import NetSpec
from helpers import squares as _squares
from helpers import trace_once

SPEC = NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4)
SMALL = dict(z_dim=8, width=4, steps=3, batch_size=8, score_batch_size=8)


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def fitted():
    x = _squares(24)
    # --lr 3e-4 (the default is 2e-4): test_lr_reaches_both_optimisers reads it back.
    det = DEDGAN(DEDGANConfig(**SMALL).with_learning_rate(3e-4), progress=False)
    return det.fit(x[:16], x_val=x[16:]), x


def test_steps_train_both_players_without_recompiling():
    trainer = trace_once(DEDGANTrainer(SPEC))
    state = trainer.init(jax.random.PRNGKey(0))
    before = {n: _leaves(state.params[n]) for n in ("generator", "discriminator")}
    batch = trainer.put_batches(data.to_float(_squares(8), "tanh")[None])
    for _ in range(3):
        state, metrics = trainer.step(state, batch)  # trace_once: a second trace fails
    assert int(state.step) == 3 and bool(metrics["finite"]) and float(metrics["discriminator_reinit"]) == 0.0
    for k in ("generator_loss", "discriminator_loss", "adv_loss", "rec_loss", "lat_loss"):
        assert np.isfinite(float(metrics[k])), k
    for name, old in before.items():
        assert any(not np.allclose(a, b) for a, b in zip(old, _leaves(state.params[name]))), name
    # BatchNorm running averages are trained state too: they must have moved.
    assert any(not np.allclose(a, b) for a, b in zip(_leaves(trainer.init(jax.random.PRNGKey(0)).stats),
                                                     _leaves(state.stats)))


@pytest.mark.parametrize("adversarial", ["feature", "bce"])
def test_generator_loss_is_the_weighted_sum_and_w_adv_zero_ignores_the_discriminator(adversarial):
    x = jnp.asarray(data.to_float(_squares(8), "tanh"))
    key = jax.random.PRNGKey(0)
    losses = {}
    for w_adv in (0.0, 2.0):
        cfg = DEDGANConfig(w_adv=w_adv, w_rec=3.0, w_lat=0.5, adversarial=adversarial)
        trainer = DEDGANTrainer(SPEC, cfg)
        state = trainer.init(key)
        other_d = trainer.init(jax.random.PRNGKey(1)).params["discriminator"]
        for d_name, d_params in (("a", state.params["discriminator"]), ("b", other_d)):
            params = {**state.params, "discriminator": d_params}
            loss, (_, m) = trainer._generator_loss(params, state.stats, x, key)
            expected = cfg.w_adv * m["adv_loss"] + cfg.w_rec * m["rec_loss"] + cfg.w_lat * m["lat_loss"]
            np.testing.assert_allclose(float(loss), float(expected), rtol=1e-6)
            assert float(m["adv_loss"]) > 0 and float(m["rec_loss"]) > 0 and float(m["lat_loss"]) > 0
            losses[w_adv, d_name] = float(loss)
    assert losses[0.0, "a"] == pytest.approx(losses[0.0, "b"], rel=1e-6)  # no adversarial term
    assert losses[2.0, "a"] != pytest.approx(losses[2.0, "b"], rel=1e-4)  # the discriminator matters


@pytest.mark.parametrize("kwargs, match", [
    (dict(w_adv=-1.0), "w_adv"), (dict(w_rec=-0.1), "w_rec"), (dict(w_lat=float("nan")), "w_lat"),
    (dict(w_adv=0.0, w_rec=0.0, w_lat=0.0), "all zero"), (dict(adversarial="hinge"), "adversarial"),
    (dict(feature_match="median"), "feature_match"), (dict(learning_rate=0.0), "learning_rate"),
    (dict(beta1=1.0), "beta1"), (dict(reinit_threshold=-1.0), "reinit_threshold"), (dict(init="xavier"), "init"),
    (dict(score_p=3), "score_p"),
])
def test_bad_hyper_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DEDGANConfig(**kwargs)


@pytest.mark.parametrize("kwargs, field", [
    (dict(w_rec="50"), "w_rec"),                # wrong type
    (dict(score_p=2.5), "score_p"),             # not an integer
    (dict(beta2=float("nan")), "beta2"),        # NaN
    (dict(z_dim=0), "z_dim"),                   # out of range
    (dict(w_adv=0.0, w_rec=0.0, w_lat=0.0), "w_adv"),  # the cross-field rule
    (dict(lam=0.5), "lam"),                     # unknown field
])
def test_bad_settings_raise_at_construction(kwargs, field):
    with pytest.raises(ConfigError, match=field) as err:
        DEDGAN(**kwargs)
    assert err.value.field == field


def test_non_dcgan_nets_are_refused():
    with pytest.raises(ValueError, match="dcgan"):
        DEDGAN(net="thesis")
    with pytest.raises(ValueError, match="images"):
        DEDGAN(**SMALL, progress=False).fit(np.zeros((16, 8), np.float32))  # rows: no DCGAN nets for them


def test_score_is_the_latent_distance_recomputed_by_hand(fitted):
    det, x = fitted
    params, stats = det.state.params["generator"], det.state.stats["generator"]
    net = nnx.merge(det.trainer_.generator.graphdef, params, stats, copy=True)
    xf = jnp.asarray(data.to_float(x, "tanh"))
    # The two sub-networks one at a time, BatchNorm on running averages (train=False).
    z1 = net.first.encoder(xf, train=False)
    x1 = net.first.decoder(z1, train=False)
    z2 = net.second.encoder(x1, train=False)
    by_hand = np.mean((np.asarray(z1) - np.asarray(z2)) ** 2, axis=-1)
    assert np.ptp(by_hand) > 0
    np.testing.assert_allclose(det.score_samples(x), by_hand, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(det.reconstruct(x), np.asarray(x1), atol=1e-5)
    np.testing.assert_allclose(det.anomaly_map(x), np.mean(np.abs(np.asarray(xf - x1)), -1), atol=1e-5)
    l1 = copy.copy(det)  # score_p is score-only: the same trained model scores with p = 1
    l1.config = det.config.replace(score_p=1)
    np.testing.assert_allclose(l1.score_samples(x), np.mean(np.abs(np.asarray(z1 - z2)), -1), rtol=1e-5)


def test_one_images_score_does_not_depend_on_its_batch(fitted):
    det, x = fitted
    xf = jnp.asarray(data.to_float(x, "tanh"))
    g, params, stats = det.trainer_.generator, det.state.params["generator"], det.state.stats["generator"]
    nets = det.scoring_nets()
    a = dedgan_scores(nets, xf[:8])["score"]
    b = dedgan_scores(nets, jnp.concatenate([xf[:1], xf[-7:][::-1]]))["score"]
    np.testing.assert_allclose(a[0], b[0], rtol=1e-6)
    np.testing.assert_allclose(det.score_samples(x[:1]), det.score_samples(x)[:1], rtol=1e-6)
    # The check can fail: with batch statistics (train mode) the same image scores differently.
    out_a, _ = g.apply(params, stats, xf[:8], train=True)
    out_b, _ = g.apply(params, stats, jnp.concatenate([xf[:1], xf[-7:][::-1]]), train=True)
    assert abs(float(latent_distance(out_a.z1, out_a.z2)[0] - latent_distance(out_b.z1, out_b.z2)[0])) > 1e-6


def test_detector_fits_scores_thresholds_and_maps(fitted):
    det, x = fitted
    assert NAME == "dedgan"
    scores = det.score_samples(x)
    assert scores.shape == (24,) and np.isfinite(scores).all() and (scores >= 0).all()
    assert det.threshold_ == pytest.approx(threshold_from_normal(det.score_samples(x[16:]), 95.0), rel=1e-5)
    assert det.predict(x).shape == (24,)
    maps = det.anomaly_map(x[:5], sigma=1.0)
    assert maps.shape == (5, 16, 16) and (maps >= 0).all()
    details = det.score_details(x[:3])
    assert details["z1"].shape == details["z2"].shape == (3, 8)
    assert details["reconstruction2"].shape == (3, 16, 16, 1)


def test_quality_on_real_mnist_digit_1_vs_0(shared_data):
    """Seeded, small: normal = digit 1; zeros must score clearly higher (AUROC >> 0.5)."""
    mnist = data.load("mnist", shared_data)
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    pick = np.r_[np.flatnonzero(mnist.y_test == 1)[:100], np.flatnonzero(mnist.y_test == 0)[:100]]
    y_test = (mnist.y_test[pick] != 1).astype(int)
    det = DEDGAN(z_dim=16, width=8, steps=120, batch_size=32, seed=0, progress=False)
    det.fit(split.x_train[:1500], split.x_val[:64])
    auc = roc_auc(y_test, det.score_samples(mnist.x_test[pick]))
    assert auc > 0.9, auc
