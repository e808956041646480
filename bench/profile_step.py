"""Where the CPU time goes: per-HLO-op profile of the WGAN-GP step and the AnoGAN search.

    python bench/profile_step.py                                  # widths 16 64, default conv form
    python bench/profile_step.py --width 16 --form stock
    python bench/profile_step.py --width 64 --cases anogan --trace-dir /tmp/prof   # keep the traces

Captures ``jax.profiler.trace`` of ``--steps`` compiled WGAN-GP steps (thesis nets, batch 64,
n_critic 5, after warm-up) and of one AnoGAN search (``--anogan-steps`` Adam steps on z for
``--anogan-images`` images, the CPU ``'host'`` loop), then gives each HLO op's time to a phase
of the step and a kind of work.

Why not xprof: on XLA:CPU (jax/jaxlib 0.10.2, xprof 2.24.2) its ``hlo_stats`` and ``op_profile``
tools return no rows and ``framework_op_stats`` only IDLE; only the trace holds per-op events.
XLA:CPU's thunk runtime records one host event per executed thunk, named after its HLO
instruction, with ``hlo_op`` / ``hlo_module`` stats; this script reads the ``.xplane.pb`` with
jaxlib's ``jax.profiler.ProfileData`` (no xprof needed).  Per op it takes the median execution
time x executions per step: on a loaded machine a thread is now and then descheduled inside an
op, and a plain sum charges the whole pause to that op (both totals are printed).

Phases come from the op_name metadata of the compiled HLO (``.lower(...).compile().as_text()``):
the nets, the two updates, the gradient penalty and Adam are traced under ``jax.named_scope``s
(``ScopedNet``, ``ScopedGANTrainer``); names are metadata only, the computation is unchanged.
A fusion takes the phase of its dot/convolution, else the most common phase of its ops.  Kinds:
matmul (dots, incl. XLA:CPU's YNNPACK ``ynn_fusion``s), conv (the stock form's convolutions),
patches (ops with a slice/pad/concatenate: im2col patch building, its transpose -- pads and
adds -- and the sub-pixel crop, with any elementwise work XLA fused in), layout (copy/transpose
only), elementwise, reduce, gather/scatter, control.  The AnoGAN search's Adam step on z is not
scoped ("other").  Op time = sum over ops; XLA:CPU may run independent thunks concurrently, so
it can exceed the wall time.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import math
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# ------------------------------------------------------------------ HLO text -> op info
_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*?) ([a-z][a-z0-9\-]*)\((.*)$")
_COMP = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+) .*\{\s*$")
_CALLS = re.compile(r"(?:calls|to_apply|body|condition|branch_computations)=\{?%?([\w.\-, %]+)\}?")
_OPNAME = re.compile(r'op_name="([^"]*)"')
TRIVIAL = {"parameter", "constant", "bitcast", "get-tuple-element", "tuple", "iota"}
PATCH_OPS = {"slice", "concatenate", "pad", "dynamic-slice", "dynamic-update-slice"}
KINDS = ["matmul", "conv", "patches", "layout", "elementwise", "reduce", "gather/scatter", "control"]
OTHER = "other (losses, metrics, glue)"


@dataclasses.dataclass
class Instr:
    opcode: str
    op_name: str
    calls: list
    shape: str = ""        # with layout, e.g. f32[64,14,14,144]{3,2,1,0}
    flops: float = 0.0     # dots: 2 * output size * contracted size


def _dims(shape: str) -> list:
    m = re.match(r"[a-z0-9]+\[([\d,]*)\]", shape)
    return [int(d) for d in m.group(1).split(",") if d] if m else []


def parse_hlo(text: str) -> dict:
    """{instruction name: Instr} over every computation of an HLO module's text."""
    out, comps, comp, dots = {}, {}, None, []
    for line in text.splitlines():
        m = _INSTR.match(line)
        if m and comp is not None:
            name, shape, opcode, rest = m.groups()
            calls = [c.strip().lstrip("%") for g in _CALLS.findall(rest) for c in g.split(",") if c.strip()]
            op = _OPNAME.search(rest)
            out[name] = Instr(opcode, op.group(1) if op else "", calls, shape)
            comps[comp].append(name)
            if opcode == "dot":
                contract = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", rest)
                dots.append((name, re.findall(r"%([\w.\-]+)", rest.split(")")[0])[0],
                             [int(d) for d in contract.group(1).split(",") if d] if contract else []))
        elif (c := _COMP.match(line)) and "=" not in line.split("(")[0]:
            comp = c.group(1)
            comps[comp] = []
    for ins in out.values():  # calls -> the instructions of the called computations
        ins.calls = [n for c in ins.calls for n in comps.get(c, [])]
    for name, lhs, contract in dots:
        lhs_dims = _dims(out[lhs].shape) if lhs in out else []
        out[name].flops = 2.0 * math.prod(_dims(out[name].shape)) * math.prod(lhs_dims[i] for i in contract)
    return out


def _inner(instrs: dict, name: str, depth: int = 0) -> list:
    """The instructions a (fusion) thunk executes, nested computations included."""
    ins = instrs[name]
    if ins.opcode not in ("fusion", "call") or depth > 4:
        return [ins]
    return [j for n in ins.calls for j in _inner(instrs, n, depth + 1)]


def op_kind(instrs: dict, name: str) -> str:
    if instrs[name].opcode in ("while", "conditional"):
        return "control"
    ops = {i.opcode for i in _inner(instrs, name)} - TRIVIAL
    if "convolution" in ops:
        return "conv"
    if ops & {"dot", "custom-call"}:
        return "matmul"
    if ops & {"scatter", "gather"}:
        return "gather/scatter"
    if ops and ops <= {"copy", "transpose", "reshape"} and ops & {"copy", "transpose"}:
        return "layout"
    if ops & PATCH_OPS:
        return "patches"
    return "reduce" if ops & {"reduce", "reduce-window"} else "elementwise"


def phase_of(op_name: str) -> str:
    """Phase of one instruction from its op_name (scopes set by ScopedNet / ScopedGANTrainer)."""
    segs = op_name.split("/")
    if any(s.endswith("adam") for s in segs):
        return "optimiser (Adam)"
    if re.search(r"threefry|_normal|_uniform|random_bits|fold_in|random_split", op_name):
        return "RNG"
    upd = next((s for s in segs if re.search(r"\b(critic|generator)_update\b", s)), None)
    outer_bwd = upd is not None and "transpose(" in upd
    net_seg = next((s for s in reversed(segs) if re.fullmatch(r"[\w()]*\b(critic|generator)\)*", s)), None)
    net = None if net_seg is None else ("D" if "critic" in net_seg else "G")
    if upd is not None and "critic_update" in upd:
        if "gradient_penalty" in segs:
            if outer_bwd:
                return "D upd: GP double backward"
            if net_seg is not None and "transpose(" in net_seg:
                return "D upd: GP dD/dx_hat (1st backward)"
            return "D upd: GP D forward at x_hat" if net else OTHER
        if net == "G":
            return "D upd: G forward (fakes)"
        if net == "D":
            return "D upd: D backward (weight grads)" if outer_bwd else "D upd: D forward (real+fake)"
    elif upd is not None:
        if net == "G":
            return "G upd: G backward (weight grads)" if outer_bwd else "G upd: G forward"
        if net == "D":
            return "G upd: D backward (input grads)" if outer_bwd else "G upd: D forward"
    elif net is not None:  # AnoGAN search: no update scopes, transposition marks the backward
        bwd = any("transpose(" in s for s in segs[:segs.index(net_seg) + 1])
        return f"{net} {'backward (input grads)' if bwd else 'forward'}"
    return OTHER


def op_phase(instrs: dict, name: str) -> str:
    inner = [i for i in _inner(instrs, name) if i.opcode not in TRIVIAL and i.op_name]
    mm = [i for i in inner if i.opcode in ("dot", "convolution")]
    if mm:
        return phase_of(mm[0].op_name)
    if not inner:  # ops XLA creates (e.g. the stock form's rhs-dilated weight-grad convs) have no op_name
        return phase_of(instrs[name].op_name) if instrs[name].op_name else "no op_name (made by XLA)"
    votes = collections.Counter(phase_of(i.op_name) for i in inner)
    # RNG / glue ops fused into a net's op (the GP's eps into the interpolation and the first
    # conv's pad) do not make it an RNG op: they win only when alone.
    net = [(n, ph) for ph, n in votes.items() if ph not in ("RNG", OTHER)]
    return max(net)[1] if net else votes.most_common(1)[0][0]


# ------------------------------------------------------------------ trace -> op times
def self_times(events) -> list:
    """[(key, self ns)] of one thread's events [(start ns, duration ns, key)]: an event's
    duration less that of the events nested in it (a while thunk and its body's thunks)."""
    evs = sorted(([s, d, k, d] for s, d, k in events), key=lambda v: (v[0], -v[1]))
    stack = []
    for ev in evs:
        while stack and stack[-1][0] + stack[-1][1] <= ev[0]:
            stack.pop()
        if stack:
            stack[-1][3] -= ev[1]
        stack.append(ev)
    return [(k, self_ns) for _, _, k, self_ns in evs]


def op_self_times(trace_dir: str, modules: set) -> dict:
    """{(module, hlo op): [self µs of each execution]} from the newest .xplane.pb under ``trace_dir``."""
    from jax.profiler import ProfileData

    path = max(glob.glob(os.path.join(trace_dir, "plugins", "profile", "*", "*.xplane.pb")))  # newest
    totals = collections.defaultdict(list)
    for plane in ProfileData.from_file(path).planes:
        for line in plane.lines:
            evs = [(e.start_ns, e.duration_ns, (st["hlo_module"], st["hlo_op"])) for e in line.events
                   if "hlo_op" in (st := dict(e.stats)) and st.get("hlo_module") in modules]
            for key, self_ns in self_times(evs):
                totals[key].append(self_ns / 1e3)
    return totals


def per_step_ms(us: list, per: int) -> tuple[float, float]:
    """(mean, robust) ms per step of one op's executions (µs) over ``per`` steps; robust =
    median execution x executions per step."""
    return sum(us) / per / 1e3, statistics.median(us) * len(us) / per / 1e3


def report(title: str, instrs: dict, totals: dict, per: int, top: int, top_ops: int = 12):
    """Markdown: phase table (robust ms / step by kind, matmul GFLOP/s, top ops) and top ops."""
    rows = collections.defaultdict(lambda: collections.defaultdict(float))
    ops, flops = collections.defaultdict(list), collections.defaultdict(float)
    unmatched = mean_total = 0.0
    for (_, name), us in totals.items():
        mean, ms = per_step_ms(us, per)
        mean_total += mean
        if name not in instrs:
            unmatched += ms
            continue
        ph, kd = op_phase(instrs, name), op_kind(instrs, name)
        rows[ph][kd] += ms
        ops[ph].append((ms, name, kd))
        flops[ph] += sum(i.flops for i in _inner(instrs, name)) * len(us) / per
    total = sum(sum(r.values()) for r in rows.values())
    used = [k for k in KINDS if any(r.get(k) for r in rows.values())]
    print(f"\n### {title}\n\nop time {total:.1f} ms / step (sum of per-op medians; plain sum "
          f"{mean_total:.1f}); dots {sum(flops.values()) / 1e9:.2f} GFLOP / step; ops not in the HLO {unmatched:.2f} ms\n")
    print("| phase | ms / step | % | " + " | ".join(used) + " | matmul GFLOP/s | top ops (ms) |")
    print("|---|---|---|" + "---|" * len(used) + "---|---|")
    by_kind = collections.defaultdict(float)
    for ph, r in sorted(rows.items(), key=lambda kv: -sum(kv[1].values())):
        ms = sum(r.values())
        for k, v in r.items():
            by_kind[k] += v
        rate = f"{flops[ph] / 1e6 / r['matmul']:.0f}" if r.get("matmul") and flops[ph] else ""
        best = ", ".join(f"{n} {t:.{1 if t >= 1 else 2}f}" for t, n, _ in sorted(ops[ph], reverse=True)[:top])
        print(f"| {ph} | {ms:.1f} | {100 * ms / total:.1f} | " + " | ".join(f"{r.get(k, 0):.1f}" for k in used)
              + f" | {rate} | {best} |")
    rate = sum(flops.values()) / 1e6 / by_kind["matmul"] if by_kind["matmul"] else 0
    print(f"| **all** | **{total:.1f}** | 100 | " + " | ".join(
        f"{by_kind[k]:.1f} ({100 * by_kind[k] / total:.0f} %)" for k in used) + f" | {rate:.0f} | |")
    print(f"\nTop {top_ops} ops:\n\n| op | phase | kind | output shape{{layout}} | ms / step | % |\n|---|---|---|---|---|---|")
    for t, n, ph, kd in sorted(((t, n, ph, kd) for ph, lst in ops.items() for t, n, kd in lst), reverse=True)[:top_ops]:
        print(f"| {n} | {ph} | {kd} | {instrs[n].shape} | {t:.2f} | {100 * t / total:.1f} |")


# ------------------------------------------------------------------ scoped nets and trainer
def _scoped(name, fn):
    import jax

    def run(*args, **kwargs):
        with jax.named_scope(name):
            return fn(*args, **kwargs)
    return run


def scoped_classes():
    import jax

    from gadjax.nets import PureNet
    from gadjax.train import gan

    @dataclasses.dataclass(frozen=True)
    class ScopedNet(PureNet):
        """A PureNet whose ops carry its name (``critic`` / ``generator``) in their op_name."""

        def apply(self, *args, **kwargs):
            return _scoped(self.name, super().apply)(*args, **kwargs)

    class ScopedGANTrainer(gan.GANTrainer):
        """GANTrainer with named scopes around the two losses, the GP and Adam."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.generator = ScopedNet(self.generator.graphdef, "generator")
            self.critic = ScopedNet(self.critic.graphdef, "critic")
            self.players = tuple(dataclasses.replace(p, optimizer=p.optimizer._replace(
                update=_scoped("adam", p.optimizer.update))) for p in self.players)

        def _critic_loss(self, *args):
            # the GP is a module-level function of gan.py: a scoped one stands in while tracing
            gp = _scoped("gradient_penalty", gan.gradient_penalty)
            with jax.named_scope("critic_update"), mock.patch.object(gan, "gradient_penalty", gp):
                return super()._critic_loss(*args)

        def _generator_loss(self, *args):
            return _scoped("generator_update", super()._generator_loss)(*args)

    return ScopedNet, ScopedGANTrainer


def measure(fn, per: int, trace_dir: str | None = None) -> dict:
    """Wall / process CPU / system ms and minor page faults per step of ``fn()`` (``per``
    steps), under the profiler when ``trace_dir`` is given."""
    import jax

    opts = jax.profiler.ProfileOptions()
    opts.python_tracer_level = 0  # no Python events: less overhead, smaller trace
    opts.host_tracer_level = 1    # XLA:CPU's per-thunk events are level-1 TraceMes
    if trace_dir:
        jax.profiler.start_trace(trace_dir, profiler_options=opts)
    r0, c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
    jax.block_until_ready(fn())
    wall, cpu, r1 = time.perf_counter() - t0, time.process_time() - c0, resource.getrusage(resource.RUSAGE_SELF)
    if trace_dir:
        jax.profiler.stop_trace()
    return {"wall": wall / per * 1e3, "cpu": cpu / per * 1e3, "sys": (r1.ru_stime - r0.ru_stime) / per * 1e3,
            "faults": (r1.ru_minflt - r0.ru_minflt) / per}


def profile_wgan(args, width):
    import jax
    import numpy as np

    from gadjax.nets import NetSpec
    from gadjax.train.gan import GANConfig

    _, Trainer = scoped_classes()
    trainer = Trainer(GANConfig(nets=NetSpec("thesis", (28, 28, 1), z_dim=128, width=width), loss="wgan-gp",
                                n_critic=args.n_critic))
    lo, hi = trainer.value_range
    batches = trainer.put_batches(np.random.default_rng(0).uniform(
        lo, hi, (args.n_critic, args.batch, 28, 28, 1)).astype(np.float32))
    holder = {"state": trainer.init(jax.random.PRNGKey(0))}
    compiled = trainer.step.lower(holder["state"], batches).compile()

    def steps(n):
        def run():
            for _ in range(n):
                holder["state"], m = compiled(holder["state"], batches)  # state is donated
            return m
        return run

    jax.block_until_ready(steps(1 + args.warmup)())
    return compiled.as_text(), args.steps, lambda tdir=None: measure(steps(args.steps), args.steps, tdir)


def profile_anogan(args, width):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gadjax.models import anogan_search as ano
    from gadjax.nets import NetSpec, bind, build_nets, features_of

    ScopedNet, _ = scoped_classes()
    nets = build_nets(NetSpec("thesis", (28, 28, 1), z_dim=128, width=width), parts=("generator", "critic"))
    bound = {part: bind(ScopedNet(net.graphdef, part), *init(jax.random.PRNGKey(i)))
             for i, (part, (net, init)) in enumerate(sorted(nets.items()))}
    G, F = bound["generator"], features_of(bound["critic"])
    x = np.random.default_rng(0).uniform(0, 1, (args.anogan_images, 28, 28, 1)).astype(np.float32)
    key, K = jax.random.PRNGKey(1), args.anogan_steps
    search = lambda k: lambda: ano.search_latent(G, F, x, key, steps=k, loop="host").score
    jax.block_until_ready(search(2)())  # compiles the one step program the host loop runs K times
    # Its HLO: the same arguments as search_latent's give the same compiled program and op names.
    lr = jnp.float32(ano.DEFAULT_LEARNING_RATE)
    carry, fx = ano._host_init_jit(F, x, jnp.arange(x.shape[0], dtype=jnp.int32), key, lr, None, z_dim=128,
                                   restarts=1, prior="normal")
    text = ano._host_step_jit.lower(carry, G, F, x, fx, jnp.float32(0.1), lr, clip_z=None).compile().as_text()
    return text, K, lambda tdir=None: measure(search(K), K, tdir)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--form", choices=["fast", "stock", "auto"], default="auto", help="conv form (gadjax.nets.conv)")
    ap.add_argument("--cases", nargs="+", choices=["wgan", "anogan"], default=["wgan", "anogan"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-critic", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="WGAN-GP steps timed, then as many profiled")
    ap.add_argument("--warmup", type=int, default=2, help="WGAN-GP steps after the first, before timing")
    ap.add_argument("--anogan-steps", type=int, default=50, help="K Adam steps of the AnoGAN search")
    ap.add_argument("--anogan-images", type=int, default=64)
    ap.add_argument("--top", type=int, default=3, help="top ops listed per phase")
    ap.add_argument("--top-ops", type=int, default=12, help="rows of the overall top-ops table")
    ap.add_argument("--trace-dir", default=None, help="keep traces + HLO text here (viewable in xprof / TensorBoard)")
    args = ap.parse_args(argv)

    from harness import machine_info

    from gadjax.cache import disable_compilation_cache
    from gadjax.nets.conv import conv_form, resolve_form

    # The persistent cache's key ignores op metadata: a program compiled earlier without the
    # named scopes (bench/train_step.py, training runs) would come back with its old op names.
    disable_compilation_cache()
    print(machine_info())
    form = resolve_form(None if args.form == "auto" else args.form)
    print(f"thesis nets 28x28x1, z_dim 128, {form} convs; WGAN-GP batch {args.batch}, n_critic {args.n_critic}, "
          f"{args.steps} steps timed then {args.steps} profiled; AnoGAN {args.anogan_images} images, "
          f"K = {args.anogan_steps} ('host' loop), timed then profiled; ms per train / Adam step", flush=True)
    root = args.trace_dir or tempfile.mkdtemp(prefix="gadjax_profile_")
    with conv_form(form):
        for width in args.width:
            for case in args.cases:
                t0, tdir = time.perf_counter(), os.path.join(root, f"{case}_w{width}_{form}")
                text, per, run = (profile_wgan if case == "wgan" else profile_anogan)(args, width)
                plain, prof = run(), run(tdir)
                module = text.split()[1].rstrip(",")
                with open(os.path.join(tdir, f"{module}.hlo.txt"), "w") as f:  # op names -> HLO
                    f.write(text)
                title = (f"WGAN-GP step, width {width}, {form} convs" if case == "wgan" else
                         f"AnoGAN search, width {width}, {form} convs: per Adam step of {args.anogan_images} images")
                report(title, parse_hlo(text), op_self_times(tdir, {module}), per, args.top, args.top_ops)
                print(f"\nwall {plain['wall']:.1f} ms / step untraced ({prof['wall']:.1f} traced); process CPU "
                      f"{plain['cpu']:.1f} ms / step ({plain['cpu'] / plain['wall']:.2f} cores busy), of it system "
                      f"{plain['sys']:.1f} ms; {plain['faults']:.0f} minor page faults / step; {case} width {width} "
                      f"took {time.perf_counter() - t0:.0f} s incl. compile; load avg "
                      + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
    if not args.trace_dir:
        print(f"\ntraces left in {root}")


if __name__ == "__main__":
    main()
