"""The architecture diagram (viz/diagram.py, viz/layout.py): the SVG parses, has one node per
leaf-module call, edges labelled with the summary's output shapes, residual adds with their
skip, Inception concats with four inputs, escaped labels."""

import xml.etree.ElementTree as ET

import pytest

from convnetpy import models, nn, summary
from convnetpy.viz import layout
from convnetpy.viz.diagram import diagram_svg, graph, module_label, shape_text

SVG = "{http://www.w3.org/2000/svg}"


class Drawing:
    """The parsed SVG: nodes by id (class list, data-path, label text), edges (src, dst,
    label, class list)."""

    def __init__(self, text: str) -> None:
        root = ET.fromstring(text)
        assert root.tag == f"{SVG}svg"
        self.nodes, self.edges = {}, []
        for g in root.iter(f"{SVG}g"):
            cls = g.get("class", "").split()
            if "node" in cls:
                texts = [t.text for t in g.findall(f"{SVG}text")]
                self.nodes[g.get("id")] = {"cls": cls, "path": g.get("data-path"),
                                           "label": texts[0]}
            elif "edge" in cls:
                self.edges.append((g.get("data-src"), g.get("data-dst"),
                                   g.find(f"{SVG}text").text, cls))

    def of(self, kind: str) -> dict:
        return {k: n for k, n in self.nodes.items() if kind in n["cls"]}

    def into(self, node: str) -> list:
        return [e for e in self.edges if e[1] == node]

    def out_of(self, node: str) -> list:
        return [e for e in self.edges if e[0] == node]

    def by_path(self, path: str) -> str:
        (key,) = [k for k, n in self.of("layer").items() if n["path"] == path]
        return key


def leaf_rows(model, input_shape):
    """Summary rows of the leaf modules that ran, empty containers (wires) left out."""
    mods = dict(model.named_modules())
    rows = summary(model, (1,) + tuple(input_shape)).rows
    return [r for r in rows if r["calls"] and not list(mods[r["path"]].children())
            and not (isinstance(mods[r["path"]], nn.Sequential))]


def check_against_summary(name):
    model = models.get(name)
    shape = models.default_input_size(name)
    d = Drawing(diagram_svg(model, shape))
    rows = leaf_rows(model, shape)
    layers = d.of("layer")
    assert len(layers) == sum(r["calls"] for r in rows)
    for r in rows:  # what leaves a layer on every edge is the summary's output shape
        key = d.by_path(r["path"])
        labels = {e[2] for e in d.out_of(key)}
        assert labels == {shape_text(r["output_shape"][1:])}, r["path"]
        assert d.into(key), f"{r['path']} has no input edge"
    (inp,) = d.of("input")
    assert {e[2] for e in d.out_of(inp)} == {shape_text(shape)}
    return model, d


def test_lenet5_is_one_column_of_its_layers_with_their_settings():
    model, d = check_against_summary("lenet5")
    labels = [n["label"] for n in d.of("layer").values()]
    assert labels[0] == "Conv2d 1→6 k5 s1 p0" and "MaxPool2d k2 s2" in labels
    assert "Linear 400→120" in labels
    assert not d.of("merge") and not d.of("op")
    nodes = graph(model, (1, 32, 32))
    preds = [n.preds for n in nodes]
    assert set(layout.lanes(preds, layout.rows(preds))) == {0}
    assert all(n.preds == [i - 1] for i, n in enumerate(nodes) if i)  # a chain


def test_convnetjs_cifar10_matches_the_summary():
    check_against_summary("convnetjs_cifar10")


def test_resnet20_has_nine_adds_each_with_its_skip():
    _, d = check_against_summary("resnet20")
    adds = d.of("add")
    assert len(adds) == 9
    arcs = 0
    for key, node in adds.items():
        block = node["path"]  # the add runs in the block's forward
        srcs = {e[0] for e in d.into(key)}
        assert len(d.into(key)) == 2
        main = d.by_path(f"{block}.bn2")
        block_input = d.into(d.by_path(f"{block}.conv1"))[0][0]
        (skip,) = srcs - {main}
        if d.nodes[skip]["path"] == f"{block}.shortcut":  # option A: through the shortcut
            assert d.into(skip)[0][0] == block_input
        else:  # identity: straight from the block's input, drawn beside the column
            assert skip == block_input
            (edge,) = [e for e in d.into(key) if e[0] == skip]
            arcs += "arc" in edge[3]
    assert arcs == 7  # 9 blocks, 2 of which change shape


def test_googlenet_concats_take_four_branches():
    model, d = check_against_summary("googlenet")
    concats = d.of("concat")
    assert len(concats) == 9
    for key, node in concats.items():
        ins = d.into(key)
        assert len(ins) == 4
        # one edge from the end of each branch of this block: the relu its last
        # BasicConv2d runs (branch1 is one BasicConv2d, the others a Sequential of two)
        assert sorted(d.nodes[e[0]]["path"] for e in ins) == [
            f"{node['path']}.branch{i}{'' if i == 1 else '.1'}" for i in range(1, 5)]
        channels = sum(int(e[2].split("×")[0]) for e in ins)
        assert {e[2] for e in d.out_of(key)} == {shape_text((channels,) + tuple(
            int(v) for v in ins[0][2].split("×")[1:]))}
    nodes = graph(model, (3, 224, 224))
    preds = [n.preds for n in nodes]
    assert max(layout.lanes(preds, layout.rows(preds))) == 3  # four branches side by side


class Odd(nn.Module):
    def forward(self, x):
        return x * 2

    def extra_repr(self):
        return 'a<b & "c">'


def test_labels_are_escaped():
    net = nn.Sequential()
    net.add_module("x<y&z>\"", Odd())
    net.add_module("fc", nn.Flatten())
    text = diagram_svg(net, (2, 3, 3), title="<net & co>")
    d = Drawing(text)  # parses
    (odd, flat) = d.of("layer").values()
    assert odd["path"] == 'x<y&z>"' and odd["label"] == 'Odd a<b & "c">'
    assert flat["label"] == "Flatten"
    assert "<net & co>" not in text and "&lt;net &amp; co&gt;" in text


def test_module_label_shows_key_settings():
    assert module_label(nn.Conv2d(3, 8, (3, 1), stride=2, padding=(1, 0), groups=1)) == \
        "Conv2d 3→8 k3×1 s2 p1×0"
    assert module_label(nn.Conv2d(4, 4, 3, dilation=2, groups=4)) == "Conv2d 4→4 k3 s1 p0 d2 g4"
    assert module_label(nn.MaxPool2d(3, 2, 1)) == "MaxPool2d k3 s2 p1"
    assert module_label(nn.AdaptiveAvgPool2d(1)) == "AdaptiveAvgPool2d →1"
    assert module_label(nn.BatchNorm2d(16)) == "BatchNorm2d 16"
    assert module_label(nn.Dropout(0.25)) == "Dropout p=0.25"


def test_modes_are_restored_and_bad_input_shape_is_named():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout(0.5))
    net.train()
    graph(net, (1, 5, 5))
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match=r"input_shape must be the shape of one input"):
        diagram_svg(net, (1, 0, 5))


def test_layout_rows_lanes_and_routes():
    # 0 -> {1, 2}; 1 -> 3 -> 4; {4, 2} -> 5: a long and a short branch meeting
    preds = [[], [0], [0], [1], [3], [4, 2]]
    row = layout.rows(preds)
    assert row == [0, 1, 1, 2, 3, 4]
    lane = layout.lanes(preds, row)
    assert lane == [0, 0, 1, 0, 0, 0]
    assert layout.route(2, 5, row, lane) == "down-then-across"
    assert layout.route(0, 2, row, lane) == "straight"
    with pytest.raises(ValueError, match="node 1 takes input from node"):
        layout.rows([[], [2], []])
