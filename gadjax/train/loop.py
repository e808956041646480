"""The one training loop shared by every trainer (GANs, encoders, detectors).

``train_gan`` feeds batches chosen by a stateless ``BatchSampler`` (batch = f(seed,
step)), so a run that is stopped and restarted from its last checkpoint replays exactly
the batches and noise it would have seen: resuming is bit-exact.  Metrics stay on the
device between log points so the host never stalls the accelerator's queue.
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
import time
from typing import Callable

import jax
import numpy as np

from gadjax.data.transforms import BatchSampler, check_samples
from gadjax.train.checkpoint import Checkpointer
from gadjax.train.runlog import MetricsLog, Progress


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How long and how observably to train.

    ``out_dir=None`` trains in memory (no checkpoints, logs or samples).
    """

    steps: int = 1000
    batch_size: int = 64
    seed: int = 0
    out_dir: str | None = None
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    progress: bool = True
    label: str = ""  # the phase, shown on the progress bar ("gan", "encoder", "model")

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"RunConfig.{name} must be >= 1, got {getattr(self, name)}")


def check_range(x: np.ndarray, value_range: tuple[float, float], name: str = "x_train") -> None:
    """Raise if data are not scaled to the generator's output range (e.g. raw uint8)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if lo < value_range[0] - 1e-3 or hi > value_range[1] + 1e-3:
        raise ValueError(f"{name} values lie in [{lo:.3g}, {hi:.3g}] but the generator outputs "
                         f"[{value_range[0]:g}, {value_range[1]:g}]; scale with gadjax.data.to_float")


class NonFiniteError(FloatingPointError):
    """Training produced NaN/Inf; the last good checkpoint is left untouched."""


def train_loop(trainer, x_train: np.ndarray, run: RunConfig,
               on_sample: Callable[[int, object], None] | None = None):
    """Train any gadjax trainer on ``x_train``: (N, H, W, C) images or (N, ...) samples.

    A trainer provides ``init(key) -> state``, a jitted ``step(state, batches) ->
    (state, metrics)`` taking ``(batches_per_step, B, H, W, C)``, ``put_batches``,
    ``image_shape``, ``value_range`` and ``parallel``; metrics must include ``finite``.

    Resumes from ``run.out_dir/checkpoints`` when it holds a checkpoint.  Writes
    ``metrics.jsonl`` and calls ``on_sample(step, state)`` every ``sample_every`` steps.
    Returns ``(state, last_metrics)``.  Raises ``NonFiniteError`` at the first log
    point with a non-finite loss or parameter, before that state is checkpointed.
    """
    check_samples(x_train, trainer.image_shape, name="x_train")
    if trainer.value_range is not None:  # None: unbounded outputs (tabular MLPs)
        check_range(x_train, trainer.value_range)
    x_train = np.asarray(x_train, np.float32)
    if trainer.parallel is not None:
        trainer.parallel.check_batch(run.batch_size)
    sampler = BatchSampler(len(x_train), run.batch_size, run.seed)

    def nonfinite(done, finite, host, last):
        return (f"non-finite loss or parameters at step {done} ({host}); "
                f"last good checkpoint: {last}. Lower the learning rate or check the data.")

    state, final = run_steps(trainer, jax.random.PRNGKey(run.seed), lambda step, k: x_train[sampler.batches(step, k)],
                             run, images_per_step=run.batch_size * trainer.batches_per_step, nonfinite=nonfinite,
                             on_sample=on_sample)
    return state, {k: float(v) for k, v in final.items()}


def run_steps(trainer, key, batches_at: Callable[[int, int], np.ndarray], run: RunConfig, *, images_per_step: int,
              nonfinite: Callable[..., str], on_sample=None, default_label: str = "train"):
    """The loop itself, shared by ``train_loop`` and ``gadjax.train.stack.train_stack_loop``:
    resume from ``run.out_dir/checkpoints`` or ``trainer.init(key)``, then every step
    ``trainer.step`` on ``batches_at(step, batches_per_step)``; at log points the
    non-finite check (``nonfinite(done, finite, host, last_checkpoint)`` words the error),
    ``metrics.jsonl``, the progress bar (means over a stack's models) and checkpoints.
    ``state.step`` may carry a model axis (every model steps together).  Returns
    ``(state, {metric: numpy array})`` of the last step."""
    out = pathlib.Path(run.out_dir) if run.out_dir else None
    ckpt = Checkpointer(out / "checkpoints", run.keep_checkpoints) if out else None
    log = MetricsLog(out / "metrics.jsonl" if out else None)

    def step_of(state) -> int:
        return int(np.ravel(jax.device_get(state.step))[0])

    state = None
    if ckpt is not None and ckpt.latest_step() is not None:
        state, _ = ckpt.restore(jax.eval_shape(trainer.init, key))
        log.truncate_after(step_of(state))
        if run.progress and jax.process_index() == 0:
            print(f"{run.label or default_label}: resuming from step {step_of(state)} ({ckpt.directory})",
                  file=sys.stderr)
    if state is None:
        state = trainer.init(key)
    start = step_of(state)

    progress = Progress(run.steps, start, enabled=run.progress, label=run.label)
    metrics, t_last, step_last = None, time.perf_counter(), start
    for step in range(start, run.steps):
        state, metrics = trainer.step(state, trainer.put_batches(batches_at(step, trainer.batches_per_step)))
        done = step + 1
        is_last = done == run.steps
        if done % run.log_every == 0 or is_last or (ckpt and done % run.checkpoint_every == 0):
            host = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
            finite = host.pop("finite")
            values = {k: v.tolist() for k, v in host.items()}  # floats, or one per model of a stack
            if not finite.all():
                last = ckpt.latest_step() if ckpt else None
                raise NonFiniteError(nonfinite(done, finite, values, last))
            now = time.perf_counter()
            rate = (done - step_last) * images_per_step / (now - t_last)
            t_last, step_last = now, done
            log.write({"step": done, **values, "images_per_second": rate})
            progress.update(done, {k: float(v.mean()) for k, v in host.items()})
            if ckpt and (done % run.checkpoint_every == 0 or is_last):
                ckpt.save(done, state)
        if on_sample is not None and (done % run.sample_every == 0 or is_last):
            on_sample(done, state)
    progress.close()
    if ckpt:
        ckpt.close()
    final = {k: np.asarray(v) for k, v in jax.device_get(metrics).items() if k != "finite"} if metrics else {}
    return state, final
