"""The command line on real shipped data: train -> evaluate -> score, resume, errors."""
import json
import subprocess
import sys

import numpy as np
import pytest

from gadjax.cli import main

TINY = ["--net", "dcgan", "--width", "4", "--z-dim", "8", "--batch-size", "16", "--n-critic", "1",
        "--log-every", "2", "--sample-every", "2", "--checkpoint-every", "2", "--no-progress"]


def test_train_evaluate_score_on_shipped_mnist(shared_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "fanogan", "--dataset", "mnist", "--data-dir", str(shared_data),
            "--normal-class", "1", "--steps", "4", "--encoder-steps", "2", "--out", str(out)] + TINY
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "fanogan" and np.isfinite(summary["threshold"])
    assert (out / "samples" / "step_000004.png").exists()
    steps = [json.loads(line)["step"] for line in (out / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]

    assert main(["evaluate", "--run", str(out), "--limit", "64"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["protocol"] == "one-normal" and result["n_test"] == 64
    assert 0.0 <= result["auroc"] <= 1.0 and 0.0 <= result["f1"] <= 1.0
    for png in ("roc.png", "histogram.png", "reconstructions.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Handing evaluate_run the detector train_run just restored gives the same evaluation.
    from gadjax.runs import evaluate_run, load_spec, train_run
    detector = train_run(load_spec(out), out)
    again = evaluate_run(out, limit=64, detector=detector)
    assert again["auroc"] == result["auroc"] and again["threshold"] == result["threshold"]

    images = np.zeros((3, 28, 28, 1), np.uint8)
    np.save(tmp_path / "x.npy", images)
    assert main(["score", "--run", str(out), "--images", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "s.npy"), "--maps", str(tmp_path / "m.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (3,) and np.load(tmp_path / "m.npy").shape == (3, 28, 28)

    # Same directory, different model: refused with a clear message.
    capsys.readouterr()
    assert main(args[:-len(TINY)] + ["--width", "8"] + TINY[2:]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_train_resumes_from_checkpoint(shared_data, tmp_path):
    out = tmp_path / "gan"
    base = ["train", "--model", "wgan-gp", "--dataset", "mnist", "--data-dir", str(shared_data),
            "--normal-class", "0", "--out", str(out)] + TINY
    assert main(base + ["--steps", "2"]) == 0
    assert main(base + ["--steps", "4"]) == 0  # resumes at step 2
    steps = [json.loads(line)["step"] for line in (out / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4]


def test_evaluate_refuses_unfinished_or_missing_runs(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "nothing")]) == 2
    assert "config.json" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "gadjax", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "train" in proc.stdout and "evaluate" in proc.stdout


def test_bad_arguments_exit_nonzero():
    with pytest.raises(SystemExit):
        main(["train", "--model", "nope", "--out", "x"])


@pytest.mark.parametrize("model", ["joint_encoder", "ensemble"])
def test_end_to_end_player_detectors_with_options(shared_data, tmp_path, model):
    out = tmp_path / model
    args = ["train", "--model", model, "--dataset", "mnist", "--data-dir", str(shared_data), "--normal-class", "7",
            "--steps", "2", "--option", "lam=0.2", "--members", "2", "--out", str(out)] + TINY
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["options"] == {"lam": 0.2}
    assert (out / "model" / "checkpoints").exists()
    assert main(["evaluate", "--run", str(out), "--limit", "32"]) == 0
    assert json.loads((out / "evaluation.json").read_text())["model"] == model


def test_bad_option_syntax_is_reported(capsys):
    assert main(["train", "--option", "no-equals-sign", "--out", "unused"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_options_route_into_config_dataclasses():
    from gadjax.models import GANomaly
    from gadjax.runs import route_options
    routed = route_options(GANomaly, {"w_con": 10.0, "parallel": False})
    assert routed["config"].w_con == 10.0 and routed["parallel"] is False
    with pytest.raises(ValueError, match="no option.*'nope'.*accepts"):
        route_options(GANomaly, {"nope": 1})


def test_industrial_dataset_reports_pixel_auroc(shared_data, tmp_path):
    """MVTec transistor (64x64 RGB, masks): the industrial protocol, image and pixel AUROC."""
    out = tmp_path / "transistor"
    assert main(["train", "--model", "fanogan", "--dataset", "mvtec_transistor", "--data-dir", str(shared_data),
                 "--steps", "2", "--encoder-steps", "2", "--out", str(out)] + TINY) == 0
    assert main(["evaluate", "--run", str(out), "--sigma", "1.0"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["protocol"] == "industrial" and result["n_test"] == 100 and result["n_anomalous"] == 40
    assert 0.0 <= result["pixel_auroc"] <= 1.0 and 0.0 <= result["auroc"] <= 1.0


def test_default_net_family_per_model_and_image_size():
    from gadjax.runs import RunSpec
    assert RunSpec(model="fanogan").gan_config((28, 28, 1)).nets.family == "thesis"
    assert RunSpec(model="fanogan").gan_config((64, 64, 3)).nets.family == "dcgan"
    assert RunSpec(model="ganomaly").gan_config((28, 28, 1)).nets.family == "dcgan"
    assert RunSpec(model="ganomaly", net="dcgan").gan_config((32, 32, 3)).nets.image_shape == (32, 32, 3)


def test_unset_net_options_follow_each_detectors_paper_nets():
    from gadjax.runs import RunSpec

    egbad = RunSpec(model="egbad").gan_config((28, 28, 1)).nets
    assert (egbad.family, egbad.z_dim, egbad.critic_norm) == ("dcgan", 200, "batch")  # EGBAD's MNIST nets
    ensemble = RunSpec(model="ensemble", base="alad").gan_config((28, 28, 1)).nets
    assert (ensemble.z_dim, ensemble.critic_norm) == (100, "batch")
    chosen = RunSpec(model="alad", critic_norm="layer", z_dim=16).gan_config((28, 28, 1)).nets
    assert (chosen.z_dim, chosen.critic_norm) == (16, "layer")  # explicit options win
    fanogan = RunSpec(model="fanogan").gan_config((28, 28, 1)).nets  # GAN-based: the WGAN-GP practice
    assert (fanogan.family, fanogan.z_dim, fanogan.critic_norm) == ("thesis", 128, "layer")


def test_fanogan_run_reuses_the_anogan_runs_gan(shared_data, tmp_path):
    """reuse_gan: f-AnoGAN starts from AnoGAN's finished GAN when both would train the same one."""
    import dataclasses

    from gadjax.runs import RunSpec, reuse_gan, train_run
    anogan = RunSpec(model="anogan", dataset="mnist", data_dir=str(shared_data), normal_class=3, net="dcgan",
                     width=4, z_dim=8, batch_size=16, n_critic=1, steps=2, search_steps=2, progress=False,
                     sample_every=10**9, log_every=1, checkpoint_every=2)
    train_run(anogan, tmp_path / "anogan")
    fanogan = dataclasses.replace(anogan, model="fanogan", encoder_steps=2, search_steps=500)
    assert not reuse_gan(tmp_path / "anogan", tmp_path / "other", dataclasses.replace(fanogan, width=8))
    assert not reuse_gan(tmp_path / "anogan", tmp_path / "other", dataclasses.replace(fanogan, seed=1))
    assert not (tmp_path / "other").exists()
    assert reuse_gan(tmp_path / "anogan", tmp_path / "fanogan", fanogan)
    metrics = (tmp_path / "fanogan" / "gan" / "metrics.jsonl").read_text()
    train_run(fanogan, tmp_path / "fanogan")
    assert (tmp_path / "fanogan" / "gan" / "metrics.jsonl").read_text() == metrics  # the GAN was not retrained
    assert (tmp_path / "fanogan" / "encoder").exists()
    assert not reuse_gan(tmp_path / "anogan", tmp_path / "fanogan", fanogan)  # has a GAN already
