"""A stack of M independent models of one kind trained as one compiled program.

A one-class study trains one small model per (class, seed); each is too small to fill an
accelerator.  ``StackTrainer`` runs M of them at once: the train state gets a leading
model axis on every leaf, ``init`` is ``vmap(base._init)`` over M keys and ``step`` is
``vmap(base._step)`` over the stacked state and stacked batches, jitted once with the
state donated.  Nothing is shared between models: each has its own parameters, BatchNorm
statistics, optimiser state (EMA weights included) and key, so model i computes the same
function as a lone run of the base trainer with model i's seed and data.

``train_stack_loop`` is ``train_loop`` for a stack: model i draws its batches from its
own training set with its own stateless ``BatchSampler(seed_i)`` and starts from
``PRNGKey(seed_i)``, exactly as a lone run with seed i does, so stacked and lone runs
see the same batches and the same noise, and a resumed stack repeats bit-exactly.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gadjax.data.transforms import BatchSampler, check_samples
from gadjax.parallel import jit_step
from gadjax.train.loop import RunConfig, check_range, run_steps
from gadjax.train.players import PlayerTrainer, TrainState


class StackMemoryError(MemoryError):
    """The stack does not fit in the device's memory; the message gives the largest M that does."""


def seed_keys(seeds: Sequence[int]) -> jax.Array:
    """(M, 2) keys: model i's is ``PRNGKey(seeds[i])``, the key a lone run with that seed starts from."""
    return jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])


def take_model(tree, i: int):
    """Model ``i`` of a stacked pytree (its leading axis sliced off)."""
    return jax.tree.map(lambda a: a[i], tree)


class StackTrainer:
    """``members`` independent copies of ``base`` (a ``PlayerTrainer``) with a leading
    model axis; follows the ``train_loop`` protocol, except that ``init`` takes (M, 2) keys.

    Args:
      base: the trainer of one model.
      members: M.
      fixed: ``{net: (params, stats)}`` stacked along the model axis, for the base's fixed
        (never updated) networks whose values differ per model, e.g. each model's own GAN
        under f-AnoGAN's encoder phase (the base's own ``fixed`` are one model's).
    """

    def __init__(self, base: PlayerTrainer, members: int, fixed: dict | None = None):
        if members < 1:
            raise ValueError(f"a stack needs at least 1 model, got {members}")
        if base.parallel is not None:
            raise NotImplementedError("sharding a stack over devices is not implemented yet; build the base "
                                      "trainer with parallel=False")
        self.base, self.members = base, members
        self.fixed = dict(fixed or {})
        unknown = set(self.fixed) - set(getattr(base, "fixed", {}))
        if unknown:
            raise ValueError(f"fixed= names {sorted(unknown)}, which are not fixed networks of the base trainer")
        self.image_shape, self.value_range, self.parallel = base.image_shape, base.value_range, None
        self.batches_per_step = base.batches_per_step
        # The stacked fixed networks are an argument, not closure constants baked into the program.
        init = jax.jit(self._init)
        self.init = lambda keys: init(keys, self.fixed)
        self.step = jit_step(self._step, None)

    def put_batches(self, batches) -> jax.Array:
        """Host (M, batches_per_step, B, ...) -> device."""
        return jnp.asarray(batches)

    def _init(self, keys: jax.Array, fixed: dict) -> TrainState:
        if keys.shape[0] != self.members:
            raise ValueError(f"init expects {self.members} keys (one per model), got shape {keys.shape}")
        state = jax.vmap(self.base._init)(keys)
        if not fixed:
            return state
        # No player owns a fixed net, so no optimiser state refers to it: swapping the values in is enough.
        return state.replace(params={**state.params, **{n: p for n, (p, _) in fixed.items()}},
                             stats={**state.stats, **{n: s for n, (_, s) in fixed.items()}})

    def _step(self, state: TrainState, batches: jax.Array):
        """batches (M, batches_per_step, B, ...) -> (state, metrics of shape (M,))."""
        if batches.shape[0] != self.members:
            raise ValueError(f"step expects batches of shape (M={self.members}, batches_per_step, B, ...), "
                             f"got {batches.shape}")
        return jax.vmap(self.base._step)(state, batches)

    def memory_bytes(self, batch_size: int) -> int:
        """Device bytes one compiled step needs (arguments + outputs not aliased + temporaries)."""
        keys = seed_keys(range(self.members))  # only shapes matter
        state = jax.eval_shape(self.init, keys)
        batches = jax.ShapeDtypeStruct((self.members, self.batches_per_step, batch_size, *self.image_shape),
                                       jnp.float32)
        m = jax.jit(self._step, donate_argnums=0).lower(state, batches).compile().memory_analysis()
        if m is None:
            return 0
        return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)

    def check_memory(self, batch_size: int, limit_bytes: int | None = None) -> int | None:
        """Raise ``StackMemoryError`` if the step needs more than ``limit_bytes`` (default:
        the first local device's ``bytes_limit``; devices that report none, like CPUs, are
        not checked).  Every model costs the same, so M_max = floor(limit / (need / M)).
        Returns the bytes needed, or None when unchecked."""
        if limit_bytes is None:
            limit_bytes = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
            if limit_bytes is None:
                return None
        need = self.memory_bytes(batch_size)
        if need > limit_bytes:
            largest = int(limit_bytes // max(need / self.members, 1))
            raise StackMemoryError(
                f"a stack of {self.members} models (batch {batch_size}) needs about {need / 2**30:.2f} GiB per step "
                f"but the device has {limit_bytes / 2**30:.2f} GiB: at most {largest} models fit; train the "
                f"stack in smaller groups")
        return need


def train_stack_loop(trainer: StackTrainer, xs: Sequence[np.ndarray], seeds: Sequence[int], run: RunConfig,
                     memory_limit: int | bool | None = None):
    """Train a ``StackTrainer``: model i on ``xs[i]`` (its own size allowed) with seed
    ``seeds[i]`` (``run.seed`` is unused).  Checkpoints, resume and the non-finite check as
    ``train_loop``; ``metrics.jsonl`` lines hold one value per model.  ``memory_limit``:
    bytes (None: the device's limit; False: no check), checked before the first step.
    Returns ``(state, {metric: (M,) array})``."""
    m = trainer.members
    if len(xs) != m or len(seeds) != m:
        raise ValueError(f"a stack of {m} models needs {m} training sets and {m} seeds, "
                         f"got {len(xs)} and {len(seeds)}")
    data = []
    for i, x in enumerate(xs):
        check_samples(x, trainer.image_shape, name=f"x_train[{i}]")
        if trainer.value_range is not None:
            check_range(x, trainer.value_range, name=f"x_train[{i}]")
        data.append(np.asarray(x, np.float32))
    samplers = [BatchSampler(len(x), run.batch_size, s) for x, s in zip(data, seeds)]
    if memory_limit is not False:
        trainer.check_memory(run.batch_size, memory_limit)

    def batches_at(step, k):
        return np.stack([x[s.batches(step, k)] for x, s in zip(data, samplers)])

    def nonfinite(done, finite, host, last):
        bad = np.flatnonzero(~finite)
        return (f"non-finite loss or parameters at step {done} in models {bad.tolist()} (seeds "
                f"{[seeds[i] for i in bad]}); last good checkpoint: {last}. Lower the learning rate or check the data.")

    return run_steps(trainer, seed_keys(seeds), batches_at, run, images_per_step=run.batch_size *
                     trainer.batches_per_step * m, nonfinite=nonfinite, default_label="stack")
