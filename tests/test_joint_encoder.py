"""Berg et al. joint encoder: a third player that never disturbs the GAN, the image-space
loss, and the normalised-residual + origin-distance score."""
import jax
import numpy as np
import pytest

from gadjax import data
from gadjax.models.joint_encoder import JointEncoder, JointEncoderTrainer, joint_encoder_scores
from gadjax.nets import NetSpec
from gadjax.scores import berg_score
from gadjax.train import GANConfig, GANTrainer, RunConfig
from helpers import squares as _images

CFG = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4), "wgan-gp", n_critic=2)


def test_encoder_is_trained_jointly_without_touching_the_gan():
    joint, gan = JointEncoderTrainer(CFG), GANTrainer(CFG)
    assert [p.name for p in joint.players] == ["critic", "generator", "encoder"]
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
        j_state, metrics = joint.step(j_state, joint.put_batches(x))
    for net in ("generator", "critic"):
        for a, b in zip(jax.tree.leaves(g_state.params[net]), jax.tree.leaves(j_state.params[net])):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(e_before),
                                                     jax.tree.leaves(j_state.params["encoder"])))
    assert np.isfinite(float(metrics["encoder_loss"])) and joint.trace_count == 1


def test_score_is_berg_score_and_detector_works():
    det = JointEncoder(CFG, RunConfig(steps=3, batch_size=8, progress=False), lam=0.3, score_batch_size=8)
    x = _images(24)
    det.fit(x[:16], x_val=x[16:])
    scores = det.score_samples(x)
    xf = data.to_float(x[:8], "tanh")
    t, s = det.trainer, det.state
    z = t.encoder(s.params["encoder"], s.stats["encoder"], xf)
    rec = t.generator(s.params["generator"], s.stats["generator"], z)
    np.testing.assert_allclose(scores[:8], berg_score(xf, rec, z, 0.3), rtol=1e-5)
    out = joint_encoder_scores(t.generator, t.encoder, s.params["generator"], s.stats["generator"],
                               s.params["encoder"], s.stats["encoder"], xf, 0.3)
    np.testing.assert_allclose(out["score"], scores[:8], rtol=1e-5)
    # The two terms are reported so each can be judged alone.
    np.testing.assert_allclose(0.3 * out["residual"] + 0.7 * out["origin"], out["score"], rtol=1e-5)
    np.testing.assert_allclose(out["origin"], np.linalg.norm(np.asarray(z), axis=-1), rtol=1e-5)
    assert det.anomaly_map(x[:3]).shape == (3, 16, 16)


def test_lam_is_validated():
    with pytest.raises(ValueError, match="lam"):
        JointEncoder(CFG, lam=1.5)
