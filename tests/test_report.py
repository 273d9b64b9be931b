"""``convnetpy report``: one self-contained HTML page of several runs, checked on its content
(images are PNG data: URIs, nothing from the network, the numbers match an independent
evaluation of the checkpoint, the most confused images are real mistakes in order)."""

import base64
import io
import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnetpy.cli import main
from convnetpy.cli.common import run_split
from convnetpy.data import DataLoader
from convnetpy.train import TrainConfig, evaluate, fit, load_trained, transforms_for
from convnetpy.viz.report import most_confused


class Page(HTMLParser):
    """Every start tag with its attributes and the run section it sits in, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags, self.run, self.text = [], None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section" and "run" in (a.get("class") or ""):
            self.run = a["data-run"]
        self.tags.append((tag, a, self.run))

    def handle_data(self, data):
        self.text.append(data)

    def find(self, tag, run=None, **want):
        return [a for t, a, r in self.tags if t == tag and (run is None or r == run)
                and all(a.get(k.replace("_", "-")) == v for k, v in want.items())]

    def has(self, tag, run, key):
        return [a for t, a, r in self.tags if t == tag and r == run and key in a]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs on an image folder of three classes told apart by a faint tint in
    strong noise, so that the short runs still make mistakes; the second records health."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    for k, name in enumerate(["red", "green", "blue"]):
        (root / "data" / name).mkdir(parents=True)
        for i in range(30):
            img = rng.integers(0, 200, (32, 32, 3)).astype(np.uint8)
            img[..., k] += 30
            Image.fromarray(img).save(root / "data" / name / f"{i}.png")
    out = []
    for run_id, lr, health in (("alpha", 0.01, 0), ("beta", 0.03, 2)):
        fit(TrainConfig(model="lenet5", data=f"folder:{root / 'data'}", epochs=2,
                        batch_size=16, lr=lr, progress=False, out=str(root / "runs"),
                        run_id=run_id, val_fraction=0.3, health_every=health),
            log=lambda line: None)
        out.append(root / "runs" / run_id)
    return out


def independent(run: Path):
    """Confusion matrix, per-class accuracy and softmax outputs of the best checkpoint on
    the run's validation split, from train.evaluate and a plain forward."""
    ck, cfg, model = load_trained(run / "checkpoints" / "best")
    ds, _ = run_split(None, None, cfg, ck.meta)
    tf = transforms_for(cfg, ds.image_shape, ck.meta["mean"], ck.meta["std"], False)
    res = evaluate(model, DataLoader(ds, 64, transform=tf), ck.meta["num_classes"])
    x, _ = next(DataLoader(ds, len(ds), transform=tf).batches(0))
    from convnetpy import Tensor, no_grad

    with no_grad():
        z = model(Tensor(x)).numpy().astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return res, p / p.sum(axis=1, keepdims=True), ds, ck.meta["classes"]


@pytest.mark.slow
def test_report_of_two_runs(runs, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", *map(str, runs), "-o", str(out), "--top", "6"]) == 0
    assert "wrote" in capsys.readouterr().out
    text = out.read_text()
    page = Page(text)
    # self-contained: no script, no stylesheet link, nothing fetched
    assert not page.find("script") and not page.find("link") and not page.find("iframe")
    for tag, a, _ in page.tags:
        for key in ("src", "href"):
            assert not (a.get(key) or "").startswith(("http://", "https://", "//")), (tag, a)
    imgs = page.find("img")
    assert len(imgs) >= 2 + 2 * 3  # comparison (2), per run curves, confusion, per class
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        data = base64.b64decode(a["src"].split(",", 1)[1], validate=True)
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        Image.open(io.BytesIO(data)).verify()
    assert [a["data-run"] for a in page.find("section") if "data-run" in a] == [
        "alpha", "beta"]
    assert page.find("section", id="comparison")
    for run in runs:
        name = run.name
        res, probs, ds, classes = independent(run)
        accs = {a["data-class"]: float(a["data-value"])
                for a in page.has("td", name, "data-class")}
        assert accs.keys() == set(classes)
        np.testing.assert_allclose([accs[c] for c in classes], res["per_class"], rtol=0,
                                   atol=1e-12)
        cells = page.has("td", name, "data-true")
        assert len(cells) == len(classes) ** 2
        conf = np.array(res["confusion"])
        table = np.zeros_like(conf)
        # the cell text follows each start tag: read the table back from the HTML itself
        for t, p, count in _cells(text, name):
            table[t, p] = count
        np.testing.assert_array_equal(table, conf)
        assert conf.trace() < conf.sum(), "the fixture should make mistakes"
        items = page.has("li", name, "data-index")
        assert 0 < len(items) <= 6
        shown = [float(a["data-prob"]) for a in items]
        assert shown == sorted(shown, reverse=True)
        pred = probs.argmax(axis=1)
        wrong = np.flatnonzero(pred != ds.labels)
        expect = sorted(wrong, key=lambda i: (-probs[i, pred[i]], i))[:6]
        assert [int(a["data-index"]) for a in items] == expect
        for a in items:
            i = int(a["data-index"])
            assert a["data-true"] == classes[ds.labels[i]] != a["data-pred"]
            assert a["data-pred"] == classes[pred[i]]
            assert float(a["data-prob"]) == pytest.approx(probs[i, pred[i]], abs=1e-6)
        assert name in "".join(page.text)
    # the diagrams parse as XML, one per run, with the model's layers
    svgs = [text[s:text.index("</svg>", s) + 6] for s in _starts(text, "<svg")]
    assert len(svgs) == 2
    for svg in svgs:
        root = ET.fromstring(svg)
        assert sum("layer" in (g.get("class") or "").split()
                   for g in root.iter("{http://www.w3.org/2000/svg}g")) == 12
    # health plots for the run that recorded them only
    assert page.has("h3", "beta", "id") and any(
        a.get("id") == "run-1-health" for a in page.find("h3"))
    assert not any(a.get("id") == "run-0-health" for a in page.find("h3"))
    from convnetpy.train.health import read_health

    words = " ".join("".join(page.text).split())
    for w in read_health(runs[1])[1]:
        assert f"step {w['step']}: {w['message']}" in words
    for run in runs:  # the page says which checkpoint it evaluated
        meta = json.loads((run / "checkpoints" / "best" / "meta.json").read_text())
        assert f"checkpoint: best (epoch {meta['epoch']}, step {meta['step']})" in words


def _starts(text, needle):
    i = text.find(needle)
    while i >= 0:
        yield i
        i = text.find(needle, i + 1)


def _cells(text, run):
    """(true, predicted, count) of the confusion table of ``run``'s section."""
    start = text.index(f"data-run='{run}'><h2>")
    end = text.find("<section", start + 1)
    part = text[start:end if end > 0 else None]
    for s in _starts(part, "<td data-true="):
        head, rest = part[s:].split(">", 1)
        t = int(head.split("data-true='")[1].split("'")[0])
        p = int(head.split("data-pred='")[1].split("'")[0])
        yield t, p, int(rest.split("<", 1)[0])


def test_missing_run_folder_writes_nothing(runs, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(runs[0]), str(tmp_path / "nope"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no run folder at" in err and "nope" in err
    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert main(["report", str(runs[0]), str(empty), "-o", str(out)]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    assert main(["report", str(runs[0]), "-o", str(tmp_path / "no" / "r.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty-run"]  # no partial file


def test_most_confused_ranks_mistakes_by_wrong_class_probability():
    probs = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6], [0.9, 0.05, 0.05],
                      [0.3, 0.6, 0.1], [0.5, 0.4, 0.1]])
    labels = np.array([0, 2, 1, 0, 0])  # 1 and 4 are right; 0 and 3 tie at 0.6
    got = most_confused(probs, labels, 10)
    assert [(c.index, c.true, c.pred) for c in got] == [(2, 1, 0), (0, 0, 1), (3, 0, 1)]
    assert [c.true_prob for c in got] == [0.05, 0.1, 0.3]
    assert most_confused(probs, labels, 1)[0].index == 2 and not most_confused(probs, labels, 0)
