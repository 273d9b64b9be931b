"""viz.plots and the tqdm progress bar: every chart is checked on its data (the artists'
x/y, image arrays, texts, scales), the PNG writer on atomicity, the bar on its output."""

import gc
import io
import re
import time
import weakref

import numpy as np
import pytest
from PIL import Image

from convnetpy.train.report import ProgressBar, plot_curves
from convnetpy.viz import plots


def history(epochs, seed=0, lr=True):
    rng = np.random.default_rng(seed)
    out = []
    for e in epochs:
        loss = float(2 / e + rng.random() * 0.1)
        m = {"epoch": e, "loss": loss, "acc": 1 - loss / 3, "val_loss": loss * 1.1,
             "val_acc": 0.95 - loss / 3}
        if lr:
            m["lr"] = 0.1 / e
        out.append(m)
    return out


def lines_by_label(ax):
    return {ln.get_label(): ln for ln in ax.get_lines()}


def legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_curves_plot_the_history_at_its_epochs_with_accuracy_in_percent():
    h = history([1, 2, 3, 7, 8])  # non-contiguous epochs, as after a resume
    fig = plots.curves_figure(h)
    loss_ax, acc_ax, lr_ax = fig.axes
    assert (loss_ax.get_xlabel(), loss_ax.get_ylabel()) == ("epoch", "loss")
    assert (acc_ax.get_xlabel(), acc_ax.get_ylabel()) == ("epoch", "accuracy (%)")
    lines = lines_by_label(loss_ax)
    assert list(lines["train"].get_xdata()) == [1, 2, 3, 7, 8]
    np.testing.assert_allclose(lines["train"].get_ydata(), [m["loss"] for m in h])
    np.testing.assert_allclose(lines["validation"].get_ydata(), [m["val_loss"] for m in h])
    assert lines["train"].get_linestyle() == "-" and lines["validation"].get_linestyle() == "--"
    acc = lines_by_label(acc_ax)
    np.testing.assert_allclose(acc["train"].get_ydata(), [100 * m["acc"] for m in h])
    np.testing.assert_allclose(acc["validation"].get_ydata(), [100 * m["val_acc"] for m in h])
    best = max(h, key=lambda m: m["val_acc"])
    star = [k for k in acc if k.startswith("best validation")]
    assert star == [f"best validation {100 * best['val_acc']:.2f}% (epoch {best['epoch']})"]
    assert legend_texts(loss_ax) == ["train", "validation"]
    assert "train" in legend_texts(acc_ax) and star[0] in legend_texts(acc_ax)
    np.testing.assert_allclose(lr_ax.get_lines()[0].get_ydata(), [m["lr"] for m in h])
    assert lr_ax.get_ylabel() == "lr"
    ticks = loss_ax.xaxis.get_major_locator().tick_values(1, 8)
    assert np.all(ticks == np.round(ticks))  # epochs are whole numbers


def test_curves_without_lr_or_validation_values_and_with_tta():
    h = history([1, 2], lr=False)
    h[0]["val_loss"] = None  # a record may lack a value
    h[1]["val_acc_tta"] = 0.9
    fig = plots.curves_figure(h)
    assert len(fig.axes) == 2  # no learning-rate panel
    assert list(lines_by_label(fig.axes[0])["validation"].get_xdata()) == [2]
    tta = lines_by_label(fig.axes[1])["validation (TTA)"]
    assert list(tta.get_xdata()) == [2] and list(tta.get_ydata()) == [90.0]
    with pytest.raises(ValueError, match="no epoch to plot"):
        plots.curves_figure([])


def test_curves_overlay_runs_one_colour_per_run_one_line_per_series():
    runs = {"a": history([1, 2, 3], 0), "b": history([1, 2], 1)}
    fig = plots.curves_figure(runs)
    loss_ax, acc_ax, lr_ax = fig.axes
    lines = lines_by_label(loss_ax)
    assert sorted(lines) == ["a: train", "a: validation", "b: train", "b: validation"]
    assert len(acc_ax.get_lines()) == 4 and len(lr_ax.get_lines()) == 2
    np.testing.assert_allclose(lines["b: validation"].get_ydata(),
                               [m["val_loss"] for m in runs["b"]])
    assert lines["a: train"].get_color() == lines["a: validation"].get_color()
    assert lines["a: train"].get_color() != lines["b: train"].get_color()
    assert lines["b: validation"].get_linestyle() == "--"
    assert legend_texts(loss_ax) == ["a", "b", "train", "validation"]


def test_confusion_figure_shows_the_row_shares_and_the_counts():
    classes = ["cat", "dog", "frog"]
    conf = np.array([[5, 1, 0], [2, 6, 2], [0, 0, 0]])  # frog: no image (row of zeros)
    fig = plots.confusion_figure(conf, classes)
    ax = fig.axes[0]
    shares = np.array([[5 / 6, 1 / 6, 0], [0.2, 0.6, 0.2], [0, 0, 0]])
    np.testing.assert_allclose(ax.images[0].get_array(), shares)
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["5\n83%", "1\n17%", "0\n0%"] and texts[4] == "6\n60%"
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert ax.get_title() == "confusion matrix: 16 images, accuracy 68.8%"
    assert len(fig.axes) == 2  # the colour bar
    raw = plots.confusion_figure(conf, classes, normalise=False).axes[0]
    np.testing.assert_array_equal(raw.images[0].get_array(), conf)
    assert [t.get_text() for t in raw.texts][:2] == ["5", "1"]
    big = plots.confusion_figure(np.eye(30, dtype=int), [f"c{i}" for i in range(30)])
    assert not big.axes[0].texts  # no cell text beyond 20 classes
    assert big.axes[0].get_xticklabels()[0].get_rotation() == 45
    with pytest.raises(ValueError, match=r"shape \(2, 2\) but there are 3 classes"):
        plots.confusion_figure(np.eye(2), classes)


def test_per_class_figure_bars_in_percent_first_class_on_top():
    fig = plots.per_class_figure({"cat": 0.5, "dog": 0.25})
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths == [50.0, 25.0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog"]
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # inverted: cat on top
    assert ax.get_xlabel() == "accuracy (%)"
    two = plots.per_class_figure({"a": {"cat": 0.5, "dog": 1.0}, "b": {"cat": 0.1, "dog": 0}})
    assert [p.get_width() for p in two.axes[0].patches] == [50.0, 100.0, 10.0, 0.0]
    assert legend_texts(two.axes[0]) == ["a", "b"]


def test_lr_find_figure_log_axis_and_suggestion_line():
    lrs = np.logspace(-5, 0, 20)
    losses = np.linspace(2.3, 1.0, 20)
    losses[-1] = np.inf  # diverged
    smoothed = losses * 1.01
    fig = plots.lr_find_figure(lrs, losses, suggested_lr=1e-3, smoothed=smoothed)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "loss"
    lines = lines_by_label(ax)
    np.testing.assert_allclose(lines["loss"].get_xdata(), lrs[:-1])
    np.testing.assert_allclose(lines["loss"].get_ydata(), losses[:-1])
    np.testing.assert_allclose(lines["smoothed"].get_ydata(), smoothed[:-1])
    assert list(lines["suggested lr 1.00e-03"].get_xdata()) == [1e-3, 1e-3]
    assert "suggested lr 1.00e-03" in legend_texts(ax)
    with pytest.raises(ValueError, match="same length"):
        plots.lr_find_figure([1e-3, 1e-2], [1.0])
    with pytest.raises(ValueError, match="must be positive"):
        plots.lr_find_figure([0, 1e-2], [1.0, 1.0])


def test_embedding_figure_one_collection_per_class():
    rng = np.random.default_rng(0)
    points, labels = rng.normal(size=(30, 2)), np.repeat([0, 1, 2], 10)
    fig = plots.embedding_figure(points, labels, ["a", "b", "c"], title="pca")
    ax = fig.axes[0]
    assert ax.get_title() == "pca" and len(ax.collections) == 3
    for c, coll in enumerate(ax.collections):
        np.testing.assert_allclose(coll.get_offsets(), points[labels == c])
    colours = {tuple(coll.get_facecolor()[0]) for coll in ax.collections}
    assert len(colours) == 3
    assert legend_texts(ax) == ["a", "b", "c"]
    with pytest.raises(ValueError, match=r"must be \(N, 2\)"):
        plots.embedding_figure(points[:, :1], labels, ["a", "b", "c"])
    with pytest.raises(ValueError, match="class indices in 0..1"):
        plots.embedding_figure(points, labels, ["a", "b"])


def test_save_figure_is_atomic_and_figures_are_not_kept(tmp_path):
    fig = plots.per_class_figure({"cat": 0.5})
    path = tmp_path / "p.png"
    plots.save_figure(fig, path, dpi=50)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (400, 150)  # figsize (8, 3) at 50 dpi
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temp file left
    assert plots.figure_png(fig, dpi=50) == path.read_bytes()
    with pytest.raises(FileNotFoundError, match="the folder .*missing does not exist"):
        plots.save_figure(fig, tmp_path / "missing" / "p.png")
    (tmp_path / "d.png").mkdir()  # the target cannot be replaced: no partial file left
    with pytest.raises(OSError):
        plots.save_figure(fig, tmp_path / "d.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "p.png"]
    ref = weakref.ref(fig)
    del fig
    gc.collect()
    assert ref() is None  # no pyplot-style registry holds figures


def test_plot_curves_writes_the_png(tmp_path):
    plot_curves(history([1, 2]), tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as im:
        assert im.format == "PNG" and im.size == (1300, 400)


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_shows_total_loss_rate_and_eta():
    out = Tty()
    bar = ProgressBar(10, "epoch 1/3", file=out)
    assert bar.enabled
    for done in (1, 2, 3):
        time.sleep(0.21)  # tqdm prints at most every 0.2 s
        bar.update(done, 1.0 / done)
    text = out.getvalue()
    bar.close()
    last = text.split("\r")[-1]
    assert last.startswith("epoch 1/3") and "3/10" in last and "loss=0.3333" in last
    assert re.search(r"\[00:0\d<00:0\d, +\d+\.\d+it/s", last)  # elapsed<ETA, rate
    quiet = Tty()
    bar = ProgressBar(10, "epoch 1/3", enabled=False, file=quiet)
    bar.update(5, 1.0)
    bar.close()
    assert quiet.getvalue() == "" and not bar.enabled
