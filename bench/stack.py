"""Stacked vs sequential training: M models as one program (``StackTrainer``) vs M lone steps.

    python bench/stack.py                                     # thesis WGAN-GP, widths 16 64, M = 1 4 10 30
    python bench/stack.py --widths 16 --members 10 --repeats 5
    python bench/stack.py --model ganomaly --widths 16 --members 1 4 10

A one-class study trains one small model per (class, seed).  Two ways to train M of them
for the same number of steps, timed here per step of every model:

  sequential  the lone trainer's step (``PlayerTrainer.step``, jitted, state donated), compiled
              once (all M models have the same shapes) and called M times one after another,
              each on its own model's state and batches; one ``block_until_ready`` at the end;
  stacked     one call of ``StackTrainer(lone, M).step`` (``vmap`` of the lone step over a
              leading model axis of the state and of the (M, batches_per_step, B, ...) batches).

Both see the same batch size and n_critic, so images/s = M x batches_per_step x B / time of
one step of all M models, and "stacked / sequential" = sequential time / stacked time.  Both
programs are lowered and compiled ahead of time (compile seconds reported apart, not in the
step time); the harness's ``interleaved_medians`` then times the first run of each, makes one
untimed call, and alternates sequential, stacked, sequential, ... ``--repeats`` times so that
background load hits both alike; the table gives the median (min-max) over repeats and the
median of the per-repeat ratio (paired).  Random data and untrained nets: the time does not
depend on the values.

Models (``--model``; built as ``bench/mfu.py: build_trainer`` builds them): ``wgan-thesis``
(the thesis WGAN-GP that AnoGAN and f-AnoGAN train, 28x28x1, z_dim 100; the default),
``wgan-dcgan``, ``ganomaly``, ``egbad`` (the detectors' trainers at ``--width``, 28x28x1).
``--chunks K ...`` adds, per K < M, a stacked form that is not ``StackTrainer``'s: ``lax.map``
of the lone step over the model axis with ``batch_size=K`` (M/K vmaps of K models, looped in
one program), timed in the same interleaved rounds.  Before its first run each stack's compiled program is checked against the device memory
(``StackTrainer.check_memory``'s rule, on the compiled program's own memory analysis: no
second compile); devices that report no limit (CPUs) are not checked.

``--repeats`` defaults to ``auto``: per (width, M), enough repeats that the timed work is
about ``--target-s`` seconds, at least 3 and at most 10, from a lone step's time measured
after its compile.  Compile times are real compiles: run as a script, it turns gadjax's
persistent compilation cache off (``GADJAX_COMPILATION_CACHE=0``) unless the variable is set.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MODELS = ("wgan-thesis", "wgan-dcgan", "ganomaly", "egbad")  # bench/mfu.py: CONFIGS


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=MODELS, default="wgan-thesis")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 64], help="ngf = ndf")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 4, 10, 30], help="stack sizes M")
    ap.add_argument("--batch", type=int, default=64, help="images per (critic) update, per model")
    ap.add_argument("--n-critic", type=int, default=5, help="critic updates per step (WGAN-GP models)")
    ap.add_argument("--repeats", default="auto", help="timed repeats per (width, M), or 'auto' (--target-s)")
    ap.add_argument("--target-s", type=float, default=30.0,
                    help="auto repeats: about this many seconds of timed work per (width, M)")
    ap.add_argument("--unroll", default="default", help="n_critic loop form: default | true | 1 (rolled)")
    ap.add_argument("--chunks", type=int, nargs="*", default=[],
                    help="also time lax.map over the models in chunks of K (vmap of K inside a loop), per K < M")
    args = ap.parse_args(argv)
    if args.repeats != "auto":
        args.repeats = int(args.repeats)
        if args.repeats < 1:
            ap.error("--repeats must be >= 1 or 'auto'")
    if min(args.members) < 1:
        ap.error("--members must be >= 1")
    return args


def auto_repeats(lone_s: float, members: int, target_s: float, lo: int = 3, hi: int = 10) -> int:
    """Repeats so that sequential + stacked (about 2 x M lone steps a repeat) take ~``target_s``."""
    return max(lo, min(hi, math.ceil(target_s / max(2 * members * lone_s, 1e-9))))


def memory_need(compiled) -> int | None:
    """Bytes a compiled step needs (arguments + outputs not aliased + temporaries), as
    ``StackTrainer.memory_bytes``; None when the backend gives no analysis."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends raise instead of returning None
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)


def check_memory(need: int | None, members: int, batch: int) -> None:
    """``StackTrainer.check_memory``'s rule on an already compiled program's need."""
    import jax

    from gadjax.train.stack import StackMemoryError

    limit = (jax.local_devices()[0].memory_stats() or {}).get("bytes_limit")
    if limit is None or need is None or need <= limit:
        return
    largest = int(limit // max(need / members, 1))
    raise StackMemoryError(f"a stack of {members} models (batch {batch}) needs about {need / 2**30:.2f} GiB per "
                           f"step but the device has {limit / 2**30:.2f} GiB: at most {largest} models fit")


class Lone:
    """One width's lone trainer, compiled once, with a state and device batches per model."""

    def __init__(self, model: str, width: int, batch: int, n_critic: int, unroll, max_members: int):
        import jax
        import numpy as np
        import mfu

        self.trainer = t = mfu.build_trainer(model, width, n_critic, unroll)
        self.batch, self.width = batch, width
        lo, hi = t.value_range or (-1.0, 1.0)
        rng = np.random.default_rng(0)
        # (M, batches_per_step, B, ...): model i's batches are [i]; the stack gets the first M.
        self.host = rng.uniform(lo, hi, (max_members, t.batches_per_step, batch, *t.image_shape)).astype(np.float32)
        self.batches = [t.put_batches(b) for b in self.host]
        self.states = [t.init(jax.random.PRNGKey(i)) for i in range(max_members)]
        jax.block_until_ready(self.states)
        t0 = time.perf_counter()
        self.compiled = t.step.lower(self.states[0], self.batches[0]).compile()
        self.compile_s = time.perf_counter() - t0
        # One step for the auto repeats (the first run, then a steady one).
        self.run(1)
        t0 = time.perf_counter()
        self.run(1)
        self.step_s = time.perf_counter() - t0

    def run(self, members: int):
        """Models 0..M-1, one lone step each, in turn; blocks until all are done."""
        import jax

        metrics = []
        for i in range(members):
            self.states[i], m = self.compiled(self.states[i], self.batches[i])  # state donated
            metrics.append(m)
        return jax.block_until_ready(metrics)


class Stacked:
    """``StackTrainer(lone, M)``: its initial state (model i from PRNGKey(i)), batches and compiled step.

    ``chunk`` K (< M): instead of ``StackTrainer.step`` (vmap over all M models), ``lax.map``
    of the lone step over the model axis with ``batch_size=K``: a loop over M/K vmaps of K
    models in one program (an experiment: smaller working sets per op than one vmap of M)."""

    def __init__(self, lone: Lone, members: int, chunk: int | None = None):
        import jax

        from gadjax.train.stack import StackTrainer, seed_keys

        self.trainer = s = StackTrainer(lone.trainer, members)
        self.members, self.chunk = members, chunk
        self.form = "vmap" if chunk is None else f"lax.map, chunks of {chunk}"
        self.batches = s.put_batches(lone.host[:members])
        self.state = jax.block_until_ready(s.init(seed_keys(range(members))))
        step = s.step
        if chunk is not None:
            base = lone.trainer
            step = jax.jit(lambda state, batches: jax.lax.map(lambda a: base._step(*a), (state, batches),
                                                              batch_size=chunk), donate_argnums=0)
        t0 = time.perf_counter()
        self.compiled = step.lower(self.state, self.batches).compile()
        self.compile_s = time.perf_counter() - t0
        self.need = memory_need(self.compiled)
        check_memory(self.need, members, lone.batch)

    def run(self):
        import jax

        self.state, m = self.compiled(self.state, self.batches)  # state donated
        return jax.block_until_ready(m)


def measure(lone: Lone, members: int, repeats: int, chunks=(), log=sys.stderr) -> list[dict]:
    """Sequential vs stacked for one M (``lone`` already compiled): timings and images/s, one
    row per stacked form (vmap, then ``lax.map`` in each of ``chunks`` smaller than M)."""
    import numpy as np

    from harness import interleaved_medians

    stacks = [Stacked(lone, members)] + [Stacked(lone, members, k) for k in chunks if k < members]
    case = f"width {lone.width} M={members}"
    seq = "sequential"
    last = {}

    def keep(name, fn):
        def call():
            last[name] = fn()
            return last[name]
        return call

    res = interleaved_medians({case: [(seq, keep(seq, lambda: lone.run(members)))]
                               + [(st.form, keep(st.form, st.run)) for st in stacks]},
                              {}, repeats, baseline=seq, ms_digits=0, log=log)[case]
    metrics = [*last[seq], *(last[st.form] for st in stacks)]
    if not all(bool(np.all(np.asarray(m["finite"]))) for m in metrics if "finite" in m):
        print(f"warning: non-finite values ({case})", file=log, flush=True)
    images = members * lone.trainer.batches_per_step * lone.batch
    s, out = res[seq], []
    for st in stacks:
        t = res[st.form]
        out.append(dict(width=lone.width, members=members, form=st.form, lone_compile=lone.compile_s,
                        stack_compile=st.compile_s, seq_first=s.first, stack_first=t.first, repeats=s.n,
                        need=st.need, seq=(s.median, min(s.times), max(s.times)),
                        stack=(t.median, min(t.times), max(t.times)), seq_ips=images / s.median,
                        stack_ips=images / t.median, speedup=s.median / t.median,
                        paired=statistics.median(a / b for a, b in zip(s.times, t.times))))
    return out


def table(model: str, rows: list[dict]) -> str:
    """Markdown: per (width, M) compile and first-run seconds, step ms median (min-max), images/s, ratios."""
    def ms(t):
        return f"{1e3 * t[0]:.1f} ({1e3 * t[1]:.1f}-{1e3 * t[2]:.1f})"

    head = ["model", "width", "M", "stacked form", "lone compile s", "stack compile s", "stack memory MiB", "first run s seq / stack",
            "repeats", "sequential ms / step (all M)", "stacked ms / step", "sequential images / s",
            "stacked images / s", "stacked / sequential", "paired"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r:  # the GPU suite's full mode: a configuration that failed (out of memory, ...)
            lines.append("| " + " | ".join([model, str(r["width"]), str(r["members"]), "", r["error"]]
                                           + [""] * (len(head) - 5)) + " |")
            continue
        mem = "n/a" if r["need"] is None else f"{r['need'] / 2**20:.0f}"
        lines.append("| " + " | ".join(str(c) for c in [
            model, r["width"], r["members"], r["form"], f"{r['lone_compile']:.1f}", f"{r['stack_compile']:.1f}", mem,
            f"{r['seq_first']:.2f} / {r['stack_first']:.2f}", r["repeats"], ms(r["seq"]), ms(r["stack"]),
            f"{r['seq_ips']:,.0f}", f"{r['stack_ips']:,.0f}", f"{r['speedup']:.2f}x", f"{r['paired']:.2f}x"]) + " |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import jax

    from harness import machine_info
    from train_step import parse_unroll

    print("command: python bench/stack.py " + " ".join(sys.argv[1:] if argv is None else map(str, argv)))
    print(machine_info(), flush=True)
    members = sorted(dict.fromkeys(args.members))
    rows = []
    for width in args.widths:
        lone = Lone(args.model, width, args.batch, args.n_critic, parse_unroll(args.unroll), max(members))
        if width == args.widths[0]:
            t = lone.trainer
            loop = getattr(t, "unroll", None)
            print(f"\n{args.model}: {'x'.join(map(str, t.image_shape))}, batch {args.batch} per model, "
                  f"{t.batches_per_step} batch(es) per step" + (f" (n_critic {args.n_critic}, unroll {loop})"
                                                                 if args.model.startswith("wgan") else "")
                  + f"; backend {jax.default_backend()}; repeats "
                  + (f"auto (~{args.target_s:g} s timed per row, 3-10)" if args.repeats == "auto" else str(args.repeats))
                  + "\n", flush=True)
        print(f"  width {width}: lone compile {lone.compile_s:.1f} s, one lone step {1e3 * lone.step_s:.0f} ms",
              file=sys.stderr, flush=True)
        for m in members:
            reps = auto_repeats(lone.step_s, m, args.target_s) if args.repeats == "auto" else args.repeats
            rows += measure(lone, m, reps, args.chunks)
            print(f"  done: width {width} M={m}: " + "; ".join(
                f"{r['form']}: compile {r['stack_compile']:.1f} s, stacked / sequential {r['speedup']:.2f}x"
                for r in rows if r["width"] == width and r["members"] == m), file=sys.stderr, flush=True)
        del lone
    print(f"load avg at the end {'%.2f %.2f %.2f' % os.getloadavg()}\n")
    print(table(args.model, rows))
    print("\nimages / s = M x batches per step x batch / median time of one step of all M models; "
          "stacked / sequential = sequential median / stacked median; paired = median over repeats of "
          "sequential / stacked in the same repeat.")
    return rows


if __name__ == "__main__":
    os.environ.setdefault("GADJAX_COMPILATION_CACHE", "0")  # real compiles (read when gadjax is imported)
    main()
