"""MAD-GAN and the time-series utilities: windows and the series loader round-trip and
fail clearly; the LSTM matches a step-by-step reference; a trained MAD-GAN scores injected
anomalies (spikes, level shifts, a broken correlation) higher; the batched DR-score equals
a per-window recomputation; training compiles once, scoring once per batch shape; bad
settings fail at construction; ``--lr`` reaches both optimisers; save/load round-trips."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gadjax.metrics import roc_auc
from gadjax.models import anogan_search
from gadjax.models import madgan as M
from gadjax.models.madgan import MADGAN, dr_scores, madgan_scores
from gadjax.nets.lstm import LSTM, LSTMSpec, build_lstm_nets
from gadjax.optim import learning_rates
from gadjax.timeseries import (MinMaxScaling, load_series, sliding_windows, synthetic_series, window_labels,
                               windows_to_steps)
from helpers import trace_once

T, STRIDE, F = 16, 4, 6


# ---------------------------------------------------------------------- windows, loader

def test_sliding_windows_are_zero_copy_slices_and_map_back_to_the_series():
    series = np.random.default_rng(0).normal(size=(103, 3)).astype(np.float32)
    w = sliding_windows(series, 10, 4)
    assert w.shape == ((103 - 10) // 4 + 1, 10, 3)
    for i in (0, 5, len(w) - 1):
        np.testing.assert_array_equal(w[i], series[4 * i:4 * i + 10])
    assert np.shares_memory(w, series) and not w.flags.writeable
    # Averaging every step's copies over the windows that hold it gives the series back.
    for f in range(3):
        back = np.asarray(windows_to_steps(w[..., f], 4, len(series)))
        covered = (len(w) - 1) * 4 + 10
        np.testing.assert_allclose(back[:covered], series[:covered, f], rtol=1e-6)
        assert np.isnan(back[covered:]).all() and covered < len(series)


def test_windows_to_steps_averages_overlapping_windows():
    # windows of 3 steps every 2 steps over 7 steps: step 2 lies in windows 0 and 1, step 4 in 1 and 2.
    values = jnp.array([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(windows_to_steps(values, 2), [1, 1, 2, 3, 4, 5, 5])
    np.testing.assert_allclose(windows_to_steps(jnp.array([1.0, 3.0, 5.0]), 2, window=3), [1, 1, 2, 3, 4, 5, 5])
    jitted = jax.jit(windows_to_steps, static_argnums=(1, 2))
    np.testing.assert_allclose(jitted(values, 2, 8)[:7], [1, 1, 2, 3, 4, 5, 5])
    with pytest.raises(ValueError, match="window=T"):
        windows_to_steps(jnp.ones(3), 2)
    with pytest.raises(ValueError, match="shorter"):
        windows_to_steps(values, 2, 5)


def test_window_labels_and_argument_errors():
    y = np.zeros(20, np.uint8)
    y[9] = 1
    np.testing.assert_array_equal(window_labels(y, 5, 5), [0, 1, 0, 0])
    with pytest.raises(ValueError, match="2-D"):
        sliding_windows(np.zeros(10), 3)
    with pytest.raises(ValueError, match="longer than the series"):
        sliding_windows(np.zeros((5, 2)), 6)
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(np.zeros((5, 2)), 2, 0)


def test_load_series_csv_npz_npy_round_trip(tmp_path):
    x = np.random.default_rng(1).normal(size=(12, 3)).astype(np.float32)
    with_header = tmp_path / "h.csv"
    with_header.write_text("time,a,b,c\n" + "\n".join(f"2024-01-{i + 1:02d},{r[0]!r},{r[1]!r},{r[2]!r}"
                                                      for i, r in enumerate(x.tolist())) + "\n")
    np.testing.assert_allclose(load_series(with_header, columns=["a", "b", "c"]), x, rtol=1e-6)
    np.testing.assert_allclose(load_series(with_header, columns=["c", 1]), x[:, [2, 0]], rtol=1e-6)
    plain = tmp_path / "p.csv"
    np.savetxt(plain, x, delimiter=",")
    got = load_series(plain)
    assert got.dtype == np.float32 and got.shape == (12, 3)
    np.testing.assert_allclose(got, x, rtol=1e-6)
    np.savez(tmp_path / "s.npz", series=x, labels=np.zeros(12))
    np.testing.assert_array_equal(load_series(tmp_path / "s.npz", "series"), x)
    np.savez(tmp_path / "one.npz", x[:, 0])
    assert load_series(tmp_path / "one.npz").shape == (12, 1)        # 1-D: a univariate series
    np.save(tmp_path / "s.npy", x)
    np.testing.assert_array_equal(load_series(tmp_path / "s.npy"), x)


def test_load_series_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no series file"):
        load_series(tmp_path / "missing.csv")
    gap = tmp_path / "gap.csv"
    gap.write_text("a,b\n1,2\n3,\n5,6\n")
    with pytest.raises(ValueError, match=r"1 NaN/Inf .* time step 1, column 1"):
        load_series(gap)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="NaN"):
        load_series(nan)
    text = tmp_path / "text.csv"
    text.write_text("a,b\n1,2\n3,high\n")
    with pytest.raises(ValueError, match=r"non-numeric value 'high' at line 3, column 'b'"):
        load_series(text)
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 2)), b=np.zeros((4, 2)))
    with pytest.raises(KeyError, match="pass key="):
        load_series(tmp_path / "two.npz")
    with pytest.raises(KeyError, match="no array 'c'"):
        load_series(tmp_path / "two.npz", "c")
    np.save(tmp_path / "cube.npy", np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        load_series(tmp_path / "cube.npy")
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="unknown series format"):
        load_series(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="no column 'z'"):
        load_series(gap, columns=["z"])


def test_minmax_scaling_uses_training_range_only():
    train = np.array([[0.0, 5.0], [10.0, 5.0]], np.float32)
    scale = MinMaxScaling.fit(train)
    np.testing.assert_allclose(scale(train), [[-1, -1], [1, -1]])           # constant column: scale 1
    np.testing.assert_allclose(scale([[20.0, 5.0]]), [[3.0, -1.0]])         # test values may leave [-1, 1]
    np.testing.assert_allclose(scale.inverse(scale(train)), train, atol=1e-6)


# ------------------------------------------------------------------------------- nets

def test_lstm_layer_matches_a_step_by_step_reference():
    from flax import nnx
    layer = LSTM(3, 5, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 7, 3))
    wi, bi, wh = (np.asarray(a) for a in (layer.inp.kernel[...], layer.inp.bias[...], layer.rec.kernel[...]))
    sig = lambda a: 1 / (1 + np.exp(-a))
    c = h = np.zeros((2, 5))
    ref = []
    for t in range(7):
        i, f, u, o = np.split(np.asarray(x[:, t]) @ wi + bi + h @ wh, 4, axis=-1)
        c = sig(f) * c + sig(i) * np.tanh(u)
        h = sig(o) * np.tanh(c)
        ref.append(h)
    np.testing.assert_allclose(layer(x), np.stack(ref, 1), rtol=2e-5, atol=2e-6)
    assert np.all(np.asarray(layer.inp.bias[...])[5:10] == 1.0)             # forget-gate bias 1


def test_lstm_nets_shapes_and_errors():
    spec = LSTMSpec((T, F), latent=3, hidden=8, generator_depth=2)
    nets = build_lstm_nets(spec, ("generator", "critic", "encoder"))
    (g, gi), (d, di), (e, ei) = nets["generator"], nets["critic"], nets["encoder"]
    gp, gs = gi(jax.random.PRNGKey(0))
    dp, ds = di(jax.random.PRNGKey(1))
    ep, es = ei(jax.random.PRNGKey(2))
    z = jnp.zeros((4, spec.z_dim))
    x = g(gp, gs, z)
    assert spec.z_dim == T * 3 and x.shape == (4, T, F) and float(jnp.max(jnp.abs(x))) <= 1.0
    logit, feats = d(dp, ds, x)
    assert logit.shape == (4,) and feats.shape == (4, 8)
    steps, _ = d(dp, ds, x, per_step=True)
    assert steps.shape == (4, T)
    np.testing.assert_allclose(logit, steps.mean(1), rtol=1e-5)
    assert e(ep, es, x).shape == (4, spec.z_dim)
    with pytest.raises(ValueError, match=r"\(batch, 48\)"):
        g(gp, gs, jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(batch, 16, 6\)"):
        d(dp, ds, jnp.zeros((4, T, F + 1)))
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        LSTMSpec((28, 28, 1))


# ----------------------------------------------------------------------------- MAD-GAN

@pytest.fixture(scope="module")
def fitted():
    """A small MAD-GAN on the first 2000 (anomaly-free) steps of a generated 6-channel
    series; the last 1000 steps hold 9 injected anomalies (3 of each kind)."""
    series, labels = synthetic_series(3000, F, n_anomalies=9, anomaly_start=2000, seed=0)
    scale = MinMaxScaling.fit(series[:2000])
    scaled = scale(series)
    det = MADGAN(window=T, stride=STRIDE, z_dim=4, width=32, generator_depth=1, discriminator_depth=1, steps=300,
                 batch_size=32, search_steps=100, generator_repeats=1, score_batch_size=128, progress=False)
    train = sliding_windows(scaled[:1800], T, STRIDE)
    det.build(train.shape[1:])
    trace_once(det.trainer("model"))   # one compiled training step for the whole run
    det.fit(train, sliding_windows(scaled[1800:2000], T, STRIDE))
    return det, scaled[2000:], labels[2000:]


def _compiled() -> tuple[int, ...]:
    """Compiled variants of every scoring program (search loop forms and the DR combination)."""
    jits = (anogan_search._search_jit, anogan_search._host_init_jit, anogan_search._host_step_jit,
            anogan_search._host_final_jit, M._discriminate_and_combine)
    return tuple(j._cache_size() for j in jits)


def test_madgan_scores_injected_anomalies_higher(fitted):
    det, test, labels = fitted
    windows, y = sliding_windows(test, T, STRIDE), window_labels(labels, T, STRIDE)
    compiled = _compiled()
    details = det.score_details(windows)   # same padded batch size as the validation scoring in fit
    assert _compiled() == compiled         # so nothing is compiled again
    assert details["score"].shape == (len(windows),) and details["step_scores"].shape == (len(windows), T)
    assert roc_auc(y, details["score"]) > 0.75
    # Per-time-step scores (overlapping windows averaged) also rank anomalous steps higher;
    # the windows are cut every config.stride steps.
    steps = det.score_series(test)
    covered = ~np.isnan(steps)
    assert steps.shape == (len(test),) and covered.sum() > 0.98 * len(test)
    assert roc_auc(labels[covered], steps[covered]) > 0.7
    assert det.predict(windows).shape == (len(windows),)
    # The authors' optimisers: SGD 0.1 for D, Adam 1e-3 for G.
    assert {k: np.float32(v) for k, v in learning_rates(det.state.opt).items()} == \
        {"critic": np.float32(0.1), "generator": np.float32(1e-3)}


def test_batched_dr_score_equals_per_window_recomputation(fitted):
    det, test, _ = fitted
    windows = jnp.asarray(sliding_windows(test, T, STRIDE)[:24])
    nets, cfg = det.scoring_nets(), det.config.replace(lam=0.3, search_steps=40)
    key = jax.random.PRNGKey(3)
    batch = madgan_scores(nets, windows, cfg, key)
    for i in (0, 7, 23):
        one = madgan_scores(nets, windows[i:i + 1], cfg, key, index_offset=i)
        np.testing.assert_allclose(one["score"][0], batch["score"][i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(one["reconstruction"][0], batch["reconstruction"][i], rtol=1e-4, atol=1e-5)
    # The DR-score from its definition: lam * sum_F |x - G(z*)| + (1 - lam) * (1 - D(x)), per step.
    t, s = det.trainer_, det.state
    rec = t.generator(s.params["generator"], s.stats["generator"], batch["z"])
    logits = t.critic(s.params["critic"], s.stats["critic"], windows, per_step=True)[0]
    manual = 0.3 * jnp.abs(windows - rec).sum(-1) + 0.7 * (1 - jax.nn.sigmoid(logits))
    np.testing.assert_allclose(batch["step_scores"], manual, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(batch["score"], manual.mean(1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dr_scores(windows, rec, logits, 0.3)["score"], manual.mean(1), rtol=1e-5)


@pytest.mark.parametrize("change", [
    dict(width="wide"), dict(generator_repeats=0), dict(search_lr=float("nan")), dict(lam=1.5),
    dict(output="relu"), dict(loop="gpu"), dict(d_learning_rate=-0.1), dict(z_dim=2.5), dict(kappa=1.0),
])
def test_bad_settings_fail_at_construction(change):
    with pytest.raises(ValueError, match=next(iter(change))):
        MADGAN(**change)


def test_madgan_input_errors(fitted):
    det, test, _ = fitted
    fresh = MADGAN(window=T, z_dim=2, width=4, generator_depth=1, steps=1, progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh.score_series(test)
    with pytest.raises(ValueError, match="MinMaxScaling"):
        fresh.fit(sliding_windows(10.0 * test, T, STRIDE))
    with pytest.raises(ValueError, match=r"\(N, 16, 6\)"):
        det.score_samples(np.zeros((3, T + 1, F), np.float32))
    with pytest.raises(ValueError, match="window=16"):   # the default window is 30 steps
        MADGAN(progress=False).fit(sliding_windows(test, T, STRIDE))
    with pytest.raises(ValueError, match="sliding_windows"):
        fresh.fit(np.zeros((4, T, F, 1), np.float32))
    with pytest.raises(ValueError, match="net must be one of 'lstm'"):
        MADGAN(net="dcgan")
    with pytest.raises(TypeError, match="MADGANConfig"):
        MADGAN(LSTMSpec())
