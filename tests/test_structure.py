"""Package hygiene: imports go one way, registries are complete, __all__ is real."""
import ast
import pathlib

import gadjax

ROOT = pathlib.Path(gadjax.__file__).parent

# Lower layers may not import higher ones: cli -> probe -> stack_runs -> runs -> models -> train -> losses/scores -> nets.
FORBIDDEN = {
    "data": {"gadjax." + m for m in ("nets", "losses", "train", "models", "runs", "cli", "metrics", "scores",
                                     "viz", "parallel")},
    "metrics.py": {"gadjax." + m for m in ("data", "nets", "losses", "train", "models", "runs", "cli", "scores",
                                           "viz", "parallel")},
    "nets": {"gadjax." + m for m in ("losses", "train", "models", "runs", "cli", "scores", "parallel")},
    "losses.py": {"gadjax." + m for m in ("train", "models", "runs", "cli")},
    "scores.py": {"gadjax." + m for m in ("train", "models", "runs", "cli", "nets", "losses")},
    "train": {"gadjax." + m for m in ("models", "runs", "stack_runs", "cli")},
    "models": {"gadjax." + m for m in ("runs", "stack_runs", "cli")},
    "runs.py": {"gadjax." + m for m in ("stack_runs", "cli")},
    "stack_runs.py": {"gadjax.cli", "gadjax.probe"},
    "probe.py": {"gadjax.cli"},
    "config.py": {"gadjax." + m for m in ("data", "nets", "losses", "train", "models", "runs", "cli", "metrics",
                                          "scores", "viz", "parallel", "optim")},
    "optim.py": {"gadjax." + m for m in ("data", "nets", "losses", "train", "models", "runs", "cli", "metrics",
                                         "scores", "viz", "parallel")},
}


def _imports(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_imports_go_one_way():
    violations = []
    for part, banned in FORBIDDEN.items():
        files = [ROOT / part] if part.endswith(".py") else sorted((ROOT / part).rglob("*.py"))
        for f in files:
            for name in _imports(f):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    violations.append(f"{f.relative_to(ROOT)} imports {name}")
    assert not violations, violations


def test_curated_all_is_importable_and_sorted_unique():
    assert len(set(gadjax.__all__)) == len(gadjax.__all__)
    for name in gadjax.__all__:
        assert getattr(gadjax, name) is not None, name


def test_every_model_file_registers_a_detector():
    model_files = {p.stem for p in (ROOT / "models").glob("*.py")} - {"__init__", "base", "anogan_search", "config",
                                                                       "persist", "stack"}
    registered = {cls.__module__.rsplit(".", 1)[-1] for cls in gadjax.DETECTORS.values()}
    assert registered == model_files
