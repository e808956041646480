"""The PyTorch-peer table of ``bench/gpu_suite.py``: gadjax vs ``bench/torch_peer.py`` on one device.

torch is optional: without it (or, in the full mode, without CUDA) the table says so.  The peer
is the thesis nets (28x28x1, z_dim 128) written layer for layer in torch; gadjax's initial
weights are copied into it, so both search from the same function and the same starting
codes, and the scores are compared before anything is timed.  Cases, interleaved repeat by
repeat (``harness.interleaved_medians``) so background load hits every implementation alike:

  * WGAN-GP step: gadjax ``GANTrainer.step`` (default n_critic loop) vs torch eager.
    ``torch.compile`` is not timed for the step: its gradient penalty needs a double backward,
    which aot_autograd does not support (bench/torch_peer.py's docstring).
  * AnoGAN search of the batch, K Adam steps on z: gadjax ``search_latent`` (loop 'auto') vs torch
    eager and, in the full mode, ``torch.compile``-d nets (skipped with ``--smoke``: minutes of
    inductor compiles on a CPU).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import sys

import numpy as np


def _cases(run, width: int, device):
    """{case: [(implementation, fn)]}, first-call seconds already measured, notes."""
    import jax
    import jax.numpy as jnp
    import torch
    import torch_peer as peer
    from harness import timed

    from gadjax.models.anogan_search import search_latent
    from gadjax.nets import NetSpec, bind, features_of
    from gadjax.train.gan import GANConfig, GANTrainer

    s, z_dim = run.settings, 128
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    trainer = GANTrainer(GANConfig(nets=NetSpec("thesis", (28, 28, 1), z_dim=z_dim, width=width), loss="wgan-gp",
                                   n_critic=s.n_critic))
    obj, state = trainer.objective, trainer.init(jax.random.PRNGKey(0))
    frozen = jax.tree.map(jnp.copy, (state.params, state.stats))  # the step donates the state's buffers
    G, D = peer.Generator(z_dim, width), peer.Critic(width)       # the search's nets (frozen)
    G_step, D_step = peer.Generator(z_dim, width), peer.Critic(width)  # trained by the timed steps
    for g, d in ((G, D), (G_step, D_step)):
        peer.to_torch(frozen[0]["generator"], frozen[0]["critic"], g, d)
        g.to(device)
        d.to(device)
    G.requires_grad_(False)
    D.requires_grad_(False)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=obj.learning_rate, betas=(0.0, 0.9)) for m in (G_step, D_step))
    real = np.random.default_rng(0).uniform(0, 1, (s.n_critic, s.batch, 28, 28, 1)).astype(np.float32)
    batches = trainer.put_batches(real)
    batches_t = torch.from_numpy(real.transpose(0, 1, 4, 2, 3).copy()).to(device)

    # Search: gadjax image i starts from sample_latent(fold_in(key, i), 1): give torch the same codes.
    g_j = bind(trainer.generator, frozen[0]["generator"], frozen[1]["generator"])
    f_j = features_of(bind(trainer.critic, frozen[0]["critic"], frozen[1]["critic"]))
    key, k, x, x_t = jax.random.PRNGKey(1), s.torch_search_steps, jnp.asarray(real[0]), batches_t[0]
    z0 = torch.cat([torch.from_numpy(np.array(trainer.latent(jax.random.fold_in(key, i), 1)))  # a writable copy
                    for i in range(s.batch)]).to(device)

    def torch_search(g, f):
        def fn():
            out = peer.torch_search(g, f, x_t, z0, k)
            sync()
            return out
        return fn

    holder = {"state": state}

    def jax_step():
        holder["state"], metrics = trainer.step(holder["state"], batches)
        return jax.block_until_ready(metrics)

    def jax_search():
        return jax.block_until_ready(search_latent(g_j, f_j, x, key, steps=k).score)

    def eager_step():  # its .item()s wait for the device
        return peer.torch_step(G_step, D_step, opt_g, opt_d, batches_t, obj.gp_weight)

    step, search = "WGAN-GP step", f"AnoGAN search K={k}"
    first = {(step, "gadjax"): timed(jax_step)[0]}
    first[(search, "gadjax")], s_j = timed(jax_search)
    first[(search, "torch eager")], s_t = timed(torch_search(G, D.features))
    s_j, notes = np.asarray(s_j), []

    def rel(scores) -> float:
        return float(np.max(np.abs(scores.cpu().numpy() - s_j) / np.abs(s_j)))
    notes.append(f"width {width}: AnoGAN scores from the same weights and codes, torch eager vs gadjax: "
                 f"max relative difference {rel(s_t):.1e}")
    cases = {step: [("gadjax", jax_step), ("torch eager", eager_step)],
             search: [("gadjax", jax_search), ("torch eager", torch_search(G, D.features))]}
    if s.torch_compile and not run.smoke:
        compiled = torch_search(torch.compile(G), torch.compile(D.features))
        out, err = run.attempt(functools.partial(timed, compiled))
        if out is None:
            notes.append(f"width {width}: torch.compile search failed: {err}")
        else:
            first[(search, "torch.compile")] = out[0]
            cases[search].append(("torch.compile", compiled))
            notes.append(f"width {width}: torch.compile vs gadjax scores: max relative difference {rel(out[1]):.1e}")
    return cases, first, notes


def torch_peer(run) -> str:
    from gpu_tables import md, page

    title = "gadjax vs the PyTorch peer (bench/torch_peer.py), thesis nets 28x28x1, z_dim 128"
    if importlib.util.find_spec("torch") is None:
        return page(title, "skipped: torch is not importable in this environment.", "")
    # Before torch loads OpenMP: its spinning workers slowed a CPU step ~8x while XLA's threads
    # shared the cores (bench/torch_peer.py); no effect on CUDA kernels.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    from harness import interleaved_medians

    if not torch.cuda.is_available() and not run.smoke:
        return page(title, f"skipped: torch {torch.__version__} sees no CUDA device (the peer must share the GPU).",
                    "")
    s = run.settings
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    rows, notes = [], []
    for width in s.torch_widths:
        cases, first, more = _cases(run, width, device)
        notes += more
        timings = interleaved_medians(cases, first, s.torch_repeats, baseline="gadjax", log=sys.stderr)
        for case, res in timings.items():
            for name, t in res.items():
                iqr = f"{1e3 * t.median:.2f} ({1e3 * t.q1:.2f}-{1e3 * t.q3:.2f})"
                rows.append([width, case, name, f"{t.first:.2f}", t.n, iqr, f"{t.ratio:.2f}", f"{t.paired:.2f}"])
        rows.append([width, "WGAN-GP step", "torch.compile",
                     "not run: the gradient penalty's double backward is unsupported by aot_autograd", "", "", "", ""])
    compiled = "on" if s.torch_compile and not run.smoke else "off (--smoke)"
    return page(
        title,
        f"torch {torch.__version__} on {where}; batch {s.batch}, float32; WGAN-GP n_critic {s.n_critic}, "
        f"Adam(1e-4, 0, 0.9); AnoGAN K = {s.torch_search_steps}, lam 0.1, Adam(0.01) on z; torch.compile search: "
        f"{compiled}. gadjax's first call = trace + compile + run; repeats interleaved (gadjax, torch, ...).",
        md(["width", "case", "implementation", "first call s", "repeats", "median ms (IQR)",
            "time / gadjax (medians)", "time / gadjax (paired)"], rows), *notes)
