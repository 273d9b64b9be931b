"""Data loading: CIFAR-10 batches (official format and hostile pickles), MNIST IDX files,
image folders with bad files, labels, transforms and the DataLoader."""

import gzip
import io
import pickle
import tarfile
import warnings

import numpy as np
import py2pickle
import pytest

from convnetpy.data import (
    AlternatingFlip,
    ArrayDataset,
    Compose,
    Cutout,
    DataLoader,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    get_dataset,
    load_cifar10,
    load_digits,
    load_folder,
    load_mnist,
    synthetic,
    validate_labels,
)
from convnetpy.data.cifar10 import load_batch


# ---------------------------------------------------------------- CIFAR-10
def write_cifar(folder, n=20):
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(py2pickle.cifar_batch(n, seed=i))
    (d / "test_batch").write_bytes(py2pickle.cifar_batch(n, seed=9))
    return d


def test_cifar_folder_and_archive(tmp_path):
    d = write_cifar(tmp_path)
    ds = load_cifar10(d)
    assert len(ds) == 100 and ds.image_shape == (3, 32, 32) and ds.classes[0] == "airplane"
    raw = pickle.loads(py2pickle.cifar_batch(20, seed=1), encoding="bytes")
    np.testing.assert_array_equal(ds.images[:20].reshape(20, -1), raw[b"data"])
    np.testing.assert_array_equal(ds.labels[:20], raw[b"labels"])
    assert len(load_cifar10(tmp_path, train=False)) == 20
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(d, arcname="cifar-10-batches-py")
    np.testing.assert_array_equal(load_cifar10(archive).images, ds.images)


def test_cifar_numpy_core_alias(tmp_path):
    data = py2pickle.cifar_batch(4).replace(b"numpy.core.multiarray", b"numpy._core.multiarray")
    x, y = load_batch(data)
    assert x.shape == (4, 3, 32, 32)


def test_cifar_missing_files_and_bad_schema(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10(tmp_path / "nope")
    d = write_cifar(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3 is missing"):
        load_cifar10(d)
    with pytest.raises(ValueError, match=r"'labels' must be a list of 3 integers in \[0, 10\)"):
        load_batch(py2pickle.cifar_batch(3, labels=[1, 2, 10]))
    bad = py2pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    with pytest.raises(ValueError, match=r"'data' must be a uint8 array of shape \(N, 3072\)"):
        load_batch(bad)


class Evil:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/convnetpy-pwned",))


@pytest.mark.parametrize("payload", [
    pickle.dumps(Evil(), protocol=2),
    pickle.dumps(Evil(), protocol=4),  # STACK_GLOBAL
    b"cbuiltins\neval\n(S'1+1'\ntR.",
    b"\x80\x02cnumpy\ndtype\nX\x01\x00\x00\x00O\x85R.",  # an object dtype
    pickle.dumps({"a": 1}, protocol=2)[:-3],  # truncated
    b"\x80\x02" + b"]\x94" * 5 + b"r\xff\xff\xff\x7f.",  # memo index far out of range
    b"\x80\x02\xff\xff",  # an opcode pickle does not know
], ids=["reduce-os-system", "stack-global", "eval", "object-dtype", "truncated", "memo",
        "unknown-opcode"])
def test_hostile_pickles_are_rejected_without_running(tmp_path, payload):
    import os

    marker = "/tmp/convnetpy-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    with pytest.raises(ValueError, match="^evil: "):  # the message names the file
        load_batch(payload, "evil")
    assert not os.path.exists(marker)


def test_array_claiming_a_huge_shape_does_not_allocate():
    data = py2pickle.cifar_batch(2)
    # rewrite the (2, 3072) shape as (2**40, 3072): the raw bytes no longer match
    good = pickle.loads(data, encoding="bytes")
    assert good[b"data"].shape == (2, 3072)
    evil = data.replace(b"K\x02M\x00\x0c\x86", b"\x8a\x06\x00\x00\x00\x00\x00\x01M\x00\x0c\x86")
    assert evil != data
    with pytest.raises(ValueError, match="cannot decode|not allowed|'data' must be"):
        load_batch(evil)


def test_oversized_batch_file_is_refused_before_reading(tmp_path):
    d = write_cifar(tmp_path)
    with open(d / "data_batch_2", "r+b") as f:
        f.truncate(80 * 2**20)  # sparse: 80 MB without writing them
    with pytest.raises(ValueError, match="larger than any CIFAR-10 batch"):
        load_cifar10(d)


# ---------------------------------------------------------------- MNIST
def idx(data: np.ndarray, code=0x08) -> bytes:
    head = bytes([0, 0, code, data.ndim]) + b"".join(int(s).to_bytes(4, "big")
                                                      for s in data.shape)
    return head + data.astype(np.uint8).tobytes()


def test_mnist_raw_and_gzip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx(x))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(y)))
    ds = load_mnist(tmp_path)
    assert ds.images.shape == (7, 1, 28, 28)
    np.testing.assert_array_equal(ds.images[:, 0], x)
    np.testing.assert_array_equal(ds.labels, y)


@pytest.mark.parametrize("mutate,match", [
    (lambda b: b"\x01" + b[1:], "bad magic number"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "type code 0x0d"),
    (lambda b: b[:-5], "truncated or padded"),
    (lambda b: b + b"\x00", "truncated or padded"),
    (lambda b: b[:3] + b"\x02" + b[4:], "2 dimensions in the header, expected 3"),
])
def test_mnist_bad_headers(tmp_path, mutate, match):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(mutate(idx(np.zeros((3, 28, 28)))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(np.zeros(3)))
    with pytest.raises(ValueError, match=match):
        load_mnist(tmp_path)


def test_mnist_count_mismatch_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx(np.zeros((3, 28, 28))))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(np.zeros(4)))
    with pytest.raises(ValueError, match="3 images but 4 labels"):
        load_mnist(tmp_path)


# ---------------------------------------------------------------- image folders
def test_image_folder_skips_bad_files_with_one_warning_each(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            img = Image.fromarray(rng.integers(0, 256, (40, 30, 3)).astype(np.uint8))
            img.save(tmp_path / cls / f"{i}.{'png' if i else 'jpg'}")
    (tmp_path / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / ".hidden" / "x.png")
    (tmp_path / "cat" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(good, format="JPEG")
    (tmp_path / "cat" / "truncated.jpg").write_bytes(good.getvalue()[:200])
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / "renamed.jpg", format="PNG")  # still OK
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / "gif.png", format="GIF")
    Image.new("RGB", (300, 300)).save(tmp_path / "dog" / "huge.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_folder(tmp_path, image_size=16, max_pixels=200 * 200)
    msgs = sorted(str(w.message) for w in caught)
    assert len(msgs) == 4
    assert any("corrupt.jpg" in m for m in msgs) and any("truncated.jpg" in m for m in msgs)
    assert any("gif.png" in m for m in msgs)
    assert any("huge.png" in m and "exceeds the cap" in m for m in msgs)
    assert ds.classes == ["cat", "dog"] and len(ds) == 7
    assert ds.images.shape == (7, 3, 16, 16) and ds.labels.tolist() == [0] * 3 + [1] * 4


def test_empty_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no class subfolders"):
        load_folder(tmp_path)
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="no readable JPEG or PNG images"):
        load_folder(tmp_path)


# ---------------------------------------------------------------- labels and datasets
@pytest.mark.parametrize("labels,n,match", [
    ([0, 1], 3, "2 labels for 3 images"),
    ([0, -1, 2], 3, "label -1 at index 1 is negative"),
    ([0, 10, 2], 3, "label 10 at index 1 is out of range for 10 classes"),
    ([0.5, 1, 2], 3, "labels must be integer class indices, got 0.5"),
    (["a", "b", "c"], 3, "labels must be integer class indices"),
    ([[0], [1], [2]], 3, "expected a 1-D sequence"),
])
def test_label_validation(labels, n, match):
    with pytest.raises(ValueError, match=match):
        validate_labels(labels, n, 10)


def test_float_integral_labels_are_accepted():
    assert validate_labels([0.0, 2.0], 2, 3).dtype == np.int64


def test_split_is_stratified_and_seeded():
    ds = synthetic(400)
    a, b = ds.split(0.25, seed=3)
    a2, b2 = ds.split(0.25, seed=3)
    np.testing.assert_array_equal(b.labels, b2.labels)
    assert len(a) + len(b) == 400
    for c in range(4):
        frac = (b.labels == c).sum() / (ds.labels == c).sum()
        assert abs(frac - 0.25) < 0.02


def test_bundled_digits():
    ds = load_digits()
    assert len(ds) == 8000 and ds.image_shape == (1, 28, 28)
    assert np.bincount(ds.labels).tolist() == [800] * 10
    assert get_dataset("digits").images.shape == ds.images.shape


def test_get_dataset_errors():
    with pytest.raises(ValueError, match="unknown data 'imagenet'"):
        get_dataset("imagenet")
    with pytest.raises(ValueError, match="folder data needs a path"):
        get_dataset("folder")
    with pytest.raises(ValueError, match="positive number of images .*'synthetic:x'"):
        get_dataset("synthetic:x")


def test_synthetic_data_takes_the_models_input_shape(tmp_path):
    from convnetpy.cli import main
    from convnetpy.train import TrainConfig, preset
    from convnetpy.train.recipe import model_input_shape, prepare_data

    assert get_dataset("synthetic:8").image_shape == (3, 32, 32)
    assert get_dataset("synthetic:8", input_shape=(1, 28, 28)).image_shape == (1, 28, 28)
    # the default recipe's LeNet-5 (padding 2) takes MNIST's 28x28, the CIFAR ones 3x32x32
    assert model_input_shape(TrainConfig(**preset("digits-lenet5"))) == (1, 28, 28)
    assert model_input_shape(TrainConfig(model="lenet5")) == (1, 32, 32)
    assert model_input_shape(TrainConfig(**preset("cifar10-quick"))) == (3, 32, 32)
    cfg = TrainConfig(**{**preset("digits-lenet5"), "data": "synthetic:40"})
    assert prepare_data(cfg).dataset.image_shape == (1, 28, 28)
    assert main(["train", "--data", "synthetic:64", "--epochs", "1", "--quiet", "--out",
                 str(tmp_path), "--batch-size", "16", "--set", "max_steps=2"]) == 0
    assert len(list(tmp_path.iterdir())) == 1


# ---------------------------------------------------------------- transforms and loader
def test_transforms():
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 8, 8)).astype(np.float32)
    crop = RandomCrop(8, padding=2)(x, np.random.default_rng(1))
    assert crop.shape == x.shape
    # each crop is a shifted window of the zero-padded image
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(6):
        assert any(np.array_equal(crop[i], xp[i, :, dy:dy + 8, dx:dx + 8])
                   for dy in range(5) for dx in range(5))
    flip = RandomHorizontalFlip(1.0)(x, rng)
    np.testing.assert_array_equal(flip, x[..., ::-1])
    cut = Cutout(4)(np.ones((5, 1, 8, 8), np.float32), rng)
    assert all(0 < (cut[i] == 0).sum() <= 16 for i in range(5))
    norm = Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])(x, rng)
    np.testing.assert_allclose(norm, (x - 0.5) / 0.25, rtol=1e-6)
    pipe = Compose([RandomCrop(8, 2), RandomHorizontalFlip()])
    np.testing.assert_array_equal(pipe(x, np.random.default_rng(5)),
                                  pipe(x, np.random.default_rng(5)))
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize([0], [0])


def test_loader_order_resume_and_prefetch():
    ds = synthetic(100)
    tf = Compose([RandomCrop(32, 4), RandomHorizontalFlip()])
    a = DataLoader(ds, 16, shuffle=True, seed=7, transform=tf)
    b = DataLoader(ds, 16, shuffle=True, seed=7, transform=tf, prefetch=0)
    full = list(a.batches(3))
    assert len(full) == len(a) == 7 and len(full[-1][1]) == 4
    for (x1, y1), (x2, y2) in zip(full, b.batches(3)):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    tail = list(a.batches(3, start=4))
    for (x1, y1), (x2, y2) in zip(full[4:], tail):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(a.order(3), a.order(4))
    assert len(DataLoader(ds, 16, drop_last=True)) == 6
    seen = np.concatenate([y for _, y in DataLoader(ds, 16, shuffle=True, seed=1).batches(0)])
    assert sorted(seen.tolist()) == sorted(ds.labels.tolist())


def test_alternating_flip_shows_each_image_both_ways_every_two_epochs():
    # 300 images, each a left-to-right ramp (so a flipped one runs right-to-left), labelled
    # by their index; the loader shuffles, and the flip must follow the image, not its slot
    n = 300
    ramp = np.arange(8, dtype=np.uint8)[None, None, None, :] * 30
    ds = ArrayDataset(np.broadcast_to(ramp, (n, 1, 8, 8)).copy(), np.arange(n),
                      [str(k) for k in range(n)])

    def flipped(loader, epoch, start=0):
        seen = np.zeros(n, bool)
        for x, y in loader.batches(epoch, start):
            seen[y] = x[:, 0, 0, 0] > x[:, 0, 0, -1]
        return seen

    loader = DataLoader(ds, 64, shuffle=True, seed=3, transform=Compose([AlternatingFlip(5)]))
    e0, e1, e2 = (flipped(loader, e) for e in range(3))
    assert np.all(e0 != e1) and np.array_equal(e0, e2)  # every image, both ways, in turn
    assert 0.4 < e0.mean() < 0.6  # a random half first
    assert not np.array_equal(AlternatingFlip(6).flipped(np.arange(n), 0), e0)  # its seed
    # a resumed epoch flips the same images (the bits are a function of index and seed)
    rest = flipped(loader, 1, start=2)
    later = np.concatenate([y for _, y in loader.batches(1, 2)])
    np.testing.assert_array_equal(rest[later], e1[later])
    with pytest.raises(ValueError, match="needs each image's dataset index and the epoch"):
        AlternatingFlip()(np.zeros((2, 1, 4, 4), np.float32), None)
    with pytest.raises(ValueError, match="2 images but 3 indices"):
        AlternatingFlip()(np.zeros((2, 1, 4, 4), np.float32), None, index=[0, 1, 2], epoch=0)


def test_loader_propagates_errors():
    def boom(x, rng):
        raise RuntimeError("transform failed")

    with pytest.raises(RuntimeError, match="transform failed"):
        list(DataLoader(synthetic(40), 8, transform=boom).batches(0))


def test_dataset_validation():
    with pytest.raises(ValueError, match="images must be uint8"):
        ArrayDataset(np.zeros((2, 1, 4, 4)), np.zeros(2, int))
    with pytest.raises(ValueError, match="label 5 at index 1 is out of range for 2 classes"):
        ArrayDataset(np.zeros((2, 1, 4, 4), np.uint8), np.array([0, 5]), ["a", "b"])


def test_offline_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    import urllib.request

    from convnetpy.data import cifar10

    def offline(*a, **k):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setenv("CONVNETPY_DATA", str(tmp_path))
    monkeypatch.delenv("CONVNETPY_DATA_MIRROR", raising=False)
    with pytest.raises(FileNotFoundError, match="CIFAR-10 is not in .*: run `convnetpy data "
                                                "download cifar10`"):
        cifar10.load_cifar10()  # no download unless asked
    with pytest.raises(OSError, match="could not download https://www.cs.toronto.edu/~kriz/"
                                      "cifar-10-python.tar.gz .*network is unreachable.*"
                                      "set CONVNETPY_DATA_MIRROR"):
        cifar10.load_cifar10(download=True)
    assert not list(tmp_path.rglob("*.part"))  # no partial download left behind
