"""``convnetpy dashboard RUN``: the dashboard for a finished run or a checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

HELP = "serve the dashboard for a finished run or a checkpoint"


def add_arguments(p) -> None:
    p.add_argument("checkpoint", help="a run folder (its best checkpoint, else its newest) or "
                                      "a checkpoint folder")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--allow-remote", action="store_true")
    p.add_argument("--data", help="show images of this data (default: the run's)")
    p.add_argument("--split", choices=("test", "train", "val"),
                   help="which split to show (default: test with --data, else the run's "
                        "validation carve-out)")
    p.add_argument("--no-data", action="store_true",
                   help="do not load the run's data for the predictions grid")


def run(args) -> int:
    """Serve the run's curves, its model on an example and its validation images; uploads
    work; training controls do nothing. Ctrl-C stops it."""
    from ..dashboard import Monitor, pick_examples, serve
    from ..train import load_trained
    from .common import run_split

    ck, cfg, model = load_trained(_best_or_given(Path(args.checkpoint)))
    run_dir = ck.path.parent.parent
    examples = labels = None
    shown = "no images (upload one)"
    if not args.no_data:
        try:
            ds, what = run_split(args.data, args.split, cfg, ck.meta)
            examples, labels = pick_examples(ds)
            shown = f"images of {what}"
        except (OSError, ValueError) as e:
            if args.data or args.split:
                raise
            shown = f"no images: the run's data ({cfg.data}) is not available ({e}); upload one"
    summary_path = run_dir / "summary.txt"
    monitor = Monitor(model, ck.meta, examples, labels,
                      summary_path.read_text() if summary_path.exists() else "", ck.meta["config"])
    for rec in ck.meta.get("history", []):
        monitor.on_epoch(rec)
    monitor.offer_weights(ck.meta.get("step", 0))
    monitor.finish("finished run")
    srv = serve(monitor, args.host, args.port, args.allow_remote)
    which = f"epoch {ck.meta.get('epoch', 0)}, step {ck.meta.get('step', 0)}"
    try:  # a Ctrl-C from the moment the server runs stops it cleanly
        print(f"dashboard for {ck.path} ({which}): {srv.url}  (Ctrl-C to stop)", flush=True)
        print(f"showing {shown}", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        srv.stop()
    return 0


def _best_or_given(path: Path) -> Path:
    """A run folder shows its best checkpoint (what the run is kept for), else the newest."""
    best = path / "checkpoints" / "best"
    return best if (best / "meta.json").is_file() else path
