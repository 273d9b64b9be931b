"""The official test splits from the command line (eval, predict, dashboard: --split
test|train|val), and training that never reads them. The files are small synthetic ones
written in the official formats (the real test splits are not in ../shared/data)."""

import numpy as np
import py2pickle
import pytest

from convnetpy import data
from convnetpy.cli import main
from convnetpy.train import PRESETS, TrainConfig, fit, preset


def idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(s).to_bytes(4, "big")
                                                     for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def write_mnist(folder, n_train=300, n_test=40, test=True):
    """MNIST IDX files; the training images are their label's brightness (learnable)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        if prefix == "t10k" and not test:
            continue
        y = rng.integers(0, 10, n)
        x = (y[:, None, None] * 25 + rng.integers(0, 5, (n, 28, 28))).astype(np.uint8)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(idx(x))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx(y))
    return folder


def write_cifar(folder, n=24, test=True):
    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(py2pickle.cifar_batch(n, seed=i))
    if test:
        (d / "test_batch").write_bytes(py2pickle.cifar_batch(n, seed=9))
    return d


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("splits")
    d = write_mnist(root / "mnist")
    r = fit(config=TrainConfig(model="lenet5", data=f"mnist:{d}", epochs=2, batch_size=32,
                               lr=0.05, progress=False, out=str(root / "runs"),
                               val_fraction=0.2, model_kwargs={"padding": 2}),
            log=lambda line: None)
    return d, r["run_dir"], r


def test_eval_picks_the_test_split_when_the_data_is_named(mnist_run, capsys):
    d, run, r = mnist_run
    assert main(["eval", run, "--data", f"mnist:{d}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"the test split of mnist:{d}: 40 images, accuracy")
    # without --data: the run's own validation carve-out, exactly as it trained
    assert main(["eval", run]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"the validation split of mnist:{d} (val_fraction 0.2, seed 0, as "
                          f"the run carved it): 60 images, accuracy {r['val_acc']:.2%}")
    assert main(["eval", run, "--split", "train"]) == 0
    assert ": 300 images," in capsys.readouterr().out
    assert main(["eval", run, "--data", f"mnist:{d}", "--tta", "flip-translate"]) == 0
    assert "test-time augmentation flip-translate (6 passes)" in capsys.readouterr().out


def test_a_missing_test_file_names_the_files_and_the_choices(tmp_path, mnist_run, capsys):
    _, run, _ = mnist_run
    d = write_mnist(tmp_path / "no-test", test=False)
    assert main(["eval", run, "--data", f"mnist:{d}"]) == 2
    err = capsys.readouterr().err
    assert "t10k-images-idx3-ubyte" in err and "--split val" in err and "--split train" in err
    assert main(["eval", run, "--data", "digits", "--split", "test"]) == 2
    assert "digits has no test split" in capsys.readouterr().err


def test_predict_shows_test_images_beside_their_class(mnist_run, capsys):
    d, run, _ = mnist_run
    assert main(["predict", run, "--data", f"mnist:{d}", "--index", "0", "39"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"the test split of mnist:{d}:"
    assert lines[1].startswith("  image 0 (true: ") and lines[2].startswith("  image 39 ")
    assert main(["predict", run, "--data", f"mnist:{d}", "--index", "40"]) == 2
    assert "--index 40 is outside the test split" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # neither files nor --index: a usage error
        main(["predict", run])
    assert "give image files, or --index" in capsys.readouterr().err


def test_cifar_test_batch_is_read_for_the_test_split(tmp_path):
    d = write_cifar(tmp_path)
    test = data.get_dataset(f"cifar10:{d}", split="test")
    assert test.name == "CIFAR-10 test" and len(test) == 24
    with pytest.raises(FileNotFoundError, match="test_batch"):
        data.get_dataset(f"cifar10:{write_cifar(tmp_path / 'b', test=False)}", split="test")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_training_never_reads_a_test_split(tmp_path, monkeypatch, name):
    """Every preset trains with its test files unreadable: reading them would fail."""
    cfg = preset(name)
    if cfg["data"].startswith("mnist"):
        d = write_mnist(tmp_path / "m")
        (d / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
        cfg["data"] = f"mnist:{d}"
    elif cfg["data"].startswith("cifar10"):
        d = write_cifar(tmp_path)
        (d / "test_batch").write_bytes(b"not a pickle")
        cfg["data"] = f"cifar10:{d}"
    splits = []
    real = data.get_dataset

    def spy(spec, image_size=32, split="train"):
        splits.append(split)
        return real(spec, image_size, split)

    monkeypatch.setattr("convnetpy.train.recipe.get_dataset", spy)  # prepare_data reads it
    cfg.update(out=str(tmp_path / "runs"), progress=False, max_steps=1, epochs=1,
               batch_size=8, augment=[])
    r = fit(config=TrainConfig.from_dict(cfg), log=lambda line: None)
    assert r["status"] == "max_steps" and splits == ["train"]
