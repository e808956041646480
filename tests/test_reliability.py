"""Reliability: a run killed with SIGKILL resumes to the same parameters as an
uninterrupted one; fits and scores are deterministic for a fixed seed."""
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

import gadjax
from gadjax.cli import main
from gadjax.models import FAnoGAN
from gadjax.train import Checkpointer

STEPS = 30
ARGS = ["train", "--model", "fanogan", "--dataset", "mnist", "--normal-class", "3", "--net", "dcgan",
        "--width", "4", "--z-dim", "8", "--batch-size", "16", "--n-critic", "2", "--steps", str(STEPS),
        "--encoder-steps", "2", "--val-fraction", "0.01", "--checkpoint-every", "2", "--log-every", "2",
        "--sample-every", "1000", "--no-progress"]


def _final_state(out):
    det = gadjax.load(out)
    assert int(det.gan_state.step) == STEPS
    return [np.asarray(a) for a in jax.tree.leaves((det.gan_state, det.states_["encoder"]))]


def test_sigkill_mid_training_then_resume_matches_uninterrupted_run(shared_data, tmp_path):
    data_args = ["--data-dir", str(shared_data)]
    assert main(ARGS + data_args + ["--out", str(tmp_path / "clean")]) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-m", "gadjax"] + ARGS + data_args + ["--out", str(killed)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / "gan" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        done = [int(p.name) for p in ckpts.glob("*") if p.name.isdigit()] if ckpts.exists() else []
        if done and max(done) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    latest = Checkpointer(ckpts).latest_step()
    assert latest is not None and latest < STEPS

    assert main(ARGS + data_args + ["--out", str(killed)]) == 0  # same command: resumes
    for a, b in zip(_final_state(tmp_path / "clean"), _final_state(killed)):
        np.testing.assert_array_equal(a, b)


def test_fit_and_scores_are_deterministic_for_a_fixed_seed():
    rng = np.random.default_rng(0)
    x = (rng.random((48, 16, 16, 1)) * 255).astype(np.uint8)
    settings = dict(net="dcgan", z_dim=8, width=4, n_critic=2, steps=4, batch_size=8, seed=5, encoder_steps=3,
                    score_batch_size=16, progress=False)
    a = FAnoGAN(**settings).fit(x[:32], x[32:])
    b = FAnoGAN(**settings).fit(x[:32], x[32:])
    np.testing.assert_array_equal(a.score_samples(x), b.score_samples(x))
    assert a.threshold_ == b.threshold_
