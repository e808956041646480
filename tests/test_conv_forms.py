"""gadjax/nets/conv.py: the fast conv forms (im2col, sub-pixel) compute Flax's convs exactly --
outputs and gradients w.r.t. inputs and parameters in float64, and whole GAN training steps."""
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from gadjax.nets import NetSpec, count_params
from gadjax.nets import conv as conv_mod
from gadjax.nets.conv import Conv, ConvTranspose, conv_form, input_grads_only, resolve_form


@contextlib.contextmanager
def float64():
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


def _pair(cls, shape, args, form_kw):
    """(stock layer, fast layer) with identical float64 parameters; input of ``shape``."""
    a = cls(*args, padding="SAME", param_dtype=jnp.float64, form="stock", rngs=nnx.Rngs(0), **form_kw)
    b = cls(*args, padding="SAME", param_dtype=jnp.float64, form="fast", rngs=nnx.Rngs(1), **form_kw)
    b.kernel[...], b.bias[...] = a.kernel[...], a.bias[...] + 0.1
    a.bias[...] = b.bias[...]
    return a, b


# (layer, (B, H, W, C_in), (kernel, C_out)) for the convs the thesis and dcgan nets use
CASES = [
    # thesis critic / encoder: 5x5/2, 28 -> 14 -> 7 -> 4
    (Conv, (2, 28, 28, 1), (5, 3)), (Conv, (2, 14, 14, 3), (5, 4)), (Conv, (2, 7, 7, 4), (5, 5)),
    # thesis generator: 5x5/2 deconvs 4 -> 8, 7 -> 14, 14 -> 28
    (ConvTranspose, (2, 4, 4, 5), (5, 4)), (ConvTranspose, (2, 7, 7, 4), (5, 3)), (ConvTranspose, (2, 14, 14, 3), (5, 1)),
    # dcgan critic 4x4/2 at 16x16, 28x28, 64x64x3
    (Conv, (2, 16, 16, 1), (4, 3)), (Conv, (2, 28, 28, 1), (4, 3)), (Conv, (2, 14, 14, 3), (4, 4)),
    (Conv, (1, 64, 64, 3), (4, 2)), (Conv, (2, 8, 8, 4), (4, 5)), (Conv, (2, 5, 7, 3), (3, 2)),
    # dcgan generator 4x4/2 deconvs: 4 -> 8 -> 16, 7 -> 14 -> 28, 32 -> 64x64x3
    (ConvTranspose, (2, 4, 4, 4), (4, 3)), (ConvTranspose, (2, 8, 8, 3), (4, 1)), (ConvTranspose, (2, 7, 7, 4), (4, 3)),
    (ConvTranspose, (2, 14, 14, 3), (4, 1)), (ConvTranspose, (1, 32, 32, 2), (4, 3)), (ConvTranspose, (2, 5, 3, 2), (3, 2)),
    # a deconv to > 4 channels from a map as large as the kernel (thesis 7->14 at width >= 5)
    (ConvTranspose, (2, 7, 7, 3), (5, 6)),
]


def test_fast_form_equals_stock_in_float64():
    """Every case's output and gradients w.r.t. kernel, bias and input (of a nonlinear function
    of the output), all cases in one jitted function per form (one compile each: fast)."""
    with float64():
        layers, xs, cots = {"stock": [], "fast": []}, [], []
        for i, (cls, shape, (k, cout)) in enumerate(CASES):
            stock, fast = _pair(cls, shape, (shape[-1], cout, (k, k)), {"strides": (2, 2)})
            layers["stock"].append(stock), layers["fast"].append(fast)
            xs.append(jax.random.normal(jax.random.PRNGKey(2 * i), shape, jnp.float64))
            out_shape = jax.eval_shape(lambda x, m=stock: m(x), xs[-1]).shape
            cots.append(jax.random.normal(jax.random.PRNGKey(2 * i + 1), out_shape, jnp.float64))

        def out_and_grads(form):
            graphdefs, params = zip(*(nnx.split(m) for m in layers[form]))

            def all_cases(params, xs):
                res = []
                for g, p, x, cot in zip(graphdefs, params, xs, cots):
                    def loss(p, x, g=g, cot=cot):
                        y = nnx.merge(g, p)(x)
                        return jnp.sum(jnp.tanh(y) * cot), y
                    (_, y), (g_p, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(p, x)
                    res.append([y, g_p["kernel"][...], g_p["bias"][...], g_x])
                return res
            return jax.jit(all_cases)(list(params), xs)

        got_s, got_f = out_and_grads("stock"), out_and_grads("fast")
        for case, a, b in zip(CASES, got_s, got_f):
            assert a[0].dtype == jnp.float64 and a[0].shape == b[0].shape, case
            for what, u, v in zip(("output", "d kernel", "d bias", "d input"), a, b):
                np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-11, err_msg=f"{case}: {what}")


def test_fast_form_second_order_gradient_float64():
    """The gradient penalty differentiates the input gradient w.r.t. the parameters."""
    with float64():
        for cls, shape, kc in (CASES[0], CASES[3]):
            k, cout = kc
            stock, fast = _pair(cls, shape, (shape[-1], cout, (k, k)), {"strides": (2, 2)})
            x = jax.random.normal(jax.random.PRNGKey(4), shape, jnp.float64)

            def gp_grad(layer, x=x):
                graphdef, params = nnx.split(layer)

                def gp(p):
                    g = jax.grad(lambda u: jnp.sum(jnp.tanh(nnx.merge(graphdef, p)(u))))(x)
                    return jnp.sum(g ** 2)
                return jax.jit(jax.grad(gp))(params)["kernel"][...]

            np.testing.assert_allclose(gp_grad(fast), gp_grad(stock), rtol=1e-11, atol=1e-11)


# the form a fast layer takes under input_grads_only() per CASES entry: "lax" (stock lax conv),
# "phase" (a deconv as per-phase stride-1 lax convs: from a map smaller than the kernel, or to > 4
# channels), "phase_grad" (lax conv forward, custom per-phase input gradient: the thesis critic's
# 7->4 conv, to a map smaller than the kernel) or "im2col" (convs to a map as large as the kernel:
# dcgan critic's 8->4, the 3x3 conv to 3x4)
INPUT_GRADS_FORM = ["lax", "lax", "phase_grad", "phase", "lax", "lax",
                    "lax", "lax", "lax", "lax", "im2col", "im2col",
                    "lax", "lax", "lax", "lax", "lax", "lax", "phase"]


def test_input_grads_only_form_equals_stock_in_float64():
    """Under input_grads_only() (the AnoGAN search) each fast layer takes the measured path
    (stock lax conv, phase_grad_conv or im2col / sub-pixel) and gives the stock output and input gradient."""
    with float64():
        for i, ((cls, shape, (k, cout)), form) in enumerate(zip(CASES, INPUT_GRADS_FORM)):
            stock, fast = _pair(cls, shape, (shape[-1], cout, (k, k)), {"strides": (2, 2)})
            x = jax.random.normal(jax.random.PRNGKey(3 * i), shape, jnp.float64)

            def out_and_dx(layer):
                y, vjp = jax.vjp(layer, x)
                return y, vjp(jnp.cos(y))[0]

            with input_grads_only():
                jaxpr = str(jax.make_jaxpr(out_and_dx)(fast))
                got = jax.jit(out_and_dx)(fast)
            assert ("conv_general_dilated" in jaxpr) == (form != "im2col"), (i, CASES[i])
            assert ("custom_vjp" in jaxpr) == (form == "phase_grad"), (i, CASES[i])
            if cls is ConvTranspose:  # the stock deconv is a conv of the 2-dilated input
                assert ("lhs_dilation=(2, 2)" in jaxpr) == (form == "lax"), (i, CASES[i])
            want = jax.jit(out_and_dx)(stock)
            for what, u, v in zip(("output", "d input"), want, got):
                np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-11, err_msg=f"{CASES[i]}: {what}")
        # outside the block the fast form again (a new function: traces are cached per function)
        assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda m: out_and_dx(m))(fast))


def _out_and_grads(f, x, kernel, s, pad, argnums=(0,)):
    """f(x, kernel, (s, s), pad) and its gradients (w.r.t. x, or x and kernel) for a cos(y) cotangent."""
    y, vjp = jax.vjp(lambda u, w: f(u, w, (s, s), pad), x, kernel)
    grads = vjp(jnp.cos(y))
    return (y, *(grads[i] for i in argnums))


def _all_close_in_one_jit(cases, names):
    """cases: (label, want_fn, got_fn) of thunks; all computed in one jitted program (one compile)."""
    results = jax.jit(lambda: [(want(), got()) for _, want, got in cases])()
    for (label, _, _), (want, got) in zip(cases, results):
        for what, u, v in zip(names, want, got):
            np.testing.assert_allclose(v, u, rtol=1e-11, atol=1e-11, err_msg=f"{label}: {what}")


def test_phase_conv_transpose_equals_stock_in_float64():
    """The per-phase form (input_grads_only's transposed conv where the stock one is slow) on every
    ConvTranspose case and a stride-3 one (phases no tap reaches): output and input gradient; with
    ``used`` (a caller that crops, thesis 8x8 -> 7x7) the same crop and input gradient."""
    stock = lambda *a: jax.lax.conv_transpose(*a, dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
    with float64():
        shapes = [(shape, k, cout, 2) for cls, shape, (k, cout) in CASES if cls is ConvTranspose]
        cases, cropped = [], []
        for i, (shape, k, cout, s) in enumerate(shapes + [((2, 3, 4, 2), 2, 3, 3)]):
            x = jax.random.normal(jax.random.PRNGKey(5 * i), shape, jnp.float64)
            kernel = jax.random.normal(jax.random.PRNGKey(5 * i + 1), (k, k, shape[-1], cout), jnp.float64)
            for pad in ("SAME", "VALID"):
                label = f"{shape} k{k} s{s} {pad}"
                args = (x, kernel, s, pad)
                cases.append((label, lambda a=args: _out_and_grads(stock, *a),
                              lambda a=args: _out_and_grads(conv_mod.phase_conv_transpose, *a)))
                if shape[1] != 4 and s == 2:  # used=: the maps smaller than the kernel and stride 3
                    continue
                out = jax.eval_shape(lambda: stock(x, kernel, (s, s), pad)).shape
                h, w = out[1] - 1, max(out[2] - 2, 1)
                crop = lambda f, h=h, w=w: lambda *a: f(*a)[:, :h, :w]  # noqa: E731
                used = lambda *a, h=h, w=w: conv_mod.phase_conv_transpose(*a, used=(h, w))  # noqa: E731
                cropped.append((label + " used", lambda a=args, c=crop: _out_and_grads(c(stock), *a),
                                lambda a=args, c=crop, u=used: _out_and_grads(c(u), *a)))
        _all_close_in_one_jit(cases + cropped, ("output", "d input"))


def test_phase_grad_conv_equals_stock_in_float64():
    """phase_grad_conv (lax forward, per-phase input gradient, im2col kernel gradient) against
    lax.conv_general_dilated's autodiff: output, d input and d kernel, SAME and VALID, strides 1-3."""
    stock = lambda *a: jax.lax.conv_general_dilated(*a, dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
    with float64():
        shapes = [((2, 7, 7, 4), 5, 5, 2), ((2, 8, 8, 3), 4, 2, 2), ((2, 14, 14, 3), 5, 4, 2),
                  ((2, 5, 7, 3), 3, 2, 2), ((2, 7, 8, 2), 2, 3, 3), ((2, 6, 6, 2), 3, 2, 1)]
        cases = []
        for i, (shape, k, cout, s) in enumerate(shapes):
            x = jax.random.normal(jax.random.PRNGKey(7 * i), shape, jnp.float64)
            kernel = jax.random.normal(jax.random.PRNGKey(7 * i + 1), (k, k, shape[-1], cout), jnp.float64)
            for padding in ("SAME", "VALID"):
                args = (x, kernel, s, tuple(jax.lax.padtype_to_pads(shape[1:3], (k, k), (s, s), padding)))
                cases.append((f"{shape} k{k} s{s} {padding}", lambda a=args: _out_and_grads(stock, *a, argnums=(0, 1)),
                              lambda a=args: _out_and_grads(conv_mod.phase_grad_conv, *a, argnums=(0, 1))))
        _all_close_in_one_jit(cases, ("output", "d input", "d kernel"))


def test_form_selection_and_same_parameters():
    assert resolve_form() in conv_mod.FORMS
    assert conv_mod.default_form() == ("fast" if jax.default_backend() == "cpu" else "stock")
    with conv_form("stock"):
        assert resolve_form() == "stock" and resolve_form("fast") == "fast"
        with conv_form("fast"):
            assert resolve_form() == "fast"
        assert resolve_form() == "stock"
    with pytest.raises(ValueError, match="unknown conv form"):
        resolve_form("winograd")
    # same parameter tree (names, shapes) as Flax's layers: checkpoints do not change
    for mine, flax_cls in ((Conv, nnx.Conv), (ConvTranspose, nnx.ConvTranspose)):
        a = nnx.state(mine(3, 4, (5, 5), strides=(2, 2), rngs=nnx.Rngs(0)), nnx.Param)
        b = nnx.state(flax_cls(3, 4, (5, 5), strides=(2, 2), rngs=nnx.Rngs(0)), nnx.Param)
        assert jax.tree.map(jnp.shape, a) == jax.tree.map(jnp.shape, b)
        assert all(np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_env_var_override(monkeypatch):
    monkeypatch.setenv(conv_mod.ENV_VAR, "stock")
    assert resolve_form() == "stock" and Conv(1, 2, (3, 3), rngs=nnx.Rngs(0)).form == "stock"
    monkeypatch.setenv(conv_mod.ENV_VAR, "auto")
    assert resolve_form() == conv_mod.default_form()


def _trainer_step(spec, loss, form):
    from gadjax.train.gan import GANConfig, GANTrainer
    with conv_form(form):
        trainer = GANTrainer(GANConfig(nets=spec, loss=loss, n_critic=1))
    state = trainer.init(jax.random.PRNGKey(0))
    h, w, c = spec.image_shape
    real = np.random.default_rng(0).uniform(0, 1, (1, 4, h, w, c))
    state, metrics = trainer.step(state, trainer.put_batches(real))
    return jax.tree.map(np.asarray, state.params), {k: float(v) for k, v in metrics.items()}


@pytest.mark.slow  # two GANTrainer compiles per case (~15-25 s each on a loaded 2-core CPU)
@pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")  # x64 BatchNorm stats
@pytest.mark.parametrize("spec, loss", [
    (NetSpec("thesis", (28, 28, 1), z_dim=8, width=4), "wgan-gp"),
    (NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4, critic_norm="batch"), "dcgan"),  # BatchNorm in both nets
], ids=["thesis", "dcgan16"])
def test_trainer_step_same_parameters(spec, loss):
    # float64 data and noise (the float32 parameters are promoted): a zero-mean gradient, e.g. of a
    # bias before BatchNorm, is then ~1e-17 instead of float32 noise that Adam's first step blows up to +-lr
    with float64():
        p_s, m_s = _trainer_step(spec, loss, "stock")
        p_f, m_f = _trainer_step(spec, loss, "fast")
    assert count_params(p_s) == count_params(p_f)
    assert jax.tree.structure(p_s) == jax.tree.structure(p_f)
    for k in m_s:
        np.testing.assert_allclose(m_f[k], m_s[k], rtol=1e-4, atol=1e-5, err_msg=k)
    for a, b in zip(jax.tree.leaves(p_s), jax.tree.leaves(p_f)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-6)
