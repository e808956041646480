"""GANomaly: loss pieces, training (params and BatchNorm statistics move, one trace), D's
re-initialisation, batch-independent scores (BatchNorm in inference mode), the detector
API, bad hyper-parameters, and a seeded quality check on real MNIST."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax import data
from gadjax.metrics import roc_auc, threshold_from_normal
from gadjax.models.ganomaly import (NAME, GANomaly, GANomalyConfig, GANomalyTrainer, contextual_loss, encoder_loss,
                                    feature_matching_loss, ganomaly_score, ganomaly_scores, reinit_if)
from gadjax.nets import NetSpec, bind
from gadjax.nets.ganomaly import ganomaly_nets
from helpers import squares as _squares, trace_once

SPEC = NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4)
TINY = dict(z_dim=8, width=4, steps=3, batch_size=8, score_batch_size=8, progress=False)


def _leaves(tree):
    return [np.asarray(a) for a in jax.tree.leaves(tree)]


def _changed(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))


@pytest.fixture(scope="module")
def fitted():
    x = _squares(24)
    det = GANomaly(**TINY)
    det.build(x.shape[1:])
    trace_once(det.trainer_)  # 3 training steps, traced once
    return det.fit(x[:16], x_val=x[16:]), x


def test_loss_pieces_by_hand():
    f_real = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    f_fake = jnp.array([[3.0, 4.0], [1.0, 2.0]])  # the same features, other order
    assert float(feature_matching_loss(f_real, f_fake, "mean")) == 0.0  # batch statistics match
    assert float(feature_matching_loss(f_real, f_fake, "paired")) == pytest.approx(4.0)  # pairs do not
    with pytest.raises(ValueError, match="feature matching mode"):
        feature_matching_loss(f_real, f_fake, "max")
    x = jnp.zeros((2, 4, 4, 1))
    assert float(contextual_loss(x, x + 0.5)) == pytest.approx(0.5)
    z, z_hat = jnp.array([[0.0, 0.0], [1.0, 3.0]]), jnp.array([[0.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(ganomaly_score(z, z_hat), [0.0, 2.5])
    assert float(encoder_loss(z, z_hat)) == pytest.approx(1.25)


def test_training_moves_params_and_batchnorm_stats_in_one_trace(fitted):
    det, x = fitted
    t = det.trainer_
    assert NAME == "ganomaly" == det.name and det.spec == SPEC
    init = t.init(jax.random.PRNGKey(det.config.seed))
    for net in ("generator", "discriminator"):
        assert _changed(init.params[net], det.state.params[net]), net
        # Train-mode BatchNorm updated its running averages (used at scoring time).
        assert _changed(init.stats[net], det.state.stats[net]), net
    state = jax.tree.map(jnp.copy, det.state)  # the step donates its input
    state, metrics = t.step(state, t.put_batches(data.to_float(x[:8], "tanh")[None]))  # no retrace (trace_once)
    for k in ("generator_loss", "discriminator_loss", "adv_loss", "con_loss", "enc_loss"):
        assert math.isfinite(float(metrics[k])), k
    assert float(metrics["finite"]) == 1.0 and float(metrics["discriminator_reinit"]) == 0.0


def test_score_of_an_image_does_not_depend_on_its_batch(fitted):
    """The reference scored with BatchNorm in train mode, so a score depended on the other
    images of the batch; here every net is in inference mode."""
    det, x = fitted
    one = x[:1]
    others = np.concatenate([np.full((3, 16, 16, 1), 255, np.uint8),
                             np.random.default_rng(1).integers(0, 256, (4, 16, 16, 1), dtype=np.uint8)])
    alone = det.score_samples(one)
    in_batch = det.score_samples(np.concatenate([one, others]))
    np.testing.assert_allclose(alone[0], in_batch[0], rtol=1e-6)
    # The test can fail: with train-mode BatchNorm the same image scores differently.
    g, p, s = det.trainer_.generator, det.state.params["generator"], det.state.stats["generator"]
    batch = jnp.asarray(data.to_float(np.concatenate([one, others]), "tanh"))
    pure = ganomaly_scores({"generator": bind(g, p, s)}, batch)["score"]
    np.testing.assert_allclose(pure[0], alone[0], rtol=1e-6)
    (_, z_a, zh_a), _ = g.apply(p, s, batch[:1].repeat(8, 0), train=True)
    (_, z_b, zh_b), _ = g.apply(p, s, batch, train=True)
    assert abs(float(ganomaly_score(z_a, zh_a)[0]) - float(ganomaly_score(z_b, zh_b)[0])) > 1e-6


def test_detector_fits_scores_and_maps(fitted):
    det, x = fitted
    details = det.score_details(x)
    assert details["score"].shape == (24,) and np.isfinite(details["score"]).all()
    assert details["z"].shape == details["z_hat"].shape == (24, 8)
    np.testing.assert_allclose(details["score"], np.mean((details["z"] - details["z_hat"]) ** 2, -1), rtol=1e-5)
    assert det.threshold_ == pytest.approx(threshold_from_normal(det.score_samples(x[16:]), 95.0), rel=1e-5)
    maps = det.anomaly_map(x[:5])
    assert maps.shape == (5, 16, 16) and (maps >= 0).all()
    assert det.reconstruct(x[:3]).shape == (3, 16, 16, 1)
    assert det.predict(x).shape == (24,)


def test_reinit_if_is_a_jittable_switch():
    init = lambda key: ({"w": jax.random.normal(key, (3,))}, {"m": jnp.zeros(3)})  # noqa: E731
    params, stats, key = {"w": jnp.ones(3)}, {"m": jnp.ones(3)}, jax.random.PRNGKey(0)
    fn = jax.jit(lambda c: reinit_if(c, init, key, params, stats))
    kept, fresh = fn(jnp.array(False)), fn(jnp.array(True))
    np.testing.assert_array_equal(kept[0]["w"], 1.0)
    np.testing.assert_array_equal(fresh[0]["w"], init(key)[0]["w"])
    np.testing.assert_array_equal(fresh[1]["m"], 0.0)


def test_collapsed_discriminator_is_reinitialised_inside_the_step(fitted):
    det, x = fitted
    # Any loss counts as collapsed: D must come out freshly drawn (the same whatever the
    # data) while G trained on the data as usual.
    t = trace_once(GANomalyTrainer(SPEC, GANomalyConfig(reinit_threshold=1e30)))
    start = t.init(jax.random.PRNGKey(0))
    results = []
    for batch in (x[:8], x[8:16]):
        state, metrics = t.step(jax.tree.map(jnp.copy, start), t.put_batches(data.to_float(batch, "tanh")[None]))
        assert float(metrics["discriminator_reinit"]) == 1.0
        results.append(state)
    a, b = results
    assert not _changed(a.params["discriminator"], b.params["discriminator"])
    assert not _changed(a.stats["discriminator"], b.stats["discriminator"])
    assert _changed(a.params["discriminator"], start.params["discriminator"])
    assert _changed(a.params["generator"], b.params["generator"])


@pytest.mark.parametrize("kwargs, match", [
    (dict(w_con=-1.0), "w_con"), (dict(learning_rate=0.0), "learning_rate"), (dict(beta1=1.0), "beta1"),
    (dict(feature_match="max"), "feature_match"), (dict(reinit_threshold=-1.0), "reinit_threshold"),
    (dict(init="xavier"), "init"), (dict(w_con=math.nan), "w_con"), (dict(w_con="abc"), "w_con"),
    (dict(z_dim=0), "z_dim"), (dict(lam=0.1), "no field 'lam'")])
def test_bad_hyperparameters_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GANomalyConfig().replace(**kwargs)
    with pytest.raises(ValueError, match=match):
        GANomaly(**kwargs)


def test_nets_argument_checks():
    with pytest.raises(ValueError, match="dcgan"):
        GANomaly(net="thesis")
    with pytest.raises(ValueError, match="dcgan"):
        GANomalyTrainer(NetSpec("thesis", (28, 28, 1)))
    with pytest.raises(ValueError, match="unknown norm"):
        ganomaly_nets((16, 16, 1), 8, 4, norm="group")
    with pytest.raises(ValueError, match="z_dim"):
        ganomaly_nets((16, 16, 1), 0, 4)


def test_quality_on_real_mnist_digit_1_vs_0(shared_data):
    """Seeded, small: normal = digit 1; zeros must score clearly higher."""
    mnist = data.load("mnist", shared_data)
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    pick = np.r_[np.flatnonzero(mnist.y_test == 1)[:60], np.flatnonzero(mnist.y_test == 0)[:60]]
    det = GANomaly(z_dim=16, width=8, steps=150, batch_size=32, seed=0, progress=False).fit(split.x_train[:1500],
                                                                                           split.x_val[:64])
    auc = roc_auc((mnist.y_test[pick] != 1).astype(int), det.score_samples(mnist.x_test[pick]))
    assert auc > 0.9, auc
