"""LSTM generator, discriminator and encoder for multivariate time-series windows (MAD-GAN).

MAD-GAN (Li et al., ICANN 2019) builds both players from LSTM-RNNs: the generator maps
a latent *sequence* ``Z`` (T, latent) to a window ``X`` (T, F) (paper: depth 3, 100
units, latent 15 per step); the discriminator (depth 1, 100 units) outputs a real/fake
logit at *every* time step, and both the GAN loss and the anomaly score use those
per-step outputs.

gadjax's latent search, samplers and trainers see a generator as ``z (B, z_dim) ->
samples``, so the generator takes the latent sequence flattened, ``z_dim = T * latent``,
and reshapes it; the discriminator returns the gadjax critic pair ``(logit (B,),
features (B, hidden))`` (the window logit is the mean of the per-step logits, the
features the time-averaged last-layer states) and, with ``per_step=True``, the per-step
logits (B, T) that MAD-GAN's loss and DR-score use.

The recurrence is a ``lax.scan`` over time whose body holds only the recurrent matmul:
the input projections of all T steps are one (B*T, in) x (in, 4H) matmul done before the
scan (the "optimised LSTM" layout), so the sequential part is as small as it can be.
``unroll`` (static) unrolls the scan.  Measured on the 2-core CPU VM (jax 0.10.2, the
paper's sizes: T=30, F=6, G 3x100, D 1x100, batch 64, jitted G+D forward and backward):
rolled scan 174 ms/step and 3.8 s compile; unroll=5 183 ms and 7 s; a full unroll
87 ms but 95 s to compile.  The rolled scan (``unroll=1``) is therefore the default.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gadjax.nets.pure import PureNet, init_fn

__all__ = ["LSTM", "LSTMStack", "LSTMGenerator", "LSTMDiscriminator", "LSTMEncoder", "LSTMSpec",
           "build_lstm_nets", "per_step_latent", "window_shape"]


def window_shape(sample_shape: Sequence[int]) -> tuple[int, int]:
    """(T, F) of a window, with a clear error for anything else."""
    shape = tuple(sample_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"the LSTM nets take time-series windows: sample shape (T, F), got {shape}")
    return int(shape[0]), int(shape[1])


class LSTM(nnx.Module):
    """One LSTM layer over a whole sequence: (B, T, in) -> hidden states (B, T, H).

    Gates in the order (input, forget, cell, output); the forget-gate bias starts at
    ``forget_bias`` (1.0, as RGAN/MAD-GAN's ``bias_start``), the recurrent kernel is
    orthogonal.  Zero initial state.
    """

    def __init__(self, in_features: int, hidden: int, *, forget_bias: float = 1.0, unroll: int | bool = 1,
                 rngs: nnx.Rngs):
        self.hidden = hidden
        self.unroll = unroll
        h = hidden

        def bias_init(key, shape, dtype=jnp.float32):
            return jnp.zeros(shape, dtype).at[h:2 * h].set(forget_bias)

        self.inp = nnx.Linear(in_features, 4 * h, bias_init=bias_init, rngs=rngs)
        self.rec = nnx.Linear(h, 4 * h, use_bias=False, kernel_init=nnx.initializers.orthogonal(), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        b, t, _ = x.shape
        h = self.hidden
        gates_x = self.inp(x)                                    # (B, T, 4H): all input projections at once
        w_rec = self.rec.kernel[...]                             # (H, 4H), a plain array inside the scan

        def step(carry, gx):
            c, hid = carry
            g = gx + hid @ w_rec
            i, f, u, o = jnp.split(g, 4, axis=-1)
            c = nnx.sigmoid(f) * c + nnx.sigmoid(i) * jnp.tanh(u)
            hid = nnx.sigmoid(o) * jnp.tanh(c)
            return (c, hid), hid

        zeros = jnp.zeros((b, h), gates_x.dtype)
        _, hs = jax.lax.scan(step, (zeros, zeros), jnp.swapaxes(gates_x, 0, 1), unroll=self.unroll)
        return jnp.swapaxes(hs, 0, 1)                            # (B, T, H)


class LSTMStack(nnx.Module):
    """``depth`` stacked LSTM layers: (B, T, in) -> (B, T, hidden)."""

    def __init__(self, in_features: int, hidden: int, depth: int = 1, *, unroll: int | bool = 1, rngs: nnx.Rngs):
        if depth < 1:
            raise ValueError(f"LSTM depth must be >= 1, got {depth}")
        sizes = [in_features] + [hidden] * depth
        self.layers = nnx.List([LSTM(a, hidden, unroll=unroll, rngs=rngs) for a in sizes[:-1]])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = layer(x)
        return x


class LSTMGenerator(nnx.Module):
    """z (B, T * latent) -> windows (B, T, F).

    ``z`` is the latent sequence (B, T, latent) flattened, so that gadjax's latent
    search and priors (which work on (B, z_dim) codes) apply unchanged.  Output ``tanh``
    (MAD-GAN: data scaled to [-1, 1]) or ``linear``.
    """

    def __init__(self, sample_shape: Sequence[int], latent: int = 15, hidden: int = 100, depth: int = 3, *,
                 output: str = "tanh", unroll: int | bool = 1, rngs: nnx.Rngs):
        self.steps, self.features = window_shape(sample_shape)
        if latent < 1:
            raise ValueError(f"latent (per time step) must be >= 1, got {latent}")
        if output not in ("tanh", "linear"):
            raise ValueError(f"output must be 'tanh' or 'linear', got {output!r}")
        self.latent, self.output = latent, output
        self.z_dim = self.steps * latent
        self.rnn = LSTMStack(latent, hidden, depth, unroll=unroll, rngs=rngs)
        self.out = nnx.Linear(hidden, self.features, rngs=rngs)

    def __call__(self, z: jax.Array, *, train: bool = False) -> jax.Array:
        del train  # no BatchNorm
        if z.ndim != 2 or z.shape[-1] != self.z_dim:
            raise ValueError(f"generator expects z of shape (batch, {self.z_dim}) = (batch, T={self.steps} x "
                             f"latent={self.latent}) flattened, got {z.shape}")
        x = self.out(self.rnn(z.reshape(z.shape[0], self.steps, self.latent)))
        return jnp.tanh(x) if self.output == "tanh" else x


def _check_windows(x: jax.Array, steps: int, features: int) -> None:
    if x.ndim != 3 or tuple(x.shape[1:]) != (steps, features):
        raise ValueError(f"expected windows of shape (batch, {steps}, {features}), got {tuple(x.shape)}")


class LSTMDiscriminator(nnx.Module):
    """windows (B, T, F) -> ``(logit (B,), features (B, hidden))``, or with
    ``per_step=True`` ``(logits (B, T), features)``: one real/fake logit per time step."""

    def __init__(self, sample_shape: Sequence[int], hidden: int = 100, depth: int = 1, *,
                 unroll: int | bool = 1, rngs: nnx.Rngs):
        self.steps, self.features = window_shape(sample_shape)
        self.rnn = LSTMStack(self.features, hidden, depth, unroll=unroll, rngs=rngs)
        self.head = nnx.Linear(hidden, 1, rngs=rngs)
        self.out_features = hidden

    def __call__(self, x: jax.Array, *, train: bool = False, per_step: bool = False):
        del train
        _check_windows(x, self.steps, self.features)
        hs = self.rnn(x)                                          # (B, T, H)
        logits = self.head(hs)[..., 0]                            # (B, T)
        features = jnp.mean(hs, axis=1)
        return (logits if per_step else jnp.mean(logits, axis=1)), features


class LSTMEncoder(nnx.Module):
    """windows (B, T, F) -> z (B, T * latent): a per-step latent code, flattened like the
    generator's input (for f-AnoGAN / joint-encoder training on windows)."""

    def __init__(self, sample_shape: Sequence[int], latent: int = 15, hidden: int = 100, depth: int = 1, *,
                 unroll: int | bool = 1, rngs: nnx.Rngs):
        self.steps, self.features = window_shape(sample_shape)
        self.rnn = LSTMStack(self.features, hidden, depth, unroll=unroll, rngs=rngs)
        self.head = nnx.Linear(hidden, latent, rngs=rngs)
        self.z_dim = self.steps * latent

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        del train
        _check_windows(x, self.steps, self.features)
        return self.head(self.rnn(x)).reshape(x.shape[0], self.z_dim)


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """MAD-GAN architecture (defaults: the paper's).

    Attributes:
      image_shape: (T, F) window shape; set from the training windows at ``fit`` time.
      latent: latent dimension per time step (paper: 15); ``z_dim = T * latent``.
      hidden: LSTM units (paper: 100 for both players).
      generator_depth, discriminator_depth: stacked LSTM layers (paper: 3 and 1).
      output: generator output, ``'tanh'`` (data in [-1, 1], the paper's) or ``'linear'``.
      unroll: ``lax.scan`` unroll of the time loop (1 = rolled; see the module docstring).
    """

    image_shape: tuple[int, int] = (30, 1)
    latent: int = 15
    hidden: int = 100
    generator_depth: int = 3
    discriminator_depth: int = 1
    output: str = "tanh"
    unroll: int | bool = 1

    def __post_init__(self):
        object.__setattr__(self, "image_shape", window_shape(self.image_shape))
        for name in ("latent", "hidden", "generator_depth", "discriminator_depth"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"LSTMSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.output not in ("tanh", "linear"):
            raise ValueError(f"LSTMSpec.output must be 'tanh' or 'linear', got {self.output!r}")

    @property
    def z_dim(self) -> int:
        return self.image_shape[0] * self.latent

    @property
    def output_range(self) -> tuple[float, float] | None:
        return (-1.0, 1.0) if self.output == "tanh" else None


_PARTS: dict[str, Callable] = {
    "generator": lambda s, u, rngs: LSTMGenerator(s.image_shape, s.latent, s.hidden, s.generator_depth,
                                                  output=s.output, unroll=u, rngs=rngs),
    "critic": lambda s, u, rngs: LSTMDiscriminator(s.image_shape, s.hidden, s.discriminator_depth, unroll=u,
                                                   rngs=rngs),
    "encoder": lambda s, u, rngs: LSTMEncoder(s.image_shape, s.latent, s.hidden, s.discriminator_depth, unroll=u,
                                              rngs=rngs),
}


def per_step_latent(sample_shape: Sequence[int], z_dim: int) -> int:
    """Latent size per time step when a flattened ``z_dim`` is given (``NetSpec`` /
    ``GANConfig`` users: ``z_dim = T * latent``)."""
    steps, _ = window_shape(sample_shape)
    if z_dim < steps or z_dim % steps:
        raise ValueError(f"the LSTM generator takes a latent sequence: z_dim must be a multiple of the window "
                         f"length T={steps} (z_dim = T * latent), got {z_dim}")
    return z_dim // steps


def build_lstm_nets(spec: LSTMSpec, parts=("generator", "critic")) -> dict[str, tuple[PureNet, Callable]]:
    """``{part: (PureNet, init(key) -> (params, stats))}`` for 'generator', 'critic', 'encoder'."""
    unknown = set(parts) - set(_PARTS)
    if unknown:
        raise ValueError(f"unknown LSTM net parts {sorted(unknown)}; known: {sorted(_PARTS)}")
    return {part: init_fn(lambda rngs, f=_PARTS[part]: f(spec, spec.unroll, rngs), name=part) for part in parts}
