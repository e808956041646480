"""``gadjax train`` with several --normal-class values / --seeds: one stacked program, one
ordinary run directory per model, ``gadjax evaluate`` one row per model; the mistakes
particular to stacks as one line with exit status 2."""
import json

import numpy as np
import pytest

from gadjax.cli import main

TINY = ["--width", "4", "--batch-size", "16", "--steps", "2", "--log-every", "1", "--checkpoint-every", "1",
        "--no-progress", "--option", "score_batch_size=32"]


def _train(shared_data, out, *extra):
    return ["train", "--model", "ganomaly", "--dataset", "mnist", "--data-dir", str(shared_data), "--out", str(out),
            *TINY, *extra]


def test_stacked_train_evaluate_and_one_model_alone(shared_data, tmp_path, capsys):
    out = tmp_path / "stack"
    args = _train(shared_data, out, "--normal-class", "3", "1", "--seeds", "0", "2")
    assert main(args + ["--dry-run"]) == 0 and not out.exists()
    plan = json.loads(capsys.readouterr().out)
    assert [(m["normal_class"], m["seed"]) for m in plan["models"]] == [(3, 0), (3, 2), (1, 0), (1, 2)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = ["class3_seed0", "class3_seed2", "class1_seed0", "class1_seed2"]
    assert [m["run"] for m in summary["models"]] == [str(out / n) for n in names]
    # One metrics line per log point, one value per model.
    lines = [json.loads(s) for s in (out / "stack" / "model" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [1, 2] and len(lines[-1]["con_loss"]) == 4
    # Every model is an ordinary run directory: its lone spec (own class and seed) and detector.
    spec = json.loads((out / "class1_seed2" / "config.json").read_text())
    assert spec["data"]["normal_class"] == 1 and spec["config"]["seed"] == 2 and spec["config"]["steps"] == 2

    assert main(["evaluate", "--run", str(out), "--limit", "48"]) == 0
    rows = [json.loads(s) for s in (out / "evaluation.jsonl").read_text().splitlines()]
    assert [r["run"] for r in rows] == names and {r["n_test"] for r in rows} == {48}
    assert [(r["normal"], r["seed"]) for r in rows][2:] == [("class 1 (1)", 0), ("class 1 (2)", 2)] or \
        [r["seed"] for r in rows] == [0, 2, 0, 2]
    for r, name, t in zip(rows, names, summary["models"]):
        assert r["threshold"] == t["threshold"] and 0 <= r["auroc"] <= 1
        assert (out / name / "evaluation.json").exists() and (out / name / "roc.png").exists()
    capsys.readouterr()
    # One model evaluated alone (its own scoring program) gives its stack row.
    assert main(["evaluate", "--run", str(out / "class1_seed2"), "--limit", "48", "--no-progress"]) == 0
    alone = json.loads((out / "class1_seed2" / "evaluation.json").read_text())
    assert alone["auroc"] == pytest.approx(rows[3]["auroc"], abs=0.02) and alone["n_test"] == 48
    np.testing.assert_allclose(alone["threshold"], rows[3]["threshold"])

    # Re-running resumes (nothing left to train); other settings in the same --out are refused.
    assert main(args) == 0
    capsys.readouterr()
    assert main(_train(shared_data, out, "--normal-class", "3", "1", "--seeds", "0", "5")) == 2
    err = capsys.readouterr().err
    assert "holds another stack" in err and "seeds" in err
    assert main(["score", "--run", str(out), "--images", str(out / "class1_seed2" / "test_scores.npy"),
                 "--output", str(tmp_path / "s.npy")]) == 2
    assert "is a stack of 4 models" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "0", "1", "--seed", "2"], "--seed: does not apply to a stack"),
    (["--seeds", "0", "1", "--data-parallel"], "--shard model or --shard batch"),
    (["--seeds", "0", "1", "--sample-every", "5"], "--sample-every: does not apply"),
    (["--seeds", "0", "0"], "--seeds: [0, 0] names a value twice"),
    (["--normal-class", "0", "10"], "not a class of mnist"),
    (["--shard", "model"], "--shard: splits a stack"),
    (["--seeds", "0", "1", "2", "--shard", "model"], "3 models over 8 devices"),
    (["--seeds", "0", "1", "--shard", "batch", "--batch-size", "12"], "each batch of 12 over 8 devices"),
])
def test_stack_mistakes_are_one_line_and_write_nothing(shared_data, tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(_train(shared_data, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_a_detector_that_cannot_be_stacked_says_so(shared_data, tmp_path, capsys):
    args = ["train", "--model", "madgan", "--dataset", "kddcup99", "--data-dir", str(shared_data), "--seeds", "0",
            "1", "--out", str(tmp_path / "m")]
    assert main(args) == 2
    assert "--model madgan: MADGAN cannot be stacked" in capsys.readouterr().err
