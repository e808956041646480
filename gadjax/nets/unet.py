"""Skip-GANomaly's U-Net generator (Akcay et al., IJCNN 2019; the pix2pix U-Net of Isola et al.).

``n`` stride-2 4x4 convolutions take the image down to a ``H / 2**n x W / 2**n`` bottleneck
and ``n`` stride-2 4x4 transposed convolutions bring it back; the output of every encoder
level except the bottleneck is concatenated to the decoder input of the same resolution
(skip connections), so fine detail need not pass through the bottleneck.

Per level (pix2pix): encoder = LeakyReLU(0.2) -> conv -> BatchNorm (no activation before
the first conv, no norm on the first and the bottleneck conv); decoder = ReLU -> transposed
conv -> BatchNorm, the last one -> tanh.  Widths ``ngf * min(2**i, 8)``.

``n`` defaults to ``unet_depth``: the reference code's ``int(log2(isize))`` levels (a 1x1
bottleneck; five for the paper's 32x32 images, whose encoder has "five down-sampling
blocks"), generalised to any size as the most stride-2 levels that halve both sides exactly:
32x32 -> 5 (1x1), 64x64 -> 6 (1x1), 64x48 -> 4 (4x3), 28x28 -> 2 (7x7).  28x28 MNIST only
allows two: the reference resizes MNIST to 32x32 (its ``isize`` 32); ``gadjax.data.pad_to(x,
32)`` gives its depth.  Any ``n >= 2`` with ``2**n`` dividing both sides is accepted.
"""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from gadjax.nets.dcgan import _apply_norm, _norm


def unet_depth(height: int, width: int) -> int:
    """Default U-Net depth: as many stride-2 levels as halve both sides exactly.

    For square power-of-two images this is the reference's ``int(log2(isize))`` (a 1x1
    bottleneck: 5 levels for 32x32, 6 for 64x64); 28x28 -> 2 (7x7), 64x48 -> 4 (4x3).

    Raises:
      ValueError: fewer than two levels fit (a side that is not a multiple of 4).
    """
    for side, label in ((height, "height"), (width, "width")):
        if not isinstance(side, int) or side < 4 or side % 4:
            raise ValueError(f"image {label} {side} is not supported: the U-Net needs sides that are multiples "
                             f"of 4 (at least two stride-2 levels); resize or pad the images")
    n = 2
    while height % 2 ** (n + 1) == 0 and width % 2 ** (n + 1) == 0:
        n += 1
    return n


def unet_widths(ngf: int, n_stages: int) -> list[int]:
    """Encoder widths per level, ``ngf * min(2**i, 8)`` as in pix2pix."""
    return [ngf * min(2 ** i, 8) for i in range(n_stages)]


class UNetGenerator(nnx.Module):
    """images (B, H, W, C) in [-1, 1] -> reconstructions (B, H, W, C) in [-1, 1] (tanh)."""

    def __init__(self, image_shape: Sequence[int], ngf: int = 64, *, norm: str = "batch",
                 n_stages: int | None = None, rngs: nnx.Rngs):
        height, width, channels = image_shape
        n = unet_depth(height, width) if n_stages is None else n_stages
        if n < 2 or height % 2 ** n or width % 2 ** n:
            raise ValueError(f"a U-Net with n_stages={n} needs n_stages >= 2 and image sides divisible by "
                             f"2**n_stages={2 ** n}; got {height}x{width}")
        if ngf < 1:
            raise ValueError(f"ngf must be >= 1, got {ngf}")
        self.image_shape = tuple(image_shape)
        widths = unet_widths(ngf, n)
        # A bias right before a normalisation is cancelled by its mean subtraction.
        bias = norm == "none"
        conv = lambda a, b, use_bias: nnx.Conv(a, b, (4, 4), strides=(2, 2), padding="SAME",  # noqa: E731
                                                use_bias=use_bias, rngs=rngs)
        up = lambda a, b, use_bias: nnx.ConvTranspose(a, b, (4, 4), strides=(2, 2), padding="SAME",  # noqa: E731
                                                      use_bias=use_bias, rngs=rngs)
        ins = [channels] + widths[:-1]
        inner = lambda i: 0 < i < n - 1  # noqa: E731  # levels with a normalised encoder conv
        self.downs = nnx.List([conv(a, b, bias or not inner(i)) for i, (a, b) in enumerate(zip(ins, widths))])
        self.down_norms = nnx.List([_norm(norm, w, rngs) if inner(i) else None for i, w in enumerate(widths)])
        # Decoder level i maps to level i's input resolution; the bottleneck level sees only
        # its own output, the others the concatenation [skip_i, decoder output] (2 * widths[i]).
        up_ins = [2 * w for w in widths[:-1]] + [widths[-1]]
        self.ups = nnx.List([up(a, b, bias or i == 0) for i, (a, b) in enumerate(zip(up_ins, ins))])
        self.up_norms = nnx.List([_norm(norm, b, rngs) if i > 0 else None for i, b in enumerate(ins)])

    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"expected images of shape (batch, {', '.join(map(str, self.image_shape))}), "
                             f"got {tuple(x.shape)}")
        skips, h = [], x
        for i, (conv, norm) in enumerate(zip(self.downs, self.down_norms)):
            h = _apply_norm(norm, conv(h if i == 0 else nnx.leaky_relu(h, 0.2)), train)
            skips.append(h)
        h = skips.pop()  # the bottleneck: no skip of its own
        for i in reversed(range(len(self.ups))):
            h = _apply_norm(self.up_norms[i], self.ups[i](nnx.relu(h)), train)
            if i > 0:
                h = jnp.concatenate([skips[i - 1], h], axis=-1)
        return jnp.tanh(h)


__all__ = ["UNetGenerator", "unet_depth", "unet_widths"]
