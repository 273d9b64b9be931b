"""A seeded mutation fuzz of the data readers: MNIST IDX files (raw and gzip), CIFAR-10
pickle batches and JPEG/PNG images (one at a time and as an image folder). Every case
either loads a well-formed dataset (uint8 images of the declared shape, int64 labels in
range) or raises the library's own error, a ValueError or OSError with a message; any
other exception is a failure. Cases that once failed are kept as files in
fixtures/data_regressions/ and checked by ``test_regression_corpus``."""

import gzip
import io
import random
import warnings
from pathlib import Path

import numpy as np
import py2pickle
import pytest

from convnetpy.data import decode_image, load_folder, load_mnist
from convnetpy.data.cifar10 import load_batch

CORPUS = Path(__file__).parent / "fixtures" / "data_regressions"
CASES = {"idx": 400, "cifar": 400, "image": 320, "folder": 80}  # 1,200 in all
ALLOWED = (ValueError, OSError)


def idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big")
                                                     for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three random edits, biased towards the header where the readers decide."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not b:
            break
        head = min(len(b), 64)
        pos = rng.randrange(head) if rng.random() < 0.6 else rng.randrange(len(b))
        kind = rng.randrange(7)
        if kind == 0:  # truncated
            del b[rng.randrange(len(b)):]
        elif kind == 1:  # flipped bits
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == 2:  # a random byte
            b[pos] = rng.randrange(256)
        elif kind == 3:  # a huge or extreme 32-bit field
            b[pos:pos + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff",
                                         b"\x00\x00\x00\x00", b"\x80\x00\x00\x00"])
        elif kind == 4:  # inserted garbage
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 5:  # a deleted span
            del b[pos:pos + rng.randint(1, 16)]
        else:  # a repeated span
            b[pos:pos] = b[pos:pos + rng.randint(1, 32)]
    return bytes(b)


def check_dataset(ds, channels: int | None = None) -> None:
    """What a loaded dataset must be: uint8 (N, C, H, W), N int64 labels in range."""
    assert ds.images.dtype == np.uint8 and ds.images.ndim == 4
    assert channels is None or ds.images.shape[1] == channels
    assert ds.labels.dtype == np.int64 and ds.labels.shape == (len(ds.images),)
    assert len(ds.labels) == 0 or 0 <= ds.labels.min() <= ds.labels.max() < ds.num_classes


def outcome(load, check) -> str | None:
    """None when the case ends in an allowed way, else a description of what happened."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the folder reader warns once per skipped file
            result = load()
    except ALLOWED as e:
        return None if str(e) else f"{type(e).__name__} without a message"
    except Exception as e:  # noqa: BLE001 - any other exception is what the fuzz looks for
        return f"{type(e).__name__}: {e}"
    try:
        check(result)
    except AssertionError:
        return "loaded, but not a well-formed dataset"
    return None


# ---------------------------------------------------------------- the seeds
def mnist_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    return {"train-images-idx3-ubyte": idx(rng.integers(0, 256, (4, 28, 28))),
            "train-labels-idx1-ubyte": idx(rng.integers(0, 10, 4))}


def image_bytes(fmt: str, mode: str = "RGB", size=(8, 6)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(len(fmt) + len(mode))
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(buf, fmt)
    return buf.getvalue()


# ---------------------------------------------------------------- one case of each reader
def idx_case(rng: random.Random, folder: Path) -> tuple:
    files = mnist_files()
    victim = rng.choice(sorted(files))
    zipped = rng.random() < 0.4
    data = files[victim]
    if zipped and rng.random() < 0.5:  # the compressed bytes damaged
        data = mutate(gzip.compress(data, mtime=0), rng)
    else:
        data = mutate(data, rng)
        data = gzip.compress(data, mtime=0) if zipped else data
    for p in folder.iterdir():
        p.unlink()
    for name, good in files.items():
        (folder / (name + (".gz" if zipped and name == victim else ""))).write_bytes(
            data if name == victim else good)
    return (lambda: load_mnist(folder)), (lambda ds: check_dataset(ds, 1)), data


def cifar_case(rng: random.Random, folder: Path) -> tuple:
    data = mutate(py2pickle.cifar_batch(rng.randint(0, 3), seed=rng.randrange(10)), rng)

    def check(xy):
        x, y = xy
        assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32)
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert len(y) == 0 or (y.min() >= 0 and y.max() < 10)
    return (lambda: load_batch(data, "fuzz")), check, data


SEEDS = {}


def image_seed(fmt: str, mode: str) -> bytes:
    if (fmt, mode) not in SEEDS:
        SEEDS[fmt, mode] = image_bytes(fmt, mode)
    return SEEDS[fmt, mode]


def image_case(rng: random.Random, folder: Path) -> tuple:
    fmt, mode = rng.choice([("PNG", "RGB"), ("PNG", "L"), ("JPEG", "RGB"), ("JPEG", "L")])
    data = mutate(image_seed(fmt, mode), rng)
    want = rng.choice(["RGB", "L"])

    def check(arr):
        assert arr.dtype == np.uint8 and arr.shape == ((3 if want == "RGB" else 1), 5, 7)
    return (lambda: decode_image(io.BytesIO(data), (5, 7), want)), check, data


def folder_case(rng: random.Random, folder: Path) -> tuple:
    root = folder / f"set{rng.randrange(10**9)}"
    for ci, cls in enumerate(("cat", "dog")):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            fmt = "PNG" if (ci + i) % 2 else "JPEG"
            data = image_seed(fmt, "RGB")
            if rng.random() < 0.5:
                data = mutate(data, rng)
            (root / cls / f"{i}.{fmt.lower()}").write_bytes(data)

    def check(ds):
        check_dataset(ds, 3)
        assert ds.images.shape[2:] == (6, 6) and ds.classes == ["cat", "dog"]
    return (lambda: load_folder(root, 6)), check, b""


READERS = {"idx": idx_case, "cifar": cifar_case, "image": image_case, "folder": folder_case}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_mutated_files_load_or_raise_the_librarys_error(reader, tmp_path):
    pytest.importorskip("PIL")
    rng = random.Random(f"issue21-{reader}")  # fixed: every run tries the same cases
    failures = []
    for case in range(CASES[reader]):
        load, check, data = READERS[reader](rng, tmp_path)
        what = outcome(load, check)
        if what is not None:
            failures.append(f"case {case}: {what}")
    assert not failures, f"{len(failures)} of {CASES[reader]} {reader} cases: " + "; ".join(
        failures[:5])


def regression_cases() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.is_file() and p.name != "README.md") \
        if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", regression_cases(), ids=lambda p: p.name)
def test_regression_corpus(path, tmp_path):
    """Each file once crashed a reader with a raw exception; it now gets a clean error."""
    pytest.importorskip("PIL")
    data = path.read_bytes()
    kind = path.name.split("-")[0]
    if kind == "idx":  # an images file paired with good labels (or the other way)
        files = mnist_files()
        victim = next(n for n in files if n.split("-")[1] in path.name)
        for name, good in files.items():
            suffix = ".gz" if name == victim and data[:2] == b"\x1f\x8b" else ""
            (tmp_path / (name + suffix)).write_bytes(data if name == victim else good)
        load = lambda: load_mnist(tmp_path)  # noqa: E731
    elif kind == "cifar":
        load = lambda: load_batch(data, path.name)  # noqa: E731
    else:
        load = lambda: decode_image(io.BytesIO(data), (5, 7), "RGB")  # noqa: E731
    with pytest.raises(ALLOWED) as info:
        load()
    assert str(info.value)
