"""Networks: Flax NNX modules, used through ``PureNet`` (split once, merge inside jit).

``NETS`` maps a family name to a builder; ``NetSpec`` says which family, image shape,
latent size and width a model uses.  ``build_nets(spec)`` returns the three pure nets
(generator, critic, encoder) and their pure initialisers.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

from gadjax.nets.dcgan import NORMS, ConvTrunk, Critic, Encoder, Generator, pixel_norm, spatial_plan
from gadjax.nets.lstm import LSTMDiscriminator, LSTMEncoder, LSTMGenerator, LSTMSpec, per_step_latent
from gadjax.nets.mlp import MLPCritic, MLPEncoder, MLPGenerator
from gadjax.nets.pure import PureNet, as_callable_pytree, bind, count_params, features_of, init_fn
from gadjax.nets.thesis import ThesisGenerator, thesis_critic, thesis_encoder


#: families whose generator takes ``NetSpec.latent_norm``
LATENT_NORM_FAMILIES = ("dcgan", "thesis")


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """Architecture of one GAN: ``family`` in ``NETS``; ``width`` is ngf = ndf.

    ``image_shape`` is the shape of one sample: (H, W, C) for the image families,
    (D,) for ``mlp`` (tabular rows).  ``critic_norm`` must not be 'batch' with a
    gradient penalty (it couples samples).  ``latent_norm`` pixel-normalises z at the
    generator's input (``gadjax.nets.dcgan.pixel_norm``; the ``dcgan`` and ``thesis``
    generators only).
    """

    family: str = "dcgan"
    image_shape: tuple[int, int, int] = (28, 28, 1)
    z_dim: int = 100
    width: int = 64
    critic_norm: str = "layer"
    generator_norm: str = "batch"
    encoder_output: str = "linear"
    latent_norm: bool = False

    def __post_init__(self):
        if self.family not in NETS:
            raise ValueError(f"unknown net family {self.family!r}; known: {sorted(NETS)}")
        ndim = NETS[self.family].sample_ndim
        if len(self.image_shape) != ndim:
            layout = {3: "(H, W, C)", 2: "(T, F)", 1: "(D,)"}[ndim]
            raise ValueError(f"net family {self.family!r} takes samples of shape {layout}, got {self.image_shape}")
        for norm in (self.critic_norm, self.generator_norm):
            if norm not in NORMS:
                raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")
        if self.latent_norm and self.family not in LATENT_NORM_FAMILIES:
            raise ValueError(f"latent_norm is available for the {' and '.join(LATENT_NORM_FAMILIES)} generators, "
                             f"not {self.family!r}")
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))

    @property
    def output_range(self) -> tuple[float, float] | None:
        """Range of generated samples (data must be scaled to it); None = unbounded."""
        return NETS[self.family].output_range


class Family(NamedTuple):
    generator: Callable
    critic: Callable
    encoder: Callable
    output_range: tuple[float, float] | None
    sample_ndim: int = 3


NETS: dict[str, Family] = {
    "dcgan": Family(
        generator=lambda s, rngs: Generator(s.image_shape, s.z_dim, s.width, norm=s.generator_norm,
                                            latent_norm=s.latent_norm, rngs=rngs),
        critic=lambda s, rngs: Critic(s.image_shape, s.width, norm=s.critic_norm, rngs=rngs),
        encoder=lambda s, rngs: Encoder(s.image_shape, s.z_dim, s.width, norm=s.critic_norm,
                                        output=s.encoder_output, rngs=rngs),
        output_range=(-1.0, 1.0)),
    "thesis": Family(
        generator=lambda s, rngs: ThesisGenerator(s.image_shape, s.z_dim, s.width, latent_norm=s.latent_norm,
                                                   rngs=rngs),
        critic=lambda s, rngs: thesis_critic(s.image_shape, s.width, rngs=rngs),
        encoder=lambda s, rngs: thesis_encoder(s.image_shape, s.z_dim, s.width, rngs=rngs),
        output_range=(0.0, 1.0)),
    "mlp": Family(
        generator=lambda s, rngs: MLPGenerator(s.image_shape, s.z_dim, s.width, rngs=rngs),
        critic=lambda s, rngs: MLPCritic(s.image_shape, s.width, rngs=rngs),
        encoder=lambda s, rngs: MLPEncoder(s.image_shape, s.z_dim, s.width, rngs=rngs),
        output_range=None, sample_ndim=1),
    # Multivariate time-series windows (T, F); width = LSTM units; linear output so test
    # windows may leave the training range, as with "mlp".
    "lstm": Family(
        generator=lambda s, rngs: LSTMGenerator(s.image_shape, per_step_latent(s.image_shape, s.z_dim), s.width, 3,
                                                output="linear", rngs=rngs),
        critic=lambda s, rngs: LSTMDiscriminator(s.image_shape, s.width, 1, rngs=rngs),
        encoder=lambda s, rngs: LSTMEncoder(s.image_shape, per_step_latent(s.image_shape, s.z_dim), s.width, 1,
                                            rngs=rngs),
        output_range=None, sample_ndim=2),
}


def build_nets(spec: NetSpec, parts=("generator", "critic", "encoder")) -> dict[str, tuple[PureNet, Callable]]:
    """``{part: (PureNet, init(key) -> (params, stats))}`` for the requested parts."""
    family = NETS[spec.family]
    return {part: init_fn(lambda rngs, f=getattr(family, part): f(spec, rngs), name=part) for part in parts}


__all__ = ["NETS", "NetSpec", "PureNet", "as_callable_pytree", "bind", "build_nets", "features_of", "init_fn", "count_params", "spatial_plan",
           "Generator", "Critic", "Encoder", "ConvTrunk", "MLPGenerator", "MLPCritic", "MLPEncoder",
           "LSTMGenerator", "LSTMDiscriminator", "LSTMEncoder", "LSTMSpec", "ThesisGenerator", "thesis_critic", "thesis_encoder",
           "LATENT_NORM_FAMILIES", "pixel_norm"]
