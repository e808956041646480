"""Convolution layers with a CPU-friendly form: drop-in ``nnx.Conv`` / ``nnx.ConvTranspose``.

``Conv`` and ``ConvTranspose`` subclass Flax's layers: same constructor, same parameters
(``kernel`` (kh, kw, in, out) and ``bias`` (out,)), same function.  Only how the function
is computed differs, chosen once when the layer is built (``form``):

``"stock"``
    Flax's own ``lax.conv_general_dilated`` / ``lax.conv_transpose``.
``"fast"``
    ``Conv``: im2col -- the kh*kw strided slices of the padded input, concatenated on the
    channel axis, and one matrix multiply with ``kernel.reshape(kh*kw*in, out)``.
    ``ConvTranspose``: sub-pixel -- a stride-s transposed conv is s*s stride-1 convs of the
    undilated input, one per output phase; their kernels are gathered from ``kernel`` into
    one (D, D, in, s*s*out) kernel, applied as an im2col stride-1 conv, then depth-to-space.

Why: under autodiff (and the WGAN-GP gradient penalty's double backward) XLA:CPU turns the
stock forms' gradients into convolutions with window (rhs) dilation or input dilation and,
where a 5x5 kernel is larger than a 4x4 / 7x7 input, into reversed dilated convs -- 76 % of
the thesis WGAN-GP step's op time at width 16.  The fast forms differentiate into matmuls,
slices, pads and gathers only (bench/README.md has the timings).  Layers or calls the fast
forms do not cover (masks, dilation, groups, 'CIRCULAR' padding, sharding arguments, ...)
fall back to the stock form.

Under :func:`input_grads_only` (the AnoGAN latent search, which differentiates w.r.t. z
only) a ``"fast"`` layer takes the stock path where XLA:CPU's conv and its input gradient are
plain fast convs (:func:`stock_input_grads_fast`); the weight gradients are what is slow there.
Convs to a map smaller than the kernel keep XLA's forward with a per-phase input gradient
(:func:`phase_grad_fast`), and transposed convs run as per-phase stride-1 convs except to image
layers XLA does fast (:func:`phase_transpose_fast`); both forms live in ``gadjax.nets.conv_phase``.

The default is ``"fast"`` on CPU (where it was measured faster) and ``"stock"`` elsewhere
(cuDNN convs are fast and their gradients are not rewritten this way).  Override, in this
order of precedence: the ``form=`` argument, the :func:`conv_form` context manager, the
``GADJAX_CONV_FORM`` environment variable (``stock`` / ``fast`` / ``auto``).
"""
from __future__ import annotations

import contextlib
import os

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from gadjax.nets.conv_phase import _phase_taps, _transpose_pads, phase_conv_transpose, phase_grad_conv  # noqa: F401

FORMS = ("stock", "fast")
ENV_VAR = "GADJAX_CONV_FORM"
_override: list[str] = []
_input_grads_only: list[bool] = []


def default_form() -> str:
    """``"fast"`` on the CPU backend, ``"stock"`` on accelerators."""
    return "fast" if jax.default_backend() == "cpu" else "stock"


def resolve_form(form: str | None = None) -> str:
    """The form a layer built now gets: argument > :func:`conv_form` > ``$GADJAX_CONV_FORM`` > backend."""
    chosen = form or (_override[-1] if _override else None) or os.environ.get(ENV_VAR) or "auto"
    if chosen == "auto":
        return default_form()
    if chosen not in FORMS:
        raise ValueError(f"unknown conv form {chosen!r}; choose one of {FORMS} or 'auto'")
    return chosen


@contextlib.contextmanager
def conv_form(form: str):
    """Build every ``Conv`` / ``ConvTranspose`` inside the block (and so every net, trainer,
    ...) with ``form``; the form is fixed at construction, so jitted functions of nets built
    here keep it after the block."""
    resolve_form(form)  # validate
    _override.append(form)
    try:
        yield
    finally:
        _override.pop()


@contextlib.contextmanager
def input_grads_only():
    """Trace the calls inside for a use that differentiates w.r.t. the inputs only (the AnoGAN
    latent search: gradients w.r.t. z, never w.r.t. weights).  There a ``"fast"`` layer runs
    in the stock form where XLA:CPU's own conv and its input gradient are both plain convs
    (:func:`stock_input_grads_fast`): the weight gradients that made the stock form slow are
    not taken.  Same function and gradients either way; only the speed differs."""
    _input_grads_only.append(True)
    try:
        yield
    finally:
        _input_grads_only.pop()


def stock_input_grads_fast(small_side: tuple[int, ...], kernel_size: tuple[int, ...], transposed: bool) -> bool:
    """Whether XLA:CPU runs a stock layer and its input gradient fast: a conv's input gradient (and
    a transposed conv's forward) is an input-dilated conv from the smaller map ``small_side`` (a
    conv's output, a transposed conv's input), slow when the kernel is larger than that map (conv:
    not larger than it).  Measured (bench/README.md, "AnoGAN search: conv forms for z-gradients"),
    batch 64, ms of forward + input gradient, stock / fast: thesis width 64, 5x5/2 -- critic
    28->14 2.0 / 1.6, 14->7 22 / 38, 7->4 499 / 20; generator 4->8 571 / 25, 7->14 22 / 21,
    14->28 (1 channel) 1.8 / 30; dcgan width 64, 4x4/2 -- critic 16->8 76 / 82, 8->4 81 / 58;
    generator 4->8 58 / 117, 8->16 57 / 135."""
    side, k = min(small_side), max(kernel_size)
    return side >= k if transposed else side > k


def phase_transpose_fast(out_features: int) -> bool:
    """Whether, for input gradients only, a transposed conv runs faster as :func:`phase_conv_transpose`
    even where XLA:CPU's own one is fast (:func:`stock_input_grads_fast`): yes unless it makes an
    image of <= 4 channels (its per-phase convs are then matmuls <= 4 columns wide).  Measured,
    batch 64, ms of forward + input gradient, stock / per-phase (median of 21 paired): thesis width
    64 generator 7->14 26.0 / 23.1, 14->28 (1 channel) 1.9 / 9.0; dcgan 4x4/2 4->8 (256->128)
    29.6 / 22.7, 8->16 (128->64) 25.8 / 23.7."""
    return out_features > 4


def phase_grad_fast(out_side: tuple[int, ...], kernel_size: tuple[int, ...]) -> bool:
    """Whether, for input gradients only, a conv to a map smaller than the kernel runs faster as
    :func:`phase_grad_conv` (XLA's conv forward, per-phase input gradient) than as im2col.
    Measured (bench/README.md, "AnoGAN search"), batch 64, ms of forward + input gradient, im2col
    / phase_grad: thesis critic 7->4 (5x5/2, width 64) 34.2 / 32.4; dcgan 8->4 (4x4/2, not smaller
    than the kernel) 18.8 / 23.6."""
    return min(out_side) < max(kernel_size)


def _pairs(value, n: int) -> tuple[int, ...]:
    if value is None:
        return (1,) * n
    return (value,) * n if isinstance(value, int) else tuple(value)


def _explicit_pads(padding, n: int) -> tuple[tuple[int, int], ...] | str | None:
    """'SAME' / 'VALID' stay strings; explicit ((lo, hi), ...) or int paddings become tuples;
    anything else (CIRCULAR, CAUSAL, REFLECT) -> None (not covered)."""
    if isinstance(padding, str):
        return padding.upper() if padding.upper() in ("SAME", "VALID") else None
    if isinstance(padding, int):
        return ((padding, padding),) * n
    try:
        pads = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
    except TypeError:
        return None
    return pads if len(pads) == n and all(len(p) == 2 for p in pads) else None


def im2col_conv(x: jax.Array, kernel: jax.Array, strides=(1, 1), pads=((0, 0), (0, 0)), precision=None):
    """NHWC ``x`` correlated with an HWIO ``kernel`` (= ``lax.conv_general_dilated`` with explicit
    ``pads``) as one matmul of the (B, OH, OW, kh*kw*in) patches with ``kernel.reshape(-1, out)``."""
    kh, kw, cin, cout = kernel.shape
    sh, sw = strides
    x = lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (*pads[0], 0), (*pads[1], 0), (0, 0, 0)))
    b, h, w, _ = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    if kh == kw == 1 and sh == sw == 1:
        patches = x
    else:
        cols = [lax.slice(x, (0, i, j, 0), (b, i + sh * (oh - 1) + 1, j + sw * (ow - 1) + 1, cin), (1, sh, sw, 1))
                for i in range(kh) for j in range(kw)]
        patches = jnp.concatenate(cols, axis=-1)                      # (B, OH, OW, kh*kw*cin), (i, j, c) order
    return lax.dot_general(patches, kernel.reshape(kh * kw * cin, cout), (((3,), (0,)), ((), ())),
                           precision=precision)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, strides, padding, precision=None):
    """= ``lax.conv_transpose(x, kernel, strides, padding)`` (NHWC, HWIO, ``transpose_kernel=False``)
    as one stride-1 conv with s_h*s_w*out channels, then depth-to-space."""
    kh, kw, cin, cout = kernel.shape
    (sh, sw), (_, h, w, _) = strides, x.shape
    if isinstance(padding, str):
        pads = (_transpose_pads(kh, sh, padding), _transpose_pads(kw, sw, padding))
    else:
        pads = padding
    taps_h, pad_h, n_h, out_h = _phase_taps(h, kh, sh, pads[0])
    taps_w, pad_w, n_w, out_w = _phase_taps(w, kw, sw, pads[1])
    padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))           # index k = a zero tap
    sub = padded[taps_h[:, None, :, None], taps_w[None, :, None, :]]      # (Dh, Dw, sh, sw, in, out)
    sub = sub.transpose(0, 1, 4, 2, 3, 5).reshape(taps_h.shape[0], taps_w.shape[0], cin, sh * sw * cout)
    y = im2col_conv(x, sub, (1, 1), (pad_h, pad_w), precision)           # (B, n_h, n_w, sh*sw*out)
    b = x.shape[0]
    y = y.reshape(b, n_h, n_w, sh, sw, cout).transpose(0, 1, 3, 2, 4, 5).reshape(b, n_h * sh, n_w * sw, cout)
    return y[:, :out_h, :out_w, :]


class Conv(nnx.Conv):
    """``nnx.Conv`` with an im2col form for 2-D convs (``form``: see the module docstring)."""

    def __init__(self, *args, form: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.form = resolve_form(form)

    def _covered(self, inputs, out_sharding) -> bool:
        return (self.form == "fast" and inputs.ndim == 4 and len(self.kernel_size) == 2
                and out_sharding is None and self.mask is None and self.feature_group_count == 1
                and self.preferred_element_type is None and self.conv_general_dilated is lax.conv_general_dilated
                and _pairs(self.input_dilation, 2) == (1, 1) and _pairs(self.kernel_dilation, 2) == (1, 1)
                and _explicit_pads(self.padding, 2) is not None)

    def __call__(self, inputs: jax.Array, out_sharding=None) -> jax.Array:
        if not self._covered(inputs, out_sharding):
            return super().__call__(inputs, out_sharding=out_sharding)
        strides = _pairs(self.strides, 2)
        pads = _explicit_pads(self.padding, 2)
        if isinstance(pads, str):
            pads = tuple(lax.padtype_to_pads(inputs.shape[1:3], self.kernel_size, strides, pads))
        out_side = tuple((n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in
                         zip(inputs.shape[1:3], pads, self.kernel_size, strides))
        if _input_grads_only and stock_input_grads_fast(out_side, self.kernel_size, transposed=False):
            return super().__call__(inputs, out_sharding=out_sharding)
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, self.kernel[...], bias), dtype=self.dtype)
        if _input_grads_only and phase_grad_fast(out_side, self.kernel_size):
            y = phase_grad_conv(inputs, kernel, strides, pads, self.precision)
        else:
            y = im2col_conv(inputs, kernel, strides, pads, self.precision)
        return y + bias if self.use_bias else y


class ConvTranspose(nnx.ConvTranspose):
    """``nnx.ConvTranspose`` with a sub-pixel form for 2-D transposed convs (``form``: see the module docstring)."""

    def __init__(self, *args, form: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.form = resolve_form(form)

    def _covered(self, inputs) -> bool:
        return (self.form == "fast" and inputs.ndim == 4 and len(self.kernel_size) == 2 and self.mask is None
                and not self.transpose_kernel and self.preferred_element_type is None
                and _pairs(self.kernel_dilation, 2) == (1, 1) and _explicit_pads(self.padding, 2) is not None)

    def __call__(self, inputs: jax.Array, used: tuple[int, int] | None = None) -> jax.Array:
        """``used`` = (h, w): the caller reads only ``y[:, :h, :w]`` (and crops it itself); under
        :func:`input_grads_only` the per-phase form then leaves the rest uncomputed (zeros)."""
        if not self._covered(inputs) or (_input_grads_only and stock_input_grads_fast(
                inputs.shape[1:3], self.kernel_size, transposed=True) and not phase_transpose_fast(self.out_features)):
            return super().__call__(inputs)
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, self.kernel[...], bias), dtype=self.dtype)
        strides, pads = _pairs(self.strides, 2), _explicit_pads(self.padding, 2)
        if _input_grads_only:  # per-phase stock convs (no zero taps, no cropped rows)
            y = phase_conv_transpose(inputs, kernel, strides, pads, self.precision, used)
        else:  # one sub-pixel matmul
            y = subpixel_conv_transpose(inputs, kernel, strides, pads, self.precision)
        return y + bias if self.use_bias else y
