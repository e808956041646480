"""Berg et al. joint encoder: a third player that never disturbs the GAN, the image-space
loss, the normalised-residual + origin-distance score (standardised on normal validation
data, or raw), the authors' latent normalisation and prior, the default nets, bad
settings, --lr reaching every optimiser, and save / load (with the score statistics, and
of detectors saved before these options)."""
import json

import jax
import numpy as np
import pytest

import gadjax
from gadjax import data
from gadjax.models import ConfigError, FAnoGAN
from gadjax.models.joint_encoder import JointEncoder, JointEncoderConfig, JointEncoderTrainer, joint_encoder_scores
from gadjax.nets import NetSpec, build_nets
from gadjax.optim import learning_rates
from gadjax.scores import berg_score, normalised_residual, origin_distance
from gadjax.train import GANConfig, GANTrainer
from helpers import squares as _images
from helpers import trace_once

CFG = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4), "wgan-gp", n_critic=2)
SMALL = dict(net="dcgan", z_dim=8, width=4, n_critic=2, steps=3, batch_size=8, score_batch_size=8)
PLAYERS = ("critic", "generator", "encoder")


@pytest.fixture(scope="module")
def fitted():
    x = _images(24)
    # --lr 3e-4 over an encoder rate of its own: test_lr_reaches_every_optimiser reads it back.
    cfg = JointEncoderConfig(**SMALL, lam=0.3, encoder_learning_rate=5e-5).with_learning_rate(3e-4)
    return JointEncoder(cfg, progress=False).fit(x[:16], x_val=x[16:]), x


def test_encoder_is_trained_jointly_without_touching_the_gan():
    joint, gan = trace_once(JointEncoderTrainer(CFG)), GANTrainer(CFG)
    assert [p.name for p in joint.players] == list(PLAYERS)
    g_state = gan.init(jax.random.PRNGKey(0))
    j_state = joint.init(jax.random.PRNGKey(0))
    # Same GAN starting point in both, so any difference could only come from the encoder.
    # (copies: each step donates its input state's buffers)
    same = jax.tree.map(jax.numpy.copy, (g_state.params, g_state.stats, g_state.opt))
    j_state = j_state.replace(params={**j_state.params, **same[0]}, stats={**j_state.stats, **same[1]},
                              opt={**j_state.opt, **same[2]})
    e_before = jax.tree.map(np.asarray, j_state.params["encoder"])
    x = data.to_float(_images(16), "tanh").reshape(2, 8, 16, 16, 1)
    for _ in range(3):
        g_state, _ = gan.step(g_state, gan.put_batches(x))
        j_state, metrics = joint.step(j_state, joint.put_batches(x))  # trace_once: one trace
    for net in ("generator", "critic"):
        for a, b in zip(jax.tree.leaves(g_state.params[net]), jax.tree.leaves(j_state.params[net])):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(e_before),
                                                     jax.tree.leaves(j_state.params["encoder"])))
    assert np.isfinite(float(metrics["encoder_loss"]))


def test_score_is_the_standardised_berg_score_and_detector_works(fitted):
    det, x = fitted
    scores = det.score_samples(x)
    xf = data.to_float(x[:8], "tanh")
    t, s = det.trainer_, det.state
    z = t.encoder(s.params["encoder"], s.stats["encoder"], xf)
    rec = t.generator(s.params["generator"], s.stats["generator"], z)
    residual, origin = np.asarray(normalised_residual(xf, rec)), np.asarray(origin_distance(z))
    # The statistics are the raw terms' mean and std on the normal validation data (x_val = x[16:]).
    val = det.score_details(x[16:])
    stats = det.config.score_stats
    np.testing.assert_allclose(stats, [val["residual"].mean(), val["residual"].std(), val["origin"].mean(),
                                       val["origin"].std()], rtol=1e-5)
    m_r, s_r, m_o, s_o = stats
    hand = 0.3 * (residual - m_r) / s_r + 0.7 * (origin - m_o) / s_o
    np.testing.assert_allclose(scores[:8], hand, rtol=1e-4, atol=1e-5)
    out = joint_encoder_scores(det.scoring_nets(), xf, det.config)  # det.config carries the statistics
    np.testing.assert_allclose(out["score"], scores[:8], rtol=1e-4, atol=1e-5)
    # The raw terms are reported so each can be judged alone ...
    np.testing.assert_allclose(out["residual"], residual, rtol=1e-5)
    np.testing.assert_allclose(out["origin"], np.linalg.norm(np.asarray(z), axis=-1), rtol=1e-5)
    # ... and the raw formula stays available, without refitting (score-only fields).
    raw = joint_encoder_scores(det.scoring_nets(), xf, det.config.replace(standardise=False))
    np.testing.assert_allclose(raw["score"], berg_score(xf, rec, z, 0.3), rtol=1e-5)
    no_stats = det.config.replace(residual_mean=None, residual_std=None, origin_mean=None, origin_std=None)
    np.testing.assert_allclose(joint_encoder_scores(det.scoring_nets(), xf, no_stats)["score"], raw["score"])
    assert det.anomaly_map(x[:3]).shape == (3, 16, 16)


def test_the_authors_latent_normalisation_and_prior_are_the_defaults(fitted):
    det, _ = fitted
    cfg = JointEncoderConfig()
    assert (cfg.latent_norm, cfg.latent_scale, cfg.standardise) == (True, 0.1, True)
    assert det.spec.latent_norm and det.trainer_.latent_scale == 0.1  # reaches the nets and the trainer
    # Every player draws z ~ latent_scale * N(0, I).
    key = jax.random.PRNGKey(3)
    np.testing.assert_allclose(JointEncoderTrainer(CFG, latent_scale=0.1).latent(key, 4),
                               0.1 * GANTrainer(CFG).latent(key, 4), rtol=1e-6)
    # So the detector's G ignores the norm of E(x): G(c z) == G(z).
    z = jax.random.normal(key, (4, 8))
    G = det.scoring_nets()["generator"]
    np.testing.assert_allclose(G(5.0 * z), G(z), rtol=1e-5, atol=1e-6)
    # The option is off where not asked for: other detectors, and rows (the MLP generator has none).
    assert not JointEncoder(latent_norm=False).net_spec((28, 28, 1)).latent_norm
    assert not FAnoGAN().net_spec((28, 28, 1)).latent_norm
    assert not JointEncoder().net_spec((10,)).latent_norm


def test_saved_detector_keeps_the_score_statistics(fitted, tmp_path):
    det, x = fitted
    det.save(tmp_path / "saved")
    loaded = gadjax.load(tmp_path / "saved")
    assert loaded.config.score_stats == det.config.score_stats is not None
    assert loaded.threshold_ == det.threshold_ and loaded.spec.latent_norm
    np.testing.assert_array_equal(loaded.score_samples(x), det.score_samples(x))


def test_a_detector_saved_before_latent_norm_loads_as_it_was_trained(fitted, tmp_path):
    det, x = fitted
    path = det.save(tmp_path / "old")
    meta = json.loads((path / "detector.json").read_text())
    for field in ("latent_norm", "latent_scale", "standardise", "residual_mean", "residual_std", "origin_mean",
                  "origin_std"):
        del meta["config"][field]
    meta["extra"] = {}
    (path / "detector.json").write_text(json.dumps(meta))
    loaded = gadjax.load(path)
    cfg = loaded.config
    assert (cfg.latent_norm, cfg.latent_scale, cfg.standardise, cfg.score_stats) == (False, 1.0, False, None)
    assert not loaded.spec.latent_norm
    # Scored as then: raw Berg score, generator without latent normalisation.
    xf = data.to_float(x[:8], "tanh")
    s = loaded.state
    G, _ = build_nets(loaded.spec, parts=("generator",))["generator"]
    z = det.trainer_.encoder(s.params["encoder"], s.stats["encoder"], xf)
    rec = G(s.params["generator"], s.stats["generator"], z)
    np.testing.assert_allclose(loaded.score_samples(x[:8]), berg_score(xf, rec, z, 0.3), rtol=1e-5)


def test_default_nets_follow_the_data():
    det = JointEncoder()
    thesis, dcgan, mlp = (det.net_spec(s) for s in ((28, 28, 1), (32, 32, 3), (10,)))
    assert (thesis.family, thesis.z_dim) == ("thesis", 128)  # Berg et al.'s nets for 28x28 gray
    assert (dcgan.family, dcgan.z_dim, dcgan.critic_norm) == ("dcgan", 100, "layer")  # per-sample critic for GP
    assert mlp.family == "mlp"


@pytest.mark.parametrize("kwargs, field", [
    (dict(lam=1.5), "lam"),                          # out of range
    (dict(lam="0.1"), "lam"),                        # wrong type
    (dict(encoder_learning_rate=float("nan")), "encoder_learning_rate"),  # NaN
    (dict(n_critic=0), "n_critic"),
    (dict(gan_loss="hinge"), "gan_loss"),
    (dict(critic_norm="batch"), "critic_norm"),      # the gradient penalty needs a per-sample critic
    (dict(alpha=0.5), "alpha"),                      # unknown field
    (dict(latent_scale=0.0), "latent_scale"),
    (dict(latent_norm=1), "latent_norm"),            # a bool, not a number
    (dict(residual_std=0.0), "residual_std"),        # a standard deviation is > 0
    (dict(residual_mean=0.1), "residual_std"),       # the four statistics are set together
])
def test_bad_settings_raise_at_construction(kwargs, field):
    with pytest.raises(ConfigError, match=field) as err:
        JointEncoder(**kwargs)
    assert err.value.field == field


def test_encoder_rate_follows_the_gan_unless_set():
    def rates(**kwargs):  # each player's optimiser state on a stand-in parameter (no nets, no compile)
        det = JointEncoder(**SMALL, **kwargs)
        det.build((16, 16, 1))
        opt = {p.name: p.optimizer.init({"w": jax.numpy.zeros(1)}) for p in det.trainer("model").players}
        return {p: np.float32(r) for p, r in learning_rates(opt).items()}

    f32 = np.float32
    assert rates() == {p: f32(1e-4) for p in PLAYERS}  # WGAN-GP's paper rate for all three
    assert rates(learning_rate=2e-4) == {p: f32(2e-4) for p in PLAYERS}
    assert rates(encoder_learning_rate=5e-5) == {"critic": f32(1e-4), "generator": f32(1e-4), "encoder": f32(5e-5)}
