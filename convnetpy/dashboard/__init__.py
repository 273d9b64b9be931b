"""A live ConvNetJS-style view of a training run in the browser (standard library server).

``convnetpy train --dashboard`` and ``convnetpy dashboard RUN`` use it; from Python::

    from convnetpy.dashboard import watcher
    fit(cfg, watch=watcher(port=8765))      # prints the URL to open
"""

from __future__ import annotations

import numpy as np

from .monitor import Monitor
from .server import DashboardServer, serve

__all__ = ["Monitor", "DashboardServer", "serve", "watcher"]

EXAMPLES = 24  # validation images in the predictions grid


def pick_examples(ds, k: int = EXAMPLES) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    if ds is None or not len(ds):
        return None, None
    idx = np.linspace(0, len(ds) - 1, min(k, len(ds))).astype(int)
    return ds.images[idx], ds.labels[idx]


def watcher(host: str = "127.0.0.1", port: int = 8765, allow_remote: bool = False,
            log=print, snapshot_every: float = 5.0, keep: list | None = None):
    """A ``watch`` callable for ``fit``: starts the server when training starts and prints
    its URL. ``keep`` (a list) receives the server, e.g. to stop it in a test."""

    def watch(model, meta, val_ds, summary_text, config):
        examples, labels = pick_examples(val_ds)
        monitor = Monitor(model, meta, examples, labels, summary_text, config, snapshot_every)
        srv = serve(monitor, host, port, allow_remote, log)
        log(f"dashboard: {srv.url}")
        if keep is not None:
            keep.append(srv)
        return monitor

    return watch
