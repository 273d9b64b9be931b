"""What the dashboard shows, kept apart from the training loop.

The loop calls ``on_step`` after every step (a few appends under a lock) and ``on_epoch``
after every epoch. While a page is open (it asked for something in the last WATCH_TIMEOUT
seconds), every ``snapshot_every`` seconds (longer when a snapshot takes more than a
fortieth of that, so that watching costs at most ~2.5% of the training time) ``on_step``
copies the weights, buffers and gradients into its own copy of the model and probes one
example (``viz.probe``): the activation maps, gradients, filters and statistics the page
draws. Nobody watching, no snapshots. A background thread makes the snapshots asked for
while no step runs (an uploaded image, the first look, the end of training). The loop also
reads the controls: ``wait_if_paused`` blocks while the page has paused training,
``take_lr`` returns a learning rate the page asked for.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor

WATCH_TIMEOUT = 30.0  # seconds after a page's last request that snapshots continue


class Monitor:
    def __init__(self, model, meta: dict, examples: np.ndarray | None = None,
                 labels: np.ndarray | None = None, summary: str = "", config: dict | None = None,
                 snapshot_every: float = 5.0) -> None:
        """``meta``: classes, input_shape, mean, std (as in a checkpoint). ``examples``:
        uint8 images (K, C, H, W) from the validation split, with ``labels``."""
        self.meta = meta
        self.classes = list(meta["classes"])
        self.summary, self.config = summary, config or {}
        self.examples = examples
        self.labels = labels
        self.snapshot_every = snapshot_every
        self.lock = threading.Lock()  # the fields below
        self.view_lock = threading.RLock()  # the viewer model and the last probe
        self.layers: list = []  # the last probe (viz.probe.LayerProbe), for unit queries
        self.history: list[dict] = []
        self.health: dict | None = None  # the latest health record, as on_health keeps it
        self.health_warnings: list[dict] = []
        self.steps: deque = deque(maxlen=5000)
        self.status = "starting"
        self.lr: float | None = None
        self.snapshot: dict | None = None
        self.version = 0
        self._viewer = copy.deepcopy(model)
        self._params = [p for _, p in model.named_parameters()]
        self._buffers = [b for _, b in model.named_buffers()]
        self._pending: tuple | None = None
        self._last_copy = -float("inf")  # the first step copies at once
        self._example: tuple[np.ndarray, str] | None = None  # (uint8 pixels, name)
        self._wake = threading.Event()
        self._resume = threading.Event()
        self._resume.set()
        self._lr_request: float | None = None
        self._closed = False
        self._step = 0  # the step of the weights the viewer holds (its copy starts equal)
        self.snapshot_seconds = 0.0  # time the background thread spent on snapshots
        self._last_cost = 0.0  # the last snapshot's duration
        self._watched = -float("inf")  # when a page last asked for something
        self.trace_rows: dict | None = None  # the model's shape pass, made once
        self._class_images: dict | None = None  # the last class images, with their step
        self._class_lock = threading.Lock()
        self._diagram: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="convnetpy-view")
        self._thread.start()

    # ----- called by the training loop -----
    def on_step(self, step: int, loss: float, acc: float, lr: float, seconds: float,
                batch: int) -> None:
        self._last_step = step
        with self.lock:
            self.status = "training"
            self.lr = lr
            self.steps.append({"step": step, "loss": loss, "acc": acc, "lr": lr,
                               "ms": seconds * 1e3, "img_s": batch / max(seconds, 1e-9)})
        now = time.monotonic()
        if now - self._watched > WATCH_TIMEOUT:
            return  # nobody has looked for a while: no snapshots, no cost
        # at most ~2.5% of one core for snapshots, however slow they are on this machine
        wait = max(self.snapshot_every, 40 * self._last_cost)
        if now - self._last_copy >= wait:
            self._last_copy = now
            # here, between two steps: a background thread fought training for the GIL and
            # for OpenBLAS (seen: 13-21% slower steps with a page open, for ~4% of CPU)
            self._snapshot((step, [p.data for p in self._params + self._buffers],
                            [None if p.grad is None else p.grad.data for p in self._params]))

    def on_health(self, record: dict | None, warnings: list[dict],
                  init: dict | None = None) -> None:
        """The training-health monitor's latest record, all its warnings and the first
        step's loss against ln(classes) (``init``; train.health): kept as the page shows
        them, per layer, without the histograms."""
        summary = None
        if record is not None:
            summary = {
                "step": record["step"], "loss": record["loss"], "init": init,
                "layers": [{"layer": k, "ratio": v["ratio"], "grad_norm": v["grad_norm"],
                            "param_norm": v["param_norm"]}
                           for k, v in record["layers"].items()],
                "activations": [{"layer": k, "type": a["type"], "dead": a["dead"],
                                 "mean": a["mean"], "std": a["std"]}
                                for k, a in record["activations"].items()]}
        with self.lock:
            if summary is not None:
                self.health = summary
            self.health_warnings = [{"step": w["step"], "message": w["message"]}
                                    for w in warnings]

    def offer_weights(self, step: int) -> None:
        """Copy the weights and gradients for the background thread."""
        weights = [p.data.copy() for p in self._params + self._buffers]
        grads = [None if p.grad is None else p.grad.data.copy() for p in self._params]
        with self.lock:
            self._pending = (step, weights, grads)
        self._wake.set()

    def on_epoch(self, record: dict) -> None:
        with self.lock:
            self.history.append(dict(record))

    def finish(self, status: str) -> None:
        """Training ended: show its final weights."""
        with self.lock:
            self.status = status
        if getattr(self, "_last_step", None) is not None:
            self.offer_weights(self._last_step)

    def wait_if_paused(self) -> float:
        """Block while the page has paused training; returns the seconds it waited."""
        if self._resume.is_set():
            return 0.0
        t0 = time.perf_counter()
        with self.lock:
            self.status = "paused"
        self._resume.wait()
        with self.lock:
            self.status = "training"
        return time.perf_counter() - t0

    def take_lr(self) -> float | None:
        with self.lock:
            lr, self._lr_request = self._lr_request, None
        return lr

    # ----- called by the server -----
    def touch(self) -> None:
        """A page is looking: keep snapshots coming (for WATCH_TIMEOUT seconds)."""
        first = self._watched == -float("inf")
        self._watched = time.monotonic()
        if first and self._pending is None:
            self._wake.set()  # show something at once, from the weights the viewer has

    def pause(self, paused: bool) -> None:
        if paused:
            self._resume.clear()
        else:
            self._resume.set()

    @property
    def paused(self) -> bool:
        return not self._resume.is_set()

    def request_lr(self, lr: float) -> None:
        if not (isinstance(lr, (int, float)) and np.isfinite(lr) and 0 < lr < 100):
            raise ValueError(f"the learning rate must be a number in (0, 100), got {lr!r}")
        with self.lock:
            self._lr_request = float(lr)

    def set_example(self, pixels: np.ndarray, name: str) -> None:
        """Probe this uploaded image (uint8 (C, H, W) at the model's size) from now on."""
        with self.lock:
            self._example = (pixels, name)
        self._wake.set()

    def close(self) -> None:
        """Stop the background thread, waiting for a snapshot it is making: a process must
        not exit while that thread is inside compiled code or the compiler (seen: the
        dashboard command hung at exit after Ctrl-C)."""
        self._closed = True
        self._resume.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def diagram(self) -> str:
        """The architecture diagram (viz.diagram, SVG text), drawn once: the architecture
        does not change during a run."""
        from ..viz.diagram import diagram_svg

        with self.view_lock:
            if self._diagram is None:
                self._diagram = diagram_svg(self._viewer, tuple(self.meta["input_shape"]))
            return self._diagram

    def class_images(self) -> dict[str, Any]:
        """The class images (snapshot.class_images) of the viewer's weights, made once per
        step of those weights, on a copy of the viewer: the seconds of gradient ascent hold
        up neither the snapshots nor the training steps that wait for them."""
        from .snapshot import class_images

        with self._class_lock:  # one at a time; a second request waits for the first's
            with self.view_lock:
                step, cached = self._step, self._class_images
                if cached is not None and cached["step"] == step:
                    return cached
                model = copy.deepcopy(self._viewer)
            cached = dict(class_images(self, model), step=step)
            self._class_images = cached
            return cached

    # ----- the background thread -----
    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.meta["mean"], dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.meta["std"], dtype=np.float32).reshape(-1, 1, 1)
        return (pixels.astype(np.float32) / 255 - mean) / std

    def predict(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities (K, classes) of uint8 images (K, C, H, W), viewer's weights."""
        from .. import functional as F

        x = np.stack([self.normalise(p) for p in pixels])
        with no_grad(), self.view_lock:
            self._viewer.eval()
            return F.softmax(self._viewer(Tensor(x)), dim=1).numpy()

    def _run(self) -> None:
        """Snapshots asked for while no step runs (an upload, a first look, the end)."""
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            with self.lock:
                pending, self._pending = self._pending, None
            self._snapshot(pending)

    def _snapshot(self, weights: tuple | None) -> None:
        """Load (step, weights + buffers, grads) into the viewer (copying) if given, then
        probe the example and publish the snapshot."""
        from .snapshot import build_snapshot

        t0 = time.perf_counter()
        with self.lock:
            example = self._example
        with self.view_lock:
            if weights is not None:
                step, values, grads = weights
                targets = [p for _, p in self._viewer.named_parameters()]
                targets += [b for _, b in self._viewer.named_buffers()]
                for t, w in zip(targets, values):
                    t.data[...] = w
                for p, g in zip(targets, grads):
                    p.grad = None if g is None else Tensor(np.array(g))
                self._step = step
            try:
                snap, self.layers = build_snapshot(self, self._viewer, example)
            except Exception as e:  # noqa: BLE001 - shown on the page, training goes on
                snap = {"error": f"{type(e).__name__}: {e}"}
            with self.lock:
                self.version += 1
                snap["version"], snap["step"] = self.version, self._step
                self.snapshot = snap
        self._last_cost = time.perf_counter() - t0
        self.snapshot_seconds += self._last_cost


def state(monitor: Monitor, since: int = 0) -> dict[str, Any]:
    """The JSON the page polls or receives as events: run status, curves, latest numbers."""
    with monitor.lock:
        steps = [s for s in monitor.steps if s["step"] > since]
        return {"status": monitor.status, "paused": monitor.paused, "lr": monitor.lr,
                "history": list(monitor.history), "steps": steps[-1000:],
                "version": monitor.version, "classes": monitor.classes,
                "health": monitor.health, "health_warnings": list(monitor.health_warnings)}
