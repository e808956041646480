"""Small generated data sets shared by the test files."""
import numpy as np


def squares(n: int, seed: int = 0, size: int = 16) -> np.ndarray:
    """uint8 (n, size, size, 1) images, each a bright (size/2)^2 square at a random place:
    a toy distribution with structure that tiny GANs learn in a few steps."""
    rng = np.random.default_rng(seed)
    half = size // 2
    x = np.zeros((n, size, size, 1), np.uint8)
    for i, (r, c) in enumerate(rng.integers(0, half, size=(n, 2))):
        x[i, r:r + half, c:c + half] = 255
    return x


def trace_once(trainer, n: int = 1):
    """Re-jit ``trainer.step`` so that tracing it more than ``n`` times fails the test
    (``chex.assert_max_traces``; the library keeps no trace counters of its own)."""
    import chex

    from gadjax.parallel import jit_step
    # chex keys its counters by function identity; a freed trainer's bound method can reuse
    # an address, so start from a clean count.
    chex.clear_trace_counter()
    trainer.step = jit_step(chex.assert_max_traces(trainer._step, n=n), trainer.parallel)
    return trainer
