"""ALAD: both players train every net without recompiling; spectral-norm state moves in
training only and tracks the top singular value; D_xx scores image pairs; every score
variant; EMA weights; clear errors; the learning rate reaches both players; save / load;
the detector fits, scores and maps.

One tiny detector is fitted per module and its trainer reused: an ALAD step (two players,
five nets, three spectrally normalised discriminators) is the slowest compile here."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from gadjax import data
from gadjax.metrics import roc_auc, threshold_from_normal
from gadjax.models.alad import (NAME, SCORES, ALAD, ALADConfig, ALADTrainer, alad_score, alad_scores,
                                discriminator_loss, generator_encoder_loss)
from gadjax.nets import NetSpec, bind
from gadjax.nets.alad import DiscriminatorXX, build_discriminators
from gadjax.train.ema import ema_params, track_ema
from helpers import squares as _squares
from helpers import trace_once

SPEC = NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4, critic_norm="batch")
# SPEC's nets as detector settings, 3 steps of 8, and the rate set as ``gadjax train
# --lr 3e-4`` sets it.
TINY = ALADConfig(z_dim=8, width=4, critic_norm="batch", steps=3, batch_size=8,
                  score_batch_size=8).with_learning_rate(3e-4)
NETS = ("generator", "encoder", "dxz", "dxx", "dzz")


def _sn_leaves(tree, which="u"):
    """Spectral-norm ``u`` / ``sigma`` leaves of a stats pytree, by path."""
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(tree)
            if f"'{which}'" in jax.tree_util.keystr(p)}


def _scoring(det) -> dict:
    """``{net: (params, stats)}`` the detector scores with (EMA weights)."""
    return det.trainer_.scoring_params(det.state, ALAD.score_nets)


@pytest.fixture(scope="module")
def fitted():
    x = _squares(24)
    det = ALAD(TINY, progress=False)
    det.build(x.shape[1:])
    trace_once(det.trainer("model"))  # fit's 3 steps and ``stepped``'s 3 share one trace
    return det.fit(x[:16], x_val=x[16:]), x


@pytest.fixture(scope="module")
def stepped(fitted):
    """A fresh state, three steps of the fitted detector's (already compiled) trainer."""
    det, x = fitted
    t = det.trainer_
    state = t.init(jax.random.PRNGKey(1))
    before = jax.device_get((state.params, state.stats))  # the step donates the state
    batch = t.put_batches(data.to_float(x[:8], "tanh")[None])
    for _ in range(3):
        state, metrics = t.step(state, batch)
    return t, before, state, jax.device_get(metrics)


def test_both_players_train_every_net_without_recompiling(stepped):
    t, (params0, _), state, metrics = stepped
    assert NAME == "alad" and int(state.step) == 3
    assert bool(metrics["finite"])  # and no retrace (trace_once in ``fitted``)
    assert np.isclose(metrics["discriminators_loss"], metrics["d_xz"] + metrics["d_xx"] + metrics["d_zz"])
    assert np.isclose(metrics["generator_encoder_loss"], metrics["ge_xz"] + metrics["ge_xx"] + metrics["ge_zz"])
    for name in NETS:
        changed = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(params0[name]),
                                                          jax.tree.leaves(state.params[name]))]
        assert all(changed), f"{name}: {changed.count(False)} of {len(changed)} parameter arrays did not train"


def test_losses_are_the_bce_games():
    real, fake = jnp.array([3.0, 2.0]), jnp.array([-2.0, -4.0])  # a confident, correct discriminator
    d, d_terms = discriminator_loss({"xz": (real, fake), "xx": (real, fake)})
    ge, _ = generator_encoder_loss({"xz": (real, fake), "xx": (real, fake)})
    assert set(d_terms) == {"d_xz", "d_xx"}
    assert d < 0.5 < 10.0 < ge  # labels swapped for G + E
    sp = jax.nn.softplus
    np.testing.assert_allclose(d, 2 * (jnp.mean(sp(-real)) + jnp.mean(sp(fake))), rtol=1e-6)


def test_spectral_norm_state_moves_in_training_only(stepped):
    t, (_, stats0), state, _ = stepped
    for name in ("dxz", "dxx", "dzz"):
        u0, u1 = _sn_leaves(stats0[name]), _sn_leaves(state.stats[name])
        assert u0 and u0.keys() == u1.keys()
        assert all(not np.allclose(u0[k], u1[k]) for k in u0), f"{name}: power iteration did not run"
    x = jnp.asarray(data.to_float(_squares(4), "tanh"))
    net, p, s = t.nets["dxx"], state.params["dxx"], state.stats["dxx"]
    (logit, feats), s_eval = net.apply(p, s, x, x, train=False)
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(s_eval)):
        np.testing.assert_array_equal(a, b)  # inference leaves u and sigma alone...
    np.testing.assert_array_equal(net(p, s, x, x)[1], feats)  # ...and is deterministic (no dropout)
    (_, f_a), _ = net.apply(p, s, x, x, train=True, key=jax.random.PRNGKey(0))
    (_, f_b), _ = net.apply(p, s, x, x, train=True, key=jax.random.PRNGKey(1))
    assert not np.allclose(f_a, f_b)  # dropout in training


def test_power_iteration_finds_the_largest_singular_value():
    net, init = build_discriminators(SPEC, dropout=0.0)["dzz"]
    params, stats = init(jax.random.PRNGKey(0))
    z = jnp.ones((2, SPEC.z_dim))
    update = jax.jit(lambda s: net.apply(params, s, z, z, train=True)[1])
    for _ in range(30):
        stats = update(stats)
    kernel = np.asarray(params["hidden"]["layers"][0]["layer_instance"]["kernel"])
    sigma = _sn_leaves(stats["hidden"]["layers"][0], "sigma")
    assert len(sigma) == 1
    np.testing.assert_allclose(next(iter(sigma.values())), np.linalg.svd(kernel, compute_uv=False)[0], rtol=1e-3)


def test_dxx_sees_image_pairs_and_scores_zero_for_identical_pairs(fitted):
    det, x = fitted
    t, nets = det.trainer_, _scoring(det)
    first_conv = nets["dxx"][0]["trunk"]["convs"][0]["layer_instance"]["kernel"]
    assert first_conv.shape[2] == 2 * SPEC.image_shape[2]  # x and x' stacked on channels
    xf = jnp.asarray(data.to_float(x[:8], "tanh"))
    logit, f_same = t.nets["dxx"](*nets["dxx"], xf, xf)
    for v in ("features", "features_l2", "l1", "l2"):
        np.testing.assert_allclose(alad_score(xf, xf, f_same, f_same, logit, v), 0.0, atol=1e-6)
    _, f_other = t.nets["dxx"](*nets["dxx"], xf, -xf)
    assert np.all(alad_score(xf, -xf, f_same, f_other, logit, "features") > 0)  # depends on x'
    assert np.all(np.isfinite(jax.grad(lambda y: alad_score(y, y, f_same, f_same, logit, "l2").sum())(xf)))


def test_every_score_variant(fitted):
    det, x = fitted
    xf = data.to_float(x, "tanh")
    rec = det.reconstruct(x)
    scores, config = {}, det.config
    try:
        for v in SCORES:
            det.config = config.replace(score=v)  # score-only: no retraining
            scores[v] = det.score_samples(x)
            assert scores[v].shape == (24,) and np.isfinite(scores[v]).all(), v
    finally:
        det.config = config
    np.testing.assert_allclose(scores["l1"], np.abs(xf - rec).sum((1, 2, 3)), rtol=1e-4)
    np.testing.assert_allclose(scores["l2"], np.sqrt(((xf - rec) ** 2).sum((1, 2, 3))), rtol=1e-4)
    assert (scores["logits"] > 0).all() and (scores["features"] > 0).all()
    assert not np.allclose(scores["features"], scores["features_l2"])


def test_detector_fits_scores_and_maps(fitted):
    det, x = fitted
    scores = det.score_samples(x)
    assert scores.shape == (24,) and np.isfinite(scores).all()
    assert det.threshold_ == pytest.approx(threshold_from_normal(det.score_samples(x[16:]), 95.0), rel=1e-5)
    maps = det.anomaly_map(x[:5])
    assert maps.shape == (5, 16, 16) and (maps >= 0).all()
    assert det.predict(x).shape == (24,)
    assert det.reconstruct(x[:3]).shape == (3, 16, 16, 1)
    t, nets = det.trainer_, _scoring(det)
    bound = {n: bind(t.nets[n], *v) for n, v in nets.items()}
    out = alad_scores(bound, jnp.asarray(data.to_float(x[:8], "tanh")), det.config)
    np.testing.assert_allclose(out["score"], scores[:8], rtol=1e-5)
    assert out["z"].shape == (8, SPEC.z_dim)


def test_ema_tracks_the_iterates_with_a_warm_up(fitted):
    decay, params = 0.95, {"w": jnp.zeros(3)}
    opt = optax.chain(optax.sgd(1.0), track_ema(decay))
    state, expected = opt.init(params), np.zeros(3)
    np.testing.assert_array_equal(ema_params(state)["w"], params["w"])  # starts at the initial weights
    for t in range(40):
        updates, state = opt.update({"w": -jnp.full(3, float(t + 1))}, state, params)
        params = optax.apply_updates(params, updates)
        d = min(decay, (1 + t) / (10 + t))  # TF's num_updates warm-up, then the paper's decay
        expected = d * expected + (1 - d) * np.asarray(params["w"])
    np.testing.assert_allclose(ema_params(state)["w"], expected, rtol=1e-5)
    assert 0 < expected[0] < params["w"][0]  # lags behind the last iterate
    det, _ = fitted  # the detector scores with the EMA weights, not the last iterate
    assert not np.allclose(_scoring(det)["generator"][0]["project"]["kernel"],
                           det.state.params["generator"]["project"]["kernel"])
    with pytest.raises(ValueError, match="no track_ema"):
        ema_params(optax.adam(1e-3).init(params))


def test_ablations_drop_dzz_and_spectral_norm():
    t = ALADTrainer(SPEC, ALADConfig(latent_cycle=False, spectral_norm=False, ema_decay=None))
    assert "dzz" not in t.nets and t.players[0].nets == ("dxz", "dxx")
    state = jax.eval_shape(t.init, jax.random.PRNGKey(0))
    assert not _sn_leaves(state.stats["dxx"]) and not jax.tree.leaves(state.stats["dxx"])
    _, metrics = jax.eval_shape(t.step, state, jax.ShapeDtypeStruct((1, 8, 16, 16, 1), jnp.float32))
    assert "d_zz" not in metrics and "ge_xx" in metrics


@pytest.mark.parametrize("bad", [
    dict(dropout=1.0), dict(learning_rate=0.0), dict(beta1=1.0), dict(ema_decay=1.0), dict(ema_decay=float("nan")),
    dict(spectral_norm=1), dict(z_dim="8"), dict(critic_norm="group"), dict(net="lstm"), dict(latent=True)])
def test_bad_settings_raise_at_construction(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ALAD(**bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        ALADConfig().replace(**bad)


def test_bad_names_raise(fitted):
    with pytest.raises(ValueError, match="score must be one of .*'features'.*got 'feature'"):
        ALAD(score="feature")
    x = jnp.zeros((2, 16, 16, 1))
    with pytest.raises(ValueError, match="unknown ALAD score 'L1'"):
        alad_score(x, x, jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.zeros(2), "L1")
    det, _ = fitted
    with pytest.raises(ValueError, match="score must be one of .*got 'mse'"):  # changed after fitting
        det.config.replace(score="mse")
    with pytest.raises(ValueError, match="multiples of 4"):
        DiscriminatorXX((10, 10, 1), 4, rngs=nnx.Rngs(0))
    net, init = build_discriminators(SPEC)["dxx"]
    with pytest.raises(ValueError, match="needs a PRNG key"):
        net.apply(*init(jax.random.PRNGKey(0)), x, x, train=True)
    with pytest.raises(ValueError, match=r"two batches of shape \(batch, 16, 16, 1\)"):
        net(*init(jax.random.PRNGKey(0)), x, x[:1])
    with pytest.raises(ValueError, match=r"images \(H, W, C\) or feature rows \(D,\)"):
        DiscriminatorXX((4, 4), 4, rngs=nnx.Rngs(0))


def test_feature_rows_with_the_papers_tabular_nets():
    """KDD99 / Arrhythmia-style: MLP G / E and dense discriminators on (N, D) rows; rows far
    from the normal cloud must score higher with the default (feature) score."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(512, 6)).astype(np.float32)
    test = np.concatenate([rng.normal(size=(50, 6)), rng.normal(size=(50, 6)) + 6.0]).astype(np.float32)
    det = ALAD(z_dim=4, width=16, critic_norm="batch", steps=150, batch_size=64, learning_rate=1e-3,
               progress=False)
    det.fit(normal[:448], normal[448:])
    assert det.spec.family == "mlp"
    scores = det.score_samples(test)
    assert scores.shape == (100,) and det.reconstruct(test[:2]).shape == (2, 6)
    assert roc_auc(np.r_[np.zeros(50), np.ones(50)], scores) > 0.9


def test_defaults_and_thesis_nets():
    cfg = ALADConfig()
    assert (cfg.learning_rate, cfg.beta1, cfg.z_dim, cfg.dropout, cfg.ema_decay) == (2e-4, 0.5, 100, 0.2, 0.999)
    assert cfg.critic_norm == "batch" and cfg.spectral_norm and cfg.latent_cycle and cfg.score == "features"
    assert "score" not in ALADConfig.training_fields()
    det = ALAD(net="thesis", z_dim=8, width=4, progress=False)
    det.build((28, 28, 1))
    t = det.trainer("model")
    state = jax.eval_shape(t.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(t.step, state, jax.ShapeDtypeStruct((1, 8, 28, 28, 1), jnp.float32))
    assert det.input_range_ == (0.0, 1.0) and "ge_zz" in metrics
