"""Saving and loading fitted detectors (orbax for the arrays, JSON for the rest).

A saved detector is a directory:

    detector.json     model name, config, sample shape, input range, threshold_,
                      detector-specific fitted values, gadjax version, phases
    states/<phase>/   the train state of each phase (parameters, BatchNorm statistics,
                      optimiser state with any EMA weights), an orbax checkpoint

It is written into a temporary directory and renamed into place, so a crash never
leaves a half-written detector.  ``load`` accepts a saved detector or a run directory
(``gadjax train --out``, or a detector's ``out_dir``) that holds one in ``detector/``.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil

import jax
import orbax.checkpoint as ocp

FORMAT = 1
META = "detector.json"


def _version() -> str:
    from gadjax import __version__
    return __version__


def save(detector, path, overwrite: bool = False) -> pathlib.Path:
    """Write fitted ``detector`` to directory ``path``; returns the path."""
    from gadjax.models.config import json_ready
    detector._check_fitted()
    path = pathlib.Path(path).absolute()
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if path.exists() and not (path / META).exists():
        raise FileExistsError(f"{path} exists and is not a saved detector; refusing to replace it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    checkpointer = ocp.StandardCheckpointer()
    for phase, state in detector.states_.items():
        checkpointer.save(tmp / "states" / phase, state)
    checkpointer.wait_until_finished()
    meta = {"format": FORMAT, "gadjax_version": _version(), "model": detector.name,
            "config": json_ready(detector.config.to_dict()), "image_shape": list(detector.image_shape_),
            "input_range": None if detector.input_range_ is None else list(detector.input_range_),
            "threshold": detector.threshold_, "phases": list(detector.states_),
            "extra": json_ready(detector.fitted_extra())}
    (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def find(path) -> pathlib.Path:
    """The saved-detector directory for ``path`` (itself, or a run directory's ``detector/``)."""
    path = pathlib.Path(path)
    for candidate in (path, path / "detector"):
        if (candidate / META).exists():
            return candidate
    if (path / "config.json").exists() or (path / "fit.json").exists():
        raise RuntimeError(f"{path} holds an unfinished run (no saved detector yet); run gadjax train with the "
                           f"same options (see {path / 'config.json'}) to resume it")
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: give a saved detector or a run directory")
    raise FileNotFoundError(f"{path} is neither a saved detector nor a gadjax run directory")


def load(path, parallel=False):
    """The fitted detector saved at ``path`` (a saved detector or a run directory)."""
    from gadjax.models import DETECTORS
    root = find(path).absolute()  # orbax restores from absolute paths only
    meta = json.loads((root / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{root} has saved-detector format {meta.get('format')}; this gadjax reads {FORMAT}")
    name = meta["model"]
    if name not in DETECTORS:
        raise ValueError(f"{root} holds an unknown model {name!r}; known: {sorted(DETECTORS)}")
    cls = DETECTORS[name]
    detector = cls(cls.config_class.from_dict(meta["config"]), parallel=parallel, progress=False)
    detector.build(tuple(meta["image_shape"]))
    saved_range = None if meta["input_range"] is None else tuple(meta["input_range"])
    if saved_range != detector.input_range_:
        raise ValueError(f"{root}: saved input range {saved_range} differs from the model's {detector.input_range_}")
    checkpointer = ocp.StandardCheckpointer()
    for phase in meta["phases"]:
        abstract = jax.eval_shape(detector.trainer(phase).init, jax.random.PRNGKey(0))
        target = jax.tree.map(_restore_target, abstract)
        detector.states_[phase] = checkpointer.restore(root / "states" / phase, target)
    detector.threshold_ = meta["threshold"]
    detector.load_extra(meta.get("extra", {}))
    return detector


def _restore_target(leaf):
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=getattr(leaf, "sharding", None))
    return leaf
