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

Over several devices (``shard=``) the stack is placed with ``NamedSharding`` on a 1-D
mesh, like the data-parallel step: ``"model"`` splits the model axis (each device trains
M / n whole models: no communication, the choice for many small models), ``"batch"``
replicates every model and splits each model's batch (XLA inserts the gradient
all-reduce; for few models too big for one device's compute).  Either way the program
computes the same function as on one device.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gadjax.data.transforms import BatchSampler, check_samples
from jax.sharding import NamedSharding, PartitionSpec as P

from gadjax.parallel import DATA_AXIS, DataParallel
from gadjax.train.loop import RunConfig, check_range, run_steps
from gadjax.train.players import PlayerTrainer, TrainState


SHARDS = ("model", "batch")


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
      shard: None (one device), ``"model"`` or ``"batch"``: the axis split over
        ``parallel``'s devices (default: all devices); see the module docstring.
      parallel: a ``DataParallel`` mesh for ``shard`` (default ``DataParallel.create()``).
      chunk: None (``vmap`` over all M models) or K: ``lax.map`` over the models in
        chunks of K (a loop of K-model ``vmap``s inside the one program).  Same results;
        on a CPU each op's data then fits the caches better (``bench/stack.py``).
    """

    def __init__(self, base: PlayerTrainer, members: int, fixed: dict | None = None, shard: str | None = None,
                 parallel: DataParallel | None = None, chunk: int | None = None):
        if members < 1:
            raise ValueError(f"a stack needs at least 1 model, got {members}")
        if chunk is not None and not 1 <= chunk:
            raise ValueError(f"chunk must be None or >= 1, got {chunk}")
        self.chunk = None if chunk is None or chunk >= members else int(chunk)
        if base.parallel is not None:
            raise ValueError("the base trainer of a stack must be built with parallel=False; shard the stack "
                             "with shard='model' or shard='batch'")
        if shard not in (None,) + SHARDS:
            raise ValueError(f"shard must be one of {SHARDS} or None, got {shard!r}")
        self.shard = shard
        self.mesh = None if shard is None else (parallel or DataParallel.create())
        if shard == "model" and members % self.mesh.size:
            raise ValueError(f"shard='model' splits the {members} models over {self.mesh.size} devices: use a "
                             f"multiple of {self.mesh.size} models, or shard='batch'")
        self.base, self.members = base, members
        self.fixed = dict(fixed or {})
        unknown = set(self.fixed) - set(getattr(base, "fixed", {}))
        if unknown:
            raise ValueError(f"fixed= names {sorted(unknown)}, which are not fixed networks of the base trainer")
        self.image_shape, self.value_range, self.parallel = base.image_shape, base.value_range, None
        self.batches_per_step = base.batches_per_step
        state_sh, batch_sh = self._shardings()
        if state_sh is not None:
            self.fixed = jax.device_put(self.fixed, state_sh)
        # The stacked fixed networks are an argument, not closure constants baked into the program.
        init = jax.jit(self._init, out_shardings=state_sh)
        self.init = lambda keys: init(keys, self.fixed)
        if state_sh is None:
            self.step = jax.jit(self._step, donate_argnums=0)
        else:
            self.step = jax.jit(self._step, donate_argnums=0, in_shardings=(state_sh, batch_sh),
                                out_shardings=(state_sh, NamedSharding(self.mesh.mesh, P())))

    def _shardings(self) -> tuple[NamedSharding | None, NamedSharding | None]:
        """(state, batches) shardings: every state leaf has the model axis first, batches
        are (M, batches_per_step, B, ...)."""
        if self.shard is None:
            return None, None
        mesh = self.mesh.mesh
        if self.shard == "model":
            return NamedSharding(mesh, P(DATA_AXIS)), NamedSharding(mesh, P(DATA_AXIS))
        return NamedSharding(mesh, P()), NamedSharding(mesh, P(None, None, DATA_AXIS))

    def check_batch(self, batch_size: int) -> None:
        if self.shard == "batch" and batch_size % self.mesh.size:
            raise ValueError(f"shard='batch' splits every model's batch of {batch_size} over {self.mesh.size} "
                             f"devices: use a batch size that is a multiple of {self.mesh.size}")

    def put_batches(self, batches) -> jax.Array:
        """Host (M, batches_per_step, B, ...) -> device, split as ``shard`` says.  Every
        process builds all M models' batches (they are small), so one callback serves one
        host and many: each device takes its own block."""
        if self.shard is None:
            return jnp.asarray(batches)
        self.check_batch(batches.shape[2])
        batches = np.asarray(batches)
        return jax.make_array_from_callback(batches.shape, self._shardings()[1], lambda idx: batches[idx])

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
        if self.chunk is None:
            return jax.vmap(self.base._step)(state, batches)
        return jax.lax.map(lambda a: self.base._step(*a), (state, batches), batch_size=self.chunk)

    def memory_bytes(self, batch_size: int) -> int:
        """Bytes one compiled step needs on each device (arguments + outputs not aliased +
        temporaries), for this stack's sharding."""
        keys = seed_keys(range(self.members))  # only shapes matter
        state = jax.eval_shape(self.init, keys)
        batches = jax.ShapeDtypeStruct((self.members, self.batches_per_step, batch_size, *self.image_shape),
                                       jnp.float32, sharding=self._shardings()[1])
        m = self.step.lower(state, batches).compile().memory_analysis()
        if m is None:
            return 0
        return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)

    def check_memory(self, batch_size: int, limit_bytes: int | None = None) -> int | None:
        """Raise ``StackMemoryError`` if the step needs more than ``limit_bytes`` on a device
        (default: the first local device's ``bytes_limit``; devices that report none, like
        CPUs, are not checked).  Every model costs the same, so a device holding m models
        fits floor(limit / (need / m)).  Returns the bytes needed, or None when unchecked."""
        if limit_bytes is None:
            limit_bytes = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
            if limit_bytes is None:
                return None
        need = self.memory_bytes(batch_size)
        if need > limit_bytes:
            split = self.mesh.size if self.shard == "model" else 1  # devices the models are divided over
            per_device = self.members // split
            largest = int(limit_bytes // max(need / per_device, 1)) * split
            where = f"{split} devices" if split > 1 else "the device"
            raise StackMemoryError(
                f"a stack of {self.members} models (batch {batch_size}) needs about {need / 2**30:.2f} GiB per "
                f"device per step but {where} {'have' if split > 1 else 'has'} {limit_bytes / 2**30:.2f} GiB each: "
                f"at most {largest} models fit; train the stack in smaller groups")
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
    trainer.check_batch(run.batch_size)
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
