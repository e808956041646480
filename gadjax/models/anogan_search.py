"""AnoGAN latent search (Schlegl et al., IPMI 2017) as one compiled JAX program.

For each test image ``x`` AnoGAN looks for the latent code whose generated image best
explains it, by gradient descent on the mapping loss

    L(z) = (1 - lam) * sum |x - G(z)| + lam * sum |f(x) - f(G(z))|

(``gadjax.scores.anogan_loss``; ``f`` = the critic's last-conv features), and uses the
loss at the end of the search as the anomaly score.  Generator and critic run in
inference mode (BatchNorm uses running averages), so images never interact and the
search for one image does not depend on the rest of the batch.

The search is written for ONE image and ONE starting point, then ``jax.vmap``-ped over
restarts and over the batch; the ``steps`` Adam steps run inside ``lax.scan``.  A whole
batch is therefore a single jitted program, compiled once per (shapes, static options).

Loop forms (``loop=``), all the same maths and, to float rounding, the same scores:
  * ``"scan"``: rolled ``lax.scan`` (small program, fast compile).
  * ``"unrolled"``: ``lax.scan(..., unroll=unroll)``.
  * ``"host"``: a Python loop calling a jitted, state-donating single Adam step.
  * ``"auto"``: :func:`default_loop` for the current backend (see there for the numbers).

Randomness: image ``i`` of a call starts from ``sample_latent(fold_in(key, i), restarts)``,
so :func:`search_latent_per_image` (one image per call) reproduces the batched result.
"""
from __future__ import annotations

import collections
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gadjax.nets.pure import PureNet
from gadjax.scores import anogan_loss
from gadjax.train.gan import sample_latent

PyTree = Any

__all__ = ["AnoGANResult", "search_latent", "search_latent_per_image", "default_loop", "trace_count",
           "reset_trace_count", "LOOPS"]

LOOPS = ("auto", "scan", "unrolled", "host")

# Adam learning rate for z.  Adam moves each coordinate by at most ~lr per step whatever
# the gradient scale (the loss is a *sum* over pixels, so its raw gradients are large and
# plain SGD would need per-image-size tuning).  With the paper's 500 steps, lr = 0.01 lets
# z travel up to ~5 per coordinate -- enough to cross a N(0, I) or U[-1, 1] prior -- while
# ending with steps of <~0.01 that settle into a minimum; 0.1 keeps jumping around the
# optimum and 0.001 cannot leave the neighbourhood of the start (at most ~0.5 in 500 steps).
DEFAULT_LEARNING_RATE = 0.01

# Python-side trace counter, one entry per jitted function: a trace runs the Python body,
# so a test can assert that a second call with the same shapes does not retrace/recompile.
_TRACES: collections.Counter = collections.Counter()


def trace_count(name: Optional[str] = None) -> int:
    """Traces so far of one compiled function (``'search'``, ``'host_init'``,
    ``'host_step'``, ``'host_final'``), or of all of them with ``name=None``."""
    return sum(_TRACES.values()) if name is None else _TRACES[name]


def reset_trace_count() -> None:
    _TRACES.clear()


def default_loop(backend: Optional[str] = None) -> str:
    """Loop form used by ``loop='auto'``: ``'host'`` on CPU, ``'scan'`` elsewhere.

    CPU, measured with bench/anogan_loops.py (2-core x86 VM, jax 0.10.2, dcgan 28x28,
    z_dim 100, batch 16, 100 steps, median of 3; ms per Adam step for the whole batch):

        width  scan  unrolled x4  unrolled x8  full unroll  host  per-image loop
        32     20.7  20.8         19.8         1.9          1.8   6.1
        64     20.6  20.5         20.1         5.3          5.4   11.0
        (per-image loop: host form, one image per call, timed on 4 images x4)

    Any step inside an XLA while-loop costs ~20 ms whatever the width: XLA:CPU runs
    the convolutions of a loop body through a slow path (jax-ml/jax#12868), and a
    partial unroll still leaves a while-loop.  Only a *full* unroll escapes it, at a
    compile time linear in ``steps`` (~17 s for 100 steps vs ~2 s, minutes for 500).
    The host loop runs each step as its own program with the fast kernels, pays one
    dispatch per step (negligible next to the conv work), compiles one step only, and
    matches the full unroll: 11x (width 32) / 4x (64) faster than the rolled scan.

    GPU/TPU: the rolled ``lax.scan`` -- one launch for the whole search, no per-step
    dispatch, smallest program; loops carry no conv penalty there.  This is NOT
    measured here (no accelerator was available); rerun bench/anogan_loops.py on one.
    """
    backend = backend or jax.default_backend()
    return "host" if backend == "cpu" else "scan"


class AnoGANResult(NamedTuple):
    """Result of :func:`search_latent` for a batch of ``B`` images.

    score: (B,) final mapping loss of the best restart (higher = more anomalous).
    z: (B, z_dim) best latent code.
    reconstruction: (B, H, W, C) ``G(z)``.
    loss_history: (B, steps) loss *before* each Adam step for the best restart,
      or ``None`` unless ``return_history=True``.
    """

    score: jax.Array
    z: jax.Array
    reconstruction: jax.Array
    loss_history: Optional[jax.Array] = None


# ----------------------------------------------------------------------------- maths
# Everything below is for ONE image: x (H, W, C), fx (F,), z (z_dim,).  The nets expect a
# batch axis, so a leading axis of 1 is added and removed; vmap turns that into a batch.

def _loss_one(z, x, fx, nets, lam):
    """Mapping loss () and reconstruction (H, W, C) of one image for one code z."""
    generator, g_params, g_stats, critic, d_params, d_stats = nets
    xr = generator(g_params, g_stats, z[None])            # (1, H, W, C), inference mode
    _, fr = critic(d_params, d_stats, xr)                  # (1, F)
    return anogan_loss(x[None], xr, fx[None], fr, lam)[0], xr[0]


def _adam_step(carry, x, fx, nets, lam, lr, clip_z):
    """One Adam step on z.  carry = (z (z_dim,), opt_state) -> (carry, loss before step)."""
    z, opt_state = carry
    tx = optax.adam(lr)
    (loss, _), grad = jax.value_and_grad(_loss_one, has_aux=True)(z, x, fx, nets, lam)
    updates, opt_state = tx.update(grad, opt_state, z)
    z = optax.apply_updates(z, updates)
    if clip_z is not None:  # keep z inside the prior's support (e.g. U[-1, 1])
        z = jnp.clip(z, -clip_z, clip_z)
    return (z, opt_state), loss


def _search_one(z0, x, fx, nets, lam, lr, steps, unroll, clip_z):
    """One image, one start: z0 (z_dim,) -> (final loss (), z, G(z) (H,W,C), history (steps,))."""
    carry = (z0, optax.adam(lr).init(z0))
    (z, _), history = jax.lax.scan(lambda c, _: _adam_step(c, x, fx, nets, lam, lr, clip_z),
                                   carry, None, length=steps, unroll=unroll)
    final, xr = _loss_one(z, x, fx, nets, lam)
    return final, z, xr, history


def _features(x, nets):
    """Critic features of the images themselves, computed once: x (B,H,W,C) -> (B, F)."""
    _, _, _, critic, d_params, d_stats = nets
    return critic(d_params, d_stats, x)[1]


def _start_codes(key, idx, restarts, z_dim, prior, dtype):
    """(B, R, z_dim) starting codes; image idx[i] uses fold_in(key, idx[i]) only."""
    return jax.vmap(lambda i: sample_latent(jax.random.fold_in(key, i), restarts, z_dim, prior, dtype))(idx)


def _initial(key, idx, z_init, restarts, generator, g_params, g_stats, prior, dtype):
    """Starting codes (B, R, Z): the caller's ``z_init`` or fresh samples from the prior."""
    if z_init is not None:
        return z_init.astype(dtype)
    return _start_codes(key, idx, restarts, _z_dim(generator, g_params, g_stats), prior, dtype)


def _pick_best(final, z, xr, history):
    """Per image keep the restart with the lowest final loss (NaN counts as worst).

    final (B, R), z (B, R, Z), xr (B, R, H, W, C), history (B, R, steps) or None.
    """
    best = jnp.argmin(jnp.where(jnp.isnan(final), jnp.inf, final), axis=1)          # (B,)
    take = lambda a: jnp.take_along_axis(a, best.reshape((-1,) + (1,) * (a.ndim - 1)), axis=1)[:, 0]
    return AnoGANResult(take(final), take(z), take(xr), None if history is None else take(history))


# ------------------------------------------------------------------- compiled programs
# Module-level jits: the nets (hashable PureNets) and shape-like options are static, the
# parameters, images, key, lam and learning rate are traced (changing lam or lr does not
# recompile).

_STATIC = ("generator", "critic", "steps", "restarts", "prior", "unroll", "clip_z", "return_history")


def _search_batch(generator, g_params, g_stats, critic, d_params, d_stats, x, idx, key, lam, lr, z_init, *,
                  steps, restarts, prior, unroll, clip_z, return_history):
    """x (B,H,W,C), idx (B,) int, z_init None or (B,R,Z) -> AnoGANResult; one program."""
    _TRACES["search"] += 1
    nets = (generator, g_params, g_stats, critic, d_params, d_stats)
    fx = _features(x, nets)
    z0 = _initial(key, idx, z_init, restarts, generator, g_params, g_stats, prior, x.dtype)
    one = lambda z0_, x_, fx_: _search_one(z0_, x_, fx_, nets, lam, lr, steps, unroll, clip_z)
    over_restarts = jax.vmap(one, in_axes=(0, None, None))
    final, z, xr, hist = jax.vmap(over_restarts)(z0, x, fx)
    return _pick_best(final, z, xr, hist if return_history else None)


_search_jit = jax.jit(_search_batch, static_argnames=_STATIC)


def _host_init(generator, g_params, g_stats, critic, d_params, d_stats, x, idx, key, lr, z_init, *,
               restarts, prior):
    _TRACES["host_init"] += 1
    nets = (generator, g_params, g_stats, critic, d_params, d_stats)
    z0 = _initial(key, idx, z_init, restarts, generator, g_params, g_stats, prior, x.dtype)
    opt = jax.vmap(jax.vmap(optax.adam(lr).init))(z0)
    return (z0, opt), _features(x, nets)


def _host_step(carry, generator, g_params, g_stats, critic, d_params, d_stats, x, fx, lam, lr, *, clip_z):
    """One Adam step for every (image, restart): carry ((B,R,Z), opt) -> (carry, loss (B,R))."""
    _TRACES["host_step"] += 1
    nets = (generator, g_params, g_stats, critic, d_params, d_stats)
    one = lambda c, x_, fx_: _adam_step(c, x_, fx_, nets, lam, lr, clip_z)
    return jax.vmap(jax.vmap(one, in_axes=(0, None, None)))(carry, x, fx)


def _host_final(z, generator, g_params, g_stats, critic, d_params, d_stats, x, fx, lam, history):
    _TRACES["host_final"] += 1
    nets = (generator, g_params, g_stats, critic, d_params, d_stats)
    one = lambda z_, x_, fx_: _loss_one(z_, x_, fx_, nets, lam)
    final, xr = jax.vmap(jax.vmap(one, in_axes=(0, None, None)))(z, x, fx)
    if history is not None:
        history = jnp.moveaxis(jnp.stack(history), 0, -1)   # steps x (B, R) -> (B, R, steps)
    return _pick_best(final, z, xr, history)


_host_init_jit = jax.jit(_host_init, static_argnames=("generator", "critic", "restarts", "prior"))
# The optimiser state is donated: each step updates z and Adam's moments in place.
_host_step_jit = jax.jit(_host_step, static_argnames=("generator", "critic", "clip_z"), donate_argnums=0)
_host_final_jit = jax.jit(_host_final, static_argnames=("generator", "critic"))


def _search_host(generator, g_params, g_stats, critic, d_params, d_stats, x, idx, key, lam, lr, z_init, *,
                 steps, restarts, prior, clip_z, return_history):
    carry, fx = _host_init_jit(generator, g_params, g_stats, critic, d_params, d_stats, x, idx, key, lr,
                               z_init, restarts=restarts, prior=prior)
    history = []
    for _ in range(steps):  # asynchronous dispatch: no host sync inside the loop
        carry, loss = _host_step_jit(carry, generator, g_params, g_stats, critic, d_params, d_stats,
                                     x, fx, lam, lr, clip_z=clip_z)
        if return_history:
            history.append(loss)
    return _host_final_jit(carry[0], generator, g_params, g_stats, critic, d_params, d_stats, x, fx, lam,
                           history if return_history else None)


# ------------------------------------------------------------------------- validation

_SHAPES: dict = {}


def _z_dim(generator: PureNet, g_params, g_stats) -> int:
    return _net_shapes(generator, g_params, g_stats)[0]


def _net_shapes(generator: PureNet, g_params, g_stats) -> tuple[int, tuple[int, ...]]:
    """(z_dim, image shape (H, W, C)) of a generator, cached per (static) net."""
    if generator not in _SHAPES:
        z_dim = getattr(nnx.merge(generator.graphdef, g_params, g_stats), "z_dim", None)
        if z_dim is None:
            raise ValueError(f"generator {generator.name!r} has no z_dim attribute")
        out = jax.eval_shape(lambda p, s: generator(p, s, jnp.zeros((1, z_dim))), g_params, g_stats)
        _SHAPES[generator] = (int(z_dim), tuple(out.shape[1:]))
    return _SHAPES[generator]


def _check(generator, g_params, g_stats, x, steps, lam, learning_rate, restarts, prior, loop, unroll, clip_z):
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not isinstance(restarts, (int, np.integer)) or restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {restarts!r}")
    if not isinstance(unroll, (int, np.integer)) or unroll < 1:
        raise ValueError(f"unroll must be an integer >= 1, got {unroll!r}")
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if not float(learning_rate) > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    if prior not in ("normal", "uniform"):
        raise ValueError(f"unknown latent prior {prior!r}; use 'normal' or 'uniform'")
    if loop not in LOOPS:
        raise ValueError(f"unknown loop {loop!r}; choose one of {LOOPS}")
    if clip_z is not None and not float(clip_z) > 0:
        raise ValueError(f"clip_z must be None or > 0, got {clip_z}")
    _, image_shape = _net_shapes(generator, g_params, g_stats)
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) != 1 + len(image_shape) or shape[1:] != image_shape or shape[0] < 1:
        raise ValueError(f"x must be a batch of samples of shape (B, {', '.join(map(str, image_shape))}) "
                         f"matching the generator, got {shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point (scaled to the generator's output range), got {x.dtype}")
    bad = int(jnp.size(x) - jnp.sum(jnp.isfinite(x)))
    if bad:
        raise ValueError(f"x contains {bad} non-finite values (NaN or Inf); clean or drop those images")


# -------------------------------------------------------------------------------- API

def search_latent(generator: PureNet, g_params: PyTree, g_stats: PyTree,
                  critic: PureNet, d_params: PyTree, d_stats: PyTree,
                  x: jax.Array, key: jax.Array, *, steps: int = 500, lam: float = 0.1,
                  learning_rate: float = DEFAULT_LEARNING_RATE, restarts: int = 1, prior: str = "normal",
                  loop: str = "auto", unroll: int = 8, clip_z: Optional[float] = None,
                  z_init: Optional[jax.Array] = None, return_history: bool = False,
                  _index_offset: int = 0) -> AnoGANResult:
    """AnoGAN score of every image in ``x`` by a latent search of ``steps`` Adam steps.

    Args:
      generator, g_params, g_stats: the generator ``z (B, z_dim) -> (B, H, W, C)``.
      critic, d_params, d_stats: the critic ``x -> (logits (B,), features (B, F))``.
      x: (B, H, W, C) images in the generator's output range.
      key: PRNG key for the starting codes (image i uses ``fold_in(key, i)``).
      steps: Adam steps per start (the paper uses 500).
      lam: weight of the feature term in [0, 1] (paper: 0.1).
      learning_rate: Adam step size for z (see ``DEFAULT_LEARNING_RATE``).
      restarts: starting codes per image; the restart with the lowest final loss wins.
      prior: ``'normal'`` N(0, I) or ``'uniform'`` U[-1, 1] starting codes.
      loop: ``'scan'``, ``'unrolled'``, ``'host'`` or ``'auto'`` (:func:`default_loop`).
      unroll: scan unroll factor for ``loop='unrolled'``.
      clip_z: if set, z is clipped to [-clip_z, clip_z] after every step.
      z_init: optional starting codes (B, R, z_dim) (or (B, z_dim) for R = 1) instead of
        prior samples, e.g. an encoder's E(x); then ``restarts`` is taken from it.
      return_history: also return the (B, steps) loss trajectory of the best restart.

    Returns:
      :class:`AnoGANResult` with score (B,), z (B, z_dim), reconstruction (B, H, W, C).
    """
    _check(generator, g_params, g_stats, x, steps, lam, learning_rate, restarts, prior, loop, unroll, clip_z)
    x = jnp.asarray(x)
    if z_init is not None:
        z_init = jnp.asarray(z_init)
        z_init = z_init[:, None] if z_init.ndim == 2 else z_init
        z_dim = _z_dim(generator, g_params, g_stats)
        if z_init.ndim != 3 or z_init.shape[0] != x.shape[0] or z_init.shape[2] != z_dim:
            raise ValueError(f"z_init must have shape (B={x.shape[0]}, restarts, {z_dim}) or "
                             f"(B, {z_dim}), got {z_init.shape}")
        restarts = z_init.shape[1]
    loop = default_loop() if loop == "auto" else loop
    idx = jnp.arange(x.shape[0], dtype=jnp.int32) + _index_offset
    lam = jnp.asarray(lam, x.dtype)
    lr = jnp.asarray(learning_rate, x.dtype)
    clip_z = None if clip_z is None else float(clip_z)
    if loop == "host":
        return _search_host(generator, g_params, g_stats, critic, d_params, d_stats, x, idx, key, lam, lr, z_init,
                            steps=int(steps), restarts=int(restarts), prior=prior, clip_z=clip_z,
                            return_history=bool(return_history))
    return _search_jit(generator, g_params, g_stats, critic, d_params, d_stats, x, idx, key, lam, lr, z_init,
                       steps=int(steps), restarts=int(restarts), prior=prior,
                       unroll=int(unroll) if loop == "unrolled" else 1, clip_z=clip_z,
                       return_history=bool(return_history))


def search_latent_per_image(generator: PureNet, g_params: PyTree, g_stats: PyTree,
                            critic: PureNet, d_params: PyTree, d_stats: PyTree,
                            x: jax.Array, key: jax.Array, **kwargs) -> AnoGANResult:
    """Reference / benchmark baseline: a Python loop over the images, each searched by the
    same compiled program at batch size 1.  Same keys per image, hence the same scores as
    :func:`search_latent` on the whole batch (to float rounding).  Takes the same options."""
    if getattr(x, "ndim", 0) < 2:
        raise ValueError(f"x must be a batch of samples (B, ...), got shape {getattr(x, 'shape', None)}")
    z_init = kwargs.pop("z_init", None)
    results = [search_latent(generator, g_params, g_stats, critic, d_params, d_stats, x[i:i + 1], key,
                             z_init=None if z_init is None else z_init[i:i + 1], _index_offset=i, **kwargs)
               for i in range(x.shape[0])]
    return AnoGANResult(*(None if parts[0] is None else jnp.concatenate(parts) for parts in zip(*results)))
