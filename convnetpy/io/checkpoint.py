"""Checkpoints: weights, buffers and optimizer state in safetensors, everything else in JSON,
written atomically.

A checkpoint is a folder ``step-00000123/`` holding ``weights.safetensors`` and
``meta.json`` (the config, epoch, step, position in the epoch, history, RNG state, library
versions, thread count and the SHA-256 of the weights file). It is written into a hidden
temporary folder (files fsynced) and renamed into place, so a crash or SIGKILL never leaves
a half-written checkpoint under a real name; the previous checkpoint is kept, and stray
temporary folders are removed when training starts. Loading checks the hash, every key and
shape, and that every value is finite; ``meta.json`` is validated against its declared
schema (checkpoint_meta.py). A checkpoint that cannot be used raises one CheckpointError (a
ValueError) naming the file, the field and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..nn import StateDictError
from ..version import __version__
from . import safetensors
from .checkpoint_meta import MAX_INT, CheckpointError, check, check_like, number, validate_meta

FORMAT = "convnetpy-checkpoint"
VERSION = 1
WEIGHTS, META = "weights.safetensors", "meta.json"


class CheckpointMismatch(CheckpointError, StateDictError):
    """A checkpoint whose weights do not fit the model they are restored into."""


@dataclass
class Checkpoint:
    path: Path
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None
    scheduler_state: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def versions() -> dict[str, str]:
    return {"convnetpy": __version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _pack(model, optimizer, scheduler) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    tensors = {f"model.{k}": v.numpy() for k, v in model.state_dict().items()}
    extra: dict[str, Any] = {}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for idx, entry in sd["state"].items():
            for key, val in entry.items():
                if isinstance(val, np.ndarray):
                    tensors[f"optimizer.{idx}.{key}"] = val
                else:
                    scalars.setdefault(str(idx), {})[key] = val
        extra["optimizer"] = {"param_groups": sd["param_groups"], "scalars": scalars}
    if scheduler is not None:
        extra["scheduler"] = _scheduler_state(scheduler)
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"refusing to write a checkpoint: {name} holds non-finite values")
    return tensors, extra


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if hasattr(obj, "items"):  # Counter (MultiStepLR milestones)
        return {str(k): v for k, v in obj.items()}
    raise TypeError(f"cannot store {type(obj).__name__} in checkpoint metadata")


def save_checkpoint(folder: str | Path, name: str, model, optimizer=None, scheduler=None,
                    meta: dict[str, Any] | None = None) -> Path:
    """Write checkpoint ``folder/name`` atomically; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors, extra = _pack(model, optimizer, scheduler)
    weights = safetensors.serialize(tensors, {"format": FORMAT})
    info = {"format": FORMAT, "version": VERSION, **(meta or {}), **extra,
            "versions": versions(), "sha256": hashlib.sha256(weights).hexdigest()}
    text = json.dumps(info, indent=1, default=_json_default)
    tmp = folder / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    _write(tmp / WEIGHTS, weights)
    _write(tmp / META, text.encode())
    _fsync_dir(tmp)
    final = folder / name
    old = None
    if final.exists():
        old = folder / f".old-{name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def clean_stale(folder: str | Path) -> list[Path]:
    """Remove temporary folders left by a killed writer; returns what was removed."""
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith((".tmp-", ".old-")):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


def step_checkpoints(folder: str | Path) -> list[Path]:
    """Complete ``step-*`` checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.startswith("step-")
                  and (p / META).is_file() and (p / WEIGHTS).is_file())


def prune(folder: str | Path, keep: int = 2) -> None:
    """Keep the newest ``keep`` step checkpoints (the newest and the previous one)."""
    for p in step_checkpoints(folder)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def resolve(path: str | Path) -> Path:
    """A checkpoint folder from a run folder, a checkpoint folder or its weights file."""
    p = Path(path)
    if p.is_file() and p.name in (WEIGHTS, META):
        p = p.parent
    if (p / META).is_file():
        return p
    steps = step_checkpoints(p / "checkpoints") or step_checkpoints(p)
    if steps:
        return steps[-1]
    if (p / "checkpoints" / "best" / META).is_file():
        return p / "checkpoints" / "best"
    raise FileNotFoundError(f"no checkpoint at {path}: give a run folder (runs/<id>), a "
                            "checkpoint folder or its weights.safetensors")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint (a run folder resolves to its newest checkpoint); a
    checkpoint that cannot be used raises CheckpointError naming the file and the field."""
    folder = resolve(path)
    source = str(folder / META)
    try:
        meta = json.loads((folder / META).read_bytes().decode("utf-8"),
                          parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise CheckpointError(f"{source}: unreadable checkpoint metadata "
                              f"({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a convnetpy checkpoint (no \"format\": "
                              f"\"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{source}: checkpoint format version {meta.get('version')!r} "
                              f"(this convnetpy reads version {VERSION})")
    validate_meta(meta, source)
    try:
        data = (folder / WEIGHTS).read_bytes()
    except OSError as e:
        raise CheckpointError(f"{folder / WEIGHTS}: cannot be read ({e})") from None
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise CheckpointError(f"{folder / WEIGHTS}: content hash does not match meta.json (the "
                              "file was truncated, corrupted or replaced)")
    try:
        tensors = safetensors.load(data, str(folder / WEIGHTS))
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    for name, arr in tensors.items():
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise CheckpointError(f"{folder / WEIGHTS}: {name} holds non-finite values")
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    opt = None
    if "optimizer" in meta:
        state: dict[int, dict[str, Any]] = {}
        for k, v in tensors.items():
            if k.startswith("optimizer."):
                _, idx, key = (k.split(".", 2) + ["", ""])[:3]
                if not idx.isdigit() or not key:
                    raise CheckpointError(f"{folder / WEIGHTS}: tensor {k!r} is not named "
                                          "optimizer.INDEX.NAME")
                state.setdefault(int(idx), {})[key] = v
        for idx, entry in meta["optimizer"].get("scalars", {}).items():
            state.setdefault(int(idx), {}).update(entry)
        opt = {"state": state, "param_groups": meta["optimizer"]["param_groups"]}
    return Checkpoint(folder, model_state, opt, meta.get("scheduler"), meta)


def restore(ckpt: Checkpoint, model, optimizer=None, scheduler=None) -> None:
    """Load a checkpoint's state into a model (strict), optimizer and scheduler; state that
    does not fit them raises CheckpointError before anything is changed."""
    source = str(ckpt.path / META)
    own = model.state_dict()
    for name, arr in ckpt.model_state.items():
        if name in own and own[name].numpy().dtype.kind != arr.dtype.kind:
            raise CheckpointError(f"{ckpt.path / WEIGHTS}: model.{name} has dtype {arr.dtype}, "
                                  f"the model's is {own[name].numpy().dtype}")
    if optimizer is not None and ckpt.optimizer_state is not None:
        _check_optimizer(ckpt, optimizer, source)
    sched_state = None
    if scheduler is not None and ckpt.scheduler_state is not None:
        mine = json.loads(json.dumps(_scheduler_state(scheduler), default=_json_default))
        check_like(ckpt.scheduler_state, mine, source, "scheduler")
        sched_state = dict(ckpt.scheduler_state)
        if "milestones" in sched_state and isinstance(sched_state["milestones"], dict):
            from collections import Counter

            try:
                sched_state["milestones"] = Counter(
                    {int(k): v for k, v in sched_state["milestones"].items()})
            except ValueError:
                raise CheckpointError(f'{source}: "scheduler.milestones" must map step '
                                      "numbers to counts") from None
    try:
        model.load_state_dict(ckpt.model_state)
    except StateDictError as e:  # names every missing, extra or misshapen key
        raise CheckpointMismatch(f"{ckpt.path / WEIGHTS}: {e}") from None
    if optimizer is not None and ckpt.optimizer_state is not None:
        optimizer.load_state_dict(ckpt.optimizer_state)
    if sched_state is not None:
        scheduler.load_state_dict(sched_state)


def _scheduler_state(scheduler) -> dict[str, Any]:
    state = {k: v for k, v in scheduler.state_dict().items() if k != "_schedulers"}
    if hasattr(scheduler, "_schedulers"):
        state["_schedulers"] = [s.state_dict() for s in scheduler._schedulers]
    return state


def _check_optimizer(ckpt: Checkpoint, optimizer, source: str) -> None:
    """The saved optimizer state fits ``optimizer``: its groups have the same settings and
    parameters, and every saved buffer belongs to a parameter and has its shape."""
    saved, mine = ckpt.optimizer_state, optimizer.state_dict()
    ref_groups = json.loads(json.dumps(mine["param_groups"], default=_json_default))
    check_like(saved["param_groups"], ref_groups, source, "optimizer.param_groups")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    index = {}
    for saved_group, group in zip(saved["param_groups"], optimizer.param_groups):
        index.update(zip(saved_group["params"], group["params"]))
    if len(index) != len(params):
        raise CheckpointError(f'{source}: "optimizer.param_groups" lists a parameter index '
                              "twice")
    for idx, entry in saved["state"].items():
        if idx not in index:
            raise CheckpointError(f"{source}: optimizer state for parameter {idx}, which the "
                                  f"optimizer does not have (it has {len(params)})")
        shape = index[idx].data.shape
        for key, val in entry.items():
            if isinstance(val, np.ndarray):
                if val.dtype.kind != "f" or (val.ndim and val.shape != shape):
                    raise CheckpointError(
                        f"{ckpt.path / WEIGHTS}: optimizer.{idx}.{key} has shape "
                        f"{val.shape} and dtype {val.dtype}, its parameter {shape}")
            else:
                check(number(-MAX_INT, MAX_INT), val, source, f"optimizer.scalars.{idx}.{key}")
    try:
        optimizer.check_state_dict(saved)  # what a wrapper keeps of its own
    except ValueError as e:
        raise CheckpointError(f"{source}: {e}") from None
