"""Test-wide setup: CPU only, 8 fake devices for the data-parallel tests, and a
persistent JAX compilation cache so repeated runs skip XLA compiles."""
import os
import pathlib

# Must be set before jax initialises its backends.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
# The CPU's default im2col / sub-pixel convs (gadjax/nets/conv.py) take about twice as long
# to compile as Flax's stock convs; tests/test_conv_forms.py proves in float64 that both
# compute the same function (layers and whole train steps) and tests the default form, so
# every other test builds the nets in the quicker-to-compile stock form.
os.environ.setdefault("GADJAX_CONV_FORM", "stock")
if "xla_force_host_platform_device_count" not in _flags:
    _flags += " --xla_force_host_platform_device_count=8"
# Most of the suite's time is XLA:CPU compiling tiny programs: LLVM at -O1 without its
# expensive passes compiles them about twice as fast, and the longer real-data fits run
# no slower.  The XLA programs are the same, only their machine code is less tuned (bench/ measures
# speed with the defaults); subprocesses the tests start inherit it.
if "xla_backend_optimization_level" not in _flags:
    _flags += " --xla_backend_optimization_level=1 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = _flags.strip()

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

_CACHE = pathlib.Path(os.environ.get("GADJAX_TEST_CACHE", pathlib.Path(__file__).resolve().parents[1] / ".jax_cache"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

SHARED_DATA = pathlib.Path(os.environ.get("GADJAX_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """Directory of the shipped npz files; tests that need it are skipped without it."""
    if not (SHARED_DATA / "mnist.npz").exists():
        pytest.skip(f"shipped data not found in {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mnist_small(shared_data):
    """A fixed 2000/1000 slice of the real MNIST, loaded once per session."""
    with np.load(shared_data / "mnist.npz") as d:
        data = {k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    return {k: (v[:2000] if "train" in k else v[:1000]) for k, v in data.items()}
