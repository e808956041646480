"""Saving and loading fitted detectors: bit-identical scores in a new process, the input
range kept and enforced, atomic writes, and clear errors for what is not a detector."""
import json
import subprocess
import sys

import numpy as np
import pytest

import gadjax
from gadjax.models.ganomaly import GANomaly
from helpers import squares


@pytest.fixture(scope="module")
def fitted():
    x = squares(24)
    return GANomaly(width=4, z_dim=8, steps=3, batch_size=8, progress=False).fit(x[:16], x[16:]), x


def test_a_loaded_detector_scores_bit_identically_in_a_new_process(fitted, tmp_path):
    det, x = fitted
    det.save(tmp_path / "det")
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, numpy as np, gadjax; d = gadjax.load(sys.argv[1]); "
            "np.save(sys.argv[2], d.score_samples(np.load(sys.argv[3]))); print(d.threshold_)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "det"), str(tmp_path / "s.npy"),
                           str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), det.score_samples(x))
    assert float(proc.stdout.strip().splitlines()[-1]) == det.threshold_
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["model"] == "ganomaly" and meta["input_range"] == [-1.0, 1.0]
    assert meta["gadjax_version"] == gadjax.__version__ and meta["config"]["width"] == 4


def test_load_takes_a_relative_path(fitted, tmp_path, monkeypatch):
    det, x = fitted
    det.save(tmp_path / "det")
    monkeypatch.chdir(tmp_path)
    np.testing.assert_array_equal(gadjax.load("det").score_samples(x[:4]), det.score_samples(x[:4]))


def test_save_refuses_to_overwrite_unless_asked_and_replaces_atomically(fitted, tmp_path):
    det, x = fitted
    det.save(tmp_path / "det")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        det.save(tmp_path / "det")
    det.save(tmp_path / "det", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["det"]  # no temporary left behind
    (tmp_path / "other").mkdir()
    with pytest.raises(FileExistsError, match="not a saved detector"):
        det.save(tmp_path / "other", overwrite=True)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        gadjax.load(tmp_path / "missing")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "fit.json").write_text("{}")
    with pytest.raises(RuntimeError, match="unfinished.*gadjax train"):
        gadjax.load(tmp_path / "run")


def test_input_range_is_recorded_and_enforced(fitted):
    det, x = fitted
    assert det.input_range_ == (-1.0, 1.0)
    as_model = x.astype(np.float32) / 127.5 - 1.0  # the model's own range: accepted
    np.testing.assert_allclose(det.score_samples(as_model), det.score_samples(x), rtol=1e-6)
    unit = x.astype(np.float32) / 255.0
    with pytest.raises(ValueError, match=r"inside \[0, 1\].*takes \[-1, 1\].*input_range=\(0, 1\)"):
        det.score_samples(unit)
    np.testing.assert_allclose(det.score_samples(unit, input_range=(0, 1)), det.score_samples(x), rtol=1e-6)
    with pytest.raises(ValueError, match=r"lies in \[0, 255\] but the model takes \[-1, 1\]"):
        det.score_samples(x.astype(np.float32))
    with pytest.raises(ValueError, match="outside input_range"):
        det.score_samples(unit * 2, input_range=(0, 1))


def test_bad_training_inputs_fail_before_training(tmp_path):
    det = GANomaly(width=4, z_dim=8, steps=3, batch_size=8, progress=False, out_dir=tmp_path / "o")
    with pytest.raises(ValueError, match="x_val holds no images"):
        det.fit(squares(16), np.zeros((0, 16, 16, 1), np.uint8))
    with pytest.raises(ValueError, match="x_train holds no samples"):
        det.fit(np.zeros((0, 16, 16, 1), np.uint8))
    with pytest.raises(ValueError, match="rows"):
        det.fit(np.zeros((8, 5), np.float32))  # tabular rows: GANomaly is convolutional
    assert not (tmp_path / "o").exists()  # nothing written
