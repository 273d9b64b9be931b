"""The declared schema of a checkpoint's ``meta.json``, and the one error a bad checkpoint
raises: ``CheckpointError`` (a ValueError) naming the file and the field.

A checkpoint folder is untrusted input (copied between machines, edited by hand, cut short
by a full disk): nothing read from ``meta.json`` reaches the rest of the library before it
has passed ``validate_meta``. Keys the schema does not name are a user's own metadata and
are kept as they are. Every key a training run writes (``TRAINING_KEYS``) is required as
soon as ``config`` is present, so a consumer of a training checkpoint (``load_trained``,
``fit(resume=...)``) never meets a missing or mistyped field.

The state of an optimizer or scheduler depends on how it was built, so it is checked
against the state the freshly built one writes (``check_like``): the same keys, the same
lengths, the same kinds of values, the same names.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

# integers and array sizes read from a checkpoint stay below these before anything is
# allocated or computed from them
MAX_INT = 2**53
MAX_CLASSES = 1_000_000
MAX_SIDE = 65_536
MAX_DEPTH = 64


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: names the file, the field and what is wrong."""


def _show(value: Any) -> str:
    text = json.dumps(value) if _json_like(value) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_like(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# A rule takes (value, where) and raises _Bad(what it must be) when the value breaks it.
Rule = Callable[[Any, str], None]


class _Bad(Exception):
    def __init__(self, where: str, must: str, value: Any) -> None:
        super().__init__(where, must, value)
        self.where, self.must, self.value = where, must, value


def _need(ok: bool, where: str, must: str, value: Any) -> None:
    if not ok:
        raise _Bad(where, must, value)


def integer(lo: int = 0, hi: int = MAX_INT) -> Rule:
    def rule(v, where):
        _need(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi, where,
              f"an integer in [{lo}, {hi}]", v)
    return rule


def number(lo: float = -math.inf, hi: float = math.inf, positive: bool = False) -> Rule:
    def rule(v, where):
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and lo <= v <= hi and (v > 0 or not positive))
        span = f" in [{lo}, {hi}]" if math.isfinite(lo) or math.isfinite(hi) else ""
        _need(ok, where, ("a positive finite number" if positive else "a finite number")
              + span, v)
    return rule


def string(v, where):
    _need(isinstance(v, str), where, "a string", v)


def boolean(v, where):
    _need(isinstance(v, bool), where, "true or false", v)


def nullable(inner: Rule) -> Rule:
    def rule(v, where):
        if v is not None:
            inner(v, where)
    return rule


def one_of(*rules: Rule, must: str) -> Rule:
    def rule(v, where):
        for r in rules:
            try:
                r(v, where)
                return
            except _Bad:
                pass
        raise _Bad(where, must, v)
    return rule


def json_value(v, where, depth: int = 0, bounded: bool = True):
    """Any JSON value of finite numbers, nested at most MAX_DEPTH deep; ``bounded``: its
    integers of magnitude at most MAX_INT (a generator's state holds larger ones)."""
    _need(depth <= MAX_DEPTH, where, f"nested at most {MAX_DEPTH} deep", "...")
    if isinstance(v, dict):
        for k, item in v.items():
            json_value(item, f"{where}.{k}", depth + 1, bounded)
    elif isinstance(v, list):
        for i, item in enumerate(v):
            json_value(item, f"{where}[{i}]", depth + 1, bounded)
    elif isinstance(v, float):
        _need(math.isfinite(v), where, "a finite number", v)
    elif isinstance(v, int) and not isinstance(v, bool):
        _need(abs(v) <= MAX_INT or not bounded, where,
              f"an integer of magnitude at most {MAX_INT}", v)
    else:
        _need(v is None or isinstance(v, (bool, str)), where, "a JSON value", v)


def list_of(item: Rule, min_len: int = 0, max_len: int = MAX_INT) -> Rule:
    def rule(v, where):
        _need(isinstance(v, list) and min_len <= len(v) <= max_len, where,
              f"a list of {min_len} to {max_len} entries" if max_len < MAX_INT
              else f"a list of at least {min_len} entries" if min_len else "a list", v)
        for i, x in enumerate(v):
            item(x, f"{where}[{i}]")
    return rule


def obj(required: dict[str, Rule] | None = None, optional: dict[str, Rule] | None = None,
        values: Rule | None = json_value, key: Rule | None = None,
        must: str | None = None) -> Rule:
    """An object with ``required`` and ``optional`` keys; other keys must pass ``values``
    (None: no other keys allowed) and their names ``key``."""
    required, optional = required or {}, optional or {}

    def rule(v, where):
        missing = [k for k in required if not isinstance(v, dict) or k not in v]
        shape = must or ("an object with " + ", ".join(f'"{k}"' for k in required)
                         if required else "an object")
        _need(isinstance(v, dict) and not missing, where, shape, v)
        for k, x in v.items():
            at = f"{where}.{k}" if where else k
            if k in required:
                required[k](x, at)
            elif k in optional:
                optional[k](x, at)
            else:
                _need(values is not None, at, "absent (an unknown key)", x)
                if key is not None:
                    key(k, f"{where} key {k!r}")
                values(x, at)
    return rule


def index_key(k, where):
    _need(k.isdigit() and len(k) < 10, where, "a parameter index", k)


HISTORY_RECORD = obj(required={"epoch": integer(1), "step": integer()},
                     values=nullable(one_of(number(), string, boolean,
                                            must="a number, string, boolean or null")))
OPTIMIZER = obj(
    required={"param_groups": list_of(obj(required={"params": list_of(integer())}), 1)},
    optional={"scalars": obj(values=obj(), key=index_key)},
    must='an object with "param_groups"')

# what a training run writes next to its config; required together with "config"
TRAINING_KEYS: dict[str, Rule] = {
    "config": obj(),
    "classes": list_of(string, 1, MAX_CLASSES),
    "num_classes": integer(1, MAX_CLASSES),
    "input_shape": list_of(integer(1, MAX_SIDE), 3, 3),
    "mean": list_of(number(), 1, MAX_SIDE),
    "std": list_of(number(positive=True), 1, MAX_SIDE),
    "epoch": integer(),
    "batch": integer(),
    "step": integer(),
    "history": list_of(HISTORY_RECORD),
    "best_val_acc": nullable(number(-1.0, 1.0)),  # -1: no validation yet
    "sums": obj(values=number()),
}

META = obj(
    required={"format": string, "version": integer(), "sha256": string},
    optional={"optimizer": OPTIMIZER, "scheduler": obj(), "versions": obj(values=string),
              "given": obj(values=string), "world_size": integer(1, MAX_CLASSES),
              "loops": string, "threads": obj(),
              "rng": obj(values=lambda v, where: json_value(v, where, bounded=False)),
              **{k: r for k, r in TRAINING_KEYS.items() if k != "config"}})


def _error(source: str, bad: _Bad) -> CheckpointError:
    return CheckpointError(f'{source}: "{bad.where}" must be {bad.must}, got '
                           f"{_kind(bad.value) if bad.value is None else _show(bad.value)}")


def validate_meta(meta: Any, source: str) -> None:
    """Raise CheckpointError unless ``meta`` (parsed meta.json) matches the schema."""
    try:
        META(meta, "")
        if "config" in meta:
            missing = [k for k in TRAINING_KEYS if k not in meta]
            if missing:
                raise CheckpointError(
                    f'{source}: a training checkpoint (it has "config") must also have '
                    f'{", ".join(missing)}')
            TRAINING_KEYS["config"](meta["config"], "config")
            _consistent(meta, source)
    except _Bad as bad:
        raise _error(source, bad) from None


def _consistent(meta: dict[str, Any], source: str) -> None:
    c = meta["input_shape"][0]
    for key in ("mean", "std"):
        if len(meta[key]) != c:
            raise CheckpointError(f'{source}: "{key}" has {len(meta[key])} entries, the input '
                                  f"has {c} channels")
    if len(meta["classes"]) != meta["num_classes"]:
        raise CheckpointError(f'{source}: "classes" names {len(meta["classes"])} classes, '
                              f'"num_classes" is {meta["num_classes"]}')


def require_training(meta: dict[str, Any], source: str) -> None:
    """A checkpoint that a training run wrote (its recipe can rebuild the model)."""
    if "config" not in meta:
        raise CheckpointError(f'{source}: no "config": this checkpoint was not written by a '
                              f"training run (convnetpy train / fit), so its model cannot be "
                              f"rebuilt; build the model and use convnetpy.io.restore")


def check(rule: Rule, value: Any, source: str, where: str) -> None:
    """Raise CheckpointError unless ``value`` passes ``rule``."""
    try:
        rule(value, where)
    except _Bad as bad:
        raise _error(source, bad) from None


def check_like(value: Any, reference: Any, source: str, where: str) -> None:
    """``value`` (read from a file) has the structure of ``reference`` (what the object
    itself writes): the same keys, list lengths and kinds of values, the same strings."""
    try:
        _like(value, reference, where)
    except _Bad as bad:
        raise _error(source, bad) from None


def _like(v: Any, ref: Any, where: str) -> None:
    if isinstance(ref, dict):
        _need(isinstance(v, dict) and set(v) == set(ref), where,
              "an object with the keys " + ", ".join(f'"{k}"' for k in sorted(ref)), v)
        for k in ref:
            _like(v[k], ref[k], f"{where}.{k}")
    elif isinstance(ref, list):
        _need(isinstance(v, list) and len(v) == len(ref), where,
              f"a list of {len(ref)} entries", v)
        for i, (a, b) in enumerate(zip(v, ref)):
            _like(a, b, f"{where}[{i}]")
    elif isinstance(ref, bool) or ref is None or isinstance(ref, str):
        _need(v == ref if isinstance(ref, str) else isinstance(v, type(ref)) or v is ref,
              where, _show(ref) if isinstance(ref, str) else _kind(ref), v)
    elif isinstance(ref, (int, float)):  # an int setting may become a float once scheduled
        number(-MAX_INT, MAX_INT)(v, where)
