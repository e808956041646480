"""Per-phase conv forms for input gradients only (the AnoGAN latent search on XLA:CPU).

A stride-s transposed conv, and the input gradient of a stride-s conv (which *is* a transposed
conv of the output cotangent), splits into s*s stride-1 convs of the undilated input, one per
output phase, each with only the kernel taps that reach that phase.  XLA:CPU computes the stock
forms as convs over the s-dilated input, which is slow when that input is a map smaller than
the kernel (thesis nets at width 64, batch 64, ms of forward + input gradient: generator 4->8
stock 571, per phase 22; critic 7->4 stock 499 -- bench/README.md, "AnoGAN search").  The
per-phase convs are small stride-1 ``lax`` convs, which XLA:CPU runs fast, and so are their own
input gradients.

``phase_conv_transpose``: ``lax.conv_transpose`` in that form (autodiff of it is fast too).
``phase_grad_conv``: ``lax.conv_general_dilated`` (XLA's own, fast forward) whose input gradient
is ``phase_conv_transpose`` of the cotangent (``jax.custom_vjp``), instead of XLA's dilated one.
Used by ``gadjax.nets.conv`` under ``input_grads_only()``; same function and first derivatives
as the stock forms (float64 tests in tests/test_conv_forms.py).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

_DN = ("NHWC", "HWIO", "NHWC")


def _transpose_pads(k: int, s: int, padding: str) -> tuple[int, int]:
    """The padding of the dilated input that ``lax.conv_transpose`` uses (its ``_conv_transpose_padding``)."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    else:  # VALID
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    return pad_a, pad_len - pad_a


def _phase_taps(n: int, k: int, s: int, pad: tuple[int, int]):
    """One spatial axis of a stride-s transposed conv in sub-pixel form.

    The transposed conv correlates the s-dilated, ``pad``-padded input with the kernel:
    ``y[s*i + a] = sum_d x[i + d] * w[s*d + pad_lo - a]``.  Returns ``taps`` (D, s): the kernel
    index for offset ``dmin + r`` and phase ``a`` (``k`` = a zero tap), the input padding
    (lo, hi; may be negative) that makes a VALID stride-1 conv give ``n_i`` rows, ``n_i``,
    and the output length."""
    lo, hi = pad
    out = (n - 1) * s + 1 + lo + hi - k + 1
    n_i = -(-out // s)
    ds = [(a, d) for a in range(s) for d in range(-(-(a - lo) // s), (k - 1 + a - lo) // s + 1)]
    dmin, dmax = min(d for _, d in ds), max(d for _, d in ds)
    taps = np.full((dmax - dmin + 1, s), k, np.int32)
    for a, d in ds:
        taps[d - dmin, a] = s * d + lo - a
    return taps, (-dmin, n_i - 1 + dmax - (n - 1)), n_i, out


def phase_conv_transpose(x: jax.Array, kernel: jax.Array, strides, padding, precision=None, used=None):
    """= ``lax.conv_transpose(x, kernel, strides, padding)`` as s_h*s_w stride-1 stock convs, one
    per output phase with only that phase's taps (no zero taps: 25 instead of 36 for 5x5/2),
    interleaved.  For input-gradient use on XLA:CPU, where the stock transposed conv from a map
    smaller than the kernel is slow but these small stride-1 convs and their input gradients are
    not (thesis generator 4->8, width 64: 22 vs 26 ms for the sub-pixel form, forward + input grad).

    Each phase computes only the rows / columns that land inside the output (a 7-row output at
    stride 2 is 4 + 3 rows, not 4 + 4 then cropped), and only inside ``used`` = (h, w) if given:
    the caller uses ``y[:, :h, :w]`` only (the thesis generator's 8x8 -> 7x7 crop); the rest is
    then zeros.  Both cut work the crop would throw away (1/8 of each axis' rows at 7 of 8)."""
    kh, kw, cin, cout = kernel.shape
    (sh, sw), (b, h, w, _) = strides, x.shape
    pads = (_transpose_pads(kh, sh, padding), _transpose_pads(kw, sw, padding)) if isinstance(padding, str) else padding
    taps_h, pad_h, n_h, out_h = _phase_taps(h, kh, sh, pads[0])
    taps_w, pad_w, n_w, out_w = _phase_taps(w, kw, sw, pads[1])
    need_h, need_w = (out_h, out_w) if used is None else (min(out_h, used[0]), min(out_w, used[1]))
    dtype = jnp.result_type(x, kernel)
    rows = []
    for a in range(sh):
        cols = []
        for c in range(sw):
            ih, iw = np.flatnonzero(taps_h[:, a] != kh), np.flatnonzero(taps_w[:, c] != kw)  # this phase's taps
            m_h, m_w = max(-(-(need_h - a) // sh), 0), max(-(-(need_w - c) // sw), 0)  # rows, cols it must give
            if ih.size == 0 or iw.size == 0 or m_h == 0 or m_w == 0:  # no tap reaches it, or none of it is used
                cols.append(jnp.zeros((b, n_h, n_w, cout), dtype))
                continue
            sub = kernel[taps_h[ih, a][:, None], taps_w[iw, c][None, :]]
            ph = (pad_h[0] - ih[0], pad_h[1] - (taps_h.shape[0] - 1 - ih[-1]) - (n_h - m_h))
            pw = (pad_w[0] - iw[0], pad_w[1] - (taps_w.shape[0] - 1 - iw[-1]) - (n_w - m_w))
            y = lax.conv_general_dilated(x, sub, (1, 1), (ph, pw), dimension_numbers=_DN, precision=precision)
            cols.append(jnp.pad(y, ((0, 0), (0, n_h - m_h), (0, n_w - m_w), (0, 0))))  # rows that get cropped
        rows.append(jnp.stack(cols, 3))                                   # (B, n_h, n_w, sw, out)
    y = jnp.stack(rows, 2).reshape(b, n_h * sh, n_w * sw, cout)          # (B, n_h, sh, n_w, sw, out) -> interleaved
    return y[:, :out_h, :out_w, :]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def phase_grad_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], pads: tuple[tuple[int, int], ...],
                    precision=None) -> jax.Array:
    """= ``lax.conv_general_dilated(x, kernel, strides, pads)`` (NHWC, HWIO, explicit ``pads``), the
    same forward, with its input gradient computed per output phase (:func:`conv_input_grad`).

    Meant for first derivatives w.r.t. the input (the search); the rule is plain JAX, so higher
    derivatives still work, just not fast.  The kernel's cotangent is exact too (im2col's
    transpose), so any use gets the right gradients; XLA drops it when unused."""
    return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_DN, precision=precision)


def conv_input_grad(g: jax.Array, kernel: jax.Array, strides, pads, in_hw, precision=None) -> jax.Array:
    """d<g, conv(x, kernel)>/dx for ``x`` of spatial size ``in_hw``: the correlation of the
    s-dilated ``g`` with the flipped, in/out-swapped kernel, padded so that the result lines up
    with ``x`` (lo = k - 1 - pad_lo; hi = n + pad_lo - s (o - 1) - 1; rows of ``x`` that no
    output reads get zeros), computed by :func:`phase_conv_transpose`."""
    kh, kw = kernel.shape[:2]
    flipped = kernel[::-1, ::-1].transpose(0, 1, 3, 2)
    tpads = tuple((k - 1 - lo, n + lo - s * (o - 1) - 1)
                  for k, (lo, _), n, s, o in zip((kh, kw), pads, in_hw, strides, g.shape[1:3]))
    return phase_conv_transpose(g, flipped, strides, tpads, precision)


def _phase_grad_conv_fwd(x, kernel, strides, pads, precision):
    return phase_grad_conv(x, kernel, strides, pads, precision), (x, kernel)


def _phase_grad_conv_bwd(strides, pads, precision, res, g):
    from gadjax.nets.conv import im2col_conv  # conv.py imports this module
    x, kernel = res
    dx = conv_input_grad(g, kernel, strides, pads, x.shape[1:3], precision)
    dk = jax.vjp(lambda k: im2col_conv(x, k, strides, pads, precision), kernel)[1](g)[0]
    return dx.astype(x.dtype), dk.astype(kernel.dtype)


phase_grad_conv.defvjp(_phase_grad_conv_fwd, _phase_grad_conv_bwd)
