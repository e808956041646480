"""The one training machinery: named networks, players that update them, one jitted step.

Every gadjax model (GANs, f-AnoGAN's encoder, BiGAN, ALAD, GANomaly, ...) is a dict of
networks plus an ordered list of ``Player``s.  A player owns some networks, has a loss
and an optimiser, and may repeat (WGAN's ``n_critic``).  ``PlayerTrainer`` turns that
into one ``jit``-compiled, state-donating step over a ``TrainState`` pytree; the keys
are ``fold_in(state.key, state.step)``; data parallelism is one flag (``parallel``).

A loss has the signature

    loss(params: {net: pytree}, stats: {net: pytree}, batch: (B, ...), key)
        -> (scalar, (stats_updates: {net: pytree}, metrics: {name: scalar}))

and is differentiated with respect to the player's own networks only.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import struct

from gadjax.nets import PureNet
from gadjax.parallel import DataParallel, jit_init, jit_step, resolve
from gadjax.train.ema import find_ema

PyTree = Any


@struct.dataclass
class TrainState:
    """Everything a run updates: ``params``/``stats`` per network, ``opt`` per player."""

    step: jax.Array
    key: jax.Array
    params: dict
    stats: dict
    opt: dict


@dataclasses.dataclass(frozen=True)
class Player:
    """One optimisation role: which nets it updates, with which loss and optimiser.

    ``repeats`` > 1 consumes that many sub-batches per step (WGAN critics);
    ``post_update(own_params) -> own_params`` runs after each update (weight clipping).
    """

    name: str
    nets: tuple[str, ...]
    loss: Callable
    optimizer: optax.GradientTransformation
    repeats: int = 1
    post_update: Callable | None = None


def default_unroll() -> bool | int:
    """Loop form for repeated players: XLA:CPU runs convolutions inside a rolled
    ``lax.scan`` about 3x slower than unrolled (jax-ml/jax#12868; bench/README.md);
    GPUs prefer the rolled loop (smaller program, faster compile)."""
    return True if jax.default_backend() == "cpu" else 1


def all_finite(tree) -> jax.Array:
    """Scalar bool: every float leaf of ``tree`` is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def put_batches(batches, parallel: DataParallel | None) -> jax.Array:
    """Host (k, B, ...) sub-batches -> device array, sharded along B when parallel."""
    return jnp.asarray(batches) if parallel is None else parallel.put_batch(batches, batch_axis=1)


class PlayerTrainer:
    """Compiles ``init`` and ``step`` for a set of networks and players.

    Args:
      nets: ``{name: (PureNet, init(key) -> (params, stats))}``.
      players: updated in order each step.
      image_shape, value_range: what ``train_loop`` validates the data against.
      fixed: ``{name: (params, stats)}`` for networks that start from given values
        (e.g. a trained GAN that an encoder is fitted to); owned by no player, they stay frozen.
      parallel: ``True`` / ``DataParallel`` for data parallelism over all devices.
    """

    def __init__(self, nets: dict[str, tuple[PureNet, Callable]], players: Sequence[Player], *,
                 image_shape: tuple[int, ...], value_range: tuple[float, float],
                 fixed: dict[str, tuple[PyTree, PyTree]] | None = None, parallel=False,
                 unroll: bool | int | None = None):
        self.nets = {name: net for name, (net, _) in nets.items()}
        self._inits = {name: init for name, (_, init) in nets.items()}
        self.players = tuple(players)
        for p in self.players:
            unknown = set(p.nets) - set(self.nets)
            if unknown:
                raise ValueError(f"player {p.name!r} updates unknown networks {sorted(unknown)}")
        self.image_shape, self.value_range = tuple(image_shape), value_range
        self.parallel = resolve(parallel)
        self.fixed = fixed or {}
        if self.parallel is not None and self.fixed:
            self.fixed = jax.device_put(self.fixed, self.parallel.replicated)
        self.unroll = default_unroll() if unroll is None else unroll
        self.batches_per_step = max(p.repeats for p in self.players)
        self.init = jit_init(self._init, self.parallel)
        self.step = jit_step(self._step, self.parallel)

    def put_batches(self, batches) -> jax.Array:
        return put_batches(batches, self.parallel)

    def _init(self, key: jax.Array) -> TrainState:
        keys = jax.random.split(key, len(self._inits) + 1)
        params, stats = {}, {}
        for k, (name, init) in zip(keys[1:], sorted(self._inits.items())):
            params[name], stats[name] = self.fixed[name] if name in self.fixed else init(k)
        opt = {p.name: p.optimizer.init({n: params[n] for n in p.nets}) for p in self.players}
        return TrainState(step=jnp.zeros((), jnp.int32), key=keys[0], params=params, stats=stats, opt=opt)

    def _update(self, player: Player, carry, batch, key):
        params, stats, opt = carry
        own = {n: params[n] for n in player.nets}

        def loss_fn(own_params):
            return player.loss({**params, **own_params}, stats, batch, key)

        (loss, (stats_updates, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(own)
        updates, new_opt = player.optimizer.update(grads, opt[player.name], own)
        own = optax.apply_updates(own, updates)
        if player.post_update is not None:
            own = player.post_update(own)
        metrics = {f"{player.name}_loss": loss, **metrics}
        return ({**params, **own}, {**stats, **stats_updates}, {**opt, player.name: new_opt}), metrics

    def _step(self, state: TrainState, batches: jax.Array):
        """batches (batches_per_step, B, ...) -> (new state, {metric: scalar, 'finite': bool})."""
        if batches.ndim < 2 or batches.shape[0] != self.batches_per_step:
            raise ValueError(f"step expects batches of shape (batches_per_step={self.batches_per_step}, B, ...), "
                             f"got {batches.shape}")
        key = jax.random.fold_in(state.key, state.step)
        carry, metrics = (state.params, state.stats, state.opt), {}
        for i, player in enumerate(self.players):
            player_key = jax.random.fold_in(key, i)
            if player.repeats == 1:
                carry, m = self._update(player, carry, batches[0], player_key)
            else:
                keys = jax.random.split(player_key, player.repeats)
                carry, m = jax.lax.scan(lambda c, xs, p=player: self._update(p, c, *xs), carry,
                                        (batches[:player.repeats], keys), unroll=self.unroll)
                m = jax.tree.map(jnp.mean, m)
            metrics.update(m)
        params, stats, opt = carry
        metrics["finite"] = all_finite((metrics, params))
        return state.replace(step=state.step + 1, params=params, stats=stats, opt=opt), metrics

    def scoring_params(self, state: TrainState, names: Sequence[str]) -> dict:
        """``{net: (params, stats)}`` to score with: a net's weight average when its player's
        optimiser tracks one (``gadjax.train.ema.track_ema``), else its last iterate (also
        when ``state.opt`` lacks the player, e.g. the per-member states ``GANEnsemble`` scores)."""
        owner = {n: p.name for p in self.players for n in p.nets}
        out = {}
        for name in names:
            params = state.params[name]
            ema = find_ema(state.opt[owner[name]]) if owner.get(name) in state.opt else None
            out[name] = (params if ema is None else ema[name], state.stats[name])
        return out

    def apply(self, state: TrainState, name: str, *args, **kwargs):
        """Run network ``name`` in inference mode with the state's parameters."""
        return self.nets[name](state.params[name], state.stats[name], *args, **kwargs)
