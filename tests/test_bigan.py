"""BiGAN / EGBAD: the pair discriminator reads x AND z, two players train without
recompiling, the G+E loss is D's with labels swapped, G's BatchNorm averages move on the
reconstruction pass, both score variants, the scoring weights (EMA or last iterate, also
CBiGAN's and ALAD's), config validation, save / load, the detector API and a seeded quality
check on real MNIST."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gadjax
from gadjax import data
from gadjax.losses import bce_critic_loss
from gadjax.metrics import roc_auc
from gadjax.models.alad import ALAD, ALADConfig
from gadjax.models.bigan import (EGBAD_NETS, NAME, EGBAD, BiGANTrainer, EGBADConfig, discrimination_loss,
                                 egbad_score, egbad_scores, generator_encoder_loss)
from gadjax.models.cbigan import CBiGAN
from gadjax.nets import NetSpec, bind
from gadjax.nets.bigan import DISCRIMINATORS, joint_discriminator
from gadjax.scores import l1_residual
from gadjax.train.ema import ema_params
from helpers import squares, trace_once

# Tiny nets (z_dim 8, width 4, LayerNorm critic), 3 steps of 8, and the rate set as
# ``gadjax train --lr 3e-4`` sets it.
FAST = EGBADConfig(z_dim=8, width=4, critic_norm="layer", steps=3, batch_size=8,
                   score_batch_size=8).with_learning_rate(3e-4)


@pytest.mark.parametrize("kind", DISCRIMINATORS)
def test_discriminator_reads_image_and_latent(kind):
    net, init = joint_discriminator((16, 16, 1), 8, 4, kind=kind, dropout=0.5)
    params, stats = init(jax.random.PRNGKey(0))
    infer = jax.jit(net.__call__)
    kx, kz1, kz2 = jax.random.split(jax.random.PRNGKey(1), 3)
    x = jax.random.uniform(kx, (4, 16, 16, 1), minval=-1, maxval=1)
    z1, z2 = jax.random.normal(kz1, (4, 8)), jax.random.normal(kz2, (4, 8))
    logit, features = infer(params, stats, x, z1)
    assert logit.shape == (4,) and features.shape == (4, 64 if kind == "concat" else 128)
    assert not np.allclose(logit, infer(params, stats, x, z2)[0]), "changing z must change D(x, z)"
    assert not np.allclose(logit, infer(params, stats, -x, z1)[0]), "changing x must change D(x, z)"
    np.testing.assert_array_equal(logit, infer(params, stats, x, z1)[0])  # inference: no dropout
    # Training mode draws dropout from the key it is given, and insists on one.
    train = jax.jit(lambda key: net.apply(params, stats, x, z1, train=True, key=key)[0][0])
    assert not np.allclose(train(jax.random.PRNGKey(2)), train(jax.random.PRNGKey(3)))
    with pytest.raises(ValueError, match="needs key"):
        net.apply(params, stats, x, z1, train=True)
    with pytest.raises(ValueError, match=r"z of shape \(4, 8\)"):
        net(params, stats, x, z1[:, :5])


def test_reconstruction_pass_moves_generator_batchnorm_statistics():
    """As in the authors' training graph, G's BatchNorm averages move in the G+E update on
    G(z) AND then on G(E(x)); checked by hand on G's first BatchNorm (momentum 0.9,
    batch mean and biased variance over batch and space, per channel)."""
    t = BiGANTrainer(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4, critic_norm="layer"), FAST)
    state = t.init(jax.random.PRNGKey(0))
    stats = jax.tree.map(lambda a: a + 0.5, state.stats)  # away from init, so both updates show
    x = jnp.asarray(data.to_float(squares(8), "tanh"))
    key = jax.random.PRNGKey(1)
    _, (new_stats, _) = jax.jit(t._generator_encoder_loss)(state.params, stats, x, key)
    # The prior code z and E(x) that this update's passes see (its key split).
    p = t._pairs(state.params, stats, x, jax.random.split(key)[0], detach=False)
    proj, channels = state.params["generator"]["project"], stats["generator"]["project_norm"]["mean"].shape[0]

    def batch_stats(z):
        h = (z @ proj["kernel"][...] + proj["bias"][...]).reshape(-1, channels)  # (B * H0 * W0, C)
        return h.mean(0), h.var(0)

    (mu_z, var_z), (mu_e, var_e) = batch_stats(p.z), batch_stats(p.z_enc)
    m0, v0 = stats["generator"]["project_norm"]["mean"][...], stats["generator"]["project_norm"]["var"][...]
    prior_only = 0.9 * m0 + 0.1 * mu_z
    new = new_stats["generator"]["project_norm"]
    np.testing.assert_allclose(new["mean"][...], 0.9 * prior_only + 0.1 * mu_e, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new["var"][...], 0.9 * (0.9 * v0 + 0.1 * var_z) + 0.1 * var_e, rtol=1e-4, atol=1e-6)
    assert not np.allclose(new["mean"][...], prior_only, rtol=1e-3)  # what the prior pass alone gives
    # D's update leaves G's (and E's) averages alone.
    _, (d_stats, _) = jax.jit(t._discriminator_loss)(state.params, stats, x, key)
    assert set(d_stats) == {"discriminator"}


def test_generator_encoder_loss_swaps_the_labels():
    real, fake = jnp.array([2.0, -1.0, 0.5]), jnp.array([-3.0, 0.2, 1.0])
    expected = (optax.sigmoid_binary_cross_entropy(fake, jnp.ones(3)).mean()
                + optax.sigmoid_binary_cross_entropy(real, jnp.zeros(3)).mean())
    np.testing.assert_allclose(generator_encoder_loss(real, fake), expected, rtol=1e-6)
    np.testing.assert_allclose(generator_encoder_loss(real, fake), bce_critic_loss(fake, real), rtol=1e-6)


@pytest.fixture(scope="module")
def fitted():
    """One tiny EGBAD fitted for 3 steps on squares (one compile, shared by the tests)."""
    x = squares(24)
    det = EGBAD(FAST, progress=False)
    det.build(x.shape[1:])
    trace_once(det.trainer("model"))  # fit's steps and the extra one below: one trace
    return det.fit(x[:16], x_val=x[16:]), x


def test_two_players_train_every_net_without_recompiling(fitted):
    det, _ = fitted
    trainer, state = det.trainer_, det.state
    assert [p.name for p in trainer.players] == ["discriminator", "generator_encoder"]
    assert trainer.players[1].nets == ("generator", "encoder")
    assert int(state.step) == 3
    start = trainer.init(jax.random.PRNGKey(FAST.seed))  # the state train_loop started from
    for name in ("generator", "encoder", "discriminator"):
        changed = [not np.allclose(b, a) for b, a in zip(jax.tree.leaves(start.params[name]),
                                                         jax.tree.leaves(state.params[name]))]
        assert any(changed), f"{name} parameters did not move"
    # One more step, on a copy: the step donates its input state, which the detector still uses.
    state, metrics = trainer.step(jax.tree.map(jnp.copy, state), trainer.put_batches(data.to_float(fitted[1][:8], "tanh")[None]))
    assert bool(metrics["finite"])  # and no retrace (trace_once)
    for key in ("discriminator_loss", "generator_encoder_loss", "d_real", "d_fake"):
        assert np.isfinite(float(metrics[key])), key


def test_score_variants_match_their_definitions():
    rng = np.random.default_rng(0)
    x, x_rec = (jnp.asarray(rng.uniform(-1, 1, (5, 4, 4, 1)), jnp.float32) for _ in range(2))
    logits = jnp.asarray(rng.normal(size=5), jnp.float32)
    f, f_rec = (jnp.asarray(rng.normal(size=(5, 6)), jnp.float32) for _ in range(2))
    np.testing.assert_allclose(egbad_score(x, x_rec, logits, f, f_rec, 1.0), l1_residual(x, x_rec), rtol=1e-6)
    # cross-entropy against label 1 is softplus(-logit): low for pairs D calls real.
    np.testing.assert_allclose(discrimination_loss(logits, f, f_rec, "cross-entropy"), jax.nn.softplus(-logits),
                               rtol=1e-5)
    np.testing.assert_allclose(discrimination_loss(logits, f, f_rec), jnp.abs(f - f_rec).sum(-1), rtol=1e-6)
    assert np.all(np.asarray(discrimination_loss(logits, f, f)) == 0)
    mix = egbad_score(x, x_rec, logits, f, f_rec, 0.9, "cross-entropy")
    np.testing.assert_allclose(mix, 0.9 * l1_residual(x, x_rec) + 0.1 * jax.nn.softplus(-logits), rtol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=1.5), "alpha"), (dict(alpha=-0.1), "alpha"), (dict(alpha=float("nan")), "alpha"),
    (dict(method="l2"), "method"), (dict(dropout=1.0), "dropout"), (dict(discriminator="mlp"), "discrim"),
    (dict(learning_rate=0.0), "learning_rate"), (dict(prior="cauchy"), "prior"), (dict(beta1=1.0), "beta1"),
    (dict(ema_decay=1.0), "ema_decay"), (dict(z_dim="8"), "z_dim"), (dict(hidden=2.5), "hidden"),
    (dict(critic_norm="group"), "critic_norm"), (dict(net="lstm"), "net"), (dict(lr=1e-3), "lr"),
    (dict(weights="average"), "weights"), (dict(weights="ema", ema_decay=None), "weights")])
def test_bad_settings_raise_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EGBAD(**kwargs)
    with pytest.raises(ValueError, match=match):
        EGBADConfig().replace(**kwargs)


def test_defaults_are_the_papers():
    cfg = EGBADConfig()
    assert (cfg.learning_rate, cfg.beta1, cfg.z_dim, cfg.dropout, cfg.ema_decay) == (1e-5, 0.5, 200, 0.5, 0.999)
    assert (cfg.alpha, cfg.method, cfg.discriminator, cfg.critic_norm) == (0.9, "feature-matching", "concat", "batch")
    assert EGBAD().net_spec((28, 28, 1)) == EGBAD_NETS
    assert EGBAD().net_spec((6,)).family == "mlp"
    assert set(EGBADConfig.training_fields()).isdisjoint({"alpha", "method", "steps", "weights"})
    # Scoring weights unset: the average whenever ema_decay keeps one (the authors' EMA).
    assert cfg.weights is None and cfg.scoring_weights == "ema"
    assert EGBADConfig(ema_decay=None).scoring_weights == "last"
    assert cfg.replace(weights="last").scoring_weights == "last"
    assert ALADConfig().scoring_weights == "ema" and "weights" not in ALADConfig.training_fields()


def test_detector_fits_scores_and_maps_with_both_methods(fitted, tmp_path):
    assert NAME == "egbad"
    det, x = fitted
    fm = det.score_samples(x)
    assert fm.shape == (24,) and np.isfinite(fm).all() and det.threshold_ is not None
    details = det.score_details(x[:8])
    assert details["reconstruction"].shape == (8, 16, 16, 1) and details["z"].shape == (8, 8)
    np.testing.assert_allclose(details["score"], 0.9 * details["residual"] + 0.1 * details["discrimination"],
                               rtol=1e-5)
    assert det.anomaly_map(x[:5]).shape == (5, 16, 16) and det.predict(x).shape == (24,)
    config = det.config
    try:
        det.config = config.replace(method="cross-entropy")  # score-only: no retraining
        ce = det.score_samples(x)
        assert np.isfinite(ce).all() and not np.allclose(ce, fm)
        # The detector is a thin wrapper around the pure scorer, fed the weights that
        # ``weights`` picks (score-only): the last iterate, or the average kept in the
        # players' optimiser states; BatchNorm averages either way.
        t, s = det.trainer_, det.state
        ema = {n: ema_params(s.opt[p])[n] for n, p in [("generator", "generator_encoder"),
                                                        ("encoder", "generator_encoder"),
                                                        ("discriminator", "discriminator")]}
        xf = jnp.asarray(data.to_float(x[:8], "tanh"))
        pure = egbad_scores({n: bind(t.nets[n], ema[n], s.stats[n]) for n in ema}, xf, det.config)
        np.testing.assert_allclose(pure["score"], ce[:8], rtol=1e-5)  # the default: the EMA weights
        det.config = det.config.replace(weights="last")
        ce_last = det.score_samples(x)
        last = egbad_scores({n: bind(t.nets[n], s.params[n], s.stats[n]) for n in ema}, xf, det.config)
        np.testing.assert_allclose(last["score"], ce_last[:8], rtol=1e-5)
        assert not np.allclose(ce_last, ce, rtol=1e-5)
        # Saved and loaded, the choice and both weight sets are kept: the same scores, bit for bit.
        det.save(tmp_path / "last")
        loaded = gadjax.load(tmp_path / "last")
        assert loaded.config.weights == "last" and loaded.config == det.config
        np.testing.assert_array_equal(loaded.score_samples(x), ce_last)
        loaded.config = loaded.config.replace(weights="ema")
        np.testing.assert_array_equal(loaded.score_samples(x), ce)
        with pytest.raises(ValueError, match="alpha"):
            det.config.replace(alpha=2.0)
    finally:
        det.config = config


@pytest.mark.parametrize("cls", [EGBAD, CBiGAN, ALAD])
def test_weights_choose_the_last_iterate_or_the_average(cls):
    """The BiGAN family binds the scoring nets to ``state.params`` (``'last'``) or to the
    average in the optimiser states (``'ema'``, also when unset); no training needed: a
    state whose parameters moved away from the average it keeps shows which one is used."""
    det = cls(z_dim=8, width=4, critic_norm="layer", progress=False)
    det.build((16, 16, 1))
    t = det.trainer("model")
    state = t.init(jax.random.PRNGKey(0))  # the average starts at the initial weights
    moved = state.replace(params=jax.tree.map(lambda a: a + 1.0, state.params))
    owner = {n: p.name for p in t.players for n in p.nets}
    for weights in (None, "last", "ema"):
        det.config = det.config.replace(weights=weights)
        nets = det.nets_of(moved)
        assert set(nets) == set(cls.score_nets)
        for name, bound in nets.items():
            want = moved.params[name] if weights == "last" else ema_params(moved.opt[owner[name]])[name]
            for a, b in zip(jax.tree.leaves(bound), jax.tree.leaves((want, moved.stats[name]))):
                np.testing.assert_array_equal(a, b)
    no_average = cls(z_dim=8, width=4, ema_decay=None, progress=False)  # no average kept
    assert no_average.config.scoring_weights == "last"
    with pytest.raises(ValueError, match="ema_decay"):
        no_average.config.replace(weights="ema")


def test_thesis_nets_build_and_step():
    det = EGBAD(net="thesis", z_dim=8, width=4, progress=False)
    det.build((28, 28, 1))
    t = det.trainer("model")
    state = jax.eval_shape(t.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(t.step, state, jax.ShapeDtypeStruct((1, 8, 28, 28, 1), jnp.float32))
    assert det.input_range_ == (0.0, 1.0) and "generator_encoder_loss" in metrics


def test_quality_on_real_mnist_digit_1_vs_0(shared_data):
    """Seeded and small: normal = digit 1; zeros must score clearly higher."""
    mnist = data.load("mnist", shared_data)
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    pick = np.r_[np.flatnonzero(mnist.y_test == 1)[:100], np.flatnonzero(mnist.y_test == 0)[:100]]
    y = (mnist.y_test[pick] != 1).astype(int)
    # BatchNorm D and E, as EGBAD
    det = EGBAD(z_dim=16, width=8, critic_norm="batch", steps=200, batch_size=32, seed=0, learning_rate=1e-3,
                progress=False).fit(split.x_train[:1000], split.x_val[:64])
    auc = roc_auc(y, det.score_samples(mnist.x_test[pick]))
    assert auc > 0.9, auc


def test_tabular_rows_with_mlp_nets():
    """EGBAD's KDD setting: MLP nets on feature rows; far-away rows must score higher."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(512, 6)).astype(np.float32)
    test = np.concatenate([rng.normal(size=(50, 6)), rng.normal(size=(50, 6)) + 6.0]).astype(np.float32)
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    det = EGBAD(z_dim=4, width=16, critic_norm="layer", steps=60, batch_size=64, learning_rate=1e-3,
                progress=False).fit(normal[:448], normal[448:])
    assert det.spec.family == "mlp"
    assert roc_auc(y, det.score_samples(test)) > 0.9
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        det.score_samples(np.zeros((3, 5), np.float32))
