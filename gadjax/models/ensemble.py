"""GAN ensembles for anomaly detection (Han, Chen & Liu, AAAI 2021).

    det = GANEnsemble(base="joint_encoder", members=3, steps=2000).fit(x_normal, x_val)
    det = GANEnsemble(EnsembleConfig("dedgan", 5, DEDGANConfig(w_rec=30)))
    det.score_details(x)   # {'score', 'reconstruction', 'member_scores' (N, members)}

``members`` copies of any end-to-end (``PlayerDetector``) model are trained together.
Each step draws one generator-side member ``i`` and one discriminator-side member ``j``
and updates that pair with the base model's own step, so every generator meets every
discriminator over training; the anomaly score is the mean of the members' scores.

The members live in one stacked ``TrainState`` (leading axis = member), so parameters
of all members are initialised by one ``vmap`` and scored by one ``vmap`` of the base
detector's pure ``score_fn`` (``ensemble_scores``).  "Discriminator side" = the networks
of the base trainer's discriminator player: the one named ``critic``, ``discriminator``
or ``discriminators`` (or the one given as ``discriminator_player``).
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gadjax.models.base import Detector, PlayerDetector
from gadjax.models.config import Config, ConfigError, DetectorConfig, json_ready, option
from gadjax.parallel import jit_init, jit_step
from gadjax.train import PlayerTrainer, TrainState

NAME = "ensemble"
DISCRIMINATOR_NAMES = ("critic", "discriminator", "discriminators")


def _detectors() -> dict:
    # Read at call time: gadjax.models builds the registry after importing this module.
    from gadjax.models import DETECTORS
    return DETECTORS


def ensemble_bases() -> tuple[str, ...]:
    """Registered detectors an ensemble can be built from: those trained end to end by
    one ``PlayerTrainer`` (not AnoGAN / f-AnoGAN, whose GAN and scorer are separate) and
    scored by the plain ``score_fn(nets, x, config)`` that ``ensemble_scores`` vmaps (not
    MAD-GAN, whose scorer also takes a random key per batch)."""
    return tuple(sorted(n for n, c in _detectors().items()
                        if issubclass(c, PlayerDetector) and not issubclass(c, GANEnsemble)
                        and c._score_batch is Detector._score_batch))


@dataclasses.dataclass(frozen=True)
class EnsembleConfig(Config):
    """An ensemble of ``members`` copies of detector ``base`` configured by ``base_config``.

    Attributes:
      base: a registered end-to-end detector (``ensemble_bases()``); Han et al. build
        their ensembles over GAN-based detectors in general; the joint encoder is this
        library's default member.
      members: ensemble size (>= 2; the paper uses 3 to 5 generators and discriminators).
      base_config: the base detector's config; None (its defaults) or a dict of its
        fields is converted to it.

    Every other attribute is read from ``base_config`` (``steps``, ``learning_rate``,
    ``net``, ``rate``, ``default_family``, ... and the base's own fields), so the
    ensemble is trained, scored and thresholded with its base's settings; ``replace``
    routes names that are not the three fields above to ``base_config``.
    """

    base: str = option("joint_encoder", doc="member model (a registered end-to-end detector)")
    members: int = option(3, ge=2, doc="ensemble size")
    base_config: DetectorConfig | None = option(None, doc="the member model's config; None: its defaults")

    def __post_init__(self):
        bases = ensemble_bases()
        if not isinstance(self.base, str) or self.base not in bases:
            raise ConfigError("base", f"base must be one of {', '.join(map(repr, bases))}; got {self.base!r}")
        cls = _detectors()[self.base].config_class
        value = self.base_config
        if value is None:
            value = cls()
        elif isinstance(value, dict):
            value = cls.from_dict(value)
        # The exact class: a subclass's config (CBiGAN's for EGBAD, say) has fields the base ignores.
        if type(value) is not cls:
            raise ConfigError("base_config", f"base_config must be a {cls.__name__} (the config of base "
                                             f"{self.base!r}), got {type(value).__name__}")
        object.__setattr__(self, "base_config", value)
        super().__post_init__()

    def __getattr__(self, name: str):
        # Reached only when normal lookup fails: the base config's fields and methods.
        base_config = self.__dict__.get("base_config")
        if name.startswith("_") or base_config is None:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        try:
            return getattr(base_config, name)
        except AttributeError:
            raise AttributeError(f"{type(self).__name__} (base {self.base!r}) has no attribute {name!r}") from None

    def replace(self, **changes):
        """A copy with ``changes``: ``base`` / ``members`` / ``base_config`` here, every
        other name to ``base_config.replace``.  A new ``base`` without a ``base_config``
        starts from that base's defaults."""
        own = {k: v for k, v in changes.items() if k in self.field_names()}
        rest = {k: v for k, v in changes.items() if k not in own}
        if own.get("base", self.base) != self.base and "base_config" not in own:
            own["base_config"] = None
        cfg = dataclasses.replace(self, **own) if own else self
        if not rest:
            return cfg
        theirs = cfg.base_config.field_names()
        unknown = sorted(set(rest) - set(theirs))
        if unknown:
            raise ConfigError(unknown[0], f"{type(self).__name__} has no field {', '.join(map(repr, unknown))}; "
                                          f"its fields: {', '.join(self.field_names())}; those of its base "
                                          f"{cfg.base!r} ({type(cfg.base_config).__name__}): {', '.join(theirs)}")
        return dataclasses.replace(cfg, base_config=cfg.base_config.replace(**rest))

    @classmethod
    def from_dict(cls, values: dict):
        own = {k: v for k, v in values.items() if k in cls.field_names()}
        return cls(**own).replace(**{k: v for k, v in values.items() if k not in own})

    def with_learning_rate(self, value: float):
        """Every optimiser of every member at ``value`` (what ``gadjax train --lr`` does)."""
        return dataclasses.replace(self, base_config=self.base_config.with_learning_rate(value))

    def training_fields(self) -> tuple[str, ...]:
        """``base``, ``members`` and the base config's training fields (which this config
        reads through to ``base_config``)."""
        return ("base", "members") + self.base_config.training_fields()


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


def _take(tree, index):
    return jax.tree.map(lambda a: a[index], tree)


def _put(tree, index, value):
    return jax.tree.map(lambda a, v: a.at[index].set(v), tree, value)


def ensemble_scores(nets: dict, x: jax.Array, config: EnsembleConfig) -> dict:
    """Ensemble scores of a batch (the gadjax scorer convention, see ``gadjax.models.base``).

    Args:
      nets: the base detector's scoring networks, each bound to the stacked weights of
        all members (leading axis = member), e.g. ``GANEnsemble.scoring_nets()``.
      x: (B, ...) samples in the model's range.
      config: the ``EnsembleConfig``; the base's ``score_fn`` scores each member with
        ``config.base_config``.
    Returns:
      {'score': (B,) mean over members, 'member_scores': (B, members) and, where the
      base reconstructs, 'reconstruction': the members' mean reconstruction}.
    """
    base_fn = _detectors()[config.base].score_fn
    per_member = jax.vmap(lambda member: base_fn(member, x, config.base_config))(nets)
    out = {"score": jnp.mean(per_member["score"], axis=0), "member_scores": jnp.moveaxis(per_member["score"], 0, 1)}
    if "reconstruction" in per_member:
        out["reconstruction"] = jnp.mean(per_member["reconstruction"], axis=0)
    return out


class GANEnsemble(PlayerDetector):
    """``GANEnsemble(base="joint_encoder", members=3, steps=2000).fit(x).score_samples(x_test)``.

    Settings: ``EnsembleConfig`` (pass one, or its fields and the base's as keywords:
    ``GANEnsemble(base="dedgan", members=2, w_rec=30)``).  ``base`` is the (unfitted)
    base detector that defines the members' nets, trainer and score.  Other arguments as
    ``Detector``.

    Scoring goes through the inherited ``_score_batch``: ``score_batch`` jits the
    module-level ``ensemble_scores`` once per config (both static and hashable) on
    ``scoring_nets()``, the base's networks bound to the weights of all members.
    """

    name = NAME
    config_class = EnsembleConfig
    score_fn = staticmethod(ensemble_scores)

    @property
    def base(self) -> PlayerDetector:
        """The base detector built from ``config.base_config`` (unfitted; it holds the
        per-member trainer the ensemble stacks)."""
        cfg = self.config
        base = self.__dict__.get("_base")
        if base is None or base.name != cfg.base:
            base = _detectors()[cfg.base](cfg.base_config, parallel=self.parallel, progress=False)
            if self.image_shape_ is not None:
                base.build(self.image_shape_)
            self._base = base
        base.config = cfg.base_config  # a config set on the ensemble (a score-only change) reaches it
        return base

    def _net_fields(self, family: str) -> dict:
        return self.base._net_fields(family)

    def build(self, sample_shape) -> None:
        super().build(sample_shape)
        self.base.build(self.image_shape_)

    def build_trainer(self) -> EnsembleTrainer:
        # The base's own trainer: its nets bind the members' weights in ``nets_of``.
        return EnsembleTrainer(self.base.trainer("model"), self.config.members)

    def fitted_extra(self) -> dict:
        # 2: joint-encoder members know latent_norm (``joint_encoder.EXTRA_FORMAT``).
        return {"format": 2}

    def load_extra(self, extra: dict) -> None:
        if extra.get("format", 1) < 2 and self.config.base == "joint_encoder":
            # Saved before latent_norm existed: the members' generators had no latent
            # normalisation and drew z from the plain prior; rebuild the nets to match.
            self.config = self.config.replace(latent_norm=False, latent_scale=1.0, standardise=False)
            self.__dict__.pop("_base", None)
            self.trainers_ = {}
            self.spec = self.net_spec(self.image_shape_)

    def nets_of(self, state) -> dict:
        """The base's scoring networks bound to the stacked weights of all members (the
        base's ``nets_of`` only selects and binds, so it works on the stacked state)."""
        return self.base.nets_of(state)

    def fit_record(self, x) -> dict:
        # The base's training fields nested, as its config is: a score-only change of the
        # base (its lam, say) may reuse the run directory.
        record = super().fit_record(x)
        base = self.config.base_config
        record["config"]["base_config"] = json_ready({k: v for k, v in base.to_dict().items()
                                                      if k in base.training_fields()})
        return record
