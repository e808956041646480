r"""gadjax GANomaly vs anomalib's GANomaly (PyTorch): one training step and scoring a batch.

    # writes bench/results/anomalib_peer.md; the second run adds a section (paper width 64)
    OMP_WAIT_POLICY=PASSIVE python bench/anomalib_peer.py --image-size 32 --width 16 --batch 64 \
        --repeats 30 --threads 2 1
    OMP_WAIT_POLICY=PASSIVE python bench/anomalib_peer.py --image-size 32 --width 64 --batch 64 \
        --repeats 10 --threads 2 1 --append

Optional install (PyTorch and anomalib are *not* gadjax dependencies; torch first, the CPU
wheel 2.13.0+cpu here, so that nothing replaces it):

    pip install torch==2.13.0
    pip install --no-deps anomalib==2.7.0

The peer is an installed, independently written implementation: anomalib's
``GanomalyModel`` (``anomalib/models/image/ganomaly/torch_model.py``) and its
``GeneratorLoss`` / ``DiscriminatorLoss`` (``loss.py``), unmodified.  The only code written
here for the torch side is the optimiser loop of anomalib's Lightning module
(``lightning_model.py: Ganomaly.training_step``, manual optimisation), reproduced
statement for statement in ``anomalib_step``: one generator forward in train mode,
D(real) and D(fake), generator loss, ``g_opt.zero_grad(); backward(retain_graph=True);
g_opt.step()``, then D(fake.detach()), discriminator loss with the *same* D(real),
``d_opt.zero_grad(); backward(); d_opt.step()``, and the two ``.item()`` calls its
``log_dict`` makes.  Lightning's own per-step machinery (hooks, logging, progress bar) is
not included.  Scoring = ``GanomalyModel.forward`` in eval mode under
``torch.inference_mode()`` (what Lightning's predict/test loops run).

How anomalib is imported (what is stubbed, and why).  ``anomalib`` 2.7.0's package
``__init__``s pull in the whole library: ``anomalib.models`` imports every model plus
``jsonargparse``, ``omegaconf`` and ``lightning``; ``anomalib.data`` imports ``torchvision``,
``opencv``, ``tifffile``, ``matplotlib``, ``kornia``, ...  ``torchvision`` is a compiled
extension tied to one torch build, and the rest is unrelated to the model being timed.
So ``anomalib`` is installed with ``--no-deps`` (``pip check`` then lists its unmet
requirements; none of them is used) and ``load_anomalib``

  * imports the real top-level ``anomalib`` package (its ``__init__`` defines enums and
    ``__version__`` only);
  * loads ``models/image/ganomaly/torch_model.py`` and ``loss.py`` straight from anomalib's
    installed files (``importlib.util.spec_from_file_location``), so no package
    ``__init__`` below ``anomalib`` runs;
  * while those two files execute, puts stand-in modules in ``sys.modules`` (removed
    again afterwards): ``anomalib.data`` holding ``InferenceBatch``,
    ``anomalib.data.utils.image`` holding ``pad_nextpow2`` -- the only two names
    ``torch_model.py`` imports from anomalib (``loss.py`` imports only torch) -- and an
    empty ``anomalib.data.utils`` between them.  Neither name is re-implemented: their
    definitions are extracted verbatim from anomalib's own files
    (``data/dataclasses/torch/base.py``, ``data/utils/image.py``) with ``ast`` and executed
    with only ``math``, ``torch``, ``torch.nn.functional`` and ``typing.NamedTuple`` in
    scope.  (``pad_nextpow2`` is a no-op for the power-of-two sizes used here.)

Same networks?  Both are the DCGAN encoder-decoder-encoder of GANomaly at the same
image size (32x32x3 or 64x64x3: anomalib's encoder needs >= 32), width
(``n_features`` = gadjax ``width``), latent size (100), 0 extra layers: encoders
conv 4x4/2 (w, 2w, 4w, ...) with LeakyReLU 0.2 and BatchNorm after all but the first,
a 4x4 'valid' conv (anomalib) / a linear layer on the flattened 4x4 map (gadjax, the same
matrix) to z; decoder z -> 4x4x(2^k w) -> transposed convs 4x4/2 with BatchNorm + ReLU
-> tanh; discriminator = the encoder trunk + 4x4 conv / linear to one logit.  The
differences, all in anomalib's code as shipped:

  * **Biases.** anomalib's convs have ``bias=False``; gadjax's convs, transposed convs
    and linear layers have biases.  Parameter counts therefore differ by exactly the
    biases (``bias_difference``): generator 2 (7w + z) + (64w + 3w + C) at 32x32
    (both encoders' conv biases + z head bias, the decoder's 4x4x4w projection bias and
    transposed-conv biases); discriminator 7w + 1.  E.g. w 16, z 100, C 3: generator
    gadjax 434,491 / anomalib 432,992 (+1,499); discriminator 43,057 / 42,944 (+113).
    At 64x64 (4 stages): generator 2 (15w + z) + (128w + 7w + C), discriminator 15w + 1.
    The printed counts are checked against these formulas.
  * **First conv padding.** anomalib's first encoder / discriminator conv uses
    ``padding=4`` (the GANomaly reference code and gadjax's 'SAME' use 1), so its first
    feature maps are 19x19 and 9x9 instead of 16x16 and 8x8 at 32x32 input (35/17/8 vs
    32/16/8 at 64x64), i.e. more convolution work in the three encoder trunks.  The
    script prints both sides' FLOPs per step / per scoring batch (gadjax: XLA cost
    analysis of the compiled program, all ops; anomalib: ``torch.utils.flop_counter``,
    matmuls and convolutions only).
  * **Losses.** Same weights (w_adv 1, w_con 50, w_enc 1), same L_con (mean |x - x_hat|)
    and discriminator loss ((BCE(D(x), 1) + BCE(D(x_hat), 0)) / 2); anomalib's
    L_adv is the MSE between D's *sigmoid outputs* on x and x_hat (gadjax: feature
    matching of the last conv features, the paper's) and its L_enc is ``SmoothL1``
    (gadjax: mean squared error, the paper's).  Negligible work either way.
  * **Update order.** Both update G, then D (the reference's order).  gadjax's D update
    re-runs G on the batch with the just-updated weights, and its step also contains the
    reference's conditional D re-initialisation (``lax.cond``, not taken here); anomalib
    reuses the pre-update fakes and D(real) (``retain_graph``), so it runs one generator
    forward fewer, but its generator backward also back-propagates into D's weights
    through both D(real) and D(fake) (grads that ``d_opt.zero_grad()`` then drops).
  * Scores: both ``mean_k (z_k - z_hat_k)^2`` per image, BatchNorm in inference mode.

Both optimisers are Adam(2e-4, betas (0.5, 0.999)); weights N(0, 0.02) (both sides'
DCGAN init); float32; the same random batch (uniform [-1, 1], NHWC for gadjax, NCHW for
torch).  Not the same function (see above), so the check is "both run and give finite
losses and scores", not equal numbers.

Timing follows ``bench/torch_peer.py``: the first call of each side (gadjax: lower + XLA
compile, then the first run; torch: the first call at that thread count) is reported
separately, then ``--repeats`` calls are interleaved gadjax, torch (each thread count),
gadjax, ... so background load hits all alike; median and IQR, ratio torch / gadjax as a
ratio of medians and as the median of per-repeat paired ratios (< 1: torch faster).  torch
runs at each ``--threads`` count (``torch.set_num_threads``); gadjax uses XLA's default CPU
thread pool.  ``OMP_WAIT_POLICY=PASSIVE`` is set (if unset) before torch is imported: on a
busy CPU torch's spinning OpenMP workers can make a 2-thread step ~50x slower
(bench/results/torch_peer.md).  The Markdown page goes to ``--out`` (``--append``: add this
run's section to the page instead of rewriting it).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import datetime
import importlib.util
import math
import os
import pathlib
import shlex
import sys
import time
import types
from importlib import metadata

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch (libgomp) initialises

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import interleaved_medians, machine_info, timed  # noqa: E402
from mfu import xla_flops  # noqa: E402

from gadjax.models import score_batch  # noqa: E402
from gadjax.models.ganomaly import GANomalyConfig, GANomalyTrainer, ganomaly_scores  # noqa: E402
from gadjax.nets import NetSpec, bind, count_params  # noqa: E402

DEFAULT_OUT = pathlib.Path(__file__).resolve().parent / "results" / "anomalib_peer.md"


# ------------------------------------------------------------------ anomalib, without its package __init__s
def _extract(path: pathlib.Path, name: str, namespace: dict) -> object:
    """Execute the top-level definition ``name`` of the Python file ``path`` in ``namespace``."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == name]
    if len(nodes) != 1:
        raise ImportError(f"{name} not found once in {path}")
    exec(compile(ast.Module(body=nodes, type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102
    return namespace[name]


@contextlib.contextmanager
def _modules(extra: dict[str, types.ModuleType]):
    """Temporarily add ``extra`` to ``sys.modules``."""
    saved = {k: sys.modules.get(k) for k in extra}
    sys.modules.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def load_anomalib() -> types.SimpleNamespace:
    """anomalib's GANomaly ``torch_model`` and ``loss`` modules, loaded from its files (see
    the module docstring) -> namespace(torch_model, loss, version, root)."""
    import typing

    import anomalib  # the real top-level package: enums and __version__ only

    root = pathlib.Path(anomalib.__file__).resolve().parent
    ganomaly = root / "models" / "image" / "ganomaly"
    ns = {"math": math, "torch": torch, "F": torch.nn.functional, "NamedTuple": typing.NamedTuple}
    inference_batch = _extract(root / "data" / "dataclasses" / "torch" / "base.py", "InferenceBatch", dict(ns))
    pad_nextpow2 = _extract(root / "data" / "utils" / "image.py", "pad_nextpow2", dict(ns))

    def stub(name, **attrs):
        m = types.ModuleType(name)
        m.__path__ = []  # a package, so submodule imports resolve through sys.modules
        m.__dict__.update(attrs)
        return m

    stubs = {"anomalib.data": stub("anomalib.data", InferenceBatch=inference_batch),
             "anomalib.data.utils": stub("anomalib.data.utils"),
             "anomalib.data.utils.image": stub("anomalib.data.utils.image", pad_nextpow2=pad_nextpow2)}
    out = {}
    with _modules(stubs):
        for part in ("torch_model", "loss"):
            spec = importlib.util.spec_from_file_location(f"_anomalib_ganomaly_{part}", ganomaly / f"{part}.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            out[part] = module
    version = getattr(anomalib, "__version__", None) or metadata.version("anomalib")
    return types.SimpleNamespace(torch_model=out["torch_model"], loss=out["loss"], version=version, root=root)


# ------------------------------------------------------------------ builders
def bias_difference(image_size: int, channels: int, width: int, z_dim: int) -> tuple[int, int]:
    """(generator, discriminator) parameters gadjax has and anomalib has not: the biases.

    n = number of stride-2 stages (3 at 32x32, 4 at 64x64); trunk conv widths w .. 2^(n-1) w.
    """
    n = int(math.log2(image_size // 4))
    top = width * 2 ** (n - 1)                        # widest feature map (4x4)
    trunk = sum(width * 2 ** i for i in range(n))     # conv biases of one encoder / D trunk
    decoder = 16 * top + (trunk - top) + channels     # 4x4 projection, transposed convs, to_image
    return 2 * (trunk + z_dim) + decoder, trunk + 1


def build_gadjax(image_size: int, channels: int, width: int, z_dim: int, batch: int, seed: int = 0):
    """-> (trainer, state, batches (1, B, H, W, C) on device, x numpy (B, H, W, C))."""
    trainer = GANomalyTrainer(NetSpec("dcgan", (image_size, image_size, channels), z_dim=z_dim, width=width),
                              GANomalyConfig())
    state = trainer.init(jax.random.PRNGKey(seed))
    x = np.random.default_rng(seed).uniform(-1, 1, (batch, image_size, image_size, channels)).astype(np.float32)
    return trainer, state, trainer.put_batches(x[None]), x


def build_anomalib(ano, image_size: int, channels: int, width: int, z_dim: int, config: GANomalyConfig,
                   seed: int = 0):
    """anomalib's model, losses and optimisers as its Lightning module configures them.

    -> namespace(model, g_loss, d_loss, opt_d, opt_g)."""
    torch.manual_seed(seed)
    model = ano.torch_model.GanomalyModel(input_size=(image_size, image_size), num_input_channels=channels,
                                          n_features=width, latent_vec_size=z_dim, extra_layers=0,
                                          add_final_conv_layer=True)
    model.train()
    betas = (config.beta1, config.beta2)
    return types.SimpleNamespace(
        model=model,
        g_loss=ano.loss.GeneratorLoss(wadv=config.w_adv, wcon=config.w_con, wenc=config.w_enc),
        d_loss=ano.loss.DiscriminatorLoss(),
        # configure_optimizers: [optimizer_d, optimizer_g]
        opt_d=torch.optim.Adam(model.discriminator.parameters(), lr=config.learning_rate, betas=betas),
        opt_g=torch.optim.Adam(model.generator.parameters(), lr=config.learning_rate, betas=betas))


def anomalib_step(peer, images: torch.Tensor) -> dict:
    """One training step as anomalib's ``Ganomaly.training_step`` (manual optimisation)."""
    d_opt, g_opt = peer.opt_d, peer.opt_g
    # forward pass
    padded, fake, latent_i, latent_o = peer.model(images)
    pred_real, _ = peer.model.discriminator(padded)
    # generator update
    pred_fake, _ = peer.model.discriminator(fake)
    g_loss = peer.g_loss(latent_i, latent_o, padded, fake, pred_real, pred_fake)
    g_opt.zero_grad()
    g_loss.backward(retain_graph=True)  # Lightning's manual_backward
    g_opt.step()
    # discriminator update
    pred_fake, _ = peer.model.discriminator(fake.detach())
    d_loss = peer.d_loss(pred_real, pred_fake)
    d_opt.zero_grad()
    d_loss.backward()
    d_opt.step()
    return {"generator_loss": g_loss.item(), "discriminator_loss": d_loss.item()}  # as its log_dict


def anomalib_scores(model, images: torch.Tensor) -> torch.Tensor:
    """``GanomalyModel`` inference (the model must be in eval mode) -> scores (B,)."""
    with torch.inference_mode():
        return model(images).pred_score


def param_counts(trainer, state, peer) -> dict:
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"generator": (count_params(state.params["generator"]), n(peer.model.generator)),
            "discriminator": (count_params(state.params["discriminator"]), n(peer.model.discriminator))}


def torch_flops(fn) -> int:
    """Matmul/convolution FLOPs of ``fn()`` (forward and backward) by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def without_note(argv: list[str]) -> list[str]:
    """The command-line arguments minus ``--note TEXT`` (recorded separately on the page)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--note":
            skip = True
        elif not a.startswith("--note="):
            out.append(a)
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        return "?"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image-size", type=int, default=32, choices=(32, 64), help="square images, side")
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--width", type=int, default=16, help="gadjax width = anomalib n_features")
    ap.add_argument("--z-dim", type=int, default=100, help="gadjax z_dim = anomalib latent_vec_size")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats of the training step")
    ap.add_argument("--score-repeats", type=int, default=None, help="timed repeats of scoring (default --repeats)")
    ap.add_argument("--threads", type=int, nargs="+", default=[len(os.sched_getaffinity(0)), 1],
                    help="torch.set_num_threads values to time (first: used for the first calls)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="Markdown page to write ('' = do not write)")
    ap.add_argument("--append", action="store_true", help="append this run's section to --out instead of "
                    "rewriting the page (for a second configuration)")
    ap.add_argument("--note", default="", help="a paragraph to put at the top of this run's section")
    args = ap.parse_args(argv)
    threads = list(dict.fromkeys(args.threads))
    torch.set_num_threads(threads[0])
    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = "%.2f %.2f %.2f" % os.getloadavg()

    ano = load_anomalib()
    S, C, W, Z, B = args.image_size, args.channels, args.width, args.z_dim, args.batch
    command = (f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']} python bench/anomalib_peer.py "
               + shlex.join(without_note(sys.argv[1:] if argv is None else list(argv))))
    info = machine_info()
    versions = (f"torch {torch.__version__} (threads {threads}, interop {torch.get_num_interop_threads()}) | "
                f"anomalib {ano.version} | OMP_WAIT_POLICY {os.environ['OMP_WAIT_POLICY']} | CPU {cpu_model()}")
    print("command: " + command)
    print(info)
    print(versions)

    trainer, state, batches, x = build_gadjax(S, C, W, Z, B)
    cfg = trainer.config
    peer = build_anomalib(ano, S, C, W, Z, cfg)
    x_t = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    counts = param_counts(trainer, state, peer)
    extra = dict(zip(("generator", "discriminator"), bias_difference(S, C, W, Z)))
    print("\nparameters (gadjax / anomalib; gadjax - anomalib = biases):")
    for net, (j, t) in counts.items():
        print(f"  {net}: {j:,} / {t:,} (+{j - t:,}; expected +{extra[net]:,})")
    assert all(j - t == extra[net] for net, (j, t) in counts.items()), "parameter counts differ unexpectedly"

    probe = copy.deepcopy(peer)  # for the FLOP count, after the first calls (which it would warm up)

    # ---- gadjax first calls: lower + compile, then the first run (the step donates its state)
    frozen = jax.tree.map(jnp.copy, (state.params["generator"], state.stats["generator"]))
    x_j = jnp.asarray(x)
    t0 = time.perf_counter()
    step_c = trainer.step.lower(state, batches).compile()
    t_compile = time.perf_counter() - t0
    t_run, (state, m_j) = timed(lambda: jax.block_until_ready(step_c(state, batches)))
    first = {("step", "gadjax"): t_compile + t_run}
    # The detector's one jitted scorer (score_fn and config static): compiled(nets, x).
    nets = {"generator": bind(trainer.generator, *frozen)}
    t0 = time.perf_counter()
    score_c = score_batch.lower(ganomaly_scores, nets, x_j, cfg).compile()
    t_score_compile = time.perf_counter() - t0
    t_run, s_j = timed(lambda: jax.block_until_ready(score_c(nets, x_j)["score"]))
    first[("score", "gadjax")] = t_score_compile + t_run
    f_step_j, f_score_j = xla_flops(step_c), xla_flops(score_c)

    # ---- anomalib first calls at threads[0]; scoring on an eval-mode copy of the initial model
    scorer = copy.deepcopy(peer.model).eval()
    t_first, m_t = timed(lambda: anomalib_step(peer, x_t))
    first[("step", f"anomalib, {threads[0]} thr")] = t_first
    t_first, s_t = timed(lambda: anomalib_scores(scorer, x_t))
    first[("score", f"anomalib, {threads[0]} thr")] = t_first
    f_step_t = torch_flops(lambda: anomalib_step(probe, x_t))
    f_score_t = torch_flops(lambda: anomalib_scores(probe.model.eval(), x_t))

    print("\nfirst step (different loss formulas, see the docstring; both must be finite):")
    keys = ("generator_loss", "discriminator_loss")
    for k in keys:
        print(f"  {k}: gadjax {float(m_j[k]):.4f} / anomalib {m_t[k]:.4f}")
    print("  gadjax terms: " + ", ".join(f"{k} {float(m_j[k]):.4f}" for k in ("adv_loss", "con_loss", "enc_loss")))
    print(f"scores of the batch (initial nets): gadjax mean {float(np.mean(s_j)):.4g} shape {tuple(s_j.shape)}; "
          f"anomalib mean {float(s_t.mean()):.4g} shape {tuple(s_t.shape)}")
    finite = (all(math.isfinite(float(m_j[k])) and math.isfinite(m_t[k]) for k in keys)
              and bool(np.isfinite(np.asarray(s_j)).all()) and bool(torch.isfinite(s_t).all()))
    assert finite and s_j.shape == s_t.shape == (B,), "non-finite losses/scores or wrong score shape"
    gf = lambda f: f"{f / 1e9:.2f}" if f else "n/a"  # noqa: E731
    print(f"GFLOP per step: gadjax (XLA, all ops) {gf(f_step_j)} / anomalib (torch counter, conv+matmul) "
          f"{gf(f_step_t)}; per scoring batch {gf(f_score_j)} / {gf(f_score_t)}")

    # ---- timing, interleaved
    holder = {"state": state}

    def jax_step():
        holder["state"], m = step_c(holder["state"], batches)
        return jax.block_until_ready(m)

    def threaded(n, fn):
        return lambda: (torch.set_num_threads(n), fn())[1]

    step_name, score_name = "training step (G + D update)", "scoring a batch"
    cases = {
        "step": [("gadjax", jax_step)]
        + [(f"anomalib, {n} thr", threaded(n, lambda: anomalib_step(peer, x_t))) for n in threads],
        "score": [("gadjax", lambda: jax.block_until_ready(score_c(nets, x_j)["score"]))]
        + [(f"anomalib, {n} thr", threaded(n, lambda: anomalib_scores(scorer, x_t))) for n in threads],
    }
    timings = interleaved_medians(cases, first, {"step": args.repeats, "score": args.score_repeats or args.repeats})
    rows = [((step_name if case == "step" else score_name), name, *t[:7], B / t.median)
            for case, res in timings.items() for name, t in res.items()]
    final_finite = bool(jax_step()["finite"]) and all(math.isfinite(v) for v in anomalib_step(peer, x_t).values())
    load1 = "%.2f %.2f %.2f" % os.getloadavg()
    ended = datetime.datetime.now(datetime.timezone.utc)

    setup = (f"GANomaly {S}x{S}x{C}, width (n_features) {W}, latent {Z}, batch {B}, float32; "
             f"w_adv {cfg.w_adv:g}, w_con {cfg.w_con:g}, w_enc {cfg.w_enc:g}; Adam lr {cfg.learning_rate:g}, "
             f"betas ({cfg.beta1:g}, {cfg.beta2:g}); interleaved repeats; load avg {load0} at the start, "
             f"{load1} at the end; {started:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC")
    table = ["| case | framework | first call s | repeats | median ms (IQR) | images / s "
             "| torch / gadjax (medians) | torch / gadjax (median of paired) |",
             "|---|---|---|---|---|---|---|---|"]
    for case, name, f, med, q1, q3, ratio, paired, n, ips in rows:
        table.append(f"| {case} | {name} | {f:.2f} | {n} | {1e3 * med:.1f} ({1e3 * q1:.1f}-{1e3 * q3:.1f}) "
                     f"| {ips:,.0f} | {ratio:.2f} | {paired:.2f} |")
    print(f"\n{setup}\n")
    print("\n".join(table))
    print(f"losses finite after the timed steps: {final_finite}")

    if args.out:
        out = pathlib.Path(args.out)
        section = run_section(args, command, info, versions, setup, table, counts, extra,
                              (f_step_j, f_step_t, f_score_j, f_score_t), m_j, m_t, t_compile, t_score_compile,
                              final_finite)
        if args.append and out.exists():
            out.write_text(out.read_text().rstrip("\n") + "\n\n" + section)
        else:
            out.write_text(PAGE_HEADER + "\n" + section)
        print(f"{'appended to' if args.append else 'wrote'} {out}")
    return rows


PAGE_HEADER = """\
# Speed against a peer: gadjax GANomaly vs anomalib's GANomaly (PyTorch)

Written by `bench/anomalib_peer.py` (its docstring explains every choice; regenerate this
page by rerunning the commands below, the second and later ones with `--append`).  The peer
is the installed `anomalib` package's own `GanomalyModel`, `GeneratorLoss` and
`DiscriminatorLoss`, driven by the optimiser loop of anomalib's Lightning `training_step`
(G update, then D update, reusing D(real)).  Optional install, not a gadjax dependency:

```bash
pip install torch==2.13.0            # the CPU wheel, 2.13.0+cpu (bench/results/torch_peer.md)
pip install --no-deps anomalib==2.7.0
```

`anomalib`'s package `__init__`s import lightning, jsonargparse, torchvision, opencv, ...
(none installed): the script loads only `models/image/ganomaly/torch_model.py` and
`loss.py` from the installed files, with `InferenceBatch` and `pad_nextpow2` (the two names
they import from `anomalib.data`) extracted verbatim from anomalib's own source.
`tests/test_anomalib_peer.py` (skipped without anomalib) runs one step of both sides on a
tiny configuration and checks the parameter counts.

## Same networks, up to these differences (all in anomalib's code as shipped)

- Biases: anomalib's convolutions have none; gadjax's convolutions, transposed convolutions
  and linear layers do.  The parameter counts (per run below) differ by exactly the biases.
- anomalib's first encoder/discriminator conv pads 4 (the reference code and gadjax's 'SAME':
  1), so its first feature maps are larger (19x19, 9x9 instead of 16x16, 8x8 at 32x32; 35,
  17, 8 instead of 32, 16, 8 at 64x64): more convolution work in each of the three encoder
  trunks.  FLOPs per run below (gadjax: XLA cost analysis of the compiled program, all ops;
  anomalib: `torch.utils.flop_counter`, convolutions and matmuls, forward + backward).
- Losses: same weights (1, 50, 1), same L_con (L1) and D loss (mean of the two BCEs);
  anomalib's L_adv is the MSE of D's sigmoid outputs on x and x_hat (gadjax: feature
  matching, the paper's) and its L_enc is SmoothL1 (gadjax: L2, the paper's).
- Step: gadjax's D update re-runs G with the just-updated weights (and carries the
  reference's conditional D re-initialisation, not taken); anomalib reuses the pre-update
  fakes, but its generator backward also reaches D's weights through D(real) and D(fake).
- Same: Adam(2e-4, betas (0.5, 0.999)) for both players, N(0, 0.02) init, BatchNorm,
  tanh output, score `mean (z - z_hat)^2` with BatchNorm in inference mode, float32, the
  same random batch (uniform [-1, 1]).  Not the same function, so the runs check that both
  sides give finite losses and scores, not equal numbers.
- Timing as `bench/torch_peer.py`: first calls separately (gadjax: lower + XLA compile +
  first run), then repeats interleaved gadjax, torch (each thread count), ...; median and
  IQR; ratio torch / gadjax (< 1: anomalib faster) as a ratio of medians and as the median
  of per-repeat paired ratios.  gadjax uses XLA's default CPU thread pool, torch the thread
  count in the row (`torch.set_num_threads`), `OMP_WAIT_POLICY=PASSIVE`.
"""


def run_section(args, command, info, versions, setup, table, counts, extra, flops, m_j, m_t, t_compile,
                t_score_compile, final_finite) -> str:
    gf = lambda f: f"{f / 1e9:.2f}" if f else "n/a"  # noqa: E731
    f_step_j, f_step_t, f_score_j, f_score_t = flops
    lines = [f"## Run: {args.image_size}x{args.image_size}x{args.channels}, width {args.width}, "
             f"batch {args.batch}", ""]
    if args.note:
        lines += [args.note, ""]
    lines += ["```bash", command, "```", "", "```", info, versions, "```", "", setup + ".", "",
              "| | generator params | discriminator params | GFLOP / training step | GFLOP / scoring batch |",
              "|---|---|---|---|---|",
              f"| gadjax | {counts['generator'][0]:,} | {counts['discriminator'][0]:,} | {gf(f_step_j)} "
              f"| {gf(f_score_j)} |",
              f"| anomalib | {counts['generator'][1]:,} | {counts['discriminator'][1]:,} | {gf(f_step_t)} "
              f"| {gf(f_score_t)} |",
              f"| difference | +{counts['generator'][0] - counts['generator'][1]:,} "
              f"(biases: +{extra['generator']:,}) | +{counts['discriminator'][0] - counts['discriminator'][1]:,} "
              f"(biases: +{extra['discriminator']:,}) | | |",
              "",
              f"First step (different formulas, hence different values): generator loss gadjax "
              f"{float(m_j['generator_loss']):.4f} / anomalib {m_t['generator_loss']:.4f}, discriminator loss "
              f"{float(m_j['discriminator_loss']):.4f} / {m_t['discriminator_loss']:.4f}; losses finite after "
              f"all timed steps: {final_finite}.  gadjax lower + compile: step {t_compile:.2f} s, scoring "
              f"{t_score_compile:.2f} s (included in \"first call s\").",
              "", *table, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
