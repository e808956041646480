"""Stacked runs (issue 15): model i of a stack equals the same model fitted alone (float64,
where vmapped convolutions round differently), for an end-to-end detector with BatchNorm
(GANomaly) and a GAN-based one (f-AnoGAN: GAN and encoder phases; AnoGAN's search over
models x images); export of model i; a bit-exact resume; one trace; the memory check."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gadjax
from gadjax import data
from gadjax.models import AnoGAN, FAnoGAN, GANomaly
from gadjax.models.stack import DetectorStack, train_stack
from gadjax.nets import NetSpec
from gadjax.train import GANConfig, GANTrainer, PlayerTrainer, RunConfig
from gadjax.train.stack import StackMemoryError, StackTrainer, take_model, train_stack_loop
from helpers import squares, trace_once

SEEDS = [3, 1, 4]
TINY = dict(net="dcgan", z_dim=8, width=4, steps=2, batch_size=8, score_batch_size=8)
GAN = dict(TINY, gan_loss="lsgan")  # no gradient penalty: its double backward is slow to compile


def _cast64(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


@pytest.fixture
def float64(monkeypatch):
    """x64 on and every trainer's initial state (and GANomaly's D re-initialiser) in float64,
    so stacked and lone runs compute in float64 and rounding cannot hide a difference."""
    jax.config.update("jax_enable_x64", True)
    init = PlayerTrainer._init
    monkeypatch.setattr(PlayerTrainer, "_init", lambda self, key: _cast64(init(self, key)))
    yield lambda trainer: setattr(trainer, "_discriminator_init",
                                  lambda key, f=trainer._discriminator_init: _cast64(f(key)))
    jax.config.update("jax_enable_x64", False)


def _datasets():
    # Three "classes" of different sizes: each model draws from its own data.
    return [squares(n, seed=s) for n, s in ((16, 0), (20, 1), (24, 2))]


def _assert_trees_close(a, b, rtol=1e-10, atol=1e-9):
    # atol: a conv bias that feeds a BatchNorm has zero gradient in exact arithmetic, so its
    # value (and the BN mean that follows it) is float64 rounding noise of about 1e-11,
    # summed in another order under vmap; everything else agrees to rtol.
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


@pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")
def test_stacked_ganomaly_equals_lone_fits(float64, tmp_path):
    xs, x_test = _datasets(), squares(12, seed=9)
    stack = DetectorStack("ganomaly", SEEDS, progress=False, **TINY)
    stack.template.build(xs[0].shape[1:])
    float64(stack.template.trainer("model"))
    stack.fit(xs, x_vals=[x[:8] for x in xs])
    scores = stack.score_samples(x_test)
    assert scores.shape == (3, 12) and scores.dtype == np.float64 and stack.threshold_.shape == (3,)
    per_model = stack.score_samples([x[:5] for x in xs])  # each model its own data, different sizes
    for i, seed in enumerate(SEEDS):
        lone = GANomaly(progress=False, seed=seed, **TINY)
        lone.build(xs[i].shape[1:])
        float64(lone.trainer("model"))
        lone.fit(xs[i], x_val=xs[i][:8])
        # Parameters, BatchNorm statistics and optimiser state (all of the train state).
        _assert_trees_close(take_model(stack.states_["model"], i), lone.states_["model"])
        # GANomaly's score, mean (z - z_hat)^2 ~ 1e-6, cancels: 1e-14 absolute noise is 1e-9
        # relative (float32 rounding would show as 1e-1).
        np.testing.assert_allclose(scores[i], lone.score_samples(x_test), rtol=1e-7)
        np.testing.assert_allclose(per_model[i], lone.score_samples(xs[i][:5]), rtol=1e-7)
        np.testing.assert_allclose(stack.threshold_[i], lone.threshold_, rtol=1e-7)
    # Export: model 1 is an ordinary detector that saves and loads.
    path = stack.detector(1).save(tmp_path / "model1")
    loaded = gadjax.load(path)
    assert type(loaded) is GANomaly and loaded.config.seed == SEEDS[1]
    assert loaded.threshold_ == stack.threshold_[1]
    np.testing.assert_array_equal(loaded.score_samples(x_test), scores[1])
    assert (stack.predict(x_test) == (scores > stack.threshold_[:, None])).all()
    # The whole stack saved as M ordinary detectors and restacked.
    stack.save(tmp_path / "stack")
    again = DetectorStack.load(tmp_path / "stack")
    assert again.seeds == SEEDS and (again.threshold_ == stack.threshold_).all()
    np.testing.assert_array_equal(again.score_samples(x_test), scores)


@pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")
def test_stacked_fanogan_and_anogan_equal_lone_fits(float64):
    xs, x_test = _datasets(), squares(6, seed=9)
    seeds = SEEDS[:2]
    fan = train_stack("fanogan", xs[:2], seeds, progress=False, encoder_steps=2, **GAN)
    search = dict(search_steps=3, loop="scan")
    ano = DetectorStack("anogan", seeds, progress=False, **GAN, **search).fit(xs[:2], gan=fan)
    f_scores, a_details = fan.score_samples(x_test), ano.score_details(x_test)
    for i, seed in [(1, seeds[1])]:  # model 1 (not the one the lone trainers were built on); saves time
        lone = FAnoGAN(progress=False, seed=seed, encoder_steps=2, **GAN).fit(xs[i])
        for phase in ("gan", "encoder"):  # the encoder phase trained against each model's own GAN
            _assert_trees_close(take_model(fan.states_[phase], i), lone.states_[phase])
        np.testing.assert_allclose(f_scores[i], lone.score_samples(x_test), rtol=1e-7)
        lone_ano = AnoGAN(progress=False, seed=seed, **GAN, **search).fit(xs[i], gan=lone)
        lone_details = lone_ano.score_details(x_test)
        np.testing.assert_allclose(a_details["score"][i], lone_details["score"], rtol=1e-7)
        np.testing.assert_allclose(a_details["z"][i], lone_details["z"], rtol=1e-7, atol=1e-10)


def test_resume_is_bit_exact_and_step_traced_once(tmp_path):
    # n_critic 2: two sub-batches per step, each drawn per model.
    trainer = trace_once(StackTrainer(GANTrainer(GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4),
                                                           "lsgan", n_critic=2)), 2))
    xs = [data.to_float(x, "tanh") for x in _datasets()[:2]]
    run = RunConfig(steps=4, batch_size=8, progress=False, checkpoint_every=2, log_every=2)
    full, metrics = train_stack_loop(trainer, xs, [0, 5], run)
    assert metrics["critic_loss"].shape == (2,)
    # Stop after 2 steps (checkpointed), then resume to 4 from the checkpoint.
    out = str(tmp_path / "run")
    train_stack_loop(trainer, xs, [0, 5], RunConfig(**{**run.__dict__, "steps": 2, "out_dir": out}))
    resumed, _ = train_stack_loop(trainer, xs, [0, 5], RunConfig(**{**run.__dict__, "out_dir": out}))
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The memory check: an explicit limit below the need names the largest stack that fits.
    need = trainer.memory_bytes(8)
    assert need > 0
    with pytest.raises(StackMemoryError, match="at most 1 models fit"):
        trainer.check_memory(8, limit_bytes=int(need * 0.6))
    assert trainer.check_memory(8, limit_bytes=need * 2) == need


@pytest.mark.parametrize("shard, devices", [("model", 2), ("batch", 8)])
def test_sharded_stack_step_equals_one_device(float64, shard, devices):
    """shard='model' (each device whole models) and 'batch' (each model's batch split; BatchNorm
    over the global batch) compute the one-device step: float64 to rounding."""
    from gadjax.parallel import DataParallel
    assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
    # Conv nets with a BatchNorm generator where the batch is split (statistics over the global
    # batch); small MLPs where whole models are (quicker to compile; the nets do not matter there).
    nets = NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4, generator_norm="batch") if shard == "batch" else \
        NetSpec("mlp", (256,), z_dim=4, width=8)
    cfg = GANConfig(nets, "lsgan", n_critic=2)  # two sub-batches per step: both split
    mesh = DataParallel.create(jax.devices()[:devices])
    one, sharded = StackTrainer(GANTrainer(cfg), 2), StackTrainer(GANTrainer(cfg), 2, shard=shard, parallel=mesh)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 5)])
    s_one, s_sh = one.init(keys), sharded.init(keys)
    leaf = jax.tree.leaves(s_sh.params)[0]
    assert len(leaf.sharding.device_set) == devices
    assert leaf.addressable_shards[0].data.shape[0] == (1 if shard == "model" else 2)
    xs = np.stack([data.to_float(x, "tanh")[:16].reshape(2, 8, 16, 16, 1) for x in _datasets()[:2]])
    xs = xs.astype(np.float64).reshape(2, 2, 8, *nets.image_shape)
    for _ in range(2):
        s_one, m_one = one.step(s_one, one.put_batches(xs))
        batches = sharded.put_batches(xs)
        assert batches.addressable_shards[0].data.shape[:3] == ((1, 2, 8) if shard == "model" else (2, 2, 1))
        s_sh, m_sh = sharded.step(s_sh, batches)
    _assert_trees_close(s_one, s_sh)  # atol: the conv bias before BatchNorm (see _assert_trees_close)
    np.testing.assert_allclose(np.asarray(m_one["critic_loss"]), np.asarray(m_sh["critic_loss"]), rtol=1e-9)


def test_sharded_stack_rejects_indivisible_splits():
    from gadjax.parallel import DataParallel
    base = GANTrainer(GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4), "lsgan", n_critic=1))
    mesh = DataParallel.create(jax.devices()[:2])
    with pytest.raises(ValueError, match="3 models over 2 devices"):
        StackTrainer(base, 3, shard="model", parallel=mesh)
    with pytest.raises(ValueError, match="batch of 7 over 2 devices"):
        StackTrainer(base, 2, shard="batch", parallel=mesh).check_batch(7)
    with pytest.raises(ValueError, match="shard must be one of"):
        StackTrainer(base, 2, shard="models")


def test_stacked_joint_encoder_calibrates_each_model_like_a_lone_fit(float64):
    """The joint encoder's score statistics are per model (Detector.calibration): one vmapped
    pass, then each model's standardised score under its own statistics."""
    from gadjax.models import JointEncoder
    from gadjax.models.joint_encoder import STAT_FIELDS as STATS
    xs, x_test = _datasets()[:2], squares(6, seed=9)
    opts = dict(GAN, latent_norm=False)
    stack = train_stack("joint_encoder", xs, SEEDS[:2], x_vals=[x[:8] for x in xs], progress=False, **opts)
    assert stack.config.score_stats is None  # the shared config stays uncalibrated
    scores = stack.score_samples(x_test)
    lone = JointEncoder(progress=False, seed=SEEDS[1], **opts).fit(xs[1], x_val=xs[1][:8])
    assert lone.config.score_stats is not None
    assert stack.configs_[1].replace(**dict(zip(STATS, lone.config.score_stats))) == lone.config
    np.testing.assert_allclose(stack.configs_[1].score_stats, lone.config.score_stats, rtol=1e-9)
    np.testing.assert_allclose(scores[1], lone.score_samples(x_test), rtol=1e-7)
    np.testing.assert_allclose(stack.threshold_[1], lone.threshold_, rtol=1e-7)
    assert stack.detector(1).config == stack.configs_[1]
    again = DetectorStack.from_detectors([stack.detector(0), stack.detector(1)])
    np.testing.assert_allclose(again.score_samples(x_test), scores, rtol=1e-12)


def test_chunked_stack_step_equals_the_vmapped_one(float64):
    """chunk=K: lax.map over the models in chunks of K (M not a multiple of K included)."""
    cfg = GANConfig(NetSpec("mlp", (256,), z_dim=4, width=8), "lsgan", n_critic=1)  # quick to compile
    whole, chunked = StackTrainer(GANTrainer(cfg), 3), StackTrainer(GANTrainer(cfg), 3, chunk=2)
    keys = jnp.stack([jax.random.PRNGKey(s) for s in (0, 5, 7)])
    a, b = whole.init(keys), chunked.init(keys)
    xs = np.stack([data.to_float(x, "tanh")[:8].reshape(1, 8, 256) for x in _datasets()]).astype(np.float64)
    for _ in range(2):
        a, _ = whole.step(a, jnp.asarray(xs))
        b, _ = chunked.step(b, jnp.asarray(xs))
    _assert_trees_close(a, b)
