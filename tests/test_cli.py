"""The command line on real shipped data: train -> evaluate -> score, resume, the dry run,
tabular sets and MAD-GAN, and every user mistake as one line with exit status 2."""
import json
import subprocess
import sys

import numpy as np
import pytest

from gadjax.cli import main
from gadjax.models import DETECTORS

TINY = ["--width", "4", "--batch-size", "16", "--log-every", "2", "--sample-every", "2", "--checkpoint-every", "2",
        "--no-progress"]
GAN = ["--net", "dcgan", "--z-dim", "8", "--n-critic", "1"]


def _train(shared_data, out, *extra, model="fanogan"):
    return ["train", "--model", model, "--dataset", "mnist", "--data-dir", str(shared_data), "--out", str(out),
            *TINY, *extra]


def test_train_evaluate_score_on_shipped_mnist(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = _train(shared_data, out, "--normal-class", "1", "--steps", "4", "--encoder-steps", "2", *GAN)
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "fanogan" and np.isfinite(summary["threshold"])
    assert (out / "samples" / "step_000004.png").exists() and (out / "detector" / "detector.json").exists()
    steps = [json.loads(line)["step"] for line in (out / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["steps"] == 4 and saved["config"]["encoder_steps"] == 2 and saved["data"]["normal_class"] == 1

    assert main(["evaluate", "--run", str(out), "--limit", "64", "--no-progress"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["protocol"] == "one-normal" and result["n_test"] == 64 and result["steps"] == 4
    assert 0.0 <= result["auroc"] <= 1.0 and 0.0 <= result["f1"] <= 1.0
    for png in ("roc.png", "histogram.png", "reconstructions.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    np.save(tmp_path / "x.npy", np.zeros((3, 28, 28, 1), np.uint8))
    assert main(["score", "--run", str(out), "--images", str(tmp_path / "x.npy"), "--output", str(tmp_path / "s.npy"),
                 "--maps", str(tmp_path / "m.npy"), "--no-progress"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3,) and np.load(tmp_path / "m.npy").shape == (3, 28, 28)

    capsys.readouterr()  # same directory, other model settings: refused, nothing changed
    assert main(_train(shared_data, out, "--normal-class", "1", "--steps", "4", "--encoder-steps", "2", *GAN[:-2],
                       "--n-critic", "2")) == 2
    assert "other settings" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text()) == saved


def test_score_on_a_finished_run_trains_nothing_and_searches_no_validation_data(shared_data, tmp_path, monkeypatch,
                                                                                capsys):
    """AnoGAN's threshold is saved: scoring 2 images runs the search on those 2 only."""
    out = tmp_path / "anogan"
    assert main(_train(shared_data, out, "--normal-class", "4", "--steps", "2", "--search-steps", "2",
                       "--val-fraction", "0.005", *GAN, model="anogan")) == 0
    import gadjax.models.anogan as anogan
    import gadjax.train.loop as loop
    searched = []
    search = anogan.search_latent
    monkeypatch.setattr(anogan, "search_latent", lambda *a, **k: searched.append(len(a[2])) or search(*a, **k))
    monkeypatch.setattr(loop, "train_loop", lambda *a, **k: pytest.fail("scoring must not train"))
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28, 1), np.uint8))
    capsys.readouterr()
    assert main(["score", "--run", str(out), "--images", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "s.npy")]) == 0
    assert sum(searched) == 64  # one padded scoring batch holding the 2 images, no validation search
    err = capsys.readouterr().err  # the AnoGAN search shows its progress in samples/s
    assert "score [" in err and "samples/s" in err


def test_unfinished_run_is_an_error_that_says_how_to_resume(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "config.json").write_text("{}")
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28, 1), np.uint8))
    assert main(["score", "--run", str(out), "--images", str(tmp_path / "x.npy"), "--output", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "unfinished" in err and "gadjax train" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.npy").exists()


def test_train_resumes_from_checkpoint(shared_data, tmp_path, capsys):
    out = tmp_path / "gan"
    base = _train(shared_data, out, "--normal-class", "0", "--encoder-steps", "1", *GAN)
    assert main(base + ["--steps", "2"]) == 0
    capsys.readouterr()
    assert main([a for a in base if a != "--no-progress"] + ["--steps", "4"]) == 0  # resumes at step 2
    assert "gan: resuming from step 2" in capsys.readouterr().err
    steps = [json.loads(line)["step"] for line in (out / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_dry_run_routes_lr_to_every_optimiser_of_every_detector(shared_data, tmp_path, capsys):
    """--lr reaches EVERY optimiser of EVERY detector: read back from the optimiser states."""
    for name in sorted(DETECTORS):
        dataset = "kddcup99" if name == "madgan" else "mnist"
        args = ["train", "--model", name, "--dataset", dataset, "--data-dir", str(shared_data), "--lr", "0.0003",
                "--width", "4", "--out", str(tmp_path / name), "--dry-run"]
        assert main(args) == 0, capsys.readouterr().err
        resolved = json.loads(capsys.readouterr().out)
        rates = resolved["learning_rates"]
        assert rates and all(v == pytest.approx(3e-4, rel=1e-6) for v in rates.values()), (name, rates)
        assert resolved["model"] == name and resolved["config"].get("learning_rate", 3e-4) == pytest.approx(3e-4)
        assert not (tmp_path / name).exists()  # a dry run writes nothing
    assert len(DETECTORS) == 11


@pytest.mark.parametrize("args, flag", [
    (["--normal-class", "11"], "normal_class 11"),
    (["--width", "0"], "--width"),
    (["--lr", "nan"], "--lr"),
    (["--n-critic", "0"], "--n-critic"),
    (["--encoder-steps", "0"], "--encoder-steps"),
    (["--val-fraction", "0"], "--val-fraction"),
    (["--option", "kappa=abc"], "--option kappa"),
    (["--option", "threshold_percentile=150"], "--option threshold_percentile"),
    (["--option", "no_such_field=1"], "no_such_field"),
    (["--kappa", "-1"], "--kappa"),
    (["--members", "2"], "--members"),
    (["--gan-loss", "vae"], "--gan-loss"),
    (["--dataset", "kddcup99", "--normal-class", "1"], "--normal-class"),
    (["--steps", "abc"], "--steps"),
    (["--option", "no-equals-sign"], "KEY=VALUE"),
])
def test_bad_train_input_is_one_line_exit_2_and_writes_nothing(shared_data, tmp_path, capsys, args, flag):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) if flag == "--steps" else _no_raise() as exited:
        rc = main(_train(shared_data, out, "--steps", "2", *args))
    rc = exited.value.code if flag == "--steps" else rc
    err = capsys.readouterr().err
    assert rc == 2 and flag in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_other_bad_inputs(shared_data, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(_train(shared_data, a_file, "--steps", "2")) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(_train(shared_data, tmp_path / "g", "--steps", "2", "--option", "w_con=abc", model="ganomaly")) == 2
    assert "--option w_con: w_con must be a number" in capsys.readouterr().err
    assert main(_train(shared_data, tmp_path / "g", "--dataset", "kddcup99", model="ganomaly")) == 2
    assert "rows" in capsys.readouterr().err and not (tmp_path / "g").exists()
    assert main(_train(shared_data, tmp_path / "m", model="madgan")) == 2  # MAD-GAN takes a series
    assert "series" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--run", str(tmp_path), "--limit", "0"])
    assert exited.value.code == 2 and "--limit" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "config.json" in capsys.readouterr().err


def test_bad_files_given_to_a_finished_run(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_train(shared_data, out, "--steps", "2", "--lr", "1e-3", model="ganomaly")) == 0
    np.save(tmp_path / "empty.npy", np.zeros((0, 28, 28, 1), np.uint8))
    np.save(tmp_path / "floats01.npy", np.full((2, 28, 28, 1), 0.5, np.float32))
    for images, words in (("empty.npy", "no images"), ("floats01.npy", "input_range=(0, 1)"),
                          ("missing.npy", "not found")):
        capsys.readouterr()
        assert main(["score", "--run", str(out), "--images", str(tmp_path / images), "--output",
                     str(tmp_path / "s.npy")]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "extra": 1}))
    assert main(["evaluate", "--run", str(out)]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_errors_show_no_traceback_in_a_real_process_unless_debug(tmp_path):
    args = [sys.executable, "-m", "gadjax", "train", "--model", "egbad", "--width", "0", "--out", str(tmp_path / "r")]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "--width" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run(args + ["--debug"], capture_output=True, text=True, timeout=180)
    assert "Traceback" in proc.stderr


@pytest.mark.parametrize("model", ["egbad", "alad", "fanogan", "joint_encoder"])
def test_tabular_sets_train_from_the_command_line_with_mlp_nets(shared_data, tmp_path, model):
    out = tmp_path / model
    assert main(["train", "--model", model, "--dataset", "odds_thyroid", "--data-dir", str(shared_data),
                 "--steps", "3", "--batch-size", "32", "--width", "8", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "detector" / "detector.json").read_text())["image_shape"] == [6]
    assert main(["evaluate", "--run", str(out), "--no-progress"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["protocol"] == "tabular" and 0.0 <= result["auroc"] <= 1.0


def test_madgan_trains_on_kddcup99_windows_from_the_command_line(shared_data, tmp_path):
    out = tmp_path / "madgan"
    assert main(["train", "--model", "madgan", "--dataset", "kddcup99", "--data-dir", str(shared_data),
                 "--steps", "2", "--batch-size", "16", "--width", "4", "--search-steps", "2", "--val-fraction", "0.001",
                 "--option", "window=8", "--option", "stride=8", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "detector" / "detector.json").read_text())["image_shape"] == [8, 118]
    assert main(["evaluate", "--run", str(out), "--limit", "32", "--no-progress"]) == 0
    assert json.loads((out / "evaluation.json").read_text())["n_test"] == 32


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "gadjax", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "train" in proc.stdout and "evaluate" in proc.stdout


def test_industrial_dataset_reports_pixel_auroc(shared_data, tmp_path):
    """MVTec transistor (64x64 RGB, masks): the industrial protocol, image and pixel AUROC."""
    out = tmp_path / "transistor"
    assert main(["train", "--model", "fanogan", "--dataset", "mvtec_transistor", "--data-dir", str(shared_data),
                 "--steps", "2", "--encoder-steps", "2", "--out", str(out), *GAN, *TINY]) == 0
    assert main(["evaluate", "--run", str(out), "--sigma", "1.0", "--no-progress"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["protocol"] == "industrial" and result["n_test"] == 100 and result["n_anomalous"] == 40
    assert 0.0 <= result["pixel_auroc"] <= 1.0 and 0.0 <= result["auroc"] <= 1.0


def test_fanogan_run_reuses_the_anogan_runs_gan(shared_data, tmp_path):
    """reuse_gan: f-AnoGAN starts from AnoGAN's finished GAN when both would train the same one."""
    from gadjax.runs import load_spec, reuse_gan
    common = ["--normal-class", "3", "--steps", "2", "--val-fraction", "0.005", *GAN]
    assert main(_train(shared_data, tmp_path / "anogan", *common, "--search-steps", "2", model="anogan")) == 0
    spec = load_spec(tmp_path / "anogan")
    from gadjax.models import FAnoGAN
    from gadjax.runs import RunSpec
    fan = RunSpec("fanogan", FAnoGAN.config_class.from_dict(
        {k: v for k, v in spec.config.to_dict().items() if k in FAnoGAN.config_class.field_names()}), spec.data)
    assert not reuse_gan(tmp_path / "anogan", tmp_path / "other", RunSpec("fanogan", fan.config.replace(width=8),
                                                                           spec.data))
    assert not (tmp_path / "other").exists()
    assert reuse_gan(tmp_path / "anogan", tmp_path / "fanogan", fan)
    metrics = (tmp_path / "fanogan" / "gan" / "metrics.jsonl").read_text()
    assert main(_train(shared_data, tmp_path / "fanogan", *common, "--encoder-steps", "2")) == 0
    assert (tmp_path / "fanogan" / "gan" / "metrics.jsonl").read_text() == metrics  # the GAN was not retrained
    assert not reuse_gan(tmp_path / "anogan", tmp_path / "fanogan", fan)  # has a GAN already
