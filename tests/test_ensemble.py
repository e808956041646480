"""GAN ensemble: stacked members, one random (generator, discriminator) pair per step,
member-averaged scores computed by one vmap, the config that reads through to its base's,
bad settings, --lr reaching every member's optimisers, and save / load."""
import json

import jax
import numpy as np
import pytest

import gadjax
from gadjax import data
from gadjax.models import DETECTORS, ConfigError
from gadjax.models.dedgan import DEDGANConfig
from gadjax.models.ensemble import EnsembleConfig, EnsembleTrainer, GANEnsemble, ensemble_bases
from gadjax.models.joint_encoder import JointEncoder, JointEncoderConfig, JointEncoderTrainer
from gadjax.nets import NetSpec
from gadjax.optim import learning_rates
from gadjax.train import GANConfig
from helpers import squares as _images
from helpers import trace_once

CFG = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4), "wgan-gp", n_critic=2)
SMALL = dict(net="dcgan", z_dim=8, width=4, n_critic=2, steps=4, batch_size=8, score_batch_size=8)


def _member(tree, k):
    return [np.asarray(a[k]) for a in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def fitted():
    x = _images(24)
    # --lr 3e-4: test_lr_reaches_every_members_optimisers reads it back.
    det = GANEnsemble(EnsembleConfig(members=3, base_config=SMALL).with_learning_rate(3e-4), progress=False)
    det.build(x.shape[1:])
    trace_once(det.trainer("model"))
    return det.fit(x[:16], x_val=x[16:]), x


def test_one_pair_updated_per_step():
    trainer = trace_once(EnsembleTrainer(JointEncoderTrainer(CFG), members=3))
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
        state, _ = trainer.step(state, trainer.put_batches(x))  # trace_once: no retrace


def test_ensemble_detector_averages_member_scores(fitted):
    det, x = fitted
    details = det.score_details(x)
    assert details["member_scores"].shape == (24, 3)
    np.testing.assert_allclose(details["score"], details["member_scores"].mean(1), rtol=1e-5)
    # Member k's score equals the base detector's score with member k's weights.
    assert isinstance(det.base, JointEncoder)
    member1 = jax.tree.map(lambda a: a[1], det.scoring_nets())
    one = det.base.score_fn(member1, data.to_float(x[:8], "tanh"), det.config.base_config)
    np.testing.assert_allclose(one["score"], details["member_scores"][:8, 1], rtol=1e-5)
    assert det.anomaly_map(x[:2]).shape == (2, 16, 16)


def test_config_reads_through_to_its_base():
    cfg = EnsembleConfig(members=2, base_config={"steps": 7, "lam": 0.2})
    assert type(cfg.base_config) is JointEncoderConfig and cfg.base == "joint_encoder"
    assert (cfg.steps, cfg.lam, cfg.learning_rate, cfg.families) == (7, 0.2, None, JointEncoderConfig.families)
    assert cfg.default_family((28, 28, 1)) == "thesis" and cfg.rate("encoder", 1e-4) == 1e-4
    # replace: own fields here, the rest to the base config; a new base starts from its defaults.
    new = cfg.replace(members=4, width=8)
    assert (new.members, new.base_config) == (4, cfg.base_config.replace(width=8))
    ded = cfg.replace(base="dedgan", w_rec=3.0)
    assert ded.base_config == DEDGANConfig(w_rec=3.0)
    lr = cfg.with_learning_rate(3e-4)
    assert type(lr) is EnsembleConfig and lr.base_config == cfg.base_config.with_learning_rate(3e-4)
    assert set(cfg.training_fields()) >= {"base", "members", "z_dim", "gan_loss"}
    assert "lam" not in cfg.training_fields()  # score-only in the base, score-only here
    for c in (cfg, ded):
        assert EnsembleConfig.from_dict(c.to_dict()) == c and isinstance(c.to_dict()["base_config"], dict)
    assert hash(cfg) == hash(EnsembleConfig.from_dict(cfg.to_dict()))  # a static jit argument
    assert set(ensemble_bases()) >= {"joint_encoder", "dedgan", "skip_ganomaly", "ganomaly"}
    # Not AnoGAN / f-AnoGAN (GAN and scorer apart) nor MAD-GAN (its scorer takes a key).
    assert not set(ensemble_bases()) & {"ensemble", "anogan", "fanogan", "madgan"}


@pytest.mark.parametrize("kwargs, field", [
    (dict(members=1), "members"),                     # out of range
    (dict(members=2.5), "members"),                   # wrong type
    (dict(base="ensemble"), "base"),                  # not a base model
    (dict(base="anogan"), "base"),
    (dict(base="madgan"), "base"),
    (dict(base_config=DEDGANConfig()), "base_config"),  # the config of another base
    (dict(lam=float("nan")), "lam"),                  # NaN, in the base's fields
    (dict(foo=1), "foo"),                             # unknown field
])
def test_bad_settings_raise_at_construction(kwargs, field):
    with pytest.raises(ConfigError, match=field) as err:
        GANEnsemble(**kwargs)
    assert err.value.field == field


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least 2"):
        EnsembleTrainer(JointEncoderTrainer(CFG), members=1)
    with pytest.raises(ValueError, match="discriminator player"):
        EnsembleTrainer(JointEncoderTrainer(CFG), members=2, discriminator_player="nope")
    with pytest.raises(TypeError, match="EnsembleConfig"):
        GANEnsemble(object())


def test_lr_reaches_every_members_optimisers(fitted):
    det, _ = fitted  # fitted with with_learning_rate(3e-4), what gadjax train --lr does
    for k in range(3):
        rates = learning_rates(jax.tree.map(lambda a, k=k: a[k], det.state.opt))
        assert {p: np.float32(r) for p, r in rates.items()} == {p: np.float32(3e-4)
                                                               for p in ("critic", "generator", "encoder")}


def test_save_load_round_trip(fitted, tmp_path):
    det, x = fitted
    loaded = gadjax.load(det.save(tmp_path / "det"))
    assert type(loaded) is GANEnsemble and loaded.config == det.config and loaded.threshold_ == det.threshold_
    a, b = det.score_details(x), loaded.score_details(x)
    for k in ("score", "member_scores"):
        np.testing.assert_array_equal(b[k], a[k])


def test_an_ensemble_saved_before_latent_norm_loads_as_it_was_trained(fitted, tmp_path):
    det, x = fitted
    assert det.config.latent_norm and det.base.spec.latent_norm  # the joint encoder's default now
    path = det.save(tmp_path / "old")
    meta = json.loads((path / "detector.json").read_text())
    for field in ("latent_norm", "latent_scale", "standardise"):
        del meta["config"]["base_config"][field]
    meta["extra"] = {}
    (path / "detector.json").write_text(json.dumps(meta))
    loaded = gadjax.load(path)
    assert (loaded.config.latent_norm, loaded.config.latent_scale, loaded.config.standardise) == (False, 1.0, False)
    assert not loaded.base.spec.latent_norm
    # The members' generators were rebuilt without the normalisation: the same weights score otherwise.
    old, new = loaded.score_samples(x), det.score_samples(x)
    assert np.isfinite(old).all() and not np.allclose(old, new)


ENSEMBLE_BASES = ("egbad", "alad", "ganomaly", "skip_ganomaly", "cbigan", "dedgan", "joint_encoder")
# Trained for real; the others are traced abstractly below (jax.eval_shape runs the same
# Python and jax tracing as a fit, without XLA compiles, which cost ~10 s per base).
FITTED_BASES = ("egbad", "ganomaly")


def _small_ensemble(name, x):
    fields = DETECTORS[name].config_class.field_names()
    small = {k: v for k, v in dict(z_dim=8, width=4, n_critic=2, steps=2, batch_size=8,
                                   score_batch_size=8).items() if k in fields}
    det = GANEnsemble(base=name, members=2, **small, progress=False)
    det.build(x.shape[1:])
    return det


def test_ensemble_bases_are_every_end_to_end_detector():
    assert set(ensemble_bases()) == set(ENSEMBLE_BASES)


@pytest.mark.parametrize("name", FITTED_BASES)
def test_end_to_end_detectors_train_and_score_as_ensembles(name):
    """Han et al.'s ensemble "over any base model": a 2-member ensemble trains (one
    compiled step) and scores finitely."""
    x = _images(24)
    det = _small_ensemble(name, x)
    trace_once(det.trainer("model"))
    det.fit(x[:16], x_val=x[16:])
    details = det.score_details(x[:8])
    assert details["member_scores"].shape == (8, 2) and np.isfinite(details["member_scores"]).all()
    # The members were trained as a pair each step, not left at their (different) initialisations.
    assert int(det.state.step) == 2


@pytest.mark.parametrize("name", sorted(set(ENSEMBLE_BASES) - set(FITTED_BASES)))
def test_every_other_end_to_end_detector_traces_as_an_ensemble(name):
    """The rest of the bases: the stacked init, one ensemble step and the member-averaged
    scorer trace with the right shapes (what a fit would compile)."""
    x = _images(24)
    det = _small_ensemble(name, x)
    trainer = det.trainer("model")
    state = jax.eval_shape(trainer._init, jax.random.PRNGKey(0))
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(state.params))  # stacked members
    batches = jax.ShapeDtypeStruct((trainer.batches_per_step, 8, *x.shape[1:]), np.float32)
    new, metrics = jax.eval_shape(trainer._step, state, batches)
    assert jax.tree.structure(new) == jax.tree.structure(state) and metrics["generator_member"].shape == ()
    details = jax.eval_shape(lambda s, b: det.score_fn(det.nets_of(s), b, det.config), state,
                             jax.ShapeDtypeStruct((8, *x.shape[1:]), np.float32))
    assert details["member_scores"].shape == (8, 2) and details["score"].shape == (8,)
