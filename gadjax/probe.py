"""Wall-time estimates measured on the current backend, before a long experiment starts.

A probe compiles a run's (or a stack's) programs and times a few steps and one scoring
batch on random states and data; nothing is trained or written.  ``estimate_seconds``
scales that to the run's steps and samples, so a grid can print its wall time for the
machine it is on (``experiments/one_class.py``, ``experiments/paper_settings.py``):

    probe = probe_run(RunSpec("fanogan", FAnoGANConfig(steps=3000)), (28, 28, 1))
    hours = estimate_seconds(probe, n_score=10700) / 3600
"""
from __future__ import annotations

import time

import jax
import numpy as np

from gadjax.data.transforms import check_samples
from gadjax.models.base import GANDetector
from gadjax.models.stack import stacked_fixed
from gadjax.runs import RunSpec
from gadjax.stack_runs import StackSpec, _stack
from gadjax.train.stack import StackTrainer, seed_keys, take_model


def _timed(fn, repeats: int) -> dict:
    """First call (trace + compile + run) and the median of ``repeats`` more, in seconds."""
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return {"first_s": times[0], "median_s": float(np.median(times[1:]))}


def probe_run(spec: RunSpec, sample_shape: tuple, repeats: int = 2) -> dict:
    """Measured seconds of one run of ``spec`` on this backend, on random states and data
    (nothing trained or written): per phase the first step (trace + compile), the median
    step and the number of steps, and one scoring batch.  The format of
    ``probe_stack``, for ``estimate_seconds``; any detector (MAD-GAN too)."""
    det, cfg = spec.detector(None), spec.config
    det.progress = False
    det.build(tuple(sample_shape))
    lo, hi = det.value_range or (-1.0, 1.0)
    rng = np.random.default_rng(0)
    check_samples(np.zeros((1, *sample_shape), np.float32), det.image_shape_, name="sample_shape")

    phases = {}
    for phase in det.phases:
        trainer = det.trainer(phase)
        batches = trainer.put_batches(rng.uniform(lo, hi, (trainer.batches_per_step, cfg.batch_size, *sample_shape))
                                      .astype(np.float32))
        box = [trainer.init(jax.random.PRNGKey(cfg.seed))]

        def step():
            box[0], metrics = trainer.step(box[0], batches)
            return metrics
        n = det.run_config(phase, det._steps(phase) if isinstance(det, GANDetector) else None).steps
        phases[phase] = {**_timed(step, repeats), "steps": n}
        det.states_[phase] = box[0]
    x = rng.uniform(lo, hi, (cfg.score_batch_size, *sample_shape)).astype(np.float32)
    score = _timed(lambda: det._score_batch(det._put(x), 0), repeats)
    return {"models": 1, "phases": phases, "score_batch": {**score, "batch": cfg.score_batch_size}}


def probe_stack(spec: StackSpec, sample_shape: tuple, repeats: int = 2) -> dict:
    """Measured seconds of ``spec``'s stack on this backend, on random states and data
    (nothing is trained or written): per phase the first step (trace + compile), the
    median step and the number of steps; and one scoring batch of every model (first
    call, median)."""
    stack = _stack(spec, None)
    t, m, cfg = stack.template, len(spec.members()), spec.config
    t.build(tuple(sample_shape))
    seeds = [member.config.seed for _, member in spec.members()]
    lo, hi = t.value_range or (-1.0, 1.0)
    rng = np.random.default_rng(0)

    phases, states = {}, {}
    for phase in t.phases:
        base = t.trainer(phase)
        trainer = StackTrainer(base, m, stacked_fixed(base, states), shard=spec.shard)
        batches = rng.uniform(lo, hi, (m, trainer.batches_per_step, cfg.batch_size, *sample_shape))
        batches = trainer.put_batches(batches.astype(np.float32))
        box = [trainer.init(seed_keys(seeds))]

        def step():
            box[0], metrics = trainer.step(box[0], batches)
            return metrics
        steps = t.run_config(phase, t._steps(phase) if isinstance(t, GANDetector) else None).steps
        phases[phase] = {**_timed(step, repeats), "steps": steps}
        states[phase] = box[0]
        t.states_[phase] = take_model(box[0], 0)
    stack._attach(states)
    x = rng.uniform(lo, hi, (cfg.score_batch_size, *sample_shape)).astype(np.float32)
    nets = stack.scoring_nets()
    score = _timed(lambda: stack._score_block(nets, x, 0, True), repeats)
    return {"models": m, "phases": phases, "score_batch": {**score, "batch": cfg.score_batch_size}}


def estimate_seconds(probe: dict, n_score: int, skip_phases: tuple = ()) -> float:
    """Wall time of one stack from ``probe_stack``: every phase's compile and steps, and
    scoring ``n_score`` samples per model (test and validation) in batches."""
    total = sum(p["first_s"] + p["steps"] * p["median_s"] for name, p in probe["phases"].items()
                if name not in skip_phases)
    s = probe["score_batch"]
    return total + s["first_s"] + -(-n_score // s["batch"]) * s["median_s"]


__all__ = ["estimate_seconds", "probe_run", "probe_stack"]
