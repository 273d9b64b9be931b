"""Checkpoints are untrusted input: a seeded mutation loop over a real training checkpoint
(every field of meta.json replaced by null, wrong types, huge and negative numbers, deep
nesting; truncated and flipped bytes; safetensors headers with hostile shapes, dtypes and
offsets) allows exactly two outcomes: the checkpoint loads, with weights equal to the
valid one's, or the library raises CheckpointError. The cases that once crashed are kept
as regression files in tests/fixtures/checkpoint_regressions/ and must fail cleanly, also
through ``convnetpy eval``."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from convnetpy.cli import main
from convnetpy.data import ArrayDataset
from convnetpy.io import CheckpointError, load_checkpoint, restore
from convnetpy.train import TrainConfig, fit, load_trained
from convnetpy.train.recipe import make_optimizer, make_scheduler

REGRESSIONS = Path(__file__).parent / "fixtures" / "checkpoint_regressions"
WEIGHTS, META = "weights.safetensors", "meta.json"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A checkpoint written by a real (two-step) training run with SGD and one-cycle."""
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 255, (48, 1, 28, 28), dtype=np.uint8),
                        rng.integers(0, 3, 48), ["a", "b", "c"], "random")
    out = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(model="lenet5", model_kwargs={"padding": 2}, epochs=1, batch_size=16,
                      max_steps=2, out=str(out),
                      progress=False, health_every=0)
    res = fit(data=data, config=cfg, log=lambda line: None)
    return sorted(Path(res["run_dir"], "checkpoints").glob("step-*"))[-1]


def load_everything(path: Path):
    """What ``convnetpy eval`` and a resumed run read: the model from its recipe, and the
    optimizer and scheduler state restored into fresh ones."""
    trained = load_trained(path)
    opt = make_optimizer(trained.config, trained.model)
    sched = make_scheduler(trained.config, opt, 10)
    restore(trained.checkpoint, trained.model, opt, sched)
    return {k: v.numpy() for k, v in trained.model.state_dict().items()}


def copy_of(base: Path, dest: Path) -> Path:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(base, dest)
    return dest


def paths(value, prefix=()):
    """Every key path into a JSON value (lists: their first two entries)."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:2]):
            yield from paths(v, prefix + (i,))


def put(value, path, new):
    """``value`` with the item at ``path`` replaced by ``new`` (``DELETE``: removed)."""
    if not path:
        return new
    out = dict(value) if isinstance(value, dict) else list(value)
    head = path[0]
    if len(path) == 1 and new is DELETE:
        del out[head]
    else:
        out[head] = put(value[head], path[1:], new)
    return out


DELETE = object()
DEEP = object()  # nesting deeper than any parser's recursion limit, written as raw text
REPLACEMENTS = [None, "x", "", -1, 0, 1, 2.5, -(10**30), 10**30, 2**64 + 3, True, [], {},
                [None], {"a": None}, DELETE, DEEP]


def write_meta(folder: Path, meta) -> None:
    text = json.dumps(meta)
    deep = "[" * 100_000 + "]" * 100_000
    (folder / META).write_text(text.replace('"__DEEP__"', deep))


def rehash(folder: Path) -> None:
    """Make meta.json's hash match the (mutated) weights, so the parser itself is tested."""
    meta = json.loads((folder / META).read_text())
    meta["sha256"] = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
    (folder / META).write_text(json.dumps(meta))


def header_of(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def with_header(header: dict, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return len(head).to_bytes(8, "little") + head + body


def meta_cases(meta: dict, rng: random.Random):
    """(description, function(folder)) for field replacements, pairs of them, bytes."""
    all_paths = [p for p in paths(meta) if p]
    for p in all_paths:
        for new in REPLACEMENTS:
            yield f"meta {p} = {_name(new)}", _meta_mutation([(p, new)], meta)
    for _ in range(150):
        picks = rng.sample(all_paths, 2)
        news = [rng.choice(REPLACEMENTS) for _ in picks]
        yield (f"meta {picks[0]} = {_name(news[0])} and {picks[1]} = {_name(news[1])}",
               _meta_mutation(list(zip(picks, news)), meta))
    for _ in range(40):
        cut = rng.randrange(0, 4000)
        yield f"meta.json cut at byte {cut}", _truncate(META, cut)
    for _ in range(60):
        pos, byte = rng.randrange(0, 4000), rng.randrange(256)
        yield f"meta.json byte {pos} = {byte}", _flip(META, pos, byte, rehash_after=False)


def _name(new) -> str:
    return "DELETE" if new is DELETE else "DEEP" if new is DEEP else repr(new)[:40]


def _meta_mutation(changes, meta):
    def apply(folder: Path):
        m = meta
        for path, new in changes:
            try:
                m = put(m, path, "__DEEP__" if new is DEEP else new)
            except (KeyError, IndexError, TypeError):  # the first change removed the path
                pass
        write_meta(folder, m)
    return apply


def _truncate(name, cut):
    def apply(folder: Path):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:cut % max(len(data), 1)])
    return apply


def _flip(name, pos, byte, rehash_after):
    def apply(folder: Path):
        data = bytearray((folder / name).read_bytes())
        data[pos % len(data)] = byte
        (folder / name).write_bytes(bytes(data))
        if rehash_after:
            rehash(folder)
    return apply


def weights_cases(data: bytes, rng: random.Random):
    header, body = header_of(data)
    names = [k for k in header if k != "__metadata__"]
    bad = {"shape": [[10**30], [2**64 + 3], [-1], [], [1.5], "x", None, [True], [2] * 40,
                     [0, 10**30]],
           "dtype": ["F16", "I32", "I64", "BOOL", "U8", "X", None, 3],
           "data_offsets": [[0, 10**30], [-4, 0], [0], [5, 1], None, [0.5, 1], [0, 2**64]]}
    for name in rng.sample(names, 4):
        for field, values in bad.items():
            for v in values:
                h = {**header, name: {**header[name], field: v}}
                yield f"header {name}.{field} = {v!r:.40}", _weights(with_header(h, body))
        yield f"header without {name}", _weights(with_header(
            {k: v for k, v in header.items() if k != name}, body))
    for n in (0, 7, 2**63, 2**64 - 1, len(data)):
        yield f"header length {n}", _weights(n.to_bytes(8, "little") + data[8:])
    for _ in range(80):
        cut = rng.randrange(0, len(data))
        yield f"weights cut at byte {cut} (hash updated)", _weights(data[:cut])
    for _ in range(60):
        pos, byte = rng.randrange(0, len(data)), rng.randrange(256)
        yield f"weights byte {pos} = {byte}", _flip(WEIGHTS, pos, byte, rehash_after=False)
    for _ in range(60):
        pos, byte = rng.randrange(8, 8 + int.from_bytes(data[:8], "little")), rng.randrange(256)
        yield f"header byte {pos} = {byte} (hash updated)", _flip(WEIGHTS, pos, byte, True)


def _weights(new: bytes):
    def apply(folder: Path):
        (folder / WEIGHTS).write_bytes(new)
        rehash(folder)
    return apply


@pytest.mark.slow
def test_mutated_checkpoints_load_equal_or_raise_checkpoint_error(base, tmp_path):
    reference = load_everything(base)
    meta = json.loads((base / META).read_text())
    rng = random.Random(2026)
    cases = list(meta_cases(meta, rng)) + list(weights_cases((base / WEIGHTS).read_bytes(),
                                                             rng))
    assert len(cases) >= 1000
    failures, rejected = [], 0
    for i, (what, mutate) in enumerate(cases):
        folder = copy_of(base, tmp_path / f"case{i % 2}")
        mutate(folder)
        try:
            state = load_everything(folder)
        except CheckpointError:
            rejected += 1
            continue
        except Exception as e:  # anything else is a crash a user would see as a traceback
            failures.append(f"{what}: {type(e).__name__}: {e}"[:300])
            continue
        if state.keys() != reference.keys() or not all(
                np.array_equal(state[k], reference[k]) and state[k].dtype == reference[k].dtype
                for k in state):
            failures.append(f"{what}: loaded, with weights different from the valid ones")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures[:40])
    print(f"{len(cases)} cases, {rejected} rejected")
    assert rejected > len(cases) // 2  # the mutations do reach the checks


def regression_cases():
    return sorted(REGRESSIONS.glob("*.json"))


def apply_regression(base: Path, case: Path, dest: Path) -> Path:
    """A regression file: {"meta": {dotted.path: value}} and/or {"tensor_shape": shape}."""
    spec = json.loads(case.read_text())
    folder = copy_of(base, dest)
    meta = json.loads((folder / META).read_text())
    for dotted, value in spec.get("meta", {}).items():
        meta = put(meta, tuple(dotted.split(".")), value)
    write_meta(folder, meta)
    if "tensor_shape" in spec:
        header, body = header_of((folder / WEIGHTS).read_bytes())
        name = sorted(k for k in header if k != "__metadata__")[0]
        header[name]["shape"] = spec["tensor_shape"]
        _weights(with_header(header, body))(folder)
    return folder


def test_the_regression_corpus_is_there():
    assert len(regression_cases()) >= 9


@pytest.mark.parametrize("case", regression_cases(), ids=lambda p: p.stem)
def test_regressions_raise_checkpoint_error_naming_the_field(base, tmp_path, case):
    folder = apply_regression(base, case, tmp_path / "ck")
    expect = json.loads(case.read_text())["error"]
    with pytest.raises(CheckpointError, match=expect):
        load_everything(folder)


@pytest.mark.parametrize("case", regression_cases(), ids=lambda p: p.stem)
def test_eval_on_a_regression_prints_one_line(base, tmp_path, case, capsys):
    folder = apply_regression(base, case, tmp_path / "ck")
    assert main(["eval", str(folder), "--data", "synthetic:8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("convnetpy eval: error: ") and "\n" not in err
    assert str(folder) in err


def test_a_valid_checkpoint_still_loads(base):
    ck = load_checkpoint(base)
    assert ck.meta["step"] == 2 and ck.optimizer_state is not None
    load_everything(base)
