"""One frozen, validated config dataclass per detector.

A detector's config holds every hyper-parameter it uses (nets, each optimiser's learning
rate, steps, loss and score weights, search settings, EMA) with its paper's defaults.
It is checked when it is constructed -- types, ranges, finite numbers, choices -- so a
bad value fails before any data is read or any file is written, with a message that
names the field.  Fields are declared with ``option(default, ...)``; the checks are
generic, and ``check()`` adds the rules that relate several fields.

Common fields mean the same thing in every detector:

* ``steps`` / ``batch_size`` / ``seed``: training updates, samples per update, the seed
  of the initialisation, the batches, the noise and the data split;
* ``learning_rate``: the rate of EVERY optimiser of the detector, except where a
  ``<part>_learning_rate`` field (None = follow ``learning_rate``) sets one on purpose;
* ``z_dim`` / ``width`` / ``net``: latent size, network width (ngf = ndf, or units),
  net family (None: chosen from the data at ``fit``: rows -> ``mlp``, images -> the
  detector's image nets, windows -> ``lstm``).

Score-only fields (``option(..., score=True)``) may change after training without
retraining; every other field is part of the trained model's identity (see
``training_fields``).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from gadjax.config import CONTINUABLE, Config, ConfigError, json_ready, option  # noqa: F401
from gadjax.nets import NETS


NET_FAMILIES = tuple(sorted(NETS))


@dataclasses.dataclass(frozen=True)
class DetectorConfig(Config):
    """Fields every detector has (see the module docstring for their meaning)."""

    steps: int = option(2000, ge=1, doc="training updates (of the generator, for GANs)")
    batch_size: int = option(64, ge=1)
    seed: int = option(0, ge=0)
    learning_rate: float | None = option(None, gt=0, doc="every optimiser's rate; None: the paper's")
    width: int = option(64, ge=1, doc="ngf = ndf (image nets), hidden units (mlp, lstm)")
    net: str | None = option(None, choices=NET_FAMILIES, doc="net family; None: chosen from the data")
    threshold_percentile: float = option(95.0, ge=0, le=100, score=True,
                                         doc="percentile of normal validation scores used as threshold_")
    score_batch_size: int = option(64, ge=1, score=True)

    #: net families this detector can be built from (the first one is its image default)
    families: ClassVar[tuple[str, ...]] = ("dcgan", "thesis", "mlp")

    def check(self) -> None:
        super().check()
        if self.net is not None and self.net not in self.families:
            raise ConfigError("net", f"net must be one of {', '.join(map(repr, self.families))} for this detector; "
                                     f"got {self.net!r}")

    def default_family(self, sample_shape: tuple[int, ...]) -> str:
        """The net family for samples of this shape when ``net`` is unset."""
        ndim = len(sample_shape)
        for family in self.families:
            if NETS[family].sample_ndim == ndim:
                return family
        kinds = {1: "rows (N, D)", 2: "windows (N, T, F)", 3: "images (N, H, W, C)"}
        takes = sorted({kinds[NETS[f].sample_ndim] for f in self.families})
        raise ConfigError("net", f"this detector takes {' or '.join(takes)}; got samples of shape "
                                 f"{tuple(sample_shape)} ({kinds.get(ndim, f'{ndim}-D samples')})")

    def rate(self, part: str | None, default: float) -> float:
        """The rate of optimiser ``part``: its own field if set, else ``learning_rate``,
        else the paper's ``default``."""
        own = getattr(self, f"{part}_learning_rate", None) if part else None
        return own if own is not None else self.learning_rate if self.learning_rate is not None else default

    def with_learning_rate(self, value: float):
        """Every optimiser at ``value`` (what ``gadjax train --lr`` does)."""
        own = {f: None for f in self.field_names() if f.endswith("_learning_rate")}
        return self.replace(learning_rate=value, **own)


@dataclasses.dataclass(frozen=True)
class GANConfigFields(DetectorConfig):
    """The fields of detectors built on a GAN (AnoGAN, f-AnoGAN, the joint encoder).

    ``learning_rate`` None is the objective's paper rate (WGAN-GP: Adam 1e-4, betas
    (0, 0.9); DCGAN / LSGAN: 2e-4; WGAN: RMSProp 5e-5); ``n_critic`` / ``gp_weight`` None
    likewise.  ``z_dim`` None: 128 for the thesis nets, 100 otherwise.  ``critic_norm``
    None: BatchNorm for the DCGAN / LSGAN objectives, LayerNorm for WGAN(-GP), whose
    gradient penalty needs a per-sample critic.
    """

    gan_loss: str = option("wgan-gp", choices=("dcgan", "lsgan", "wgan", "wgan-gp"))
    n_critic: int | None = option(None, ge=1)
    gp_weight: float | None = option(None, ge=0)
    prior: str = option("normal", choices=("normal", "uniform"))
    z_dim: int | None = option(None, ge=1)
    critic_norm: str | None = option(None, choices=("batch", "layer", "none"))

    families: ClassVar[tuple[str, ...]] = ("dcgan", "thesis", "mlp")

    def check(self) -> None:
        super().check()
        penalty = self.gp_weight if self.gp_weight is not None else (10.0 if self.gan_loss == "wgan-gp" else 0.0)
        if penalty and self.critic_norm == "batch":
            raise ConfigError("critic_norm", "a gradient penalty needs a per-sample critic: critic_norm 'batch' "
                                             "does not work with it; use 'layer' or 'none'")

    def default_family(self, sample_shape: tuple[int, ...]) -> str:
        """The thesis nets (Berg et al.) for 28x28 gray images, DCGAN nets for other
        images, MLPs for rows."""
        if tuple(sample_shape) == (28, 28, 1):
            return "thesis"
        return "dcgan" if len(sample_shape) == 3 else super().default_family(sample_shape)

    def net_fields(self, family: str) -> dict:
        norm = self.critic_norm or ("batch" if self.gan_loss in ("dcgan", "lsgan") else "layer")
        return {"z_dim": self.z_dim or (128 if family == "thesis" else 100), "width": self.width,
                "critic_norm": norm}

    def gan_config(self, spec):
        """The ``gadjax.train.GANConfig`` these fields describe, for nets ``spec``."""
        from gadjax.train import GANConfig
        return GANConfig(spec, self.gan_loss, learning_rate=self.learning_rate, n_critic=self.n_critic,
                         gp_weight=self.gp_weight, prior=self.prior)
