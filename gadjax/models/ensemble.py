"""GAN ensembles for anomaly detection (Han, Chen & Liu, AAAI 2021).

``members`` copies of any ``PlayerDetector``'s model are trained together.  Each step
draws one generator-side member ``i`` and one discriminator-side member ``j`` and
updates that pair with the base model's own step, so every generator meets every
discriminator over training; the anomaly score is the mean of the members' scores.

The members live in one stacked ``TrainState`` (leading axis = member), so parameters
of all members are initialised by one ``vmap`` and scored by one ``vmap`` of the base
detector's pure ``score_state``.  "Discriminator side" = the networks of the base
trainer's discriminator player: the one named ``critic``, ``discriminator`` or
``discriminators`` (or the one given as ``discriminator_player``).
"""
from __future__ import annotations

import copy

import jax
import jax.numpy as jnp

from gadjax.models.base import PlayerDetector
from gadjax.parallel import jit_init, jit_step
from gadjax.train import PlayerTrainer, RunConfig, TrainState

NAME = "ensemble"
DISCRIMINATOR_NAMES = ("critic", "discriminator", "discriminators")


def _take(tree, index):
    return jax.tree.map(lambda a: a[index], tree)


def _put(tree, index, value):
    return jax.tree.map(lambda a, v: a.at[index].set(v), tree, value)


class EnsembleTrainer:
    """``members`` stacked copies of ``base``; one random (generator i, discriminator j)
    pair updated per step.  Follows the ``train_loop`` protocol."""

    def __init__(self, base: PlayerTrainer, members: int, discriminator_player: str | None = None):
        if members < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {members}")
        self.base, self.members = base, members
        names = [p.name for p in base.players]
        disc = discriminator_player or next((n for n in names if n in DISCRIMINATOR_NAMES), None)
        if disc not in names:
            raise ValueError(f"cannot tell the discriminator player among {names}; pass discriminator_player=")
        self.disc_player = disc
        self.disc_nets = set(base.players[names.index(disc)].nets)
        self.parallel, self.image_shape, self.value_range = base.parallel, base.image_shape, base.value_range
        self.batches_per_step = base.batches_per_step
        self.put_batches = base.put_batches
        self.trace_count = 0
        self.init = jit_init(self._init, self.parallel)
        self.step = jit_step(self._step, self.parallel)

    def _init(self, key: jax.Array) -> TrainState:
        k_members, k_run = jax.random.split(key)
        stacked = jax.vmap(self.base._init)(jax.random.split(k_members, self.members))
        return TrainState(step=jnp.zeros((), jnp.int32), key=k_run, params=stacked.params, stats=stacked.stats,
                          opt=stacked.opt)

    def _side(self, is_disc: bool, i, j):
        return j if is_disc else i

    def _step(self, state: TrainState, batches: jax.Array):
        self.trace_count += 1
        key = jax.random.fold_in(state.key, state.step)
        k_pair, k_step = jax.random.split(key)
        i, j = jax.random.randint(k_pair, (2,), 0, self.members)
        pick = {n: self._side(n in self.disc_nets, i, j) for n in state.params}
        pick_opt = {p: self._side(p == self.disc_player, i, j) for p in state.opt}
        pair = TrainState(step=state.step, key=k_step,
                          params={n: _take(v, pick[n]) for n, v in state.params.items()},
                          stats={n: _take(v, pick[n]) for n, v in state.stats.items()},
                          opt={p: _take(v, pick_opt[p]) for p, v in state.opt.items()})
        pair, metrics = self.base._step(pair, batches)
        new = state.replace(
            step=state.step + 1,
            params={n: _put(v, pick[n], pair.params[n]) for n, v in state.params.items()},
            stats={n: _put(v, pick[n], pair.stats[n]) for n, v in state.stats.items()},
            opt={p: _put(v, pick_opt[p], pair.opt[p]) for p, v in state.opt.items()})
        return new, {**metrics, "generator_member": i, "discriminator_member": j}


class GANEnsemble(PlayerDetector):
    """``GANEnsemble(base_detector, members=3).fit(x).score_samples(x_test)``.

    Args:
      base: an unfitted ``PlayerDetector`` (e.g. ``JointEncoder(...)``, EGBAD, GANomaly)
        that defines the model, its hyper-parameters and its score.
      members: ensemble size (the paper uses 3-5 generators and discriminators).
      run: training schedule (default: the base detector's).
    """

    def __init__(self, base: PlayerDetector, members: int = 3, run: RunConfig | None = None, **kwargs):
        if not isinstance(base, PlayerDetector):
            raise TypeError(f"GANEnsemble needs a PlayerDetector base (trained end to end), got {type(base).__name__}")
        super().__init__(base.nets, run or base.run, **kwargs)
        self.base, self.members = copy.copy(base), members

    def build_trainer(self) -> EnsembleTrainer:
        self.base.nets = self.nets
        self.base.trainer = self.base.build_trainer()
        return EnsembleTrainer(self.base.trainer, self.members)

    def score_state(self, state, x) -> dict:
        """Mean score and reconstruction over members, plus ``member_scores`` (B, members)."""
        def member(params, stats, opt):  # opt too: e.g. ALAD scores with EMA weights kept there
            return self.base.score_state(TrainState(state.step, state.key, params, stats, opt), x)

        per_member = jax.vmap(member)(state.params, state.stats, state.opt)
        return {"score": jnp.mean(per_member["score"], axis=0),
                "reconstruction": jnp.mean(per_member["reconstruction"], axis=0),
                "member_scores": jnp.moveaxis(per_member["score"], 0, 1)}
