"""AnoGAN latent search (Schlegl et al., IPMI 2017) as one compiled JAX program.

For each test image ``x`` AnoGAN looks for the latent code whose generated image best
explains it, by gradient descent on the mapping loss

    L(z) = (1 - lam) * sum |x - G(z)| + lam * sum |f(x) - f(G(z))|

(``gadjax.scores.anogan_loss``; ``f`` = the critic's last-conv features), and uses the
loss at the end of the search as the anomaly score.

The networks are plain callables, ``generator(z) -> x`` and ``features(x) -> f``:
gadjax nets bound with ``gadjax.nets.bind`` / ``features_of`` (inference mode, so images
never interact and one image's search does not depend on its batch) or any JAX
function.  They enter the compiled programs as pytree arguments
(``gadjax.nets.as_callable_pytree``): bound parameters are traced, so new weights of the
same structure reuse the compiled program; a plain function is static.

    G, D = bind(gen, g_params, g_stats), bind(critic, d_params, d_stats)
    result = search_latent(G, features_of(D), x, key, steps=500)

The search is written for ONE image and ONE starting point, then ``jax.vmap``-ped over
restarts and over the batch; the ``steps`` Adam steps run inside ``lax.scan``.  A whole
batch is therefore a single jitted program, compiled once per (shapes, static options).

Loop forms (``loop=``), all the same maths and, to float rounding, the same scores:
  * ``"scan"``: rolled ``lax.scan`` (small program, fast compile).
  * ``"unrolled"``: ``lax.scan(..., unroll=unroll)``.
  * ``"host"``: a Python loop calling a jitted, state-donating single Adam step.
  * ``"auto"``: :func:`default_loop` for the current backend (see there for the numbers).

Randomness: image ``i`` of a call starts from ``sample_latent(fold_in(key, index_offset + i),
restarts)``, so :func:`search_latent_per_image` (one image per call) reproduces the
batched result.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from gadjax.nets.conv import input_grads_only
from gadjax.nets.pure import PureNet, as_callable_pytree
from gadjax.scores import anogan_loss
from gadjax.train.gan import sample_latent

__all__ = ["AnoGANResult", "search_latent", "search_latent_per_image", "default_loop", "LOOPS",
           "DEFAULT_LEARNING_RATE"]

LOOPS = ("auto", "scan", "unrolled", "host")

# Adam learning rate for z.  Adam moves each coordinate by at most ~lr per step whatever
# the gradient scale (the loss is a *sum* over pixels, so its raw gradients are large and
# plain SGD would need per-image-size tuning).  With the paper's 500 steps, lr = 0.01 lets
# z travel up to ~5 per coordinate -- enough to cross a N(0, I) or U[-1, 1] prior -- while
# ending with steps of <~0.01 that settle into a minimum; 0.1 keeps jumping around the
# optimum and 0.001 cannot leave the neighbourhood of the start (at most ~0.5 in 500 steps).
DEFAULT_LEARNING_RATE = 0.01


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

def _loss_one(z, x, fx, generator, features, lam):
    """Mapping loss () and reconstruction (H, W, C) of one image for one code z."""
    xr = generator(z[None])                                  # (1, H, W, C)
    return anogan_loss(x[None], xr, fx[None], features(xr), lam)[0], xr[0]


def _adam_step(carry, x, fx, generator, features, lam, lr, clip_z):
    """One Adam step on z.  carry = (z (z_dim,), opt_state) -> (carry, loss before step)."""
    z, opt_state = carry
    (loss, _), grad = jax.value_and_grad(_loss_one, has_aux=True)(z, x, fx, generator, features, lam)
    updates, opt_state = optax.adam(lr).update(grad, opt_state, z)
    z = optax.apply_updates(z, updates)
    if clip_z is not None:  # keep z inside the prior's support (e.g. U[-1, 1])
        z = jnp.clip(z, -clip_z, clip_z)
    return (z, opt_state), loss


def _search_one(z0, x, fx, generator, features, lam, lr, steps, unroll, clip_z):
    """One image, one start: z0 (z_dim,) -> (final loss (), z, G(z) (H,W,C), history (steps,))."""
    carry = (z0, optax.adam(lr).init(z0))
    (z, _), history = jax.lax.scan(lambda c, _: _adam_step(c, x, fx, generator, features, lam, lr, clip_z),
                                   carry, None, length=steps, unroll=unroll)
    final, xr = _loss_one(z, x, fx, generator, features, lam)
    return final, z, xr, history


def _initial(key, idx, z_init, restarts, z_dim, prior, dtype):
    """Starting codes (B, R, Z): the caller's ``z_init`` or, for image idx[i], samples from
    the prior drawn with fold_in(key, idx[i]) only."""
    if z_init is not None:
        return z_init.astype(dtype)
    return jax.vmap(lambda i: sample_latent(jax.random.fold_in(key, i), restarts, z_dim, prior, dtype))(idx)


def _pick_best(final, z, xr, history):
    """Per image keep the restart with the lowest final loss (NaN counts as worst).

    final (B, R), z (B, R, Z), xr (B, R, H, W, C), history (B, R, steps) or None.
    """
    best = jnp.argmin(jnp.where(jnp.isnan(final), jnp.inf, final), axis=1)          # (B,)
    take = lambda a: jnp.take_along_axis(a, best.reshape((-1,) + (1,) * (a.ndim - 1)), axis=1)[:, 0]
    return AnoGANResult(take(final), take(z), take(xr), None if history is None else take(history))


def _per_image_restart(fn):
    """vmap ``fn(per_restart, x, fx)`` over restarts (inner) and images (outer)."""
    return jax.vmap(jax.vmap(fn, in_axes=(0, None, None)))


# ------------------------------------------------------------------- compiled programs
# Module-level jits: the networks are pytree arguments (bound parameters traced, plain
# functions static); images, key, lam and learning rate are traced (changing lam or lr does
# not recompile); shape-like options are static.

_STATIC = ("z_dim", "steps", "restarts", "prior", "unroll", "clip_z", "return_history")


def _search_batch(generator, features, x, idx, key, lam, lr, z_init, *, z_dim, steps, restarts, prior, unroll,
                  clip_z, return_history):
    """x (B,H,W,C), idx (B,) int, z_init None or (B,R,Z) -> AnoGANResult; one program."""
    fx = features(x)
    z0 = _initial(key, idx, z_init, restarts, z_dim, prior, x.dtype)
    one = lambda z0_, x_, fx_: _search_one(z0_, x_, fx_, generator, features, lam, lr, steps, unroll, clip_z)
    final, z, xr, hist = _per_image_restart(one)(z0, x, fx)
    return _pick_best(final, z, xr, hist if return_history else None)


def _host_init(features, x, idx, key, lr, z_init, *, z_dim, restarts, prior):
    z0 = _initial(key, idx, z_init, restarts, z_dim, prior, x.dtype)
    opt = jax.vmap(jax.vmap(optax.adam(lr).init))(z0)
    return (z0, opt), features(x)


def _host_step(carry, generator, features, x, fx, lam, lr, *, clip_z):
    """One Adam step for every (image, restart): carry ((B,R,Z), opt) -> (carry, loss (B,R))."""
    one = lambda c, x_, fx_: _adam_step(c, x_, fx_, generator, features, lam, lr, clip_z)
    return _per_image_restart(one)(carry, x, fx)


def _host_final(z, generator, features, x, fx, lam, history):
    one = lambda z_, x_, fx_: _loss_one(z_, x_, fx_, generator, features, lam)
    final, xr = _per_image_restart(one)(z, x, fx)
    if history is not None:
        history = jnp.moveaxis(jnp.stack(history), 0, -1)   # steps x (B, R) -> (B, R, steps)
    return _pick_best(final, z, xr, history)


def _z_grads_only(fn):
    """``fn`` traced under ``gadjax.nets.conv.input_grads_only()``: the search differentiates
    w.r.t. z only, so the nets' fast-form convs may use XLA's own convs where those and their
    input gradients are fast (same maths; on CPU at width 64 the search step ~1.4x faster)."""
    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with input_grads_only():
            return fn(*args, **kwargs)
    return traced


_search_jit = jax.jit(_z_grads_only(_search_batch), static_argnames=_STATIC)
_host_init_jit = jax.jit(_z_grads_only(_host_init), static_argnames=("z_dim", "restarts", "prior"))
# The optimiser state is donated: each step updates z and Adam's moments in place.
_host_step_jit = jax.jit(_z_grads_only(_host_step), static_argnames=("clip_z",), donate_argnums=0)
_host_final_jit = jax.jit(_z_grads_only(_host_final))


def _search_host(generator, features, x, idx, key, lam, lr, z_init, *, z_dim, steps, restarts, prior, clip_z,
                 return_history):
    carry, fx = _host_init_jit(features, x, idx, key, lr, z_init, z_dim=z_dim, restarts=restarts, prior=prior)
    history = []
    for _ in range(steps):  # asynchronous dispatch: no host sync inside the loop
        carry, loss = _host_step_jit(carry, generator, features, x, fx, lam, lr, clip_z=clip_z)
        if return_history:
            history.append(loss)
    return _host_final_jit(carry[0], generator, features, x, fx, lam, history if return_history else None)


# ------------------------------------------------------------------------- validation

_MODULE_Z_DIMS: dict = {}   # PureNet -> its module's z_dim (None: it has none)
_OUT_SHAPES: dict = {}      # (generator structure, z_dim) -> sample shape G(z)[0]
_CACHE_LIMIT = 256          # plain lambdas made per call would otherwise grow the cache


def _module_z_dim(generator) -> Optional[int]:
    """The ``z_dim`` attribute of a bound gadjax generator's module, else None."""
    if not (isinstance(generator, jax.tree_util.Partial) and isinstance(generator.func, PureNet)
            and len(generator.args) >= 2):
        return None
    net = generator.func
    if net not in _MODULE_Z_DIMS:
        z_dim = getattr(nnx.merge(net.graphdef, *generator.args[:2]), "z_dim", None)
        _MODULE_Z_DIMS[net] = None if z_dim is None else int(z_dim)
    return _MODULE_Z_DIMS[net]


def _resolve_z_dim(generator, z_dim, z_init) -> int:
    """z_dim from the ``z_dim=`` argument, else ``z_init``, else the bound generator's module;
    the sources that are given must agree."""
    from_module = _module_z_dim(generator)
    if z_dim is not None and (isinstance(z_dim, bool) or not isinstance(z_dim, (int, np.integer)) or z_dim < 1):
        raise ValueError(f"z_dim must be an integer >= 1, got {z_dim!r}")
    if z_dim is not None and from_module is not None and z_dim != from_module:
        raise ValueError(f"z_dim={z_dim} but the generator takes codes of size {from_module}")
    z_dim = z_dim if z_dim is not None else from_module
    if z_dim is None and z_init is not None:
        z_dim = z_init.shape[-1]
    if z_dim is None:
        raise ValueError("the latent size cannot be inferred from this generator: pass z_dim= "
                         "(or z_init=, starting codes of shape (B, restarts, z_dim))")
    return int(z_dim)


def _sample_shape(generator, z_dim: int) -> tuple[int, ...]:
    """Shape of one generated sample, from ``jax.eval_shape`` (no FLOPs), cached per
    (generator structure, parameter shapes, z_dim)."""
    leaves, treedef = jax.tree_util.tree_flatten(generator)
    key = (treedef, tuple((np.shape(leaf), str(getattr(leaf, "dtype", type(leaf)))) for leaf in leaves), z_dim)
    try:
        cached = _OUT_SHAPES.get(key)
    except TypeError:  # an unhashable static part: no caching
        key, cached = None, None
    if cached is None:
        try:
            out = jax.eval_shape(lambda g: g(jnp.zeros((1, z_dim), jnp.float32)), generator)
        except Exception as e:  # noqa: BLE001 -- any failure here means a wrong z_dim or generator
            raise ValueError(f"generator(z) failed for z of shape (1, {z_dim}): {e}") from e
        cached = tuple(out.shape[1:])
        if key is not None:
            if len(_OUT_SHAPES) > _CACHE_LIMIT:
                _OUT_SHAPES.clear()
            _OUT_SHAPES[key] = cached
    return cached


def _check(x, steps, lam, learning_rate, restarts, prior, loop, unroll, clip_z):
    for name, value in (("steps", steps), ("restarts", restarts), ("unroll", unroll)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
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
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"x must be an array of samples (B, ...), got {type(x).__name__}")


def _check_samples(x, sample_shape):
    shape = tuple(x.shape)
    if len(shape) != 1 + len(sample_shape) or shape[1:] != sample_shape or shape[0] < 1:
        raise ValueError(f"x must be a batch of samples of shape (B, {', '.join(map(str, sample_shape))}) "
                         f"matching the generator, got {shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point (scaled to the generator's output range), got {x.dtype}")
    bad = int(jnp.size(x) - jnp.sum(jnp.isfinite(x)))
    if bad:
        raise ValueError(f"x contains {bad} non-finite values (NaN or Inf); clean or drop those images")


# -------------------------------------------------------------------------------- API

def search_latent(generator: Callable, features: Callable, x: jax.Array, key: jax.Array, *, steps: int = 500,
                  lam: float = 0.1, learning_rate: float = DEFAULT_LEARNING_RATE, restarts: int = 1,
                  prior: str = "normal", loop: str = "auto", unroll: int = 8, clip_z: Optional[float] = None,
                  z_init: Optional[jax.Array] = None, z_dim: Optional[int] = None, return_history: bool = False,
                  index_offset: int = 0) -> AnoGANResult:
    """AnoGAN score of every image in ``x`` by a latent search of ``steps`` Adam steps.

    Args:
      generator: ``z (B, z_dim) -> samples (B, H, W, C)``, e.g. ``bind(gen, params, stats)``.
      features: ``x -> features (B, F)`` of the critic, e.g. ``features_of(bind(critic, ...))``.
      x: (B, H, W, C) images in the generator's output range.
      key: PRNG key for the starting codes (image i uses ``fold_in(key, index_offset + i)``).
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
      z_dim: the latent size; needed only when it cannot be inferred (from ``z_init``, or
        from a bound gadjax generator, whose module has a ``z_dim``).
      return_history: also return the (B, steps) loss trajectory of the best restart.
      index_offset: index of ``x[0]`` in the whole data set (the per-image keys), so that
        scoring in batches gives every image the start it would get in one call.

    Returns:
      :class:`AnoGANResult` with score (B,), z (B, z_dim), reconstruction (B, H, W, C).
    """
    _check(x, steps, lam, learning_rate, restarts, prior, loop, unroll, clip_z)
    generator, features = as_callable_pytree(generator), as_callable_pytree(features)
    x = jnp.asarray(x)
    if z_init is not None:
        z_init = jnp.asarray(z_init)
        z_init = z_init[:, None] if z_init.ndim == 2 else z_init
    z_dim = _resolve_z_dim(generator, z_dim, z_init)
    _check_samples(x, _sample_shape(generator, z_dim))
    if z_init is not None:
        if z_init.ndim != 3 or z_init.shape[0] != x.shape[0] or z_init.shape[2] != z_dim:
            raise ValueError(f"z_init must have shape (B={x.shape[0]}, restarts, {z_dim}) or "
                             f"(B, {z_dim}), got {z_init.shape}")
        restarts = z_init.shape[1]
    loop = default_loop() if loop == "auto" else loop
    idx = jnp.arange(x.shape[0], dtype=jnp.int32) + index_offset
    lam = jnp.asarray(lam, x.dtype)
    lr = jnp.asarray(learning_rate, x.dtype)
    static = dict(z_dim=z_dim, steps=int(steps), restarts=int(restarts), prior=prior,
                  clip_z=None if clip_z is None else float(clip_z), return_history=bool(return_history))
    if loop == "host":
        return _search_host(generator, features, x, idx, key, lam, lr, z_init, **static)
    return _search_jit(generator, features, x, idx, key, lam, lr, z_init,
                       unroll=int(unroll) if loop == "unrolled" else 1, **static)


def search_latent_per_image(generator: Callable, features: Callable, x: jax.Array, key: jax.Array,
                            **kwargs) -> AnoGANResult:
    """Reference / benchmark baseline: a Python loop over the images, each searched by the
    same compiled program at batch size 1.  Same keys per image, hence the same scores as
    :func:`search_latent` on the whole batch (to float rounding).  Takes the same options."""
    if getattr(x, "ndim", 0) < 2:
        raise ValueError(f"x must be a batch of samples (B, ...), got shape {getattr(x, 'shape', None)}")
    z_init = kwargs.pop("z_init", None)
    offset = kwargs.pop("index_offset", 0)
    results = [search_latent(generator, features, x[i:i + 1], key,
                             z_init=None if z_init is None else z_init[i:i + 1], index_offset=offset + i, **kwargs)
               for i in range(x.shape[0])]
    return AnoGANResult(*(None if parts[0] is None else jnp.concatenate(parts) for parts in zip(*results)))
