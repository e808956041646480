"""Output directories: one writer at a time (stale locks recovered), fits refused into a
directory trained with other settings or data, torn metrics lines, resume messages."""
import json
import os
import subprocess
import sys

import pytest

from gadjax.models.ganomaly import GANomaly
from gadjax.train.rundir import RunLock, check_record, fingerprint
from gadjax.train.runlog import MetricsLog
from helpers import squares

TINY = dict(width=4, z_dim=8, steps=2, batch_size=8, progress=False, log_every=1, checkpoint_every=1)


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(f"{holder.pid} {os.uname().nodename}\n")
        with pytest.raises(RuntimeError, match=f"in use by process {holder.pid}"):
            RunLock(tmp_path).acquire()
        with pytest.raises(RuntimeError, match=f"process {holder.pid}"):
            GANomaly(out_dir=tmp_path, **TINY).fit(squares(16))
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and taken over, with a warning.
    with pytest.warns(UserWarning, match="stale lock"):
        with RunLock(tmp_path) as lock:
            assert lock.path.read_text().split()[0] == str(os.getpid())
            with RunLock(tmp_path):  # the same process may nest (a run that fits a detector)
                pass
            assert lock.path.exists()
    assert not (tmp_path / ".lock").exists()


def test_fit_into_a_directory_of_another_model_or_data_is_refused(tmp_path):
    x = squares(24)
    GANomaly(out_dir=tmp_path, **TINY).fit(x[:16], x[16:])
    record = json.loads((tmp_path / "fit.json").read_text())
    fresh = GANomaly(**TINY)
    fresh.build(x.shape[1:])
    assert record["data"] == fingerprint(fresh._prepare(x[:16])) and record["model"] == "ganomaly"
    with pytest.raises(ValueError, match="other settings or data \\(data.blake2b"):
        GANomaly(out_dir=tmp_path, **TINY).fit(x[8:24])
    with pytest.raises(ValueError, match="config.w_con: saved 50.0 vs now 5.0"):
        GANomaly(out_dir=tmp_path, **{**TINY, "w_con": 5.0}).fit(x[:16])
    # Longer training and score-only settings are the same model: resumed, not refused.
    det = GANomaly(out_dir=tmp_path, **{**TINY, "steps": 3, "threshold_percentile": 90.0}).fit(x[:16], x[16:])
    assert int(det.state.step) == 3


def test_check_record_names_what_differs(tmp_path):
    check_record(tmp_path, {"model": "a", "config": {"lr": 1}})
    check_record(tmp_path, {"model": "a", "config": {"lr": 1}})
    with pytest.raises(ValueError, match="config.lr: saved 1 vs now 2"):
        check_record(tmp_path, {"model": "a", "config": {"lr": 2}})


def test_a_torn_last_metrics_line_is_dropped_with_a_warning_naming_the_file(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n{"step": 3, "lo')
    with pytest.warns(UserWarning, match=f"{path}.*last line"):
        MetricsLog(path).truncate_after(2)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]


def test_a_run_with_a_torn_metrics_line_resumes(tmp_path, capsys):
    x = squares(16)
    GANomaly(out_dir=tmp_path, **TINY).fit(x)
    with open(tmp_path / "model" / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "generator_lo')
    with pytest.warns(UserWarning, match="metrics.jsonl"):
        det = GANomaly(out_dir=tmp_path, **{**TINY, "steps": 3, "progress": True}).fit(x)
    assert int(det.state.step) == 3 and "model: resuming from step 2" in capsys.readouterr().err
