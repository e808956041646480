"""Checkpoints: round trip, never half-written, corrupted ones reported and skipped."""
import logging
import os

import jax
import numpy as np
import pytest

from gadjax.nets import NetSpec
from gadjax.train import CheckpointError, Checkpointer, GANConfig, GANTrainer

TRAINER = GANTrainer(GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=4, width=4), "wgan-gp", n_critic=1))


def _state(seed):
    return TRAINER.init(jax.random.PRNGKey(seed))


def _abstract():
    return jax.eval_shape(TRAINER.init, jax.random.PRNGKey(0))


def _equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_round_trip_and_keep(tmp_path):
    ckpt = Checkpointer(tmp_path, max_to_keep=2)
    states = {step: _state(step) for step in (1, 2, 3)}
    for step, state in states.items():
        ckpt.save(step, state)
    assert ckpt.steps() == [2, 3]
    restored, step = ckpt.restore(_abstract())
    assert step == 3 and _equal(restored, states[3])
    restored, _ = ckpt.restore(_abstract(), step=2)
    assert _equal(restored, states[2])


def test_unfinished_save_is_invisible(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _state(1))
    # What a crash in the middle of writing step 2 leaves behind: orbax's temporary
    # directory, never renamed into place.
    partial = tmp_path / "2.orbax-checkpoint-tmp-1234"
    (partial / "default").mkdir(parents=True)
    (partial / "default" / "half_written").write_bytes(b"\0" * 10)
    fresh = Checkpointer(tmp_path)
    assert fresh.steps() == [1]
    restored, step = fresh.restore(_abstract())
    assert step == 1 and _equal(restored, _state(1))


def test_corrupted_checkpoint_is_reported_and_older_one_used(tmp_path, caplog):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, _state(1))
    ckpt.save(2, _state(2))
    for root, _, files in os.walk(tmp_path / "2"):
        for name in files:  # truncate every file of the newest checkpoint
            with open(os.path.join(root, name), "r+b") as f:
                f.truncate(max(0, os.path.getsize(f.name) // 3))
    with caplog.at_level(logging.WARNING):
        restored, step = Checkpointer(tmp_path).restore(_abstract())
    assert step == 1 and _equal(restored, _state(1))
    assert "unreadable" in caplog.text and "/2" in caplog.text
    assert (tmp_path / "2").exists(), "a bad checkpoint is reported, never silently deleted"


def test_nothing_restorable_raises(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(tmp_path).restore(_abstract())
