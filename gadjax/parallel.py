"""Data parallelism over every local device, and across hosts, with one flag.

gadjax's steps are ordinary ``jax.jit`` functions.  Data parallelism is expressed the
modern way (the successor of ``pmap``): a 1-D device mesh with axis ``"data"``, the
batch sharded along it and the train state replicated.  XLA's SPMD partitioner then
inserts the gradient all-reduce itself, and BatchNorm statistics are taken over the
global batch, so the data-parallel step computes the same function as the
single-device step on the same global batch.

Multi-host: call ``initialize_distributed()`` once per process before anything else
touches JAX; every host then feeds its own slice of the global batch (``put_batch``).
"""
from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Join a multi-host run via ``jax.distributed.initialize``.

    With no arguments JAX auto-detects the cluster (SLURM, Cloud TPU, Kubernetes, MPI);
    pass the coordinator address, process count and id explicitly elsewhere.
    """
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Shardings for data-parallel training on ``mesh`` (axis ``"data"``).

    ``DataParallel.create()`` uses every device of every process (``jax.devices()``).
    """

    mesh: Mesh

    @classmethod
    def create(cls, devices=None) -> "DataParallel":
        devices = jax.devices() if devices is None else list(devices)
        return cls(Mesh(np.asarray(devices), (DATA_AXIS,)))

    @property
    def size(self) -> int:
        return self.mesh.devices.size

    @property
    def replicated(self) -> NamedSharding:
        """For the train state: every device holds a full copy."""
        return NamedSharding(self.mesh, P())

    def batch(self, batch_axis: int = 0) -> NamedSharding:
        """For arrays whose ``batch_axis`` is split across devices."""
        return NamedSharding(self.mesh, P(*([None] * batch_axis), DATA_AXIS))

    def check_batch(self, global_batch: int) -> None:
        if global_batch % self.size:
            raise ValueError(f"global batch size {global_batch} is not divisible by the {self.size} devices "
                             f"of the data-parallel mesh; use a multiple of {self.size}")

    def put_batch(self, local: np.ndarray, batch_axis: int = 0) -> jax.Array:
        """Place this process's slice of the global batch on its devices.

        Single host: ``local`` is the whole batch.  Multi-host: each process passes its
        own rows, and the global array is their concatenation in process order.
        """
        sharding = self.batch(batch_axis)
        if jax.process_count() == 1:
            self.check_batch(local.shape[batch_axis])
            return jax.device_put(local, sharding)
        return jax.make_array_from_process_local_data(sharding, local)


def resolve(parallel: "bool | DataParallel | None") -> "DataParallel | None":
    """The one flag: ``True`` -> all devices, ``False``/``None`` -> single device."""
    if parallel is True:
        return DataParallel.create()
    return parallel or None


def jit_step(fn, parallel: "DataParallel | None", n_replicated: int = 1, batch_axis: int = 1):
    """``jax.jit`` a train step ``fn(state, *replicated_args, batches)``.

    The state (argument 0) is donated.  With ``parallel`` the state and the other
    ``n_replicated - 1`` leading arguments are replicated and the last argument is
    sharded along ``batch_axis``; outputs (state, metrics) are replicated.
    """
    if parallel is None:
        return jax.jit(fn, donate_argnums=0)
    rep = parallel.replicated
    in_shardings = (rep,) * n_replicated + (parallel.batch(batch_axis),)
    return jax.jit(fn, donate_argnums=0, in_shardings=in_shardings, out_shardings=(rep, rep))


def jit_init(fn, parallel: "DataParallel | None"):
    """``jax.jit`` an ``init(key) -> state``, placing the state replicated when parallel."""
    return jax.jit(fn) if parallel is None else jax.jit(fn, out_shardings=parallel.replicated)
