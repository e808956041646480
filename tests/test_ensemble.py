"""GAN ensemble: stacked members, one random (generator, discriminator) pair per step,
member-averaged scores computed by one vmap."""
import jax
import numpy as np
import pytest

from gadjax import data
from gadjax.models.ensemble import EnsembleTrainer, GANEnsemble
from gadjax.models.joint_encoder import JointEncoder, JointEncoderTrainer
from gadjax.nets import NetSpec
from gadjax.train import GANConfig, RunConfig, TrainState
from helpers import squares as _images

CFG = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4), "wgan-gp", n_critic=2)
RUN = RunConfig(steps=4, batch_size=8, progress=False)


def _member(tree, k):
    return [np.asarray(a[k]) for a in jax.tree.leaves(tree)]


def test_one_pair_updated_per_step():
    trainer = EnsembleTrainer(JointEncoderTrainer(CFG), members=3)
    state = trainer.init(jax.random.PRNGKey(0))
    assert jax.tree.leaves(state.params["generator"])[0].shape[0] == 3
    # Members start different (independent initialisations).
    assert any(not np.allclose(a, b) for a, b in zip(_member(state.params["generator"], 0),
                                                     _member(state.params["generator"], 1)))
    before = jax.tree.map(np.asarray, (state.params, state.opt))
    x = data.to_float(_images(16), "tanh").reshape(2, 8, 16, 16, 1)
    state, metrics = trainer.step(state, trainer.put_batches(x))
    i, j = int(metrics["generator_member"]), int(metrics["discriminator_member"])
    params_before, _ = before
    for k in range(3):
        g_changed = not all(np.array_equal(a, b) for a, b in zip(_member(params_before["generator"], k),
                                                                 _member(state.params["generator"], k)))
        e_changed = not all(np.array_equal(a, b) for a, b in zip(_member(params_before["encoder"], k),
                                                                 _member(state.params["encoder"], k)))
        d_changed = not all(np.array_equal(a, b) for a, b in zip(_member(params_before["critic"], k),
                                                                 _member(state.params["critic"], k)))
        assert g_changed == (k == i) and e_changed == (k == i), (k, i)
        assert d_changed == (k == j), (k, j)
    for _ in range(2):
        state, _ = trainer.step(state, trainer.put_batches(x))
    assert trainer.trace_count == 1


def test_ensemble_detector_averages_member_scores():
    det = GANEnsemble(JointEncoder(CFG, RUN), members=3, score_batch_size=8)
    x = _images(24)
    det.fit(x[:16], x_val=x[16:])
    details = det.score_details(x)
    assert details["member_scores"].shape == (24, 3)
    np.testing.assert_allclose(details["score"], details["member_scores"].mean(1), rtol=1e-5)
    # Member k's score equals the base detector's score with member k's parameters.
    base = det.base
    s = det.state
    member1 = TrainState(s.step, s.key, jax.tree.map(lambda a: a[1], s.params),
                         jax.tree.map(lambda a: a[1], s.stats), {})
    one = base.score_state(member1, data.to_float(x[:8], "tanh"))
    np.testing.assert_allclose(one["score"], details["member_scores"][:8, 1], rtol=1e-5)
    assert det.anomaly_map(x[:2]).shape == (2, 16, 16)


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        EnsembleTrainer(JointEncoderTrainer(CFG), members=1)
    with pytest.raises(ValueError, match="discriminator player"):
        EnsembleTrainer(JointEncoderTrainer(CFG), members=2, discriminator_player="nope")
    with pytest.raises(TypeError, match="PlayerDetector"):
        GANEnsemble(object())


ENSEMBLE_BASES = ("egbad", "alad", "ganomaly", "skip_ganomaly", "cbigan", "dedgan", "joint_encoder")


@pytest.mark.parametrize("name", ENSEMBLE_BASES)
def test_every_end_to_end_detector_can_be_ensembled(name):
    """Han et al.'s ensemble "over any base model": every end-to-end detector of the
    registry trains as a 2-member ensemble (one compiled step) and scores finitely."""
    from gadjax.models import DETECTORS

    cls = DETECTORS[name]
    base = cls(CFG if name == "joint_encoder" else CFG.nets, RunConfig(steps=2, batch_size=8, progress=False))
    det = GANEnsemble(base, members=2, score_batch_size=8)
    x = _images(24)
    det.fit(x[:16], x_val=x[16:])
    details = det.score_details(x[:8])
    assert details["member_scores"].shape == (8, 2) and np.isfinite(details["member_scores"]).all()
    assert det.trainer.trace_count == 1
    # The members were trained as a pair each step, not left at their (different) initialisations.
    assert int(det.state.step) == 2
