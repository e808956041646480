"""Flax NNX modules used through pure functions.

A network is built once, split into a static ``graphdef`` and two pytrees,
``params`` (trainable ``nnx.Param``) and ``stats`` (everything else, e.g. BatchNorm
running averages or spectral-norm vectors).  Inside ``jit`` the module is merged back
from those pytrees, called, and its non-trainable state split off again, so every
function of gadjax takes and returns plain pytrees and composes with ``jax.grad``,
``jax.vmap`` and sharding like any other JAX function.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
from flax import nnx

PyTree = Any


@dataclasses.dataclass(frozen=True)
class PureNet:
    """A split NNX module: hashable static structure plus an ``apply`` function.

    Attributes:
      graphdef: the static structure from ``nnx.split``.
      name: short label used in error messages and checkpoints.
    """

    graphdef: Any
    name: str = "net"

    def apply(self, params: PyTree, stats: PyTree, *args, train: bool = False, **kwargs):
        """Run the module. Returns ``(output, new_stats)``.

        ``train`` is forwarded to the module; modules with BatchNorm use batch
        statistics and update running averages only when ``train=True``.
        """
        # copy=True: fresh Variables at the current trace level, so BatchNorm may update
        # its statistics under jax.grad even when ``stats`` came from an outer trace.
        module = nnx.merge(self.graphdef, params, stats, copy=True)
        out = module(*args, train=train, **kwargs)
        _, _, new_stats = nnx.split(module, nnx.Param, ...)
        return out, new_stats

    def __call__(self, params: PyTree, stats: PyTree, *args, **kwargs):
        """Inference shortcut: ``apply(..., train=False)`` and drop the state."""
        out, _ = self.apply(params, stats, *args, train=False, **kwargs)
        return out


def init_fn(make_module: Callable[[nnx.Rngs], nnx.Module], name: str = "net"):
    """Split once to get the static ``PureNet`` and a pure ``init(key) -> (params, stats)``.

    The structure comes from ``nnx.eval_shape`` (no FLOPs, no memory), and the returned
    ``init`` is traceable, so it can run under ``jit`` with output shardings and
    initialise parameters directly on the devices that hold them.
    """
    abstract = nnx.eval_shape(lambda: make_module(nnx.Rngs(params=0)))
    pure = PureNet(nnx.split(abstract, nnx.Param, ...)[0], name)

    def init(key: jax.Array):
        module = make_module(nnx.Rngs(params=key))
        _, params, stats = nnx.split(module, nnx.Param, ...)
        return params, stats

    return pure, init


def count_params(params: PyTree) -> int:
    """Number of scalar parameters in a pytree."""
    return sum(x.size for x in jax.tree.leaves(params))


def bind(net: PureNet, params: PyTree, stats: PyTree) -> jax.tree_util.Partial:
    """``net`` with its variables bound, in inference mode: ``bind(G, p, s)(z) == G(p, s, z)``.

    The result is a ``jax.tree_util.Partial``, i.e. a pytree whose leaves are ``params``
    and ``stats``: it passes through ``jit`` / ``vmap`` as an ordinary argument (traced,
    never baked in as a constant), while ``net`` itself stays static.  gadjax's scorers
    take networks as such callables, so any ``f(x)`` written outside gadjax works too.
    """
    return jax.tree_util.Partial(net, params, stats)


def as_callable_pytree(fn) -> jax.tree_util.Partial:
    """A callable as a pytree for ``jit`` arguments: a ``Partial`` is kept, any other
    callable becomes a leaf-free ``Partial`` (static, compared by identity)."""
    return fn if isinstance(fn, jax.tree_util.Partial) else jax.tree_util.Partial(fn)


def _second(critic, x):
    return critic(x)[1]


def features_of(critic) -> jax.tree_util.Partial:
    """``x -> features`` of a bound critic ``x -> (logits, features)``, still a pytree
    (so its parameters stay traced arguments under ``jit``)."""
    return jax.tree_util.Partial(_second, critic)
