"""Run every ``convnetpy`` command the README shows, with small settings (test_readme.py).

Each line of a ```sh block that starts with ``convnetpy`` (or runs it under ``mpiexec``) is
one command. Its placeholders become small files this module writes: ``PATH`` the data in
the official layouts, ``runs/<id>`` a run trained here for two steps, ``photo.png`` an image.
Optional parts (``[--opset 17]``) are kept, alternatives (``train|val|test``) run one by
one, and lines with ``...`` (pointers to other sections) are not commands. Training gets one
epoch of at most two steps and a small batch; the dashboard runs in a child process until it
prints its URL.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import py2pickle
from local_mirror import Mirror, fake_cifar, fake_mnist, idx
from PIL import Image

# lines the suite runs elsewhere, each with the reason (a missing entry fails the test)
ELSEWHERE = {
    "python3 -m venv": "the set-up lines: .ci/run is the test one, and the main job's "
                       "`convnetpy train` is a line of its own under 'Training on real data'",
    "mpiexec": "multi-process training: tests/test_distributed.py runs `mpiexec -n 2 convnetpy "
               "train` itself (a hostfile names machines this test does not have)",
}
SMALL_TRAIN = ["--epochs", "1", "--batch-size", "16", "--set", "max_steps=2", "--quiet"]


def readme_commands(text: str) -> list[str]:
    """The convnetpy command lines of the README's shell blocks, comments removed."""
    lines = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if "convnetpy " in line and "..." not in line and not line.startswith("pip "):
                lines.append(line)
    return lines


def expand(line: str) -> list[list[str]]:
    """Argument lists: brackets dropped, each ``a|b|c`` alternative separately."""
    words = shlex.split(re.sub(r"\[(-[^\]]*)\]", r"\1", line))
    choices = [w.split("|") if "|" in w and not w.startswith("-") else [w] for w in words]
    return [list(c) for c in itertools.product(*choices)]


class Workspace:
    """The small files the commands' placeholders stand for, written under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        rng = np.random.default_rng(0)
        self.cifar = root / "cifar-10-batches-py"
        self.cifar.mkdir(parents=True)
        for i in range(1, 6):
            (self.cifar / f"data_batch_{i}").write_bytes(py2pickle.cifar_batch(24, seed=i))
        (self.cifar / "test_batch").write_bytes(py2pickle.cifar_batch(24, seed=9))
        self.mnist = root / "mnist"
        self.mnist.mkdir()
        for prefix, n in (("train", 200), ("t10k", 40)):
            y = rng.integers(0, 10, n)
            x = y[:, None, None] * 25 + rng.integers(0, 5, (n, 28, 28))
            (self.mnist / f"{prefix}-images-idx3-ubyte").write_bytes(idx(x))
            (self.mnist / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(y))
        self.photos = root / "photos"
        for k, name in enumerate(("cat", "dog")):
            (self.photos / name).mkdir(parents=True)
            for i in range(12):
                pixels = rng.integers(0, 60, (32, 32, 3)) + 120 * k
                Image.fromarray(pixels.astype(np.uint8)).save(self.photos / name / f"{i}.png")
        photo = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
        for name in ("photo.png", "photo.jpg", "image.jpg"):
            Image.fromarray(photo).save(root / name)
        (root / "net.py").write_text(
            "from convnetpy import nn\n\ndef build():\n"
            "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(),\n"
            "                         nn.Linear(8 * 30 * 30, 10))\n")
        self.runs: dict[str, str] = {}

    def run_for(self, args: list[str]) -> str:
        """A run folder of the kind the command's data needs (MNIST-shaped or CIFAR-shaped)."""
        kind = "mnist" if any(a.startswith("mnist") for a in args) else "cifar10"
        if kind not in self.runs:
            data = f"mnist:{self.mnist}" if kind == "mnist" else f"cifar10:{self.cifar}"
            model = "lenet5" if kind == "mnist" else "convnetjs_cifar10"
            # a whole epoch (a few steps), so that it has curves and a best checkpoint
            rc, out = call(["train", "--model", model, "--data", data, "--out",
                            str(self.root / "runs"), "--epochs", "1", "--batch-size", "16",
                            "--quiet"])
            assert rc == 0, out
            self.runs[kind] = re.search(r"run folder: (\S+)", out).group(1)
        return self.runs[kind]

    def substitute(self, args: list[str]) -> list[str]:
        out = []
        for a in args:
            if re.fullmatch(r"runs/<\w+>", a):
                a = self.run_for(args)
            a = re.sub(r"^(cifar10|mnist):PATH$", lambda m: f"{m.group(1)}:"
                       f"{self.cifar if m.group(1) == 'cifar10' else self.mnist}", a)
            a = a.replace("folder:photos/", f"folder:{self.photos}")
            a = a.replace("path/to/net.py", str(self.root / "net.py"))
            if a in ("photo.png", "photo.jpg", "image.jpg"):
                a = str(self.root / a)
            out.append(a)
        if out[:1] == ["train"] and "--resume" not in out:
            out += ["--out", str(self.root / "runs")] + SMALL_TRAIN
        if out[:1] == ["lr-find"]:
            out += ["--steps", "10", "--batch-size", "16", "-o", str(self.root / "lr")]
        return out


def call(args: list[str]) -> tuple[int, str]:
    """``convnetpy ARGS`` in this process: (exit code, stdout + stderr)."""
    from convnetpy.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = main(args)
        except SystemExit as e:  # --help, --version
            rc = e.code or 0
    return rc, buf.getvalue()


def serve(args: list[str]) -> tuple[int, str]:
    """A command with a dashboard, in a child process (its server outlives a call in this
    one): ``dashboard`` serves until Ctrl-C, so it gets SIGINT once it prints its URL;
    ``train --dashboard`` ends with its run."""
    proc = subprocess.Popen([sys.executable, "-m", "convnetpy", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            # a suite started in the background (`cmd &`) passes SIGINT on
                            # ignored: give the child the default action back
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if args[0] == "dashboard" and "http://127.0.0.1:" in line:
                proc.send_signal(signal.SIGINT)
                break
        return proc.wait(120), "".join(seen) + proc.stdout.read()
    finally:
        proc.kill()


@contextlib.contextmanager
def data_cache(root: Path):
    """``convnetpy data download`` and ``--data mnist|cifar10`` (the cache) as a user without
    the files sees them: an empty cache under ``root``, filled from a mirror on 127.0.0.1
    that serves small fakes of the official archives (their checksums stand for the
    published ones meanwhile)."""
    from convnetpy.data import download as dl

    saved_env = {k: os.environ.get(k) for k in (dl.ROOT_ENV, dl.MIRROR_ENV)}
    saved_md5 = dict(dl.MD5)
    with Mirror() as mirror:
        dl.MD5.update(mirror.serve({**fake_mnist(200, 40),
                                    dl.CIFAR10_ARCHIVE: fake_cifar(24, 24)}))
        os.environ[dl.ROOT_ENV], os.environ[dl.MIRROR_ENV] = str(root / "cache"), mirror.url
        try:
            yield
        finally:
            dl.MD5.clear()
            dl.MD5.update(saved_md5)
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_all(lines: list[str], root: Path) -> list[str]:
    """Run every command; returns the failures, each with its README line and output."""
    with data_cache(root):
        return _run_all(lines, Workspace(root), root)


def _run_all(lines: list[str], ws: Workspace, root: Path) -> list[str]:
    failures = []
    for line in lines:
        if any(line.startswith(k) for k in ELSEWHERE):
            continue
        for args in expand(line):
            args = ws.substitute(args[1:])  # without the program name
            cwd = os.getcwd()
            os.chdir(root)  # relative outputs (-o model.onnx, tb/) land in the workspace
            try:
                dashboard = args[0] == "dashboard" or "--dashboard" in args
                rc, out = serve(args) if dashboard else call(args)
            finally:
                os.chdir(cwd)
            if rc != 0:
                failures.append(f"{line}\n  ran: {shlex.join(args)}\n  exit {rc}: {out[-800:]}")
    return failures
