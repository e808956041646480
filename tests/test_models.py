"""Detectors: every registry entry fits, scores, saves and loads; thresholds come from
normal data only; f-AnoGAN's three encoder strategies; a seeded quality check on real
MNIST; tabular rows get the MLP nets without being asked."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gadjax
from gadjax import data
from gadjax.metrics import roc_auc, threshold_from_normal
from gadjax.models import DETECTORS, AnoGAN, FAnoGAN, fanogan_scores, map_batches
from gadjax.nets import NetSpec
from gadjax.optim import learning_rates
from gadjax.timeseries import MinMaxScaling, sliding_windows, synthetic_series
from gadjax.train import GANConfig, GANTrainer, RunConfig, train_loop
from gadjax.train.encoder import STRATEGIES, EncoderConfig, EncoderTrainer
from helpers import squares as _squares, trace_once

RUN = dict(steps=3, batch_size=8, progress=False, score_batch_size=8)
GAN = dict(net="dcgan", z_dim=8, width=4, n_critic=2)
KWARGS = {
    "anogan": dict(GAN, search_steps=5), "fanogan": dict(GAN, encoder_steps=3), "joint_encoder": GAN,
    "egbad": dict(z_dim=8, width=4), "alad": dict(z_dim=8, width=4), "cbigan": dict(z_dim=8, width=4),
    "ganomaly": dict(z_dim=8, width=4), "dedgan": dict(z_dim=8, width=4), "skip_ganomaly": dict(width=4),
    "ensemble": dict(GAN, base="joint_encoder", members=2),
    "madgan": dict(z_dim=2, width=8, generator_depth=1, search_steps=5, generator_repeats=1, window=16),
}


def make(name, **extra):
    return DETECTORS[name](**{**RUN, **KWARGS[name], **extra})


def _windows(n):
    """(n, 16, 6) windows of a generated multivariate series, scaled to [-1, 1]."""
    series, _ = synthetic_series(16 * n // 2 + 16, 6, n_anomalies=0)
    windows = sliding_windows(MinMaxScaling.fit(series)(series), 16, 8)[:n]
    return np.asarray(windows, np.float32)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_every_detector_fits_scores_maps_saves_and_loads(name, tmp_path):
    det = make(name)
    det.config = det.config.with_learning_rate(3e-4)  # what gadjax train --lr does
    x = _squares(24) if name != "madgan" else _windows(24)
    det.fit(x[:16], x_val=x[16:])
    scores = det.score_samples(x)
    assert scores.shape == (24,) and np.isfinite(scores).all()
    assert det.threshold_ == pytest.approx(threshold_from_normal(det.score_samples(x[16:]), 95.0), rel=1e-5)
    maps = det.anomaly_map(x[:5])
    assert maps.shape == (5,) + x.shape[1:-1] and (maps >= 0).all()
    assert det.predict(x).shape == (24,)
    assert det.reconstruct(x[:3]).shape == (3,) + x.shape[1:]
    for phase, state in det.states_.items():  # the rate asked for is the rate every optimiser trains with
        rates = learning_rates(state.opt)
        assert rates and all(r == pytest.approx(3e-4, rel=1e-6) for r in rates.values()), (phase, rates)
    det.save(tmp_path / "saved")
    loaded = gadjax.load(tmp_path / "saved")
    assert type(loaded) is type(det) and loaded.config == det.config and loaded.threshold_ == det.threshold_
    np.testing.assert_array_equal(loaded.score_samples(x), scores)


def test_evaluate_detector_scores_once_and_matches_the_detector():
    from gadjax.runs import evaluate_detector
    det = make("fanogan", encoder_steps=2)
    x = _squares(24)
    det.fit(x[:16], x_val=x[16:])
    y = np.r_[np.zeros(12), np.ones(12)].astype(int)
    masks = np.zeros((24, 16, 16), np.uint8)
    masks[12:, 4:12, 4:12] = 1
    calls = []
    score_details = det.score_details
    det.score_details = lambda images, **kw: calls.append(len(images)) or score_details(images, **kw)
    metrics, outputs = evaluate_detector(det, x, y, masks=masks)
    assert calls == [24]  # one scorer pass gives scores, reconstructions and maps
    np.testing.assert_allclose(outputs["score"], det.score_samples(x), rtol=1e-5)
    np.testing.assert_allclose(outputs["maps"], det.anomaly_map(x, reconstruction=outputs["reconstruction"]))
    np.testing.assert_allclose(outputs["maps"], det.anomaly_map(x), atol=1e-6)
    assert metrics["threshold"] == det.threshold_ and 0.0 <= metrics["pixel_auroc"] <= 1.0
    # f-AnoGAN's two terms are reported and judged alone; together they are the score.
    np.testing.assert_allclose(outputs["image"] + det.config.kappa * outputs["feature"], outputs["score"],
                               rtol=1e-5)
    assert metrics["auroc_image"] == roc_auc(y, outputs["image"]) and "auroc_z" not in metrics
    _, no_masks = evaluate_detector(det, x, y)
    assert no_masks["maps"] is None


def test_threshold_never_sees_test_data():
    det = make("fanogan", encoder_steps=2)
    x = _squares(24)
    det.fit(x[:16], x_val=x[16:])
    before = det.threshold_
    det.score_samples(np.full((8, 16, 16, 1), 255, np.uint8))  # scoring test data...
    assert det.threshold_ == before  # ...never moves the threshold


def test_unfitted_and_bad_inputs_raise_clearly():
    with pytest.raises(RuntimeError, match="not fitted"):
        make("fanogan").score_samples(_squares(4))
    det = make("fanogan", encoder_steps=1).fit(_squares(16))
    with pytest.raises(ValueError, match="28x28"):
        det.score_samples(np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        det.score_samples(np.full((2, 16, 16, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match="input_range"):
        det.score_samples(np.full((2, 16, 16, 1), 7.0, np.float32))


def test_scores_do_not_depend_on_scoring_batch_size():
    x = _squares(20)
    det = make("fanogan", encoder_steps=2).fit(x)
    a = det.score_samples(x)
    det.config = det.config.replace(score_batch_size=6)  # forces different padding of the last batch
    np.testing.assert_allclose(a, det.score_samples(x), rtol=1e-5)


def test_map_batches_pads_to_one_shape():
    shapes = []
    out = map_batches(lambda b, off: (shapes.append(b.shape), {"i": b[:, 0] + 0 * off})[1], np.arange(10)[:, None], 4)
    assert shapes == [(4, 1)] * 3
    np.testing.assert_array_equal(out["i"], np.arange(10))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_encoder_strategies_reduce_their_loss(strategy):
    tiny = GANConfig(NetSpec("dcgan", (16, 16, 1), z_dim=8, width=4), "wgan-gp", n_critic=2)
    gan = GANTrainer(tiny)
    gan_state, _ = train_loop(gan, data.to_float(_squares(64), "tanh"), RunConfig(steps=5, batch_size=16,
                                                                                 progress=False))
    # Images the generator can produce exactly, so a perfect encoder exists for every strategy.
    x = gan.generate(gan_state, gan.latent(jax.random.PRNGKey(5), 16))
    enc = trace_once(EncoderTrainer(gan, gan_state, EncoderConfig(strategy, learning_rate=3e-3)))
    state = enc.init(jax.random.PRNGKey(0))
    batch = enc.put_batches(np.asarray(x)[None])
    losses = []
    for _ in range(30):
        state, metrics = enc.step(state, batch)
        losses.append(float(metrics["encoder_loss"]))
    assert losses[-1] < 0.7 * losses[0], losses
    if strategy == "izif":
        assert float(metrics["feature_loss"]) > 0


def test_fanogan_pure_function_matches_detector_and_takes_plain_callables():
    x = _squares(16)
    det = make("fanogan", encoder_steps=2).fit(x)
    nets = det.scoring_nets()
    x_model = data.to_float(x, "tanh")
    out = jax.jit(fanogan_scores, static_argnums=2)(nets, x_model, det.config)
    np.testing.assert_allclose(out["score"], det.score_samples(x), rtol=1e-5)
    # Plain functions (here closures over the same networks) work the same way.
    plain = {k: (lambda v, f=f: f(v)) for k, f in nets.items()}
    np.testing.assert_allclose(fanogan_scores(plain, jnp.asarray(x_model), det.config)["score"], out["score"],
                               rtol=1e-5)


@pytest.fixture(scope="module")
def digits_1_vs_0(shared_data):
    mnist = data.load("mnist", shared_data)
    split = data.one_class_split(mnist, 1, "one-normal", seed=0)
    pick = np.r_[np.flatnonzero(mnist.y_test == 1)[:60], np.flatnonzero(mnist.y_test == 0)[:60]]
    return split.x_train[:1500], split.x_val[:64], mnist.x_test[pick], (mnist.y_test[pick] != 1).astype(int)


def test_quality_on_real_mnist_digit_1_vs_0(digits_1_vs_0):
    """Seeded, small: normal = digit 1; zeros must score clearly higher (AUROC >> 0.5)."""
    x_train, x_val, x_test, y_test = digits_1_vs_0
    gan = dict(net="dcgan", z_dim=16, width=8, learning_rate=5e-4, steps=120, batch_size=32, seed=0, progress=False)
    fan = FAnoGAN(encoder_steps=120, **gan).fit(x_train, x_val)
    auc_f = roc_auc(y_test, fan.score_samples(x_test))
    ano = AnoGAN(search_steps=40, search_lr=0.05, **gan).fit(x_train, x_val, gan=fan)
    auc_a = roc_auc(y_test, ano.score_samples(x_test))
    assert auc_f > 0.9, auc_f
    assert auc_a > 0.9, auc_a


@pytest.mark.parametrize("name", ["anogan", "fanogan", "joint_encoder"])
def test_tabular_rows_with_mlp_nets(name):
    """Detectors take (N, D) feature rows with the MLP family; anomalies far from the
    normal cloud must score higher (a clearly separable generated set)."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(512, 6)).astype(np.float32)
    test = np.concatenate([rng.normal(size=(50, 6)), rng.normal(size=(50, 6)) + 6.0]).astype(np.float32)
    y = np.r_[np.zeros(50), np.ones(50)].astype(int)
    extra = {"anogan": {"search_steps": 5}, "fanogan": {"encoder_steps": 60}}.get(name, {})
    det = DETECTORS[name](z_dim=4, width=16, learning_rate=1e-3, steps=60, batch_size=64, progress=False, **extra)
    det.fit(normal[:448], normal[448:])  # no nets given: rows get the MLP family
    assert det.net_spec((6,)).family == "mlp"
    assert roc_auc(y, det.score_samples(test)) > 0.9
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        det.score_samples(np.zeros((3, 5), np.float32))
