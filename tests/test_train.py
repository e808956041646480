"""GAN training: every objective trains, no recompiles, data-parallel equals single
device in float64, bit-exact resume, NaN guard."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax.losses import GAN_LOSSES
from gadjax.nets import NetSpec
from gadjax.train import (Checkpointer, GANConfig, GANTrainer, NonFiniteError, RunConfig, train_loop)

SPEC = NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4)


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    # Bright square in a random corner: a toy distribution with structure.
    x = -np.ones((n, 16, 16, 1), np.float32)
    for i, (r, c) in enumerate(rng.integers(0, 8, size=(n, 2))):
        x[i, r:r + 8, c:c + 8] = 1.0
    return x


@pytest.mark.parametrize("loss", sorted(GAN_LOSSES))
def test_every_objective_trains_and_changes_params(loss):
    critic_norm = "batch" if loss in ("dcgan", "lsgan") else "layer"
    cfg = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4, critic_norm=critic_norm), loss, n_critic=2)
    trainer = GANTrainer(cfg)
    state = trainer.init(jax.random.PRNGKey(0))
    before = jax.tree.map(np.asarray, (state.params["generator"], state.params["critic"]))
    batch = trainer.put_batches(_images(2 * 8).reshape(2, 8, 16, 16, 1))
    for _ in range(2):
        state, metrics = trainer.step(state, batch)
    assert int(state.step) == 2
    assert float(metrics["finite"]) == 1.0
    after = (state.params["generator"], state.params["critic"])
    for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        assert b.shape == a.shape
    assert any(not np.allclose(b, a) for b, a in zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    if loss == "wgan":
        assert max(float(jnp.abs(p).max()) for p in jax.tree.leaves(state.params["critic"])) <= 0.01 + 1e-7


def test_second_step_does_not_recompile():
    trainer = GANTrainer(GANConfig(SPEC, "wgan-gp", n_critic=2))
    state = trainer.init(jax.random.PRNGKey(0))
    batch = trainer.put_batches(_images(16).reshape(2, 8, 16, 16, 1))
    for _ in range(3):
        state, _ = trainer.step(state, batch)
    assert trainer.step._cache_size() == 1


def test_step_donates_state():
    trainer = GANTrainer(GANConfig(SPEC, "wgan-gp", n_critic=1))
    state = trainer.init(jax.random.PRNGKey(0))
    leaf = jax.tree.leaves(state.params["critic"])[0]
    trainer.step(state, trainer.put_batches(_images(8)[None]))
    assert leaf.is_deleted(), "the old state's buffers should be donated to the new state"


def test_step_rejects_wrong_batch_layout():
    trainer = GANTrainer(GANConfig(SPEC, "wgan-gp"))
    state = trainer.init(jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=r"batches_per_step=5.*got \(2, 8, 16, 16, 1\)"):
        trainer.step(state, jnp.zeros((2, 8, 16, 16, 1)))


def test_gradient_penalty_with_batchnorm_critic_is_refused():
    with pytest.raises(ValueError, match="per-sample critic"):
        GANTrainer(GANConfig(NetSpec("dcgan", (16, 16, 1), critic_norm="batch"), "wgan-gp"))


@pytest.fixture
def float64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def test_data_parallel_matches_single_device_in_float64(float64):
    assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
    cfg = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4, generator_norm="batch"), "wgan-gp",
                    n_critic=2)
    single, parallel = GANTrainer(cfg), GANTrainer(cfg, parallel=True)
    state = jax.tree.map(lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                         single.init(jax.random.PRNGKey(0)))
    batches = [_images(32, seed=s).reshape(2, 16, 16, 16, 1).astype(np.float64) for s in range(2)]
    s_state = jax.tree.map(jnp.copy, state)
    p_state = jax.device_put(state, parallel.parallel.replicated)
    for b in batches:
        s_state, s_metrics = single.step(s_state, jnp.asarray(b))
        sharded = parallel.put_batches(b)
        assert len(sharded.sharding.device_set) == 8 and sharded.addressable_shards[0].data.shape[1] == 2
        p_state, p_metrics = parallel.step(p_state, sharded)
    assert jax.tree.leaves(p_state.params["generator"])[0].dtype == jnp.float64
    assert len(jax.tree.leaves(p_state.params["generator"])[0].sharding.device_set) == 8
    for a, b in zip(jax.tree.leaves(s_state), jax.tree.leaves(p_state)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(float(s_metrics["critic_loss"]), float(p_metrics["critic_loss"]), rtol=1e-9)


def test_data_parallel_rejects_indivisible_batch():
    trainer = GANTrainer(GANConfig(SPEC, "wgan-gp", n_critic=1), parallel=True)
    with pytest.raises(ValueError, match="not divisible by the 8 devices"):
        trainer.put_batches(np.zeros((1, 12, 16, 16, 1), np.float32))


def _params(state):
    return [np.asarray(a) for a in jax.tree.leaves(state)]


def test_resume_is_bit_exact(tmp_path):
    x = _images(40)
    cfg = GANConfig(SPEC, "wgan-gp", n_critic=2)
    run = dict(batch_size=8, seed=3, log_every=2, checkpoint_every=3, progress=False)
    full, _ = train_loop(GANTrainer(cfg), x, RunConfig(steps=6, out_dir=str(tmp_path / "a"), **run))
    # Stop after 3 steps, then start again from the checkpoint with a fresh trainer.
    train_loop(GANTrainer(cfg), x, RunConfig(steps=3, out_dir=str(tmp_path / "b"), **run))
    assert Checkpointer(tmp_path / "b" / "checkpoints").latest_step() == 3
    resumed, _ = train_loop(GANTrainer(cfg), x, RunConfig(steps=6, out_dir=str(tmp_path / "b"), **run))
    assert int(resumed.step) == 6
    for a, b in zip(_params(full), _params(resumed)):
        np.testing.assert_array_equal(a, b)
    logged = [line for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [eval(line.replace("true", "True"))["step"] for line in logged] == [2, 3, 4, 6]


def test_training_never_silently_produces_nan(tmp_path):
    cfg = GANConfig(SPEC, "wgan-gp", n_critic=1, learning_rate=1e30)
    with pytest.raises(NonFiniteError, match="non-finite"):
        train_loop(GANTrainer(cfg), _images(16),
                  RunConfig(steps=20, batch_size=8, log_every=1, checkpoint_every=1, out_dir=str(tmp_path),
                            progress=False))
    ckpt = Checkpointer(tmp_path / "checkpoints")
    for step in ckpt.steps():  # whatever was saved before the blow-up is finite
        state, _ = ckpt.restore(jax.eval_shape(GANTrainer(cfg).init, jax.random.PRNGKey(0)), step)
        assert all(np.isfinite(a).all() for a in _params(state) if a.dtype.kind == "f")


def test_train_loop_rejects_unscaled_or_bad_data():
    trainer = GANTrainer(GANConfig(SPEC, "wgan-gp", n_critic=1))
    with pytest.raises(ValueError, match="scale with gadjax.data.to_float"):
        train_loop(trainer, np.full((16, 16, 16, 1), 200.0, np.float32), RunConfig(steps=1, batch_size=8))
    with pytest.raises(ValueError, match="16x16"):
        train_loop(trainer, np.zeros((16, 28, 28, 1), np.float32), RunConfig(steps=1, batch_size=8))
    bad = _images(16)
    bad[3, 2, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_loop(trainer, bad, RunConfig(steps=1, batch_size=8))
