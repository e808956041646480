"""bench/profile_step.py: op_name -> phase, HLO op -> kind/phase on a tiny compiled program, self times.

No xprof needed (the script reads traces with jaxlib's ``jax.profiler.ProfileData``); the
WGAN-GP / AnoGAN profiles themselves are too slow to compile here and are run by hand.
"""
import importlib.util
import pathlib
import sys

import jax
import jax.numpy as jnp
import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "profile_step.py"
_spec = importlib.util.spec_from_file_location("bench_profile_step", _PATH)
ps = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = ps  # its dataclasses look their module up there
_spec.loader.exec_module(ps)


@pytest.mark.parametrize("op_name, phase", [
    # op_names as the compiled thesis WGAN-GP step carries them (scopes from ScopedGANTrainer)
    ("jit(_step)/closed_call/jvp(critic_update)/critic/dot_general", "D upd: D forward (real+fake)"),
    ("jit(_step)/closed_call/transpose(jvp(critic_update))/critic/pad", "D upd: D backward (weight grads)"),
    ("jit(_step)/closed_call/jvp(critic_update)/generator/transpose", "D upd: G forward (fakes)"),
    ("jit(_step)/closed_call/jvp(critic_update)/gradient_penalty/jvp(critic)/dot_general",
     "D upd: GP D forward at x_hat"),
    ("jit(_step)/closed_call/jvp(critic_update)/gradient_penalty/transpose(jvp(critic))/pad",
     "D upd: GP dD/dx_hat (1st backward)"),
    ("jit(_step)/closed_call/transpose(jvp(critic_update))/gradient_penalty/transpose(jvp(critic))/dot_general",
     "D upd: GP double backward"),
    ("jit(_step)/closed_call/transpose(jvp(critic_update))/gradient_penalty/jvp(critic)/add_any",
     "D upd: GP double backward"),
    ("jit(_step)/jvp(generator_update)/generator/dot_general", "G upd: G forward"),
    ("jit(_step)/jvp(generator_update)/critic/jit(leaky_relu)/mul", "G upd: D forward"),
    ("jit(_step)/transpose(jvp(generator_update))/critic/split", "G upd: D backward (input grads)"),
    ("jit(_step)/transpose(jvp(generator_update))/generator/scatter-add", "G upd: G backward (weight grads)"),
    ("jit(_step)/closed_call/adam/sqrt", "optimiser (Adam)"),
    ("jit(_step)/jvp(generator_update)/jit(_normal)/jit(_normal_real)/erf_inv", "RNG"),
    ("jit(_step)/jit(_threefry_split)/PlayerTrainer._step/while/body/closed_call/xor", "RNG"),
    ("jit(_step)/is_finite", "other (losses, metrics, glue)"),
    # the AnoGAN host-loop step: no update scopes, transposition marks the backward
    ("jit(_host_step)/vmap(vmap(jvp(generator)))/dot_general", "G forward"),
    ("jit(_host_step)/vmap(vmap(jvp(critic)))/slice", "D forward"),
    ("jit(_host_step)/vmap(vmap(transpose(jvp(critic))))/pad", "D backward (input grads)"),
    ("jit(_host_step)/vmap(vmap(transpose(vmap(vmap(jvp(generator))))))/select_n", "G backward (input grads)"),
    ("jit(_host_step)/vmap(vmap(jvp()))/abs", "other (losses, metrics, glue)"),
])
def test_phase_of(op_name, phase):
    assert ps.phase_of(op_name) == phase


def test_self_times_subtract_nested_events():
    # a while thunk (0-100) with two body thunks, then a sibling; times in ns
    events = [(0, 100, "while"), (10, 30, "a"), (50, 20, "b"), (120, 5, "c")]
    assert dict(ps.self_times(events)) == {"while": 50, "a": 30, "b": 20, "c": 5}


def test_per_step_ms_is_robust_to_one_descheduled_execution():
    # one op run once per step for 5 steps (µs); one execution was stretched by a preemption
    mean, robust = ps.per_step_ms([100.0, 110.0, 5000.0, 105.0, 100.0], per=5)
    assert mean == pytest.approx(1.083) and robust == pytest.approx(0.105)
    # an op run twice per step (e.g. in a loop body) counts twice
    assert ps.per_step_ms([10.0] * 6, per=3)[1] == pytest.approx(0.02)


def _tiny_step(w, x):
    """A scoped critic loss (im2col-like slices + concat + matmul), its gradient and an update."""
    def loss(w):
        with jax.named_scope("critic_update"), jax.named_scope("critic"):
            patches = jnp.concatenate([x[:, i:i + 6] for i in range(3)], axis=1)
            return jnp.sum(jnp.tanh(patches @ w) ** 2)
    value, grad = jax.value_and_grad(loss)(w)
    with jax.named_scope("adam"):
        return value, w - 0.1 * grad / (jnp.sqrt(grad * grad) + 1e-8)


def test_kinds_and_phases_of_a_compiled_program():
    old = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)  # its key ignores op names
    try:
        text = jax.jit(_tiny_step).lower(jnp.ones((18, 5)), jnp.ones((64, 24))).compile().as_text()
    finally:
        jax.config.update("jax_enable_compilation_cache", old)
    instrs = ps.parse_hlo(text)
    entry = text[text.index("\nENTRY"):]
    thunks = [n for n in instrs if f" {n} = " in entry or f"%{n} = " in entry]
    assert thunks
    kind = {n: ps.op_kind(instrs, n) for n in thunks}
    phase = {n: ps.op_phase(instrs, n) for n in thunks}
    assert set(kind.values()) <= {"matmul", "conv", "patches", "layout", "elementwise", "reduce", "gather/scatter", "control"}
    assert {phase[n] for n in thunks if kind[n] == "matmul"} == {"D upd: D forward (real+fake)",
                                                                "D upd: D backward (weight grads)"}
    assert "optimiser (Adam)" in phase.values()
    # the forward (64 x 18) @ (18 x 5) and the weight gradient (18 x 64) @ (64 x 5): 2 * 64 * 18 * 5 each
    assert sum(i.flops for i in instrs.values()) == pytest.approx(2 * 2 * 64 * 18 * 5)
