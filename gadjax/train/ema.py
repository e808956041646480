"""Exponential moving average of the weights, kept in a player's optimiser state.

EGBAD and ALAD score with an EMA (decay 0.999) of the trained weights, as their authors'
``tf.train.ExponentialMovingAverage``.  Chaining ``track_ema`` after a player's optimiser
keeps the average inside ``TrainState.opt``, so it is checkpointed, donated and sharded
with everything else, and no training loop needs to know about it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class EmaState(NamedTuple):
    count: jax.Array
    ema: Any


def track_ema(decay: float) -> optax.GradientTransformation:
    """Chain after an optimiser: an EMA of the parameters *after* each update; the updates
    pass through unchanged.

    The decay at update t is ``min(decay, (1 + t) / (10 + t))`` (TensorFlow's
    ``ExponentialMovingAverage`` with ``num_updates``): the average starts at the initial
    weights but forgets them within a few updates, so a short run averages its recent
    iterates instead of its random start, and runs past ~10k updates use ``decay`` itself.
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")

    def init(params):
        return EmaState(jnp.zeros((), jnp.int32), jax.tree.map(jnp.copy, params))

    def update(updates, state, params):
        t = state.count.astype(jnp.float32)
        d = jnp.minimum(decay, (1.0 + t) / (10.0 + t))
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: (d * e + (1.0 - d) * p).astype(e.dtype), state.ema, new)
        return updates, EmaState(state.count + 1, ema)

    return optax.GradientTransformation(init, update)


def find_ema(opt_state) -> Any | None:
    """The average held by ``track_ema`` inside ``opt_state``, or None if it holds none."""
    for s in jax.tree.leaves(opt_state, is_leaf=lambda s: isinstance(s, EmaState)):
        if isinstance(s, EmaState):
            return s.ema
    return None


def ema_params(opt_state):
    """The averaged parameters held by ``track_ema`` inside ``opt_state`` (raises if none)."""
    ema = find_ema(opt_state)
    if ema is None:
        raise ValueError("this optimiser state holds no track_ema average")
    return ema


def with_ema(optimizer: optax.GradientTransformation, decay: float | None) -> optax.GradientTransformation:
    """``optimizer`` followed by ``track_ema(decay)``; unchanged when ``decay`` is None."""
    return optimizer if decay is None else optax.chain(optimizer, track_ema(decay))
