"""Optimisers whose learning rate lives in their state, so it can be read back.

Every gadjax optimiser is built through ``with_learning_rate``: optax's
``inject_hyperparams`` keeps the learning rate in the optimiser state, which makes the
rate a run actually trains with observable (``learning_rates``; ``gadjax train
--dry-run`` prints it) and checkpointed with everything else.  The update itself is
optax's, unchanged.
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
import optax


def with_learning_rate(factory: Callable[..., optax.GradientTransformation], learning_rate: float,
                       **kwargs) -> optax.GradientTransformation:
    """``factory(learning_rate, **kwargs)`` with the learning rate held in its state."""
    return optax.inject_hyperparams(lambda learning_rate: factory(learning_rate, **kwargs))(
        learning_rate=learning_rate)


def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
    return with_learning_rate(optax.adam, learning_rate, b1=b1, b2=b2)


def sgd(learning_rate: float) -> optax.GradientTransformation:
    return with_learning_rate(optax.sgd, learning_rate)


def rmsprop(learning_rate: float, decay: float = 0.99, eps: float = 1e-8) -> optax.GradientTransformation:
    return with_learning_rate(optax.rmsprop, learning_rate, decay=decay, eps=eps)


def _is_injected(s) -> bool:
    return hasattr(s, "hyperparams") and isinstance(getattr(s, "hyperparams"), dict)


def learning_rate_of(opt_state) -> float | None:
    """The learning rate held in one optimiser state (None if it holds none)."""
    for s in jax.tree.leaves(opt_state, is_leaf=_is_injected):
        if _is_injected(s) and "learning_rate" in s.hyperparams:
            rates = np.unique(np.asarray(jax.device_get(s.hyperparams["learning_rate"])))
            if rates.size != 1:  # stacked models (an ensemble) share one setting
                raise ValueError(f"optimiser states hold several learning rates: {rates}")
            return float(str(np.float32(rates[0])))  # 0.0002, not its float32 expansion
    return None


def learning_rates(opt_states: dict) -> dict[str, float]:
    """``{player: learning rate}`` of a ``TrainState.opt`` dict (players without one are left out)."""
    rates = {name: learning_rate_of(s) for name, s in opt_states.items()}
    return {k: v for k, v in rates.items() if v is not None}
