r"""gadjax vs an independent PyTorch implementation of the same nets: WGAN-GP step and AnoGAN search.

    OMP_WAIT_POLICY=PASSIVE python bench/torch_peer.py --width 16 --batch 64 --repeats 10 \
        --anogan-steps 50 --anogan-repeats 6 --threads 2 --forms fast stock    # bench/README.md

(OMP_WAIT_POLICY=PASSIVE: on an oversubscribed CPU torch's spinning OpenMP workers made a
2-thread WGAN-GP step take ~16 s instead of ~0.35 s; it does not affect XLA.)

No installable PyTorch package implements these models (anomalib's GANomaly is not the
thesis WGAN-GP / AnoGAN), so the peer is written here, layer for layer after
``gadjax/nets/thesis.py`` (28x28x1, z_dim 128): generator FC -> ReLU -> three 5x5/2
deconvs (8x8 cropped to 7x7) -> sigmoid; critic three 5x5/2 convs, LeakyReLU 0.2, FC.
XLA's 'SAME' paddings are reproduced exactly (conv: explicit asymmetric pad; deconv:
``padding=1`` then crop), so gadjax's initial weights, copied over (NHWC -> NCHW,
flipped deconv kernels, permuted FC rows), give the same function.  Timed, on the
same random data and batch, float32:

  (a) one WGAN-GP step = n_critic critic updates (Wasserstein loss + lambda 10 gradient
      penalty via ``torch.autograd.grad(create_graph=True)``) + 1 generator update,
      Adam(1e-4, betas (0, 0.9)); gadjax: ``GANTrainer.step`` (jitted, default unroll);
  (b) AnoGAN latent search of a batch: K Adam(0.01) steps on z (B, z_dim) of
      (1 - lam) sum|x - G(z)| + lam sum|f(x) - f(G(z))|, lam 0.1; gadjax:
      ``search_latent`` with its default CPU loop form.

Correctness first: one step from identical weights and identical noise (gadjax's
keys reproduced), losses and updated weights compared; one search from identical z0.
Then the first call of each (compile for gadjax) is timed on its own, and ``--repeats``
calls are interleaved gadjax, torch, gadjax, torch, ... so background load hits both.
torch runs at each ``--threads`` count (``torch.set_num_threads``; default: the usable
cores, then 1); gadjax uses XLA's default CPU thread pool (set ``XLA_FLAGS`` to change it).
``--forms`` times gadjax with each conv form of ``gadjax/nets/conv.py`` (``fast``: im2col /
sub-pixel, the CPU default; ``stock``: Flax's ``lax`` convs); the first form runs the
checks and is the baseline of the ratio columns; ``--width`` sets ngf = ndf (16, 64, ...).
``--compile`` also times ``torch.compile``-d nets for the AnoGAN search only: the WGAN-GP
step needs a double backward, which torch.compile (aot_autograd) does not support
("torch.compile with aot_autograd does not currently support double backward", torch 2.13).
"""
from __future__ import annotations

import argparse
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import interleaved_medians, machine_info, timed  # noqa: E402

from gadjax.models.anogan_search import DEFAULT_LEARNING_RATE, default_loop, search_latent  # noqa: E402
from gadjax.nets import NetSpec, bind, count_params, features_of  # noqa: E402
from gadjax.nets.conv import conv_form  # noqa: E402
from gadjax.train.gan import GANConfig, GANTrainer  # noqa: E402


def same_pads(n: int, k: int = 5, s: int = 2) -> tuple[int, int]:
    """XLA 'SAME' padding (low, high) of a stride-s conv: the extra pixel goes high."""
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class Generator(nn.Module):
    def __init__(self, z_dim=128, ngf=64, channels=1):
        super().__init__()
        self.ngf = ngf
        self.project = nn.Linear(z_dim, 4 * 4 * 4 * ngf)
        # XLA's 'SAME' transposed conv pads the dilated input (3, 2); padding=1 pads (3, 3): crop the extra row.
        self.up1 = nn.ConvTranspose2d(4 * ngf, 2 * ngf, 5, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(2 * ngf, ngf, 5, stride=2, padding=1)
        self.up3 = nn.ConvTranspose2d(ngf, channels, 5, stride=2, padding=1)

    def forward(self, z):
        x = F.relu(self.project(z)).view(z.shape[0], 4 * self.ngf, 4, 4)
        x = F.relu(self.up1(x)[:, :, :7, :7])      # 9x9 -> 7x7 (gadjax: 8x8 -> 7x7, same pixels)
        x = F.relu(self.up2(x)[:, :, :14, :14])
        return torch.sigmoid(self.up3(x)[:, :, :28, :28])


class Critic(nn.Module):
    """images (B, C, 28, 28) -> (logits (B,), features (B, 4*4*4ndf) flattened C, H, W)."""

    def __init__(self, ndf=64, channels=1):
        super().__init__()
        widths, ins, self.pads, n = [ndf, 2 * ndf, 4 * ndf], [channels, ndf, 2 * ndf], [], 28
        for _ in widths:
            self.pads.append(same_pads(n))
            n = -(-n // 2)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 5, stride=2, padding=lo if lo == hi else 0)
                                   for a, b, (lo, hi) in zip(ins, widths, self.pads))
        self.head = nn.Linear(n * n * widths[-1], 1)

    def features(self, x):
        for conv, (lo, hi) in zip(self.convs, self.pads):
            x = F.leaky_relu(conv(x if lo == hi else F.pad(x, (lo, hi, lo, hi))), 0.2)
        return x.flatten(1)

    def forward(self, x):
        f = self.features(x)
        return self.head(f)[:, 0], f


def to_torch(g_params, d_params, G: Generator, D: Critic):
    """Copy gadjax (Flax NNX, NHWC) weights into the torch nets (NCHW)."""
    # kernels: Flax (kh, kw, in, out); torch Conv2d (out, in, kh, kw), ConvTranspose2d (in, out, kh, kw)
    # with the kernel flipped (torch's transposed conv is the gradient of a conv, Flax's is not).
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # a writable copy # noqa: E731
    conv = lambda k: t(np.transpose(k, (3, 2, 0, 1)))  # noqa: E731
    deconv = lambda k: t(np.transpose(np.asarray(k)[::-1, ::-1], (2, 3, 0, 1)))  # noqa: E731
    with torch.no_grad():
        k, b, c = np.asarray(g_params["project"]["kernel"]), np.asarray(g_params["project"]["bias"]), 4 * G.ngf
        G.project.weight.copy_(t(k.reshape(-1, 4, 4, c).transpose(0, 3, 1, 2).reshape(k.shape[0], -1).T))
        G.project.bias.copy_(t(b.reshape(4, 4, c).transpose(2, 0, 1).reshape(-1)))
        for name in ("up1", "up2", "up3"):
            getattr(G, name).weight.copy_(deconv(g_params[name]["kernel"]))
            getattr(G, name).bias.copy_(t(g_params[name]["bias"]))
        for i, m in enumerate(D.convs):
            m.weight.copy_(conv(d_params["trunk"]["convs"][i]["kernel"]))
            m.bias.copy_(t(d_params["trunk"]["convs"][i]["bias"]))
        k, c = np.asarray(d_params["head"]["kernel"]), D.convs[-1].out_channels   # rows in H, W, C order
        D.head.weight.copy_(t(k.reshape(4, 4, c, 1).transpose(2, 0, 1, 3).reshape(-1, 1).T))
        D.head.bias.copy_(t(d_params["head"]["bias"]))


def torch_step(G, D, opt_g, opt_d, batches, gp_weight=10.0, noise=None):
    """One WGAN-GP step on batches (n_critic, B, C, H, W); ``noise`` = (z's, eps's, z_g) or None
    (fresh noise on the batches' device, so the nets and batches may live on a GPU)."""
    n_critic, bsz = batches.shape[:2]
    losses, gps = [], []
    D.requires_grad_(True)
    for i in range(n_critic):
        real = batches[i]
        z = noise[0][i] if noise else torch.randn(bsz, G.project.in_features, device=real.device)
        with torch.no_grad():
            fake = G(z)
        loss = D(fake)[0].mean() - D(real)[0].mean()
        eps = noise[1][i] if noise else torch.rand(bsz, 1, 1, 1, device=real.device)
        x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(D(x_hat)[0].sum(), x_hat, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        total = loss + gp_weight * gp
        opt_d.zero_grad(set_to_none=True)
        total.backward()
        opt_d.step()
        losses.append(total.detach()), gps.append(gp.detach())
    D.requires_grad_(False)  # generator update: no critic weight gradients
    z = noise[2] if noise else torch.randn(bsz, G.project.in_features, device=batches.device)
    g_loss = -D(G(z))[0].mean()
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"critic_loss": torch.stack(losses).mean().item(), "gradient_penalty": torch.stack(gps).mean().item(),
            "generator_loss": g_loss.item()}


def torch_search(G, feats, x, z0, steps, lam=0.1, lr=DEFAULT_LEARNING_RATE):
    """AnoGAN: ``steps`` Adam steps on z (B, z_dim) for images x (B, C, H, W) -> final loss (B,).

    ``feats``: images -> critic features (B, F), e.g. ``Critic.features``."""
    with torch.no_grad():
        fx = feats(x)

    def loss_fn(z):
        xr = G(z)
        return (1 - lam) * (x - xr).abs().flatten(1).sum(1) + lam * (fx - feats(xr)).abs().sum(1)

    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(z).sum().backward()  # images are independent: grad of the sum = per-image grads
        opt.step()
    with torch.no_grad():
        return loss_fn(z)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=16, help="ngf = ndf")
    ap.add_argument("--z-dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--anogan-steps", type=int, default=50, help="K Adam steps per AnoGAN search")
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats of the WGAN-GP step")
    ap.add_argument("--anogan-repeats", type=int, default=None, help="timed repeats of the search (default --repeats)")
    ap.add_argument("--threads", type=int, nargs="+", default=[len(os.sched_getaffinity(0)), 1],
                    help="torch.set_num_threads values to time (first: used for the checks)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile-d nets (AnoGAN search)")
    ap.add_argument("--forms", nargs="+", default=["fast", "stock"], choices=["fast", "stock"],
                    help="gadjax conv forms to time (gadjax/nets/conv.py; first: the checks and the ratios' baseline)")
    args = ap.parse_args()
    threads = list(dict.fromkeys(args.threads))
    torch.set_num_threads(threads[0])
    torch.manual_seed(0)
    print("command: python " + " ".join(sys.argv))
    print(machine_info())
    print(f"torch {torch.__version__} | torch threads {threads} | OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', '(unset)')} | "
          f"CPU {next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), '?')}")

    B, nc, zd = args.batch, args.n_critic, args.z_dim
    forms = list(dict.fromkeys(args.forms))
    trainers = {}
    for form in forms:  # the conv form is fixed when the nets are built
        with conv_form(form):
            trainers[form] = GANTrainer(GANConfig(nets=NetSpec("thesis", (28, 28, 1), z_dim=zd, width=args.width),
                                                  loss="wgan-gp", n_critic=nc))
    trainer = trainers[forms[0]]
    obj = trainer.objective
    state = trainer.init(jax.random.PRNGKey(0))
    G, D = Generator(zd, args.width), Critic(args.width)
    to_torch(state.params["generator"], state.params["critic"], G, D)
    n_g, n_d = count_params(state.params["generator"]), count_params(state.params["critic"])
    t_g, t_d = sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())
    print(f"\nparameters: generator gadjax {n_g} / torch {t_g}; critic gadjax {n_d} / torch {t_d}")
    assert (n_g, n_d) == (t_g, t_d), "parameter counts differ"
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=obj.learning_rate, betas=(0.0, 0.9))  # noqa: E731
    opt_g, opt_d = adam(G), adam(D)
    real = np.random.default_rng(0).uniform(0, 1, (nc, B, 28, 28, 1)).astype(np.float32)
    batches, batches_t = trainer.put_batches(real), torch.from_numpy(real.transpose(0, 1, 4, 2, 3).copy())

    # ---- correctness: one step from the same weights and noise (gadjax's keys reproduced)
    key = jax.random.fold_in(state.key, state.step)
    ck = jax.random.split(jax.random.fold_in(key, 0), nc)
    kz, kgp = zip(*(jax.random.split(k) for k in ck))
    tt = lambda a: torch.from_numpy(np.asarray(a).copy())  # noqa: E731
    noise = ([tt(trainer.latent(k, B)) for k in kz],
             [tt(jax.random.uniform(k, (B, 1, 1, 1))) for k in kgp], tt(trainer.latent(jax.random.fold_in(key, 1), B)))
    t_first_j, (state, m_j) = timed(lambda: jax.block_until_ready(trainer.step(state, batches)))
    t_first_t, m_t = timed(lambda: torch_step(G, D, opt_g, opt_d, batches_t, obj.gp_weight, noise))
    print("one step from identical weights and noise (gadjax / torch):")
    for k in ("critic_loss", "gradient_penalty", "generator_loss"):
        print(f"  {k}: {float(m_j[k]):.6f} / {m_t[k]:.6f}")
    G2, D2 = Generator(zd, args.width), Critic(args.width)
    to_torch(state.params["generator"], state.params["critic"], G2, D2)
    for name, a, b in (("generator", G, G2), ("critic", D, D2)):
        diff = max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))
        print(f"  {name} weights after the step: max |gadjax - torch| = {diff:.2e} (lr {obj.learning_rate:g})")

    # ---- correctness: one AnoGAN search from the same z0 (steps = K)
    frozen = jax.tree.map(jnp.copy, (state.params, state.stats))  # trainer.step donates the state's buffers
    # search_latent takes bound callables: generator z -> x and critic features x -> f.
    nets_of = {f: (bind(t.generator, frozen[0]["generator"], frozen[1]["generator"]),
                   features_of(bind(t.critic, frozen[0]["critic"], frozen[1]["critic"]))) for f, t in trainers.items()}
    nets = nets_of[forms[0]]
    x, x_t = jnp.asarray(real[0]), batches_t[0]
    G.requires_grad_(False), D.requires_grad_(False)
    # both frameworks search with the same (one-step-trained) nets
    to_torch(frozen[0]["generator"], frozen[0]["critic"], G, D)
    skey, K = jax.random.PRNGKey(1), args.anogan_steps
    z0 = torch.cat([tt(trainer.latent(jax.random.fold_in(skey, i), 1)) for i in range(B)])
    t_afirst_j, res = timed(lambda: jax.block_until_ready(search_latent(*nets, x, skey, steps=K)))
    t_afirst_t, s_t = timed(lambda: torch_search(G, D.features, x_t, z0, K))
    s_j = np.asarray(res.score)
    print(f"AnoGAN K={K}, loop {default_loop()!r}: scores mean gadjax {s_j.mean():.4f} / torch {s_t.mean():.4f}; "
          f"max rel. difference {np.max(np.abs(s_j - s_t.numpy()) / np.abs(s_j)):.1e}")

    # ---- timing, interleaved; the WGAN-GP step keeps training G2/D2 (= gadjax's state after one step)
    holder = {forms[0]: state, **{f: trainers[f].init(jax.random.PRNGKey(0)) for f in forms[1:]}}
    opt_g2, opt_d2 = adam(G2), adam(D2)

    def jax_step(form):
        def run():
            holder[form], m = trainers[form].step(holder[form], batches)
            return jax.block_until_ready(m)
        return run

    def jax_search(form):
        return lambda: jax.block_until_ready(search_latent(*nets_of[form], x, skey, steps=K).score)

    gj = {f: f"gadjax {f} convs" for f in forms}

    def threaded(n, fn):
        return lambda: (torch.set_num_threads(n), fn())[1]

    wgan, ano = "WGAN-GP step", f"AnoGAN search K={K}"
    eager_step = lambda: torch_step(G2, D2, opt_g2, opt_d2, batches_t, obj.gp_weight)  # noqa: E731
    eager_search = lambda: torch_search(G, D.features, x_t, z0, K)  # noqa: E731
    cases = {wgan: [(gj[f], jax_step(f)) for f in forms]
             + [(f"torch eager, {n} thr", threaded(n, eager_step)) for n in threads],
             ano: [(gj[f], jax_search(f)) for f in forms]
             + [(f"torch eager, {n} thr", threaded(n, eager_search)) for n in threads]}
    # first call = compile + run for gadjax; for torch the first call in this process at that thread count
    first = {(wgan, gj[forms[0]]): t_first_j, (wgan, cases[wgan][len(forms)][0]): t_first_t,
             (ano, gj[forms[0]]): t_afirst_j, (ano, cases[ano][len(forms)][0]): t_afirst_t}
    if args.compile:
        Gc, Fc = torch.compile(G), torch.compile(D.features)
        torch.set_num_threads(threads[0])
        first[(ano, f"torch.compile, {threads[0]} thr")], s_c = timed(lambda: torch_search(Gc, Fc, x_t, z0, K))
        rel = np.max(np.abs((s_c - s_t) / s_t).numpy())
        print(f"torch.compile search: max rel. score difference to eager {rel:.1e}")
        cases[ano] += [(f"torch.compile, {n} thr", threaded(n, lambda: torch_search(Gc, Fc, x_t, z0, K)))
                       for n in threads]
    timings = interleaved_medians(cases, first, {wgan: args.repeats, ano: args.anogan_repeats or args.repeats},
                                  baseline=gj[forms[0]], ms_digits=0)
    rows = [(case, name, *t[:7]) for case, res in timings.items() for name, t in res.items()]
    print(f"\nthesis nets width {args.width}, z_dim {zd}, 28x28x1, batch {B}, float32; WGAN-GP n_critic {nc}; "
          f"AnoGAN lam 0.1, lr {DEFAULT_LEARNING_RATE}; interleaved repeats; load avg "
          f"{'%.2f %.2f %.2f' % os.getloadavg()}\n")
    print(f"| case | framework | first call s | repeats | median ms (IQR) | time / {gj[forms[0]]} (medians) "
          f"| time / {gj[forms[0]]} (median of paired) |")
    print("|---|---|---|---|---|---|---|")
    for case, name, f, med, q1, q3, ratio, paired, n in rows:
        print(f"| {case} | {name} | {f:.2f} | {n} | {1e3 * med:.1f} ({1e3 * q1:.1f}-{1e3 * q3:.1f}) | {ratio:.2f} "
              f"| {paired:.2f} |")


if __name__ == "__main__":
    main()
