"""Evaluation metrics for anomaly detection, in plain numpy.

Conventions used throughout:

* a **higher score means more anomalous**;
* label ``1`` means anomalous (the positive class), ``0`` means normal.

The ranking metrics (:func:`roc_auc`, :func:`average_precision`) follow the
exact definitions of scikit-learn's ``roc_auc_score`` and
``average_precision_score`` (ties are resolved by grouping equal scores into a
single threshold), so numbers are comparable with the literature. This module
deliberately depends on numpy only: it is imported by training code and must
stay light. scikit-learn is used in the tests only, to check the results.

Thresholded metrics (precision/recall/F1) need a decision threshold. That
threshold must be fixed from scores of *normal* training/validation data
(:func:`threshold_from_normal`, :func:`threshold_from_contamination`), never
from the test set, otherwise the reported F1 is optimistically biased.
"""
from __future__ import annotations


import numpy as np

__all__ = [
    "roc_curve",
    "roc_auc",
    "precision_recall_curve",
    "average_precision",
    "auprc",
    "threshold_from_normal",
    "threshold_from_contamination",
    "precision_recall_f1",
    "best_f1",
    "pixel_auroc",
    "evaluate",
]


# ----------------------------------------------------------------------------
# Input validation.
# ----------------------------------------------------------------------------


def _check_scores(s, name: str = "scores") -> np.ndarray:
    """Returns ``s`` as a finite 1-D float64 array, or raises ValueError."""
    s = np.asarray(s)
    if s.dtype == object or not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {s.dtype}.")
    s = s.astype(np.float64).reshape(-1)
    if s.size == 0:
        raise ValueError(f"{name} is empty.")
    bad = ~np.isfinite(s)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or Inf); "
            "check the model for divergence before evaluating."
        )
    return s


def _check_labels(y, name: str = "labels") -> np.ndarray:
    """Returns ``y`` as a 1-D int64 array of {0, 1}, or raises ValueError."""
    y = np.asarray(y)
    if y.dtype == object:
        raise ValueError(f"{name} must be numeric 0/1, got dtype object.")
    y = y.reshape(-1)
    if y.size == 0:
        raise ValueError(f"{name} is empty.")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
            raise ValueError(f"{name} must contain only 0 (normal) and 1 (anomalous).")
        bad = np.setdiff1d(np.unique(y), [0, 1])
        if bad.size:
            raise ValueError(
                f"{name} must contain only 0 (normal) and 1 (anomalous); "
                f"found {bad[:5].tolist()}."
            )
    return y.astype(np.int64)


def _check_pair(y, s):
    y = _check_labels(y)
    s = _check_scores(s)
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"labels and scores have mismatched lengths: {y.shape[0]} vs {s.shape[0]}."
        )
    return y, s


def _require_both_classes(y: np.ndarray, what: str) -> None:
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        only = "anomalous (1)" if n_pos else "normal (0)"
        raise ValueError(
            f"{what} is undefined when only one class is present "
            f"(all {y.shape[0]} labels are {only})."
        )


def _binary_clf_curve(y: np.ndarray, s: np.ndarray):
    """Cumulative (fps, tps) at each distinct score, thresholds decreasing.

    Equal scores collapse into one threshold: this is what makes tie handling
    identical to scikit-learn (a tie block contributes a diagonal segment).
    """
    # Stable sort so the result does not depend on the sort algorithm.
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    distinct = np.where(np.diff(s))[0]
    ends = np.r_[distinct, y.size - 1]
    tps = np.cumsum(y)[ends].astype(np.float64)
    fps = (ends + 1) - tps
    return fps, tps, s[ends]


# ----------------------------------------------------------------------------
# Ranking metrics.
# ----------------------------------------------------------------------------


def roc_curve(y, s, drop_intermediate: bool = True):
    """Receiver operating characteristic curve.

    Args:
      y: (N,) labels in {0, 1}; both classes must be present.
      s: (N,) finite scores, higher = more anomalous.
      drop_intermediate: drop collinear points that do not change the curve
        (the scikit-learn default); ``False`` keeps one point per distinct score.

    Returns:
      ``(fpr, tpr, thresholds)``, each of shape (K,). ``thresholds`` is
      decreasing with ``thresholds[0] = +inf`` (nothing predicted anomalous),
      and a sample is predicted anomalous at threshold t when ``s >= t``.
    """
    y, s = _check_pair(y, s)
    _require_both_classes(y, "ROC curve")
    fps, tps, thr = _binary_clf_curve(y, s)
    if drop_intermediate and fps.size > 2:
        # Keep a point only if it is a corner (the slope changes there).
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    thr = np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def roc_auc(y, s) -> float:
    """Area under the ROC curve (AUROC), identical to ``sklearn.metrics.roc_auc_score``.

    Trapezoid rule over the distinct thresholds, so a tie between a normal and
    an anomalous sample counts 1/2 (the Mann-Whitney U statistic).

    Args:
      y: (N,) labels in {0, 1}; both classes must be present.
      s: (N,) finite scores, higher = more anomalous.
    """
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    # Explicit trapezoid (np.trapezoid needs numpy>=2, np.trapz is deprecated).
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) * 0.5))


def precision_recall_curve(y, s, drop_intermediate: bool = False):
    """Precision-recall curve, identical to ``sklearn.metrics.precision_recall_curve``.

    Args:
      y: (N,) labels in {0, 1}; at least one anomalous sample is required.
      s: (N,) finite scores, higher = more anomalous.
      drop_intermediate: drop thresholds that do not change recall (keeps the
        first and last point of each vertical run).

    Returns:
      ``(precision, recall, thresholds)``; precision and recall have shape
      (K+1,), thresholds (K,) increasing. The last point is (precision=1,
      recall=0) and has no threshold.
    """
    y, s = _check_pair(y, s)
    if y.sum() == 0:
        raise ValueError("precision-recall curve is undefined without anomalous (1) labels.")
    fps, tps, thr = _binary_clf_curve(y, s)
    if drop_intermediate and fps.size > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(tps[:-1]), np.diff(tps[1:])), True])[0]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    # tps + fps >= 1 at every distinct threshold, so no division by zero.
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thr[::-1]


def average_precision(y, s) -> float:
    """Average precision, identical to ``sklearn.metrics.average_precision_score``.

    ``AP = sum_k (R_k - R_{k-1}) P_k``: the step-function integral of the PR
    curve (no trapezoid interpolation, which is optimistic).

    Args:
      y: (N,) labels in {0, 1}; at least one anomalous sample is required.
      s: (N,) finite scores, higher = more anomalous.
    """
    precision, recall, _ = precision_recall_curve(y, s)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


auprc = average_precision


# ----------------------------------------------------------------------------
# Thresholds (fit on normal data only).
# ----------------------------------------------------------------------------


def threshold_from_normal(normal_scores, percentile: float = 95.0) -> float:
    """Decision threshold = ``percentile`` of the scores of NORMAL data.

    Pass scores of normal training or validation samples only. **Never pass
    test scores**: a threshold tuned on the test set leaks labels and inflates
    precision/recall/F1. With ``percentile=95`` about 5% of normal data is
    flagged (the false-positive rate you accept).

    Args:
      normal_scores: (M,) finite scores of normal samples.
      percentile: in [0, 100].
    """
    s = _check_scores(normal_scores, "normal_scores")
    if not 0.0 <= float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}.")
    return float(np.percentile(s, percentile))


def threshold_from_contamination(normal_or_train_scores, contamination: float = 0.1) -> float:
    """pyod-style threshold: the ``(1 - contamination)`` quantile of training scores.

    Matches pyod's ``threshold_ = percentile(decision_scores_, 100 * (1 -
    contamination))``: the expected fraction of anomalies in the (unlabelled)
    training data is flagged. As with :func:`threshold_from_normal`, use
    training/validation scores, never test scores.

    Args:
      normal_or_train_scores: (M,) finite scores.
      contamination: expected anomaly fraction, in (0, 0.5].
    """
    s = _check_scores(normal_or_train_scores, "normal_or_train_scores")
    if not 0.0 < float(contamination) <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination}.")
    return float(np.percentile(s, 100.0 * (1.0 - float(contamination))))


# ----------------------------------------------------------------------------
# Thresholded metrics.
# ----------------------------------------------------------------------------


def precision_recall_f1(y, s, threshold: float) -> dict:
    """Precision, recall and F1 of the predictions ``s > threshold``.

    Undefined ratios (nothing predicted anomalous, or no anomalies in ``y``)
    are reported as 0.0, like scikit-learn with ``zero_division=0``, without
    warnings.

    Args:
      y: (N,) labels in {0, 1}.
      s: (N,) finite scores.
      threshold: scalar, typically from :func:`threshold_from_normal`.

    Returns:
      ``dict(precision=float, recall=float, f1=float)``.
    """
    y, s = _check_pair(y, s)
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN.")
    pred = s > threshold
    tp = float(np.sum(pred & (y == 1)))
    fp = float(np.sum(pred & (y == 0)))
    fn = float(np.sum(~pred & (y == 1)))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    # 2TP / (2TP + FP + FN) equals 2PR / (P + R) and is defined whenever P or R is.
    f1 = 2.0 * tp / (2.0 * tp + fp + fn) if tp > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def best_f1(y, s) -> dict:
    """Precision, recall and F1 at the threshold that maximises F1 on these very labels:
    the "best F1" protocol of MAD-GAN and others.  The threshold is chosen on the test
    set, so the result is an optimistic upper bound, reported only beside those papers;
    gadjax's own F1 uses a threshold from normal data.

    Returns ``dict(precision, recall, f1, threshold)``; ``s > threshold`` gives the
    predictions (ties at the chosen score count as anomalous, like the curve's).
    """
    y, s = _check_pair(y, s)
    precision, recall, thresholds = precision_recall_curve(y, s)
    p, r = precision[:-1], recall[:-1]  # the last point has no threshold
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-300), 0.0)
    i = int(np.argmax(f1))
    # The curve predicts s >= t; the float just below t makes that s > threshold.
    threshold = float(np.nextafter(float(thresholds[i]), -np.inf))
    return {**precision_recall_f1(y, s, threshold), "threshold": threshold}


def _squeeze_channel(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (N,H,W) or (N,H,W,1), got {a.shape}.")
    return a


def pixel_auroc(masks, maps) -> float:
    """Pixel-level AUROC: every pixel of every image is one sample.

    Args:
      masks: (N,H,W) or (N,H,W,1) ground-truth segmentation in {0, 1}
        (1 = anomalous pixel); both classes must occur.
      maps: anomaly maps with the same (N,H,W) shape (a trailing channel of 1
        is allowed), higher = more anomalous.
    """
    masks = _squeeze_channel(np.asarray(masks), "masks")
    maps = _squeeze_channel(np.asarray(maps), "maps")
    if masks.shape != maps.shape:
        raise ValueError(f"masks and maps shapes differ: {masks.shape} vs {maps.shape}.")
    y = _check_labels(masks, "masks")
    _require_both_classes(y, "pixel AUROC")
    return roc_auc(y, _check_scores(maps, "maps"))


def evaluate(y_test, s_test, threshold: float, masks=None, maps=None) -> dict:
    """All test-set metrics in one dict.

    Args:
      y_test: (N,) test labels in {0, 1}, both classes present.
      s_test: (N,) test scores.
      threshold: fixed beforehand from normal data (see
        :func:`threshold_from_normal`), not from ``s_test``.
      masks, maps: optional pixel ground truth and anomaly maps, see
        :func:`pixel_auroc`; give both or neither.

    Returns:
      dict with ``auroc, auprc, precision, recall, f1, threshold`` (floats) and
      ``pixel_auroc`` when masks are given.
    """
    out = {
        "auroc": roc_auc(y_test, s_test),
        "auprc": average_precision(y_test, s_test),
    }
    out.update(precision_recall_f1(y_test, s_test, threshold))
    out["threshold"] = float(threshold)
    if (masks is None) != (maps is None):
        raise ValueError("pass both masks and maps for pixel AUROC, or neither.")
    if masks is not None:
        out["pixel_auroc"] = pixel_auroc(masks, maps)
    return out
