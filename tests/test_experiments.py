"""experiments/: every script imports and parses its documented defaults, every results table
renders from the committed results files, and the shared helpers in experiments/common.py
behave as the scripts rely on.  No training: a few seconds on CPU."""
import importlib
import json
import pathlib
import shutil
import sys

import jax
import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
RESULTS = EXPERIMENTS / "results"
# The scripts run as `python experiments/<name>.py` and import their helpers as `common`.
sys.path.insert(0, str(EXPERIMENTS))

import common  # noqa: E402  (imported as a module: its test_subset must not be collected as a test)

SCRIPTS = sorted(p.stem for p in EXPERIMENTS.glob("*.py") if p.stem != "common")

# One documented default per script (docstrings, experiments/README.md), beside --out.
DEFAULTS = {
    "alad_mnist": {"digits": [0, 1], "steps": 1000, "test_limit": 1000, "cache_dir": str(common.REPO_CACHE)},
    "anogan_search": {"digits": [0, 1], "search_steps": 500, "restarts": 4, "test_limit": 500, "val_limit": 200,
                      "cache_dir": None},
    "cbigan_mnist": {"digits": list(range(10)), "discriminator": "projection", "cache_dir": str(common.REPO_CACHE)},
    "contamination": {"gammas": [0.0, 0.02, 0.05], "steps": 1500, "table": False},
    "dedgan_mnist": {"protocol": "one-anomalous", "digits": [0, 1, 2], "steps": 800},
    "egbad_mnist": {"digits": list(range(10)), "alpha": 0.9, "tag": "", "cache_dir": str(common.REPO_CACHE)},
    "ganomaly_mnist": {"models": ["ganomaly"], "val_limit": 1000, "test_limit": 2000, "cache_dir": None},
    "industrial": {"datasets": ["mvtec_transistor", "magnetic_tile"], "seeds": [0], "cache_dir": None},
    "joint_encoder_mnist": {"gammas": [0.0, 0.05], "models": ["joint_encoder", "ensemble"], "steps": 600},
    "madgan_kdd": {"seeds": [0, 1], "steps": 2000, "search_steps": 500, "test_limit": 2000},
    "mnist_anogan_fanogan": {"net": "thesis", "search_steps": 200, "table": False},
    "one_class": {"seeds": [0, 1, 2], "steps": 2000, "table": False},
    "paper_settings": {"tables": [], "list": False, "estimate": False},
    "tabular": {"seeds": [0, 1], "models": ["anogan", "fanogan", "joint_encoder", "egbad", "alad"]},
}
CACHE_FLAG = ["alad_mnist", "anogan_search", "cbigan_mnist", "egbad_mnist", "ganomaly_mnist", "industrial"]


def test_every_script_is_listed():
    assert SCRIPTS == sorted(DEFAULTS)


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_imports_and_parses_its_defaults(name):
    args = vars(importlib.import_module(name).parse_args([]))
    # paper_settings keeps its paper-length rows apart from the short CPU records
    assert pathlib.Path(args["out"]) == (RESULTS / "paper" if name == "paper_settings" else RESULTS)
    assert {k: args[k] for k in DEFAULTS[name]} == DEFAULTS[name]


@pytest.mark.parametrize("name", CACHE_FLAG)
@pytest.mark.parametrize("flag", ["--cache-dir", "--cache"])  # --cache: the old spelling of alad/egbad/cbigan
def test_cache_flag_and_its_alias(name, flag):
    assert importlib.import_module(name).parse_args([flag, "/tmp/x"]).cache_dir == "/tmp/x"


# ------------------------------------------------------------------ tables from the committed results

def test_one_class_table(tmp_path):
    one_class = importlib.import_module("one_class")
    # The grid appends to one_class.jsonl while it runs: render the recorded seed-0, 800-step
    # Fashion-MNIST one-normal ALAD rows only, so later runs do not move the numbers checked.
    rows = [r for r in common.load_rows(RESULTS / "one_class.jsonl")
            if (r["dataset"], r["protocol"], r["model"], r["seed"], r["config"].get("steps"))
            == ("fashion_mnist", "one-normal", "alad", 0, 800)]
    assert sorted(r["normal_class"] for r in rows) == list(range(10))
    (tmp_path / one_class.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = one_class.write_table(tmp_path)
    assert "## fashion_mnist, one-normal" in text
    row = next(line for line in text.splitlines() if line.startswith("| alad |"))
    assert row.startswith("| alad | 800 | 16 | paper | 0 | 1000 | 0.915 | 0.978 |")
    assert row.endswith("| 0.905 | 0.805 |")  # mean AUROC, mean F1 over the ten classes
    assert (tmp_path / one_class.TABLE).read_text() == text
    assert (tmp_path / "one_class_fashion_mnist_one-normal.png").stat().st_size > 0
    assert (tmp_path / "one_class_fashion_mnist_one-normal_bars.png").stat().st_size > 0
    assert "(one_class_fashion_mnist_one-normal_bars.png)" in text  # the page shows the bars


@pytest.mark.parametrize("name", ["anogan_search", "contamination", "tabular"])
def test_table_pages_match_the_committed_ones(name, tmp_path):
    """Both scripts rewrite results/<name>.md from results/<name>.jsonl: the committed page
    is exactly what the current code renders from the committed rows."""
    module = importlib.import_module(name)
    shutil.copy(RESULTS / f"{name}.jsonl", tmp_path)
    text = module.write_table(tmp_path)
    assert (tmp_path / f"{name}.md").read_text() == text == (RESULTS / f"{name}.md").read_text()


def test_contamination_table(tmp_path):
    contamination = importlib.import_module("contamination")
    shutil.copy(RESULTS / contamination.RESULTS, tmp_path)
    lines = contamination.write_table(tmp_path).splitlines()
    assert "| 0.00 | fanogan | 600 | 0.994 | | 2 |" in lines  # f-AnoGAN: no residual-only column
    assert "| 0.00 | joint_encoder | 3000 | 0.885 | 0.980 | 1 |" in lines


def test_tabular_table(tmp_path):
    tabular = importlib.import_module("tabular")
    shutil.copy(RESULTS / "tabular.jsonl", tmp_path)
    text = tabular.write_table(tmp_path)
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert sections == list(tabular.DEFAULT_DATASETS)  # docstring order, whatever the file order
    kdd = text.split("## kddcup99")[1].split("## ")[0]
    assert "test anomaly fraction 0.200" in kdd and "seeds [0, 1, 2]" in kdd
    assert "| anogan | 0.969 ± 0.003 | 0.774 ± 0.011 |" in kdd
    assert all(f"| {m} | " in kdd for m in tabular.MODELS)
    # write_results re-sorts the file by key: the page must not change with it.
    common.write_results(tmp_path / tabular.JSONL, common.load_rows(tmp_path / tabular.JSONL), tabular.KEYS)
    assert tabular.write_table(tmp_path) == text


def test_industrial_table():
    industrial = importlib.import_module("industrial")
    lines = industrial.markdown_table(common.load_rows(RESULTS / "industrial.jsonl")).splitlines()
    assert ("| mvtec_transistor | ganomaly | 0 | 0.820 | 0.808 | 0.526 (0.88 / 0.38) | 0.814 | 0.890 | 400 | 168 |"
            in lines)
    assert ("| mvtec_transistor | **mean of 3** | ganomaly | 0.766 ± 0.052 | 0.759 ± 0.048 | 0.552 ± 0.025 | "
            "0.806 ± 0.007 | 0.883 ± 0.006 | | |") in lines


def test_mnist_anogan_fanogan_table_is_the_readme_table():
    maf = importlib.import_module("mnist_anogan_fanogan")
    text = maf.markdown_table(common.load_rows(RESULTS / maf.RESULTS))
    assert "| 0 | mean of 2 | fanogan | 0.9884 ± 0.0048 | 0.9982 | 0.9935 | | |" in text.splitlines()
    assert text in (EXPERIMENTS / "README.md").read_text()


# ------------------------------------------------------------------------------ common.py helpers

def test_mean_std():
    assert common.mean_std([0.9, 0.92]) == "0.910 ± 0.014"  # sample std (ddof=1)
    assert common.mean_std([0.912]) == "0.912"  # one seed: no spread to report
    assert common.mean_std((0.5, 0.5, 0.5), digits=4) == "0.5000 ± 0.0000"


def test_load_rows(tmp_path):
    assert common.load_rows(tmp_path / "missing.jsonl") == []
    (tmp_path / "r.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    assert common.load_rows(tmp_path / "r.jsonl") == [{"a": 1}, {"a": 2}]


def test_write_results_replaces_by_key_and_keeps_the_rest(tmp_path):
    path = tmp_path / "sub" / "r.jsonl"
    common.write_results(path, [{"k": 2, "s": 0, "v": "old"}, {"k": 1, "s": 0, "v": "kept"}], ("k", "s"))
    common.write_results(path, [{"k": 2, "s": 0, "v": "new"}, {"k": 2, "s": 1, "v": "added"}], ("k", "s"))
    assert common.load_rows(path) == [{"k": 1, "s": 0, "v": "kept"}, {"k": 2, "s": 0, "v": "new"},
                                      {"k": 2, "s": 1, "v": "added"}]  # sorted by key
    assert not path.with_suffix(".tmp").exists()


def test_run_grid_writes_after_every_cell(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    seen = []

    def cell(seed, digit):
        seen.append(common.load_rows(path))  # what an interruption here would leave behind
        rows = [{"seed": seed, "digit": digit}]
        return rows if digit else rows[0]  # a list of rows or one row

    common.run_grid(path, ("seed", "digit"), [(0, 1), (0, 0)], cell)
    assert seen == [[], [{"seed": 0, "digit": 1}]]
    assert common.load_rows(path) == [{"seed": 0, "digit": 0}, {"seed": 0, "digit": 1}]
    assert str(path) in capsys.readouterr().err


def test_metrics_summary():
    res = {"auroc": 0.91234, "auprc": 1.0, "f1": 0.5, "threshold": 3.0}
    assert common.metrics_summary(res) == "AUROC 0.9123 AUPRC 1.0000 F1 0.5000"


def test_group_by_sorts_groups_and_keeps_row_order():
    rows = [{"d": "b", "s": 1}, {"d": "a", "s": 0}, {"d": "b", "s": 0}]
    assert common.group_by(rows, "d") == {("a",): [rows[1]], ("b",): [rows[0], rows[2]]}


def test_save_markdown(tmp_path):
    assert common.save_markdown(tmp_path / "t.md", ["# T", "", "x"]) == "# T\n\nx"
    assert (tmp_path / "t.md").read_text() == "# T\n\nx"


def test_run_info(monkeypatch):
    monkeypatch.setenv("GADJAX_COMMIT", "abc123")  # a git-archive snapshot names its commit
    info = common.run_info()
    assert info["gadjax_commit"] == "abc123" and info["jax_version"] == jax.__version__
    assert info["backend"] == "cpu" and "cpus" in info["machine"] and info["finished"].endswith("+00:00")
    monkeypatch.delenv("GADJAX_COMMIT")
    commit = common.gadjax_commit()
    assert commit is None or len(commit) == 40  # HEAD of this checkout, None outside one


def test_enable_compile_cache(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.config, "update", lambda name, value: calls.append((name, value)))
    common.enable_compile_cache(None)
    common.enable_compile_cache("")  # '' disables the default cache of alad/egbad
    assert calls == []
    common.enable_compile_cache("/tmp/cache")
    assert ("jax_compilation_cache_dir", "/tmp/cache") in calls


def test_one_class_grid_runs_as_stacks_with_a_wall_time_estimate(shared_data, tmp_path, capsys, monkeypatch):
    """One (dataset, protocol, model) cell = one stacked program over classes x seeds; one row
    per model, its threshold the one saved with its run directory's detector."""
    monkeypatch.setenv("GADJAX_DATA", str(shared_data))
    one_class = importlib.import_module("one_class")
    args = ["--models", "ganomaly", "--datasets", "mnist", "--protocols", "one-normal", "--classes", "2", "5",
            "--seeds", "0", "--steps", "2", "--width", "4", "--batch-size", "16", "--test-limit", "32",
            "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "res")]
    one_class.main(args + ["--estimate"])
    printed = capsys.readouterr().out
    assert "estimate: ganomaly, a stack of 2 models" in printed and "estimated wall time of the grid" in printed
    assert not (tmp_path / "runs").exists()
    one_class.main(args + ["--no-estimate"])
    rows = common.load_rows(tmp_path / "res" / one_class.RESULTS)
    assert [(r["normal_class"], r["seed"], r["stack_models"]) for r in rows] == [(2, 0, 2), (5, 0, 2)]
    stack = pathlib.Path(rows[0]["stack"])
    assert stack.name == "stack_c2-5_s0" and pathlib.Path(rows[1]["run_dir"]) == stack / "class5_seed0"
    saved = json.loads((stack / "class5_seed0" / "detector" / "detector.json").read_text())
    assert rows[1]["threshold"] == saved["threshold"] and rows[1]["n_test"] == 32
    assert rows[1]["config"]["data"]["normal_class"] == 5 and rows[1]["config"]["config"]["steps"] == 2


def test_paper_settings_commands_parse_and_their_configs_are_valid(tmp_path):
    """Every table's command is accepted by its script, every probed job is a valid detector
    config, and thesis Table 4-1 renders beside the joint encoder's rows."""
    from gadjax.models import DETECTORS
    paper = importlib.import_module("paper_settings")
    tables = paper.tables(str(tmp_path), str(tmp_path / "runs"))
    for name, table in tables.items():
        for script, argv in table.commands:
            parsed = importlib.import_module(script).parse_args(list(argv))
            assert pathlib.Path(parsed.out) == tmp_path, (name, script)
        for job in table.jobs:
            DETECTORS[job.model].config_class().replace(**job.config)
    assert paper.steps(15, 48600, 64) == 11391 and paper.steps(32, 5400, 50, 5) == 692
    rows = [{"model": "joint_encoder", "dataset": "mnist", "protocol": "one-normal", "normal_class": d, "seed": s,
             "precision": 0.9, "recall": 0.5 + 0.01 * d, "f1": 0.6, "auroc": 0.8,
             "config": {"config": {"steps": 3000, "width": 64, "batch_size": 50, "threshold_percentile": 95.0}}}
            for d in (0, 3) for s in (0, 1)]
    common.write_results(tmp_path / "one_class.jsonl", rows, ("normal_class", "seed"))
    text = paper.write_thesis_table(tmp_path)
    assert "| thesis f1 | 99.56 | 99.09 | 99.33 |" in text and "| ours recall | 50.00 | 53.00 | 51.50 |" in text
    with pytest.raises(SystemExit, match="unknown table"):
        paper.main(["no_such_table", "--list"])
