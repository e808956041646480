"""gadjax.metrics against scikit-learn, plus edge cases and input validation."""
import ast
import pathlib

import numpy as np
import pytest

sk = pytest.importorskip("sklearn.metrics")

from gadjax import metrics  # noqa: E402


def _data(seed, n=300, ties=True, frac=0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < frac).astype(int)
    y[:2] = [0, 1]  # both classes always present
    s = rng.normal(size=n) + 1.2 * y
    if ties:
        s = np.round(s, 1)  # many exact ties, also across classes
    return y, s


CASES = [_data(k, ties=k % 2 == 0) for k in range(6)] + [
    (np.array([0, 1]), np.array([0.5, 0.5])),  # all tied
    (np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])),  # sklearn docstring example
    (np.array([1, 0, 1, 0]), np.array([1.0, 2.0, 3.0, 4.0])),  # worse than random
    (np.array([0, 0, 0, 1]), np.array([3.0, 3.0, 1.0, 3.0])),
    (np.array([0, 1, 1, 1, 0]), np.array([5, 5, 5, 5, 5])),  # integer, constant
]


@pytest.mark.parametrize("y,s", CASES)
def test_ranking_metrics_match_sklearn(y, s):
    assert metrics.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert metrics.average_precision(y, s) == pytest.approx(
        sk.average_precision_score(y, s), abs=1e-12)
    assert metrics.auprc is metrics.average_precision
    for drop in (False, True):
        ours, ref = metrics.roc_curve(y, s, drop_intermediate=drop), sk.roc_curve(
            y, s, drop_intermediate=drop)
        for a, b in zip(ours, ref):
            np.testing.assert_allclose(a, b)
        ours = metrics.precision_recall_curve(y, s, drop_intermediate=drop)
        ref = sk.precision_recall_curve(y, s, drop_intermediate=drop)
        for a, b in zip(ours, ref):
            np.testing.assert_allclose(a, b)


def test_roc_auc_known_values():
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert metrics.roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert metrics.roc_auc([0, 1], [0.3, 0.3]) == 0.5  # a cross-class tie counts 1/2
    assert metrics.roc_auc([0, 1, 1], [0.3, 0.3, 0.9]) == 0.75
    assert metrics.roc_auc(np.array([False, True]), [0.0, 1.0]) == 1.0  # bool labels


@pytest.mark.parametrize("seed", range(4))
def test_precision_recall_f1_match_sklearn(seed):
    y, s = _data(seed)
    for thr in (-10.0, np.median(s), 0.5, 1.0, s.max(), 100.0):
        got = metrics.precision_recall_f1(y, s, thr)
        pred = (s > thr).astype(int)
        assert got["precision"] == pytest.approx(sk.precision_score(y, pred, zero_division=0))
        assert got["recall"] == pytest.approx(sk.recall_score(y, pred, zero_division=0))
        assert got["f1"] == pytest.approx(sk.f1_score(y, pred, zero_division=0))


def test_precision_recall_f1_strict_inequality_and_no_positives(recwarn):
    # s == threshold is NOT flagged.
    got = metrics.precision_recall_f1([0, 1], [0.0, 1.0], threshold=1.0)
    assert got == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    got = metrics.precision_recall_f1([0, 1], [0.0, 1.0], threshold=0.5)
    assert got == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert not recwarn.list
    for v in metrics.precision_recall_f1([0, 0, 0], [1.0, 2.0, 3.0], 10.0).values():
        assert v == 0.0 and not np.isnan(v)


def test_threshold_is_fixed_from_normal_scores():
    rng = np.random.default_rng(0)
    normal_train = rng.normal(size=1000)
    thr = metrics.threshold_from_normal(normal_train, percentile=95.0)
    assert thr == pytest.approx(np.percentile(normal_train, 95.0))
    assert np.mean(normal_train > thr) == pytest.approx(0.05, abs=0.002)
    # The threshold depends only on the normal scores: the test scores change
    # the metrics, not the threshold.
    y_test = np.r_[np.zeros(200), np.ones(50)].astype(int)
    s_test = np.r_[rng.normal(size=200), rng.normal(3.0, 1.0, size=50)]
    out = metrics.evaluate(y_test, s_test, thr)
    assert out["threshold"] == thr
    out2 = metrics.evaluate(y_test, s_test + 100.0, thr)
    assert out2["threshold"] == thr and out2["recall"] == 1.0 and out2["precision"] == 0.2
    assert metrics.threshold_from_normal(normal_train, 100.0) == normal_train.max()
    with pytest.raises(ValueError, match="percentile"):
        metrics.threshold_from_normal(normal_train, 120.0)


def test_threshold_from_contamination_pyod_style():
    s = np.arange(100, dtype=float)
    assert metrics.threshold_from_contamination(s, 0.1) == pytest.approx(np.percentile(s, 90))
    assert np.mean(s > metrics.threshold_from_contamination(s, 0.1)) == pytest.approx(0.1)
    for bad in (0.0, 0.7, -0.1):
        with pytest.raises(ValueError, match="contamination"):
            metrics.threshold_from_contamination(s, bad)


def test_evaluate_keys_and_values():
    y, s = _data(3)
    out = metrics.evaluate(y, s, 0.8)
    assert set(out) == {"auroc", "auprc", "precision", "recall", "f1", "threshold"}
    assert out["auroc"] == pytest.approx(sk.roc_auc_score(y, s))
    assert out["auprc"] == pytest.approx(sk.average_precision_score(y, s))
    assert out["f1"] == pytest.approx(sk.f1_score(y, (s > 0.8).astype(int)))
    assert all(isinstance(v, float) for v in out.values())
    rng = np.random.default_rng(1)
    masks = (rng.random((len(y), 4, 4, 1)) < 0.2).astype(np.uint8)
    maps = rng.random((len(y), 4, 4))
    out = metrics.evaluate(y, s, 0.8, masks=masks, maps=maps)
    assert out["pixel_auroc"] == pytest.approx(sk.roc_auc_score(masks.ravel(), maps.ravel()))
    with pytest.raises(ValueError, match="both"):
        metrics.evaluate(y, s, 0.8, masks=masks)


@pytest.mark.parametrize("chan", [False, True])
def test_pixel_auroc_matches_sklearn(chan):
    rng = np.random.default_rng(2)
    masks = np.zeros((5, 8, 8), np.uint8)
    masks[:, 2:5, 3:6] = 1
    maps = np.round(rng.random((5, 8, 8)) + 0.5 * masks, 1)
    ref = sk.roc_auc_score(masks.ravel(), maps.ravel())
    if chan:
        masks, maps = masks[..., None], maps[..., None]
    assert metrics.pixel_auroc(masks, maps) == pytest.approx(ref, abs=1e-12)
    # masks with a channel axis and maps without are accepted too.
    assert metrics.pixel_auroc(masks.reshape(5, 8, 8, 1), maps.reshape(5, 8, 8)) == pytest.approx(ref)


def test_pixel_auroc_errors():
    masks = np.zeros((2, 4, 4, 1))
    masks[0, 0, 0] = 1
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_auroc(masks, np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_auroc(masks[:, :, :, 0].reshape(2, 16), np.zeros((2, 16)))
    with pytest.raises(ValueError, match="one class"):
        metrics.pixel_auroc(np.zeros((2, 4, 4)), np.random.rand(2, 4, 4))
    with pytest.raises(ValueError, match="0 .*1"):
        metrics.pixel_auroc(masks * 255, np.random.rand(2, 4, 4))


@pytest.mark.parametrize("fn", [metrics.roc_auc, metrics.average_precision, metrics.roc_curve,
                                metrics.precision_recall_curve])
def test_input_validation(fn):
    with pytest.raises(ValueError, match="mismatched lengths"):
        fn([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        fn([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="NaN or Inf"):
        fn([0, 1], [0.1, np.inf])
    with pytest.raises(ValueError, match="only 0"):
        fn([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="only 0"):
        fn([-1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="empty"):
        fn([], [])


def test_single_class_errors():
    with pytest.raises(ValueError, match="one class"):
        metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="one class"):
        metrics.roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="anomalous"):
        metrics.average_precision([0, 0], [0.1, 0.2])
    # All-positive AP is defined (= 1), as in sklearn.
    assert metrics.average_precision([1, 1], [0.1, 0.2]) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        metrics.threshold_from_normal([0.0, np.nan])
    with pytest.raises(ValueError, match="NaN"):
        metrics.precision_recall_f1([0, 1], [0.0, 1.0], float("nan"))


def test_module_is_numpy_only():
    src = pathlib.Path(metrics.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported <= {"numpy", "typing", "__future__"}, imported


def test_best_f1_is_the_maximum_over_every_threshold():
    from gadjax.metrics import best_f1, precision_recall_f1
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.2).astype(int)
    s = np.round(rng.normal(size=300) + 1.5 * y, 1).astype(np.float32)  # ties included
    got = best_f1(y, s)
    brute = max((precision_recall_f1(y, s, t) for t in np.r_[s.min() - 1, np.unique(s)]), key=lambda d: d["f1"])
    assert got["f1"] == pytest.approx(brute["f1"]) and got["f1"] > 0.5
    assert precision_recall_f1(y, s, got["threshold"]) == {k: got[k] for k in ("precision", "recall", "f1")}
